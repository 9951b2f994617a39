import { afterEach, describe, expect, it, vi } from "vitest";
import { normaliseInput, resolveHomeserver } from "../src/lib/discovery";
import { UnreachableError } from "../src/lib/errors";

/** Answers the SDK's requests (AutoDiscovery uses the global fetch) from a table of URLs. */
function fakeFetch(routes: Record<string, { status: number; body?: unknown } | "down">): void {
  vi.stubGlobal("fetch", async (input: string | URL) => {
    const r = routes[String(input)];
    if (!r || r === "down") {
      if (r === "down") throw new TypeError("Failed to fetch");
      return new Response("not found", { status: 404 });
    }
    return new Response(JSON.stringify(r.body ?? {}), { status: r.status, headers: { "Content-Type": "application/json" } });
  });
}

afterEach(() => {
  vi.unstubAllGlobals();
});

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
    fakeFetch({
      "https://example.org/.well-known/matrix/client": { status: 200, body: { "m.homeserver": { base_url: "https://matrix.example.org/" } } },
      "https://matrix.example.org/_matrix/client/versions": versions,
    });
    expect(await resolveHomeserver("example.org")).toBe("https://matrix.example.org");
  });
  it("uses the URL itself when there is no well-known", async () => {
    fakeFetch({ "http://127.0.0.1:8008/_matrix/client/versions": versions });
    expect(await resolveHomeserver("http://127.0.0.1:8008")).toBe("http://127.0.0.1:8008");
  });
  it("uses the API's own address, below the origin", async () => {
    fakeFetch({ "https://example.org/matrix/_matrix/client/versions": versions });
    expect(await resolveHomeserver("https://example.org/matrix/")).toBe("https://example.org/matrix");
  });
  it("ignores a well-known that points nowhere", async () => {
    fakeFetch({
      "https://example.org/.well-known/matrix/client": { status: 200, body: { "m.homeserver": { base_url: "https://dead.example.org" } } },
      "https://dead.example.org/_matrix/client/versions": "down",
      "https://example.org/_matrix/client/versions": versions,
    });
    expect(await resolveHomeserver("example.org")).toBe("https://example.org");
  });
  it("throws UnreachableError when nothing answers", async () => {
    fakeFetch({ "https://nope.example/.well-known/matrix/client": "down", "https://nope.example/_matrix/client/versions": "down" });
    await expect(resolveHomeserver("nope.example")).rejects.toBeInstanceOf(UnreachableError);
  });
  it("asks for an address when none was typed", async () => {
    await expect(resolveHomeserver("  ")).rejects.toMatchObject({ errcode: "M_INVALID_PARAM" });
  });
});
