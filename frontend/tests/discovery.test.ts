import { describe, expect, it } from "vitest";
import { normaliseInput, resolveHomeserver, type FetchLike } from "../src/lib/discovery";
import { UnreachableError } from "../src/lib/errors";

function fakeFetch(routes: Record<string, { status: number; body?: unknown } | "down">): FetchLike & { calls: string[] } {
  const calls: string[] = [];
  const fn = (async (url: string) => {
    calls.push(url);
    const r = routes[url];
    if (!r || r === "down") {
      if (r === "down") throw new TypeError("Failed to fetch");
      return new Response("not found", { status: 404 });
    }
    return new Response(JSON.stringify(r.body ?? {}), { status: r.status, headers: { "Content-Type": "application/json" } });
  }) as FetchLike & { calls: string[] };
  fn.calls = calls;
  return fn;
}

const versions = { status: 200, body: { versions: ["v1.11"] } };

describe("normaliseInput", () => {
  it("treats bare names as https server names, local ones as http", () => {
    expect(normaliseInput("example.org")).toEqual({ serverName: "example.org", url: "https://example.org" });
    expect(normaliseInput("localhost:8008")).toEqual({ serverName: "localhost:8008", url: "http://localhost:8008" });
    expect(normaliseInput(" https://matrix.example.org/ ")).toEqual({ url: "https://matrix.example.org" });
    expect(normaliseInput("")).toEqual({});
  });
});

describe("resolveHomeserver", () => {
  it("follows /.well-known/matrix/client", async () => {
    const f = fakeFetch({
      "https://example.org/.well-known/matrix/client": { status: 200, body: { "m.homeserver": { base_url: "https://matrix.example.org/" } } },
      "https://matrix.example.org/_matrix/client/versions": versions,
    });
    expect(await resolveHomeserver("example.org", f)).toBe("https://matrix.example.org");
  });
  it("uses the URL itself when there is no well-known", async () => {
    const f = fakeFetch({ "http://127.0.0.1:8008/_matrix/client/versions": versions });
    expect(await resolveHomeserver("http://127.0.0.1:8008", f)).toBe("http://127.0.0.1:8008");
  });
  it("ignores a well-known that points nowhere", async () => {
    const f = fakeFetch({
      "https://example.org/.well-known/matrix/client": { status: 200, body: { "m.homeserver": { base_url: "https://dead.example.org" } } },
      "https://dead.example.org/_matrix/client/versions": "down",
      "https://example.org/_matrix/client/versions": versions,
    });
    expect(await resolveHomeserver("example.org", f)).toBe("https://example.org");
  });
  it("throws UnreachableError when nothing answers", async () => {
    const f = fakeFetch({ "https://nope.example/.well-known/matrix/client": "down", "https://nope.example/_matrix/client/versions": "down" });
    await expect(resolveHomeserver("nope.example", f)).rejects.toBeInstanceOf(UnreachableError);
  });
});
