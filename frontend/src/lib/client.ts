import "./polyfills";
import {
  ClientEvent,
  createClient,
  SyncState,
  EventType,
  type ICreateClientOpts,
  type MatrixClient,
  Preset,
  type Room,
  Visibility,
  IndexedDBStore,
} from "matrix-js-sdk";
import { decodeRecoveryKey } from "matrix-js-sdk/lib/crypto-api/index.js";
import type { Session } from "./auth";
import { oauthClientOptions } from "./oauth";
import { EncryptedRoomRegistry, ensureSafeToSend } from "./sendGuard";
import { encryptAttachment, type EncryptedFileInfo } from "./attachments";
import { composeMessage, type Mention } from "./mentions";
import { clearDrafts } from "./drafts";
import { disableWebPush } from "../notifications/webPush";
import { CALL_FRIENDLY_POWER_LEVELS } from "../calls/rtc";
import { probeFile } from "../components/media/probe";
import { searchDatabaseName } from "../components/search/localIndex";
import { clearThreadsSeen } from "../components/threads/threadInfo";
import { threadRelation, type ThreadTarget } from "../components/threads/relation";
import { watchPage, webSocketSyncFetch, type WsSyncFetch } from "./wsSync";

export const MEGOLM = "m.megolm.v1.aes-sha2";
export const encryptedRooms = new EncryptedRoomRegistry();

/** Recovery-key prompt, installed by the UI. Resolves to the key as typed, or null if cancelled. */
let recoveryKeyPrompt: ((reason: string) => Promise<string | null>) | null = null;
export function setRecoveryKeyPrompt(fn: typeof recoveryKeyPrompt): void {
  recoveryKeyPrompt = fn;
}

// Secret-storage keys the user gave us this session (never persisted).
const secretStorageKeys = new Map<string, Uint8Array<ArrayBuffer>>();
export function rememberSecretStorageKey(keyId: string, key: Uint8Array<ArrayBuffer>): void {
  secretStorageKeys.set(keyId, key);
}

let current: MatrixClient | null = null;
let currentSession: Session | null = null;
let currentStream: { fetch: WsSyncFetch; unwatch: () => void } | null = null;

/** One crypto store per device: a later login on this browser is a new device with new keys. */
function cryptoPrefix(s: Session): string {
  return `wspr-crypto-${s.userId}-${s.deviceId}`;
}
export function getClient(): MatrixClient {
  if (!current) throw new Error("Not signed in");
  return current;
}

function waitForOnline(): Promise<void> {
  return new Promise((resolve) => {
    const on = () => {
      window.removeEventListener("online", on);
      resolve();
    };
    window.addEventListener("online", on);
  });
}

let holdWhileOffline = false;

/**
 * During crypto start-up, requests made while the browser knows it is offline wait for the network
 * instead of failing. matrix-js-sdk checks pending room-key bundles inside initRustCrypto (for rooms
 * joined in the last 24 h) and gives up after a few quick retries, which would make start-up fail
 * offline; waiting lets it finish as soon as we're back. Afterwards requests fail fast as usual, so
 * the sync loop reports the outage and the cached state is shown.
 */
export async function fetchWhenOnline(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
  while (holdWhileOffline && typeof navigator !== "undefined" && navigator.onLine === false) {
    if (init?.signal?.aborted) throw new DOMException("Aborted", "AbortError");
    await waitForOnline();
  }
  return fetch(input, init);
}

/**
 * IndexedDBStore only writes every 5 minutes by default; save a few seconds after each sync
 * (and when the page is hidden) so a reload, or an offline start, shows what we last saw.
 */
function persistSyncCache(client: MatrixClient, store: IndexedDBStore): void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const save = () => {
    timer = undefined;
    store.save(true).catch(() => {});
  };
  client.on(ClientEvent.Sync, (state) => {
    if (state === SyncState.Syncing && !timer) timer = setTimeout(save, 3000);
  });
  if (typeof document !== "undefined") {
    document.addEventListener("visibilitychange", () => document.visibilityState === "hidden" && save());
  }
}

const WIPE_KEY = "wspr.pendingWipe";

function databasesOf(s: Session): string[] {
  const p = cryptoPrefix(s);
  // the search index holds decrypted text: it goes with the keys
  return [`${p}::matrix-sdk-crypto`, `${p}::matrix-sdk-crypto-meta`, `matrix-js-sdk:wspr-sync-${s.userId}-${s.deviceId}`, searchDatabaseName(s.userId, s.deviceId)];
}

/** The names in the pending-wipe list (a JSON array of strings in localStorage). */
function pendingWipes(): string[] {
  try {
    const list: unknown = JSON.parse(localStorage.getItem(WIPE_KEY) ?? "[]");
    return Array.isArray(list) ? list.filter((x): x is string => typeof x === "string") : [];
  } catch {
    return [];
  }
}

function scheduleWipe(s: Session): void {
  try {
    const list = pendingWipes();
    localStorage.setItem(WIPE_KEY, JSON.stringify([...new Set([...list, ...databasesOf(s)])]));
  } catch {
    /* ignore */
  }
}

/** Deletes the databases of sessions that were signed out. Call at start-up, before any session starts. */
export async function wipePendingDatabases(): Promise<void> {
  if (typeof indexedDB === "undefined") return;
  const list = pendingWipes();
  if (!list.length) return;
  await Promise.all(
    list.map(
      (name) =>
        new Promise<void>((resolve) => {
          const req = indexedDB.deleteDatabase(name);
          req.onsuccess = req.onerror = req.onblocked = () => resolve();
          setTimeout(resolve, 2000);
        }),
    ),
  );
  localStorage.removeItem(WIPE_KEY);
}

let starting: { token: string; promise: Promise<MatrixClient> } | null = null;

/** Creates, sets up crypto for and starts the client. Idempotent per session. */
export function startSession(session: Session): Promise<MatrixClient> {
  if (starting?.token === session.accessToken) return starting.promise;
  const promise = doStart(session);
  starting = { token: session.accessToken, promise };
  promise.catch(() => {
    if (starting?.promise === promise) starting = null;
  });
  return promise;
}

async function doStart(session: Session): Promise<MatrixClient> {
  await wipePendingDatabases();
  // Caching sync results lets the app show rooms and history at once, and offline.
  const store: ICreateClientOpts["store"] | undefined =
    typeof indexedDB !== "undefined"
      ? new IndexedDBStore({ indexedDB, localStorage, dbName: `wspr-sync-${session.userId}-${session.deviceId}` })
      : undefined;
  // WSPR's WebSocket stream answers the SDK's /sync where the server offers it; elsewhere it is HTTP /sync
  const stream = webSocketSyncFetch(session.baseUrl, { fetchFn: fetchWhenOnline, log: (m) => console.info(`[wspr] ${m}`) });
  const client = createClient({
    fetchFn: stream,
    baseUrl: session.baseUrl,
    accessToken: session.accessToken,
    userId: session.userId,
    deviceId: session.deviceId,
    ...oauthClientOptions(session), // OAuth: the SDK refreshes the access token and revokes at logout
    timelineSupport: true,
    store,
    cryptoCallbacks: {
      getSecretStorageKey: async ({ keys }) => {
        for (const keyId of Object.keys(keys)) {
          const k = secretStorageKeys.get(keyId);
          if (k) return [keyId, k];
        }
        if (!recoveryKeyPrompt) return null;
        for (let attempt = 0; attempt < 3; attempt++) {
          const typed = await recoveryKeyPrompt(attempt === 0 ? "Enter your recovery key" : "That key didn't match. Try again");
          if (!typed) return null;
          let key: Uint8Array<ArrayBuffer>;
          try {
            key = decodeRecoveryKey(typed.trim());
          } catch {
            continue;
          }
          for (const [keyId, info] of Object.entries(keys)) {
            if (await client.secretStorage.checkKey(key, info)) {
              secretStorageKeys.set(keyId, key);
              return [keyId, key];
            }
          }
        }
        return null;
      },
      cacheSecretStorageKey: (keyId, _info, key) => {
        secretStorageKeys.set(keyId, key);
      },
    },
  });
  if (store instanceof IndexedDBStore) {
    try {
      await store.startup(); // must happen after the client owns the store
    } catch (e) {
      console.warn("IndexedDB sync cache unavailable", e);
    }
  }
  console.info("[wspr] sync cache ready");
  if (store instanceof IndexedDBStore) persistSyncCache(client, store);
  holdWhileOffline = true;
  try {
    await client.initRustCrypto({ cryptoDatabasePrefix: cryptoPrefix(session) });
  } finally {
    holdWhileOffline = false;
  }
  console.info("[wspr] crypto ready");
  current = client;
  currentSession = session;
  currentStream = { fetch: stream, unwatch: watchPage(stream) };
  // Not awaited: offline, the first sync retries forever; the UI shows the cached state meanwhile.
  client.startClient({ initialSyncLimit: 30, lazyLoadMembers: false }).catch((e) => console.error("startClient failed", e));
  return client;
}

export async function stopSession(opts: { logout: boolean }): Promise<void> {
  const client = current;
  const session = currentSession;
  current = null;
  currentSession = null;
  starting = null;
  currentStream?.unwatch();
  currentStream?.fetch.close();
  currentStream = null;
  if (!client) return;
  client.stopClient();
  if (opts.logout) {
    // this browser's Web Push pusher and subscription end with the session
    await Promise.race([disableWebPush(client).catch(() => {}), new Promise((r) => setTimeout(r, 3000))]);
    try {
      await client.logout(true);
    } catch {
      /* the token may already be invalid */
    }
    // Deleting a database waits for every connection to it to close; don't hang on that. What's
    // left is deleted at the next start, before anything opens it (see wipePendingDatabases).
    if (session) scheduleWipe(session);
    await Promise.race([
      client.clearStores(session ? { cryptoDatabasePrefix: cryptoPrefix(session) } : {}).catch(() => {}),
      new Promise((r) => setTimeout(r, 3000)),
    ]);
    secretStorageKeys.clear();
    clearDrafts();
    clearThreadsSeen();
  }
}

export const encryptionState = { type: EventType.RoomEncryption, state_key: "", content: { algorithm: MEGOLM } };

export async function createGroupRoom(client: MatrixClient, opts: { name: string; topic?: string; encrypted: boolean; isPublic: boolean; alias?: string }) {
  const { room_id } = await client.createRoom({
    name: opts.name,
    topic: opts.topic || undefined,
    visibility: opts.isPublic ? Visibility.Public : Visibility.Private,
    preset: opts.isPublic ? Preset.PublicChat : Preset.PrivateChat,
    room_alias_name: opts.alias || undefined,
    initial_state: opts.encrypted ? [encryptionState] : [],
    power_level_content_override: CALL_FRIENDLY_POWER_LEVELS, // members may join calls
  });
  if (opts.encrypted) encryptedRooms.mark(room_id);
  return room_id;
}

export async function addDirectRoom(client: MatrixClient, userId: string, roomId: string): Promise<void> {
  const ev = client.getAccountData(EventType.Direct);
  const content: Record<string, string[]> = { ...(ev?.getContent() ?? {}) };
  const list = new Set(content[userId] ?? []);
  list.add(roomId);
  content[userId] = [...list];
  await client.setAccountData(EventType.Direct, content);
}

export function directRoomUserId(client: MatrixClient, room: Room): string | undefined {
  const direct = client.getAccountData(EventType.Direct)?.getContent() ?? {};
  for (const [userId, rooms] of Object.entries(direct)) {
    if (Array.isArray(rooms) && rooms.includes(room.roomId)) return userId;
  }
  const me = room.getMember(client.getSafeUserId());
  const dmInviter = me?.getDMInviter?.();
  if (dmInviter) return dmInviter;
  return undefined;
}

export async function createDirectMessage(client: MatrixClient, userId: string): Promise<string> {
  // Reuse an existing DM with this person if there is one we're still in.
  const direct = client.getAccountData(EventType.Direct)?.getContent() ?? {};
  for (const roomId of (direct[userId] as string[] | undefined) ?? []) {
    const room = client.getRoom(roomId);
    if (room && room.getMyMembership() === "join" && room.getMember(userId)?.membership !== "leave") return roomId;
  }
  await client.getProfileInfo(userId); // throws M_NOT_FOUND for someone who doesn't exist
  const { room_id } = await client.createRoom({
    is_direct: true,
    invite: [userId],
    preset: Preset.TrustedPrivateChat,
    visibility: Visibility.Private,
    initial_state: [encryptionState],
  });
  encryptedRooms.mark(room_id);
  await addDirectRoom(client, userId, room_id);
  return room_id;
}

export async function acceptInvite(client: MatrixClient, room: Room): Promise<void> {
  const inviter = room.getMember(client.getSafeUserId())?.getDMInviter();
  await client.joinRoom(room.roomId);
  if (inviter) await addDirectRoom(client, inviter, room.roomId);
}

export interface SendTextOptions {
  /** the event replied to, and its sender (mentioned, as the spec asks of replies) */
  replyTo?: { eventId: string; sender: string };
  /** the event edited, and the users its last version mentioned */
  edit?: { eventId: string; mentioned: string[] };
  mentions?: Mention[];
  /** a reply in a thread (replyTo, if set, is then the message in the thread it answers) */
  thread?: ThreadTarget;
}

/** Sends what was typed in the composer: Markdown, mention pills and `m.mentions`, as a reply or an edit. */
export async function sendText(client: MatrixClient, roomId: string, text: string, opts: SendTextOptions = {}): Promise<void> {
  await ensureSafeToSend(client, roomId, encryptedRooms);
  const me = client.getSafeUserId();
  const room = client.getRoom(roomId);
  const canMentionRoom = room?.currentState.mayTriggerNotifOfType("room", me) ?? false;
  const replySender = opts.replyTo && opts.replyTo.sender !== me ? [opts.replyTo.sender] : [];
  const composed = composeMessage(text, opts.mentions ?? [], { canMentionRoom, alsoMention: replySender });
  let content: Record<string, unknown> = { msgtype: "m.text", ...composed };
  if (opts.edit) {
    const { "m.mentions": mentions, ...rendered } = composed;
    // the spec's rule for edits: the new content names everyone; the edit itself only those newly mentioned
    const added = (mentions.user_ids ?? []).filter((u) => !opts.edit!.mentioned.includes(u));
    content = {
      msgtype: "m.text",
      body: `* ${rendered.body}`,
      ...(rendered.formatted_body ? { format: rendered.format, formatted_body: `* ${rendered.formatted_body}` } : {}),
      "m.mentions": { ...(added.length ? { user_ids: added } : {}), ...(mentions.room ? { room: true } : {}) },
      "m.new_content": { msgtype: "m.text", ...composed },
      "m.relates_to": { rel_type: "m.replace", event_id: opts.edit.eventId },
    };
  } else if (opts.thread) {
    content["m.relates_to"] = threadRelation({ ...opts.thread, replyTo: opts.replyTo?.eventId });
  } else if (opts.replyTo) {
    content["m.relates_to"] = { "m.in_reply_to": { event_id: opts.replyTo.eventId } };
  }
  await client.sendEvent(roomId, EventType.RoomMessage, content as never);
}

export async function sendReaction(client: MatrixClient, roomId: string, eventId: string, key: string): Promise<void> {
  await ensureSafeToSend(client, roomId, encryptedRooms);
  await client.sendEvent(roomId, EventType.Reaction, { "m.relates_to": { rel_type: "m.annotation", event_id: eventId, key } } as never);
}

/** Uploads a file, encrypted (AES-CTR, the server only sees ciphertext) or as it is: `file` or `url` for the content. */
async function upload(client: MatrixClient, data: Blob, encrypted: boolean, name: string | undefined, progressHandler?: (p: { loaded: number; total: number }) => void): Promise<{ file: EncryptedFileInfo } | { url: string }> {
  if (encrypted) {
    const { data: cipher, info: keyInfo } = await encryptAttachment(await data.arrayBuffer());
    const up = await client.uploadContent(new Blob([cipher], { type: "application/octet-stream" }), { type: "application/octet-stream", includeFilename: false, progressHandler });
    return { file: { url: up.content_uri, ...keyInfo } };
  }
  const up = await client.uploadContent(data, { type: data.type || "application/octet-stream", name, includeFilename: !!name, progressHandler });
  return { url: up.content_uri };
}

/**
 * Sends a file as m.image, m.video, m.audio or m.file (with sizes, durations and a video's first frame as
 * its thumbnail); encrypted rooms get encrypted uploads, thumbnail included. In a thread with `thread`.
 */
export async function sendFile(client: MatrixClient, roomId: string, file: File, onProgress?: (fraction: number) => void, opts: { thread?: ThreadTarget } = {}): Promise<void> {
  const { encrypted } = await ensureSafeToSend(client, roomId, encryptedRooms);
  const probed = await probeFile(file);
  const info: Record<string, unknown> = { ...probed.info };
  const content: Record<string, unknown> = { msgtype: probed.msgtype, body: file.name, filename: file.name, info };
  if (opts.thread) content["m.relates_to"] = threadRelation(opts.thread);
  const progressHandler = onProgress ? ({ loaded, total }: { loaded: number; total: number }) => onProgress(total ? loaded / total : 0) : undefined;
  if (probed.thumbnail) {
    const thumb = await upload(client, probed.thumbnail.blob, encrypted, undefined).catch(() => null);
    if (thumb) {
      if ("file" in thumb) info.thumbnail_file = thumb.file;
      else info.thumbnail_url = thumb.url;
      info.thumbnail_info = probed.thumbnail.info;
    }
  }
  Object.assign(content, await upload(client, file, encrypted, file.name, progressHandler));
  // check again: encryption state can't have gone away, but the room may have become encrypted meanwhile
  const again = await ensureSafeToSend(client, roomId, encryptedRooms);
  if (again.encrypted && !encrypted) throw new Error("The room became encrypted while uploading. Send the file again.");
  await client.sendEvent(roomId, EventType.RoomMessage, content as never);
}
