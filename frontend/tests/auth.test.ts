import { beforeEach, describe, expect, it } from "vitest";
import { MatrixError } from "matrix-js-sdk";
import { clearSession, loadSession, localpartOf, passwordLogin, register, RegistrationNeedsInput, saveSession } from "../src/lib/auth";

type Reply = { status: number; body: unknown };
/** The server's answers, in order; records what the SDK sent. */
function scripted(replies: Reply[]) {
  const bodies: Record<string, unknown>[] = [];
  const urls: string[] = [];
  const fn = async (url: RequestInfo | URL, init?: RequestInit) => {
    urls.push(url instanceof Request ? url.url : url.toString());
    bodies.push(JSON.parse(typeof init?.body === "string" ? init.body : "{}"));
    const r = replies.shift();
    if (!r) throw new Error("unexpected request");
    return new Response(JSON.stringify(r.body), { status: r.status, headers: { "Content-Type": "application/json" } });
  };
  return { fn, bodies, urls };
}

const ok = { user_id: "@alice:hs", device_id: "DEV", access_token: "tok" };

describe("register (User-Interactive Auth)", () => {
  it("completes the m.login.dummy stage", async () => {
    const { fn, bodies, urls } = scripted([
      { status: 401, body: { session: "S", flows: [{ stages: ["m.login.dummy"] }], params: {} } },
      { status: 200, body: ok },
    ]);
    const s = await register("https://hs", "alice", "pw", undefined, fn);
    expect(s).toEqual({ baseUrl: "https://hs", userId: "@alice:hs", deviceId: "DEV", accessToken: "tok" });
    expect(urls[0]).toBe("https://hs/_matrix/client/v3/register?kind=user");
    expect(bodies[0].auth).toBeUndefined();
    expect(bodies[1].auth).toEqual({ type: "m.login.dummy", session: "S" });
    expect(bodies[1].username).toBe("alice");
  });
  it("uses a registration token when the server wants one", async () => {
    const { fn, bodies } = scripted([
      { status: 401, body: { session: "S", flows: [{ stages: ["m.login.registration_token", "m.login.dummy"] }] } },
      { status: 401, body: { session: "S", flows: [{ stages: ["m.login.registration_token", "m.login.dummy"] }], completed: ["m.login.registration_token"] } },
      { status: 200, body: ok },
    ]);
    await register("https://hs", "alice", "pw", "TOKEN", fn);
    expect(bodies[1].auth).toEqual({ type: "m.login.registration_token", token: "TOKEN", session: "S" });
    expect(bodies[2].auth).toEqual({ type: "m.login.dummy", session: "S" });
  });
  it("asks for a token when needed and none was given", async () => {
    const { fn } = scripted([{ status: 401, body: { session: "S", flows: [{ stages: ["m.login.registration_token"] }] } }]);
    await expect(register("https://hs", "alice", "pw", undefined, fn)).rejects.toBeInstanceOf(RegistrationNeedsInput);
  });
  it("reports stages it can't do", async () => {
    const { fn } = scripted([{ status: 401, body: { session: "S", flows: [{ stages: ["m.login.recaptcha", "m.login.email.identity"] }] } }]);
    const err = await register("https://hs", "alice", "pw", undefined, fn).catch((e) => e);
    expect(err).toBeInstanceOf(RegistrationNeedsInput);
    expect(err.needs).toEqual({ kind: "unsupported", stages: ["m.login.recaptcha", "m.login.email.identity"] });
  });
  it("surfaces a rejected token", async () => {
    const { fn } = scripted([
      { status: 401, body: { session: "S", flows: [{ stages: ["m.login.registration_token"] }] } },
      { status: 401, body: { session: "S", flows: [{ stages: ["m.login.registration_token"] }], errcode: "M_FORBIDDEN", error: "Invalid token" } },
    ]);
    await expect(register("https://hs", "alice", "pw", "bad", fn)).rejects.toMatchObject({ errcode: "M_FORBIDDEN" });
  });
  it("surfaces registration being closed", async () => {
    const { fn } = scripted([{ status: 403, body: { errcode: "M_FORBIDDEN", error: "Registration has been disabled" } }]);
    const err = await register("https://hs", "alice", "pw", undefined, fn).catch((e) => e);
    expect(err).toBeInstanceOf(MatrixError);
    expect(err).toMatchObject({ errcode: "M_FORBIDDEN", httpStatus: 403 });
  });
  it("prefers a flow that needs nothing from the user, even with a token at hand", async () => {
    const flows = [{ stages: ["m.login.registration_token"] }, { stages: ["m.login.dummy"] }];
    const { fn, bodies } = scripted([
      { status: 401, body: { session: "S", flows } },
      { status: 200, body: ok },
    ]);
    await register("https://hs", "alice", "pw", "TOKEN", fn);
    expect(bodies[1].auth).toEqual({ type: "m.login.dummy", session: "S" });
  });
  it("stops at a network error during a stage (InteractiveAuth alone would retry without end)", async () => {
    let calls = 0;
    const fn = async () => {
      if (++calls === 1) return new Response(JSON.stringify({ session: "S", flows: [{ stages: ["m.login.dummy"] }] }), { status: 401, headers: { "Content-Type": "application/json" } });
      throw new TypeError("Failed to fetch");
    };
    await expect(register("https://hs", "alice", "pw", undefined, fn)).rejects.toMatchObject({ name: "ConnectionError" });
    await new Promise((r) => setTimeout(r, 50));
    expect(calls).toBe(2);
  });
  it("gives up on a server that never completes a stage", async () => {
    const again = { status: 401, body: { session: "S", flows: [{ stages: ["m.login.dummy"] }] } };
    const { fn } = scripted(Array.from({ length: 10 }, () => again));
    await expect(register("https://hs", "alice", "pw", undefined, fn)).rejects.toMatchObject({ errcode: "M_FORBIDDEN" });
  });
});

describe("passwordLogin", () => {
  it("logs in with an m.id.user identifier", async () => {
    const { fn, bodies } = scripted([{ status: 200, body: ok }]);
    await passwordLogin("https://hs", "@alice:hs", "pw", fn);
    expect(bodies[0]).toMatchObject({ type: "m.login.password", identifier: { type: "m.id.user", user: "@alice:hs" }, password: "pw" });
  });
  it("throws the server's errcode on a wrong password", async () => {
    const { fn } = scripted([{ status: 403, body: { errcode: "M_FORBIDDEN", error: "Invalid password" } }]);
    await expect(passwordLogin("https://hs", "alice", "nope", fn)).rejects.toMatchObject({ errcode: "M_FORBIDDEN", httpStatus: 403 });
  });
  it("throws a ConnectionError (\"Can't reach the server\") when the request fails", async () => {
    const fn = async () => {
      throw new TypeError("Failed to fetch");
    };
    await expect(passwordLogin("https://hs", "alice", "pw", fn)).rejects.toMatchObject({ name: "ConnectionError" });
  });
});

describe("session storage", () => {
  beforeEach(() => localStorage.clear());
  it("round-trips and clears", () => {
    expect(loadSession()).toBeNull();
    saveSession({ baseUrl: "https://hs", userId: "@a:hs", deviceId: "D", accessToken: "t" });
    expect(loadSession()?.userId).toBe("@a:hs");
    clearSession();
    expect(loadSession()).toBeNull();
  });
  it("ignores corrupt data", () => {
    localStorage.setItem("wspr.session", "{nope");
    expect(loadSession()).toBeNull();
  });
  it("localpartOf", () => {
    expect(localpartOf("@bob:example.org")).toBe("bob");
    expect(localpartOf(" bob ")).toBe("bob");
  });
});
