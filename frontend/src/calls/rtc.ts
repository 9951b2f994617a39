// MatrixRTC plumbing for group calls, kept free of livekit-client so the chat bundle stays small
// and so it can be unit-tested: SFU discovery, the LiveKit token, and Element Call's
// `org.matrix.msc3401.call.member` state events (so WSPR and Element Call users see each other).
import type { MatrixClient, Room } from "matrix-js-sdk";

export const CALL_MEMBER_EVENT = "org.matrix.msc3401.call.member";
export const LEGACY_SLOT = "m.call#ROOM";
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

export interface LivekitTransport {
  type: "livekit";
  livekit_service_url: string;
}

export interface SfuCredentials {
  url: string;
  jwt: string;
}

export interface OpenIdToken {
  access_token: string;
  token_type: string;
  matrix_server_name: string;
  expires_in: number;
}

type FetchFn = (input: string, init?: RequestInit) => Promise<Response>;

export function isLivekitTransport(t: unknown): t is LivekitTransport {
  return !!t && typeof t === "object" && (t as { type?: unknown }).type === "livekit" && typeof (t as { livekit_service_url?: unknown }).livekit_service_url === "string";
}

/**
 * The LiveKit token service for calls on this homeserver: MSC4143 `rtc/transports` first, then
 * `.well-known/matrix/client` `org.matrix.msc4143.rtc_foci` (what older homeservers and Element Web use).
 * Returns the service URL without a trailing slash, or null when the homeserver offers no SFU.
 */
export async function discoverLivekitService(client: MatrixClient, fetchFn: FetchFn = fetch): Promise<string | null> {
  try {
    const transports = await client._unstable_getRTCTransports();
    const t = ((transports ?? []) as unknown[]).find(isLivekitTransport);
    if (t) return t.livekit_service_url.replace(/\/+$/, "");
  } catch {
    // 404 / M_UNRECOGNIZED: an older homeserver; fall through to .well-known
  }
  let wk: Record<string, unknown> | undefined = client.getClientWellKnown?.() as Record<string, unknown> | undefined;
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
  const t = Array.isArray(foci) ? foci.find(isLivekitTransport) : undefined;
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
  if (!r.ok) throw new CallTokenError(String(data.error ?? `The call service answered ${r.status}`), r.status, data.errcode as string | undefined);
  if (typeof data.url !== "string" || typeof data.jwt !== "string") throw new CallTokenError("The call service gave no SFU address", r.status);
  return { url: data.url, jwt: data.jwt };
}

/**
 * A LiveKit token for `roomId` from the lk-jwt-service compatible service at `serviceUrl`, proving who we
 * are with an OpenID token from our homeserver.
 *
 * We publish legacy (session) `call.member` state events, for which matrix-js-sdk and Element Call expect
 * the LiveKit identity `${userId}:${deviceId}`; that is what the legacy `/sfu/get` issues, so we ask there
 * first and use MSC4195 `/get_token` (identity = sha256 over [user, device, member id]) only when a service
 * no longer has the legacy route.
 */
export async function getSfuCredentials(
  client: MatrixClient,
  serviceUrl: string,
  roomId: string,
  fetchFn: FetchFn = fetch,
): Promise<SfuCredentials> {
  const openid = (await client.getOpenIdToken()) as unknown as OpenIdToken;
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

export function callMemberStateKey(userId: string, deviceId: string): string {
  return `_${userId}_${deviceId}_m.call`;
}

export function callMemberContent(deviceId: string, serviceUrl: string, roomId: string, now = Date.now()): Record<string, unknown> {
  return {
    application: "m.call",
    call_id: "",
    scope: "m.room",
    device_id: deviceId,
    created_ts: now,
    expires: MEMBERSHIP_EXPIRES_MS,
    focus_active: { type: "livekit", focus_selection: "oldest_membership" },
    foci_preferred: [{ type: "livekit", livekit_service_url: serviceUrl, livekit_alias: roomId }],
  };
}

export interface CallMember {
  userId: string;
  deviceId: string;
  /** the LiveKit identity this member's media arrives under (legacy session membership) */
  identity: string;
}

/** Is this `call.member` state event a live membership of the room's call at `now`? */
export interface StateEventLike {
  getContent(): object;
  getSender(): string | null | undefined;
  getTs(): number;
  getStateKey(): string | undefined;
}

export function liveMembership(ev: StateEventLike, now = Date.now()): CallMember | null {
  const c = ev.getContent() as Record<string, unknown>;
  const sender = ev.getSender();
  if (!sender || !c || typeof c !== "object") return null;
  if (c.application !== "m.call" || (c.call_id ?? "") !== "" || typeof c.device_id !== "string") return null;
  if (c.scope !== undefined && c.scope !== "m.room") return null;
  // the state key belongs to the sender (`_@user:hs_DEVICE...` or `@user:hs_DEVICE...`)
  const key = ev.getStateKey() ?? "";
  if (!key.startsWith(`_${sender}_`) && !key.startsWith(`${sender}_`) && key !== sender) return null;
  const start = typeof c.created_ts === "number" ? c.created_ts : ev.getTs();
  const expires = typeof c.expires === "number" ? c.expires : MEMBERSHIP_EXPIRES_MS;
  if (start + expires <= now) return null;
  return { userId: sender, deviceId: c.device_id, identity: memberIdFor(sender, c.device_id) };
}

/** Everyone with a live membership in the room's call (one entry per device). */
export function activeCallMembers(room: Room, now = Date.now()): CallMember[] {
  const events = room.currentState.getStateEvents(CALL_MEMBER_EVENT) ?? [];
  const out: CallMember[] = [];
  for (const ev of events) {
    const m = liveMembership(ev, now);
    if (m && room.getMember(m.userId)?.membership === "join") out.push(m);
  }
  return out;
}

/** Announce that this device is in the room's call. */
export async function sendCallMembership(client: MatrixClient, roomId: string, serviceUrl: string): Promise<void> {
  const deviceId = client.getDeviceId() ?? "";
  await client.sendStateEvent(roomId, CALL_MEMBER_EVENT as never, callMemberContent(deviceId, serviceUrl, roomId) as never, callMemberStateKey(client.getSafeUserId(), deviceId));
}

/** Clear this device's membership (empty content = left). */
export async function clearCallMembership(client: MatrixClient, roomId: string): Promise<void> {
  const deviceId = client.getDeviceId() ?? "";
  await client.sendStateEvent(roomId, CALL_MEMBER_EVENT as never, {} as never, callMemberStateKey(client.getSafeUserId(), deviceId));
}

/**
 * Best-effort leave while the page is going away (tab closed, reload): a keepalive request, since
 * ordinary fetches are cancelled on unload.
 */
export function clearCallMembershipOnUnload(client: MatrixClient, roomId: string): void {
  const deviceId = client.getDeviceId() ?? "";
  const key = callMemberStateKey(client.getSafeUserId(), deviceId);
  const url = `${client.getHomeserverUrl().replace(/\/+$/, "")}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/${encodeURIComponent(CALL_MEMBER_EVENT)}/${encodeURIComponent(key)}`;
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
