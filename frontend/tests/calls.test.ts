import { describe, expect, it, vi } from "vitest";
import { createClient, MatrixEvent, Room, type MatrixClient } from "matrix-js-sdk";
import {
  CALL_MEMBER_EVENT,
  CallTokenError,
  callSession,
  clearCallMembershipOnUnload,
  discoverLivekitService,
  getSfuCredentials,
  joinCall,
  leaveCall,
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

type Call = { url: string; body: unknown };
function fakeFetch(routes: Record<string, { status: number; body?: unknown }>) {
  const calls: Call[] = [];
  const fn = async (url: string, init?: RequestInit) => {
    calls.push({ url, body: typeof init?.body === "string" ? JSON.parse(init.body) : undefined });
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

type Sent = { method: string; path: string; body: unknown };

/** A real MatrixClient and Room whose requests land in `sent` (no homeserver: /versions offers no delayed events). */
function clientAndRoom(userId = "@alice:hs.example", deviceId = "DEV1") {
  const sent: Sent[] = [];
  const fetchFn = async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = new URL(input instanceof Request ? input.url : input);
    sent.push({ method: init?.method ?? "GET", path: decodeURIComponent(url.pathname), body: typeof init?.body === "string" ? JSON.parse(init.body) : undefined });
    const body = url.pathname.endsWith("/versions") ? { versions: ["v1.11"], unstable_features: {} } : { event_id: `$e${sent.length}` };
    return new Response(JSON.stringify(body), { status: 200, headers: { "Content-Type": "application/json" } });
  };
  const client = createClient({ baseUrl: "https://hs.example", userId, deviceId, accessToken: "tok", fetchFn });
  const room = new Room("!r:hs.example", client, userId);
  return { client, room, sent };
}

let seq = 0;
function state(type: string, sender: string, stateKey: string, content: Record<string, unknown>) {
  return new MatrixEvent({ type, sender, state_key: stateKey, content, room_id: "!r:hs.example", event_id: `$s${++seq}`, origin_server_ts: Date.now() });
}

const memberState = (path: string) => path === `/_matrix/client/v3/rooms/!r:hs.example/state/${CALL_MEMBER_EVENT}/_@alice:hs.example_DEV1_m.call`;

describe("call membership (MatrixRTCSession)", () => {
  it("joining sends Element Call's legacy session membership, leaving empties it", async () => {
    const { client, room, sent } = clientAndRoom();
    joinCall(client, room, SERVICE);
    await vi.waitFor(() => expect(sent.some((r) => r.method === "PUT" && memberState(r.path))).toBe(true));
    const join = sent.find((r) => r.method === "PUT" && memberState(r.path))!;
    expect(join.body).toMatchObject({
      application: "m.call",
      call_id: "",
      scope: "m.room",
      device_id: "DEV1",
      expires: 4 * 3600 * 1000,
      focus_active: { type: "livekit", focus_selection: "oldest_membership" },
      foci_preferred: [{ type: "livekit", livekit_service_url: SERVICE, livekit_alias: "!r:hs.example" }],
    });
    await leaveCall(client, room, 2000);
    const puts = sent.filter((r) => r.method === "PUT" && memberState(r.path));
    expect(puts.at(-1)!.body).toEqual({});
  });

  it("counts the live memberships of people in the room, one per device", async () => {
    const { client, room } = clientAndRoom();
    const now = Date.now();
    const live = (device: string) => ({
      application: "m.call",
      call_id: "",
      scope: "m.room",
      device_id: device,
      created_ts: now - 1000,
      expires: 4 * 3600 * 1000,
      focus_active: { type: "livekit", focus_selection: "oldest_membership" },
      foci_preferred: [{ type: "livekit", livekit_service_url: SERVICE, livekit_alias: "!r:hs.example" }],
    });
    const joined = (u: string) => state("m.room.member", u, u, { membership: "join" });
    room.currentState.setStateEvents([
      joined("@a:hs"),
      joined("@b:hs"),
      joined("@c:hs"),
      state("m.room.member", "@gone:hs", "@gone:hs", { membership: "leave" }),
      state(CALL_MEMBER_EVENT, "@a:hs", "_@a:hs_A1_m.call", live("A1")),
      state(CALL_MEMBER_EVENT, "@a:hs", "_@a:hs_A2_m.call", live("A2")),
      state(CALL_MEMBER_EVENT, "@b:hs", "_@b:hs_B_m.call", live("B")),
      state(CALL_MEMBER_EVENT, "@c:hs", "_@c:hs_C_m.call", {}), // left
      state(CALL_MEMBER_EVENT, "@gone:hs", "_@gone:hs_G_m.call", live("G")), // not in the room
      state(CALL_MEMBER_EVENT, "@b:hs", "_@b:hs_OLD_m.call", { ...live("OLD"), created_ts: now - 5 * 3600 * 1000 }), // expired
    ]);
    const session = callSession(client, room);
    await session.ensureRecalculateSessionMembers();
    expect(session.memberships.map((m) => `${m.userId}/${m.deviceId}`).sort()).toEqual(["@a:hs/A1", "@a:hs/A2", "@b:hs/B"]);
    // the LiveKit identity their media arrives under
    expect(session.memberships.find((m) => m.deviceId === "B")!.rtcBackendIdentity).toBe("@b:hs:B");
  });

  it("a closing page empties this device's membership with a keepalive request", () => {
    const { client, room } = clientAndRoom();
    room.currentState.setStateEvents([state(CALL_MEMBER_EVENT, "@alice:hs.example", "_@alice:hs.example_DEV1_m.call", { application: "m.call", device_id: "DEV1" })]);
    const calls: { url: string; init: RequestInit }[] = [];
    vi.stubGlobal("fetch", async (url: string, init: RequestInit) => {
      calls.push({ url, init });
      return new Response("{}");
    });
    try {
      clearCallMembershipOnUnload(client, room);
    } finally {
      vi.unstubAllGlobals();
    }
    expect(calls).toHaveLength(1);
    expect(decodeURIComponent(calls[0].url)).toBe(`https://hs.example/_matrix/client/v3/rooms/!r:hs.example/state/${CALL_MEMBER_EVENT}/_@alice:hs.example_DEV1_m.call`);
    expect(calls[0].init).toMatchObject({ method: "PUT", keepalive: true, body: "{}" });
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
