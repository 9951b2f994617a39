// What the room's loaded timeline and the server's bundled aggregations say about its threads, and
// whether each has something unread.
import { NotificationCountType, type MatrixEvent, type Room } from "matrix-js-sdk";
import { bundledThread, threadRootOf } from "./relation";
import { chainEvents } from "../../lib/timelineChain";

export interface ThreadInfo {
  rootId: string;
  count: number;
  /** the latest reply we have loaded, or the server's raw summary of it */
  latest?: MatrixEvent;
  latestSender?: string;
  latestTs?: number;
  participants: string[];
}

/** Replies by thread root in the room's live timeline (oldest first). */
export function liveReplies(room: Room): Map<string, MatrixEvent[]> {
  const out = new Map<string, MatrixEvent[]>();
  for (const ev of chainEvents(room)) {
    const root = threadRootOf(ev);
    if (!root || ev.isRedacted()) continue;
    let list = out.get(root);
    if (!list) out.set(root, (list = []));
    list.push(ev);
  }
  return out;
}

/** A thread's summary: the server's count when the root came, plus replies that arrived since. */
export function threadInfo(root: MatrixEvent, replies: MatrixEvent[] = []): ThreadInfo | undefined {
  const rootId = root.getId();
  if (!rootId) return undefined;
  const bundled = bundledThread(root);
  if (!bundled && !replies.length) return undefined;
  const since = bundled?.latest?.origin_server_ts ?? 0;
  const newer = bundled ? replies.filter((r) => r.getTs() > since && r.getId() !== bundled.latest?.event_id) : replies;
  const count = Math.max(bundled ? bundled.count + newer.length : 0, replies.length);
  const last = replies.at(-1);
  const useLive = !!last && (!bundled?.latest?.origin_server_ts || last.getTs() >= bundled.latest.origin_server_ts);
  const participants = [...new Set([...(bundled?.latest?.sender ? [bundled.latest.sender] : []), ...replies.map((r) => r.getSender() ?? "")].filter(Boolean))];
  return {
    rootId,
    count,
    latest: useLive ? last : undefined,
    latestSender: useLive ? last.getSender() : bundled?.latest?.sender,
    latestTs: useLive ? last.getTs() : bundled?.latest?.origin_server_ts,
    participants,
  };
}

// --- read state ---------------------------------------------------------------------------------
// Unencrypted rooms: the server's per-thread notification counts (sync's unread_thread_notifications,
// kept by the SDK). Encrypted rooms: the SDK ignores the server's non-zero counts there (the server
// counts every encrypted event), so a thread is unread when its latest reply is someone else's and
// newer than what this device last saw of it (or the room's read receipt).

const KEY = "wspr.threadsRead";
const MAX_ENTRIES = 500;

function loadSeen(): Record<string, number> {
  try {
    const v: unknown = JSON.parse(localStorage.getItem(KEY) ?? "{}");
    return v && typeof v === "object" ? (v as Record<string, number>) : {};
  } catch {
    return {};
  }
}

/** Remembers that this thread has been read up to `ts` on this device. */
export function markThreadSeen(rootId: string, ts: number): void {
  const seen = loadSeen();
  if ((seen[rootId] ?? 0) >= ts) return;
  seen[rootId] = ts;
  const entries = Object.entries(seen).sort((a, b) => b[1] - a[1]).slice(0, MAX_ENTRIES);
  try {
    localStorage.setItem(KEY, JSON.stringify(Object.fromEntries(entries)));
  } catch {
    /* storage full: the server's receipt still counts */
  }
}

export function clearThreadsSeen(): void {
  try {
    localStorage.removeItem(KEY);
  } catch {
    /* ignore */
  }
}

export interface ThreadUnread {
  count: number;
  highlight: boolean;
}

export function threadUnread(room: Room, info: ThreadInfo, me: string): ThreadUnread | null {
  const total = room.getThreadUnreadNotificationCount(info.rootId, NotificationCountType.Total);
  const highlight = room.getThreadUnreadNotificationCount(info.rootId, NotificationCountType.Highlight);
  if (total > 0 || highlight > 0) return { count: total, highlight: highlight > 0 };
  if (!room.hasEncryptionStateEvent()) return null;
  if (!info.latestTs || !info.latestSender || info.latestSender === me) return null;
  if ((loadSeen()[info.rootId] ?? 0) >= info.latestTs) return null;
  if (info.latest?.getId() && room.hasUserReadEvent(me, info.latest.getId()!)) return null;
  // only the server's summary of the latest reply: read if the room's receipt is past its time
  const upTo = room.getEventReadUpTo(me);
  const upToTs = upTo ? room.findEventById(upTo)?.getTs() : undefined;
  if (upToTs !== undefined && upToTs >= info.latestTs) return null;
  return { count: 0, highlight: false };
}
