// MatrixRTC for group calls, kept free of livekit-client so the chat bundle stays small and it can be
// unit-tested. Who is in a room's call, joining and leaving it: matrix-js-sdk's MatrixRTCSession (the
// code Element Call uses, so both write and read the same `org.matrix.msc3401.call.member` state).
// What the SDK leaves to the application, and so lives here: finding the homeserver's LiveKit service,
// getting a LiveKit token from it, and a leave that survives the page closing.
import { EventType, type MatrixClient, type Room } from "matrix-js-sdk";
import {
  isLivekitTransportConfig,
  MatrixRTCSessionEvent,
  type CallMembership,
  type LivekitTransport,
  type MatrixRTCSession,
} from "matrix-js-sdk/lib/matrixrtc/index.js";
import { useEffect, useState } from "react";

export const CALL_MEMBER_EVENT = EventType.GroupCallMemberPrefix;
/** How long a membership counts as live if it is never cleared (tab closed, crash). Element Call: 4 h. */
export const MEMBERSHIP_EXPIRES_MS = 4 * 60 * 60 * 1000;

/**
 * `power_level_content_override` for new group rooms: everyone may announce that they're in the call,
 * as Element Web does (the rest are Synapse's defaults, spelled out because the override replaces `events`).
 */
export const CALL_FRIENDLY_POWER_LEVELS = {
  events: {
    "m.room.name": 50,
    "m.room.topic": 50,
    "m.room.avatar": 50,
    "m.room.canonical_alias": 50,
    "m.room.pinned_events": 50,
    "m.room.power_levels": 100,
    "m.room.history_visibility": 100,
    "m.room.tombstone": 100,
    "m.room.server_acl": 100,
    "m.room.encryption": 100,
    [CALL_MEMBER_EVENT]: 0,
  },
};

export interface SfuCredentials {
  url: string;
  jwt: string;
}

type FetchFn = (input: string, init?: RequestInit) => Promise<Response>;

/**
 * The LiveKit token service for calls on this homeserver: MSC4143 `rtc/transports` first, then
 * `.well-known/matrix/client` `org.matrix.msc4143.rtc_foci` (what older homeservers and Element Web use).
 * Returns the service URL without a trailing slash, or null when the homeserver offers no SFU.
 * (The SDK leaves transport discovery to the application; Element Call does the same two steps.)
 */
export async function discoverLivekitService(client: MatrixClient, fetchFn: FetchFn = fetch): Promise<string | null> {
  try {
    const transports = await client._unstable_getRTCTransports();
    const t = (transports ?? []).find(isLivekitTransportConfig);
    if (t) return t.livekit_service_url.replace(/\/+$/, "");
  } catch {
    // 404 / M_UNRECOGNIZED: an older homeserver; fall through to .well-known
  }
  let wk: Record<string, unknown> | undefined = client.getClientWellKnown();
  if (!wk?.["org.matrix.msc4143.rtc_foci"]) {
    try {
      const base = client.getHomeserverUrl().replace(/\/+$/, "");
      const r = await fetchFn(`${base}/.well-known/matrix/client`);
      if (r.ok) wk = (await r.json()) as Record<string, unknown>;
    } catch {
      /* no .well-known */
    }
  }
  const foci = wk?.["org.matrix.msc4143.rtc_foci"];
  const t = Array.isArray(foci) ? (foci as unknown[]).find(isLivekitTransportConfig) : undefined;
  return t ? t.livekit_service_url.replace(/\/+$/, "") : null;
}

export class CallTokenError extends Error {
  constructor(
    message: string,
    public readonly status: number,
    public readonly errcode?: string,
  ) {
    super(message);
    this.name = "CallTokenError";
  }
}

async function postJson(fetchFn: FetchFn, url: string, body: unknown): Promise<SfuCredentials> {
  const r = await fetchFn(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  let data: Record<string, unknown> = {};
  try {
    data = (await r.json()) as Record<string, unknown>;
  } catch {
    /* not JSON */
  }
  if (!r.ok) {
    const message = typeof data.error === "string" ? data.error : `The call service answered ${r.status}`;
    throw new CallTokenError(message, r.status, typeof data.errcode === "string" ? data.errcode : undefined);
  }
  if (typeof data.url !== "string" || typeof data.jwt !== "string") throw new CallTokenError("The call service gave no SFU address", r.status);
  return { url: data.url, jwt: data.jwt };
}

/** The slot our sessions use: Element Call's room call, `m.call#ROOM` (call_id "" on the wire). */
export const LEGACY_SLOT = "m.call#ROOM";

/**
 * A LiveKit token for `roomId` from the lk-jwt-service compatible service at `serviceUrl`, proving who we
 * are with an OpenID token from our homeserver. (The SDK has no client for the token service.)
 *
 * Our memberships are legacy (session) `call.member` state events, for which matrix-js-sdk and Element
 * Call expect the LiveKit identity `${userId}:${deviceId}`; that is what the legacy `/sfu/get` issues, so
 * we ask there first and use MSC4195 `/get_token` (identity = sha256 over [user, device, member id]) only
 * when a service no longer has the legacy route.
 */
export async function getSfuCredentials(client: MatrixClient, serviceUrl: string, roomId: string, fetchFn: FetchFn = fetch): Promise<SfuCredentials> {
  const openid = await client.getOpenIdToken();
  const userId = client.getSafeUserId();
  const deviceId = client.getDeviceId() ?? "";
  try {
    return await postJson(fetchFn, `${serviceUrl}/sfu/get`, { room: roomId, openid_token: openid, device_id: deviceId });
  } catch (e) {
    if (!(e instanceof CallTokenError) || (e.status !== 404 && e.status !== 405)) throw e;
  }
  return postJson(fetchFn, `${serviceUrl}/get_token`, {
    room_id: roomId,
    slot_id: LEGACY_SLOT,
    openid_token: openid,
    member: { id: memberIdFor(userId, deviceId), claimed_user_id: userId, claimed_device_id: deviceId },
  });
}

/** The member id matrix-js-sdk assumes for a session membership without `membershipID`. */
export function memberIdFor(userId: string, deviceId: string): string {
  return `${userId}:${deviceId}`;
}

/** lk-jwt-service's identity for MSC4195 `/get_token`: unpadded base64 of sha256(JSON [user, device, member]). */
export async function livekitIdentityFor(userId: string, deviceId: string, memberId: string): Promise<string> {
  const raw = new TextEncoder().encode(JSON.stringify([userId, deviceId, memberId]));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", raw));
  let s = "";
  for (const b of digest) s += String.fromCharCode(b);
  return btoa(s).replace(/=+$/, "");
}

/** The room's call session (one per room for the client's lifetime; it tracks memberships as state arrives). */
export function callSession(client: MatrixClient, room: Room): MatrixRTCSession {
  return client.matrixRTC.getRoomSession(room);
}

/** Everyone with a live membership in the room's call (one entry per device, oldest first), kept current. */
export function useCallMembers(client: MatrixClient, room: Room): CallMembership[] {
  const session = callSession(client, room);
  const [memberships, setMemberships] = useState<CallMembership[]>(session.memberships);
  useEffect(() => {
    const onChange = (_old: CallMembership[], now: CallMembership[]) => setMemberships(now);
    session.on(MatrixRTCSessionEvent.MembershipsChanged, onChange);
    // the session may have recalculated between render and subscription
    void session.initialMembershipCalculated.then(() => setMemberships(session.memberships));
    return () => void session.off(MatrixRTCSessionEvent.MembershipsChanged, onChange);
  }, [session]);
  return memberships;
}

/**
 * Announces this device in the room's call, with the LiveKit service we found as the preferred focus
 * (`focus_active` "oldest_membership", as Element Call). The SDK keeps the membership fresh until
 * `leaveCall`. Media keys are not managed: WSPR's call media is not end-to-end encrypted yet.
 */
export function joinCall(client: MatrixClient, room: Room, serviceUrl: string): MatrixRTCSession {
  const session = callSession(client, room);
  const userId = client.getSafeUserId();
  const deviceId = client.getDeviceId() ?? "";
  const focus: LivekitTransport = { type: "livekit", livekit_service_url: serviceUrl, livekit_alias: room.roomId };
  session.joinRTCSession({ userId, deviceId, memberId: memberIdFor(userId, deviceId) }, [focus], undefined, {
    manageMediaKeys: false,
    membershipEventExpiryMs: MEMBERSHIP_EXPIRES_MS,
  });
  return session;
}

/** Leaves the room's call (the membership becomes `{}`); resolves once sent, or after `timeoutMs`. */
export async function leaveCall(client: MatrixClient, room: Room, timeoutMs = 5000): Promise<void> {
  await callSession(client, room).leaveRoomSession(timeoutMs);
}

/**
 * Best-effort leave while the page is going away (tab closed, reload): a keepalive request, since
 * ordinary fetches are cancelled on unload. The SDK covers this case with a delayed leave event
 * (MSC4140), which only works where the homeserver supports delayed events; WSPR doesn't yet.
 * We empty the state event the SDK sent for this device.
 */
export function clearCallMembershipOnUnload(client: MatrixClient, room: Room): void {
  const me = client.getSafeUserId();
  const device = client.getDeviceId() ?? "";
  const mine = room.currentState
    .getStateEvents(CALL_MEMBER_EVENT)
    .find((ev) => ev.getSender() === me && ev.getContent<{ device_id?: unknown }>().device_id === device);
  const key = mine?.getStateKey();
  if (!key) return;
  const url = `${client.getHomeserverUrl().replace(/\/+$/, "")}/_matrix/client/v3/rooms/${encodeURIComponent(room.roomId)}/state/${encodeURIComponent(CALL_MEMBER_EVENT)}/${encodeURIComponent(key)}`;
  try {
    void fetch(url, { method: "PUT", keepalive: true, headers: { Authorization: `Bearer ${client.getAccessToken()}`, "Content-Type": "application/json" }, body: "{}" }).catch(() => {});
  } catch {
    /* nothing more we can do */
  }
}

/** "@alice:example.org" → "alice" (for tiles of people who aren't room members, e.g. another homeserver's guest). */
export function localpart(userId: string): string {
  return userId.replace(/^@/, "").split(":")[0] || userId;
}
