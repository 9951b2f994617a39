// Feeds the local search index (localIndex.ts) from what this device decrypts in encrypted rooms: every
// decrypted message (live, back-paginated, fetched for threads), our own sent messages, edits (the new
// text replaces the old under the original's id) and redactions (removed).
import { ClientEvent, EventStatus, MatrixEventEvent, RoomEvent, type MatrixClient, type MatrixEvent, type Room } from "matrix-js-sdk";
import { LocalIndex, searchDatabaseName, type IndexedMessage } from "./localIndex";
import { threadRootOf } from "../threads/relation";
import { chainEvents } from "../../lib/timelineChain";

const INDEXED_TYPES = new Set(["m.text", "m.notice", "m.emote", "m.file", "m.image", "m.video", "m.audio"]);
const FLUSH_MS = 300;

let index: Promise<LocalIndex | null> | null = null;
const writeListeners = new Set<() => void>();

/**
 * Calls `listener` after each write to the index, so that a search on screen picks up messages
 * decrypted after it ran (as after a reload, when sync decrypts the latest messages again).
 * Returns the unsubscribe function.
 */
export function onIndexWritten(listener: () => void): () => void {
  writeListeners.add(listener);
  return () => writeListeners.delete(listener);
}

/** The index of the running session (null where IndexedDB isn't available). */
export function getLocalIndex(): Promise<LocalIndex | null> {
  return index ?? Promise.resolve(null);
}

function text(v: unknown): string {
  return typeof v === "string" ? v : "";
}

/** What to index for a message: its text, or a file's name and caption. */
function bodyOf(content: Record<string, unknown>): string {
  const body = text(content.body);
  const filename = text(content.filename);
  return filename && filename !== body ? `${filename} ${body}` : body;
}

export function startLocalIndex(client: MatrixClient): () => void {
  if (typeof indexedDB === "undefined") return () => {};
  const me = client.getSafeUserId();
  const name = searchDatabaseName(me, client.getDeviceId() ?? "");
  const opened = LocalIndex.open(name).catch((e: unknown) => {
    console.warn("search index unavailable", e);
    return null;
  });
  index = opened;
  let stopped = false;
  const pending = new Map<string, Omit<IndexedMessage, "words">>();
  const removed = new Set<string>();
  // edits seen before their original: applied when it arrives
  const edits = new Map<string, { body: string; ts: number }>();
  let timer: ReturnType<typeof setTimeout> | undefined;

  const flush = async () => {
    timer = undefined;
    const idx = await opened;
    if (!idx || stopped) return;
    const puts = [...pending.values()];
    const dels = [...removed];
    pending.clear();
    removed.clear();
    if (!puts.length && !dels.length) return;
    try {
      await idx.remove(dels);
      await idx.put(puts);
    } catch (e) {
      console.warn("search index write failed", e);
      return;
    }
    for (const listener of writeListeners) listener();
  };
  const schedule = () => {
    if (!timer) timer = setTimeout(() => void flush(), FLUSH_MS);
  };

  const consider = (ev: MatrixEvent) => {
    const roomId = ev.getRoomId();
    const id = ev.getId();
    if (!roomId || !id?.startsWith("$") || ev.isDecryptionFailure() || ev.getType() !== "m.room.message") return;
    const room = client.getRoom(roomId);
    if (!room?.hasEncryptionStateEvent()) return; // the server searches unencrypted rooms
    if (ev.isRedacted()) {
      removed.add(id);
      schedule();
      return;
    }
    const content = ev.getContent();
    const rel = (ev.getWireContent() as { "m.relates_to"?: { rel_type?: string; event_id?: string } })["m.relates_to"] ?? (content["m.relates_to"]);
    if (rel?.rel_type === "m.replace" && rel.event_id) {
      const fresh = content["m.new_content"] as Record<string, unknown> | undefined;
      if (!fresh) return;
      const target = rel.event_id;
      const original = room.findEventById(target);
      // only the original's sender can edit it
      if (original && original.getSender() !== ev.getSender()) return;
      const prev = edits.get(target);
      if (prev && prev.ts > ev.getTs()) return;
      edits.set(target, { body: bodyOf(fresh), ts: ev.getTs() });
      const queued = pending.get(target);
      if (original || queued) {
        const base = queued ?? { id: target, roomId, ts: original!.getTs(), sender: original!.getSender() ?? "", threadRoot: threadRootOf(original!), body: "" };
        pending.set(target, { ...base, body: bodyOf(fresh) });
        schedule();
      }
      return;
    }
    if (!INDEXED_TYPES.has(text(content.msgtype))) return;
    const edited = edits.get(id);
    pending.set(id, { id, roomId, ts: ev.getTs(), sender: ev.getSender() ?? "", threadRoot: threadRootOf(ev), body: edited?.body ?? bodyOf(content) });
    schedule();
  };

  const onDecrypted = (ev: MatrixEvent, err?: Error) => {
    if (!err) consider(ev);
  };
  // our own messages are never decrypted: they're indexed once the server has them
  const onEcho = (ev: MatrixEvent) => {
    if (!ev.status || ev.status === EventStatus.SENT) consider(ev);
  };
  const onRedaction = (ev: MatrixEvent) => {
    const target = (ev.event as { redacts?: string }).redacts ?? (ev.getContent().redacts as string | undefined);
    if (typeof target === "string") {
      pending.delete(target);
      removed.add(target);
      schedule();
    }
  };
  // what was decrypted before we listened (the on-device cache, at start-up)
  const scanRoom = (room: Room) => {
    if (!room.hasEncryptionStateEvent()) return;
    for (const ev of chainEvents(room)) if (ev.getClearContent()) consider(ev);
  };
  client.on(MatrixEventEvent.Decrypted, onDecrypted);
  client.on(RoomEvent.LocalEchoUpdated, onEcho);
  client.on(RoomEvent.Redaction, onRedaction);
  client.on(ClientEvent.Room, scanRoom);
  for (const room of client.getRooms()) scanRoom(room);
  return () => {
    stopped = true;
    clearTimeout(timer);
    client.off(MatrixEventEvent.Decrypted, onDecrypted);
    client.off(RoomEvent.LocalEchoUpdated, onEcho);
    client.off(RoomEvent.Redaction, onRedaction);
    client.off(ClientEvent.Room, scanRoom);
    if (index === opened) index = null;
    void opened.then((i) => i?.close());
  };
}

/** Writes what is queued now (tests and "search further back" want the index current). */
export async function settleIndex(): Promise<void> {
  await new Promise((r) => setTimeout(r, FLUSH_MS + 50));
}
