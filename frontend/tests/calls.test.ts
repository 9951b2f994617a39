import { describe, expect, it } from "vitest";
import type { MatrixClient, Room } from "matrix-js-sdk";
import {
  CALL_MEMBER_EVENT,
  CallTokenError,
  activeCallMembers,
  callMemberContent,
  callMemberStateKey,
  discoverLivekitService,
  getSfuCredentials,
  liveMembership,
  livekitIdentityFor,
} from "../src/calls/rtc";
import { gridShape } from "../src/calls/layout";

const SERVICE = "https://hs.example/_wspr/livekit/jwt";
const OPENID = { access_token: "oid", token_type: "Bearer", matrix_server_name: "hs.example", expires_in: 3600 };

function fakeClient(over: Partial<Record<string, unknown>> = {}): MatrixClient {
  return {
    _unstable_getRTCTransports: async () => [{ type: "livekit", livekit_service_url: SERVICE + "/" }],
    getClientWellKnown: () => undefined,
    getHomeserverUrl: () => "https://hs.example",
    getOpenIdToken: async () => OPENID,
    getSafeUserId: () => "@alice:hs.example",
    getDeviceId: () => "DEV1",
    ...over,
  } as unknown as MatrixClient;
}

type Call = { url: string; body: any };
function fakeFetch(routes: Record<string, { status: number; body?: unknown }>) {
  const calls: Call[] = [];
  const fn = async (url: string, init?: RequestInit) => {
    calls.push({ url, body: init?.body ? JSON.parse(String(init.body)) : undefined });
    const r = routes[url];
    if (!r) return new Response(JSON.stringify({ errcode: "M_UNRECOGNIZED" }), { status: 404 });
    return new Response(JSON.stringify(r.body ?? {}), { status: r.status, headers: { "Content-Type": "application/json" } });
  };
  return Object.assign(fn, { calls });
}

describe("discoverLivekitService", () => {
  it("uses MSC4143 rtc/transports, without a trailing slash", async () => {
    expect(await discoverLivekitService(fakeClient(), fakeFetch({}))).toBe(SERVICE);
  });
  it("skips transports that aren't LiveKit", async () => {
    const client = fakeClient({ _unstable_getRTCTransports: async () => [{ type: "other" }, { type: "livekit", livekit_service_url: "https://b/jwt" }] });
    expect(await discoverLivekitService(client, fakeFetch({}))).toBe("https://b/jwt");
  });
  it("falls back to .well-known org.matrix.msc4143.rtc_foci", async () => {
    const client = fakeClient({
      _unstable_getRTCTransports: async () => {
        throw Object.assign(new Error("404"), { httpStatus: 404 });
      },
    });
    const f = fakeFetch({ "https://hs.example/.well-known/matrix/client": { status: 200, body: { "org.matrix.msc4143.rtc_foci": [{ type: "livekit", livekit_service_url: "https://wk/jwt" }] } } });
    expect(await discoverLivekitService(client, f)).toBe("https://wk/jwt");
  });
  it("prefers the well-known the client already has", async () => {
    const client = fakeClient({
      _unstable_getRTCTransports: async () => [],
      getClientWellKnown: () => ({ "org.matrix.msc4143.rtc_foci": [{ type: "livekit", livekit_service_url: "https://cached/jwt" }] }),
    });
    const f = fakeFetch({});
    expect(await discoverLivekitService(client, f)).toBe("https://cached/jwt");
    expect(f.calls).toEqual([]);
  });
  it("is null when the homeserver offers no SFU", async () => {
    const client = fakeClient({ _unstable_getRTCTransports: async () => [] });
    expect(await discoverLivekitService(client, fakeFetch({}))).toBeNull();
  });
});

describe("getSfuCredentials", () => {
  it("asks the legacy /sfu/get with an OpenID token (identity user:device, what call.member state implies)", async () => {
    const f = fakeFetch({ [`${SERVICE}/sfu/get`]: { status: 200, body: { url: "ws://sfu:7880", jwt: "J" } } });
    expect(await getSfuCredentials(fakeClient(), SERVICE, "!r:hs.example", f)).toEqual({ url: "ws://sfu:7880", jwt: "J" });
    expect(f.calls).toEqual([{ url: `${SERVICE}/sfu/get`, body: { room: "!r:hs.example", openid_token: OPENID, device_id: "DEV1" } }]);
  });
  it("falls back to MSC4195 /get_token when the service has no legacy route", async () => {
    const f = fakeFetch({ [`${SERVICE}/get_token`]: { status: 200, body: { url: "wss://sfu", jwt: "K" } } });
    expect(await getSfuCredentials(fakeClient(), SERVICE, "!r:hs.example", f)).toEqual({ url: "wss://sfu", jwt: "K" });
    expect(f.calls[1]).toEqual({
      url: `${SERVICE}/get_token`,
      body: {
        room_id: "!r:hs.example",
        slot_id: "m.call#ROOM",
        openid_token: OPENID,
        member: { id: "@alice:hs.example:DEV1", claimed_user_id: "@alice:hs.example", claimed_device_id: "DEV1" },
      },
    });
  });
  it("reports the service's refusal", async () => {
    const f = fakeFetch({ [`${SERVICE}/sfu/get`]: { status: 401, body: { errcode: "M_UNAUTHORIZED", error: "The request could not be authorised." } } });
    const err = await getSfuCredentials(fakeClient(), SERVICE, "!r:hs.example", f).catch((e) => e);
    expect(err).toBeInstanceOf(CallTokenError);
    expect(err.status).toBe(401);
    expect(err.errcode).toBe("M_UNAUTHORIZED");
    expect(f.calls.length).toBe(1); // no /get_token retry for a refusal
  });
  it("rejects an answer without url and jwt", async () => {
    const f = fakeFetch({ [`${SERVICE}/sfu/get`]: { status: 200, body: { url: "ws://x" } } });
    await expect(getSfuCredentials(fakeClient(), SERVICE, "!r", f)).rejects.toThrow(/no SFU address/);
  });
});

describe("livekitIdentityFor", () => {
  it("matches lk-jwt-service (unpadded base64 of sha256 over the compact JSON array)", async () => {
    // python: base64.b64encode(hashlib.sha256(b'["@a:b","D","m"]').digest()).decode().rstrip("=")
    const id = await livekitIdentityFor("@a:b", "D", "m");
    const raw = new TextEncoder().encode('["@a:b","D","m"]');
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", raw));
    expect(id).toBe(btoa(String.fromCharCode(...digest)).replace(/=+$/, ""));
    expect(id).toHaveLength(43);
    expect(id).not.toMatch(/=/);
    // the homeserver's own answer (homeserver/handlers/call_tokens.py livekit_identity_for)
    expect(await livekitIdentityFor("@alice:hs.example", "DEV1", "4f2c-uuid")).toBe("nC+HnZc82R2Q5XU/6Vuj0n8r9E6kB3Ia3RlT3AEVz3o");
  });
});

function stateEvent(sender: string, stateKey: string, content: Record<string, unknown>, ts = 1_000_000) {
  return { getContent: () => content, getSender: () => sender, getStateKey: () => stateKey, getTs: () => ts };
}

describe("call membership state", () => {
  it("is Element Call's legacy session membership", () => {
    expect(callMemberStateKey("@a:hs", "DEV")).toBe("_@a:hs_DEV_m.call");
    expect(callMemberContent("DEV", SERVICE, "!r:hs", 42)).toEqual({
      application: "m.call",
      call_id: "",
      scope: "m.room",
      device_id: "DEV",
      created_ts: 42,
      expires: 4 * 3600 * 1000,
      focus_active: { type: "livekit", focus_selection: "oldest_membership" },
      foci_preferred: [{ type: "livekit", livekit_service_url: SERVICE, livekit_alias: "!r:hs" }],
    });
  });
  it("counts live memberships and ignores left, expired, foreign and spoofed ones", () => {
    const now = 2_000_000;
    const live = callMemberContent("DEV", SERVICE, "!r", now - 1000);
    expect(liveMembership(stateEvent("@a:hs", "_@a:hs_DEV_m.call", live), now)).toEqual({ userId: "@a:hs", deviceId: "DEV", identity: "@a:hs:DEV" });
    expect(liveMembership(stateEvent("@a:hs", "_@a:hs_DEV_m.call", {}), now)).toBeNull(); // left
    expect(liveMembership(stateEvent("@a:hs", "_@a:hs_DEV_m.call", { ...live, created_ts: now - 4 * 3600 * 1000 - 1 }), now)).toBeNull(); // expired
    expect(liveMembership(stateEvent("@a:hs", "_@a:hs_DEV_m.call", { ...live, application: "m.other" }), now)).toBeNull();
    expect(liveMembership(stateEvent("@a:hs", "_@a:hs_DEV_m.call", { ...live, call_id: "x" }), now)).toBeNull(); // another call
    expect(liveMembership(stateEvent("@evil:hs", "_@a:hs_DEV_m.call", live), now)).toBeNull(); // not the sender's key
    // without created_ts, the event's own timestamp counts
    const { created_ts: _, ...noCreated } = live;
    expect(liveMembership(stateEvent("@a:hs", "_@a:hs_DEV_m.call", noCreated, now - 10), now)).not.toBeNull();
  });
  it("lists the room's call members who are still in the room", () => {
    const now = Date.now();
    const c = (d: string) => callMemberContent(d, SERVICE, "!r", now);
    const events = [
      stateEvent("@a:hs", "_@a:hs_A_m.call", c("A")),
      stateEvent("@b:hs", "_@b:hs_B_m.call", c("B")),
      stateEvent("@c:hs", "_@c:hs_C_m.call", {}),
      stateEvent("@gone:hs", "_@gone:hs_G_m.call", c("G")),
    ];
    const room = {
      currentState: { getStateEvents: (type: string) => (type === CALL_MEMBER_EVENT ? events : []) },
      getMember: (u: string) => ({ membership: u === "@gone:hs" ? "leave" : "join" }),
    } as unknown as Room;
    expect(activeCallMembers(room, now).map((m) => m.userId)).toEqual(["@a:hs", "@b:hs"]);
  });
});

describe("gridShape", () => {
  it("lays tiles out side by side on wide screens and stacked on phones", () => {
    expect(gridShape(1, false)).toEqual({ cols: 1, rows: 1 });
    expect(gridShape(2, false)).toEqual({ cols: 2, rows: 1 });
    expect(gridShape(3, false)).toEqual({ cols: 2, rows: 2 });
    expect(gridShape(6, false)).toEqual({ cols: 3, rows: 2 });
    expect(gridShape(12, false)).toEqual({ cols: 4, rows: 3 });
    expect(gridShape(3, true)).toEqual({ cols: 1, rows: 3 });
    expect(gridShape(5, true)).toEqual({ cols: 2, rows: 3 });
    expect(gridShape(0, true)).toEqual({ cols: 1, rows: 1 });
  });
});
