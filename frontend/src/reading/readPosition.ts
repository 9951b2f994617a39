// Where the reader is in a room: the read marker (`m.fully_read`, "read up to here", private to the
// account), the read receipt (`m.read`, public), and which messages count as unread. Element's rules:
// the receipt follows the newest message the reader has on screen; the marker moves on once the reader
// has scrolled past it, or has seen the newest message.
import type { MatrixEvent, Room } from "matrix-js-sdk";
import { chainEvents } from "../lib/timelineChain";
import { threadRootOf } from "../components/threads/relation";

/** Messages from others that make a room unread (not edits, reactions or state). */
export function countsAsUnread(ev: MatrixEvent, me: string): boolean {
  if (ev.getSender() === me || ev.isRedacted()) return false;
  const type = ev.getType();
  if (type !== "m.room.message" && type !== "m.room.encrypted" && type !== "m.sticker") return false;
  const rel = (ev.getWireContent() as { "m.relates_to"?: { rel_type?: string } })["m.relates_to"];
  return rel?.rel_type !== "m.replace";
}

export function fullyReadEventId(room: Room): string | null {
  const id: unknown = room.getAccountData("m.fully_read")?.getContent().event_id;
  return typeof id === "string" ? id : null;
}

export interface ReadMarkerAtOpen {
  /** the `m.fully_read` event when the room was opened */
  markerId: string | null;
  /** whether messages from others came after it */
  unread: boolean;
}

/** The read marker as the room is opened, and whether anything after it is unread. */
export function readMarkerAtOpen(room: Room, me: string): ReadMarkerAtOpen {
  const markerId = fullyReadEventId(room);
  const events = chainEvents(room);
  if (!markerId) return { markerId, unread: false };
  const at = events.findIndex((e) => e.getId() === markerId);
  if (at >= 0) return { markerId, unread: events.slice(at + 1).some((e) => countsAsUnread(e, me)) };
  // the marker is older than what is loaded: unread if the newest message from someone else is
  const last = [...events].reverse().find((e) => countsAsUnread(e, me));
  return { markerId, unread: !!last?.getId() && !room.hasUserReadEvent(me, last.getId()!) };
}

/** Position of each event shown (the live timeline and those linked before it), by id (later = larger). */
export function timelineIndex(room: Room): Map<string, number> {
  const m = new Map<string, number>();
  chainEvents(room).forEach((e, i) => {
    const id = e.getId();
    if (id) m.set(id, i);
  });
  return m;
}

/** The newest event that is on the server (not a local echo still being sent). */
export function newestSentEvent(room: Room): MatrixEvent | undefined {
  const events = room.getLiveTimeline().getEvents();
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i];
    // a reply in a thread is read in its thread: an (unthreaded) receipt on it would mark the thread read
    if (!e.status && e.getId()?.startsWith("$") && !threadRootOf(e)) return e;
  }
  return undefined;
}
