// Threads (spec: "Threading"): a reply in a thread carries rel_type m.thread to the thread's root, and,
// for clients without threads, a reply fallback to the thread's latest event (is_falling_back: true), or
// to the message it really answers (is_falling_back: false).
import type { MatrixEvent } from "matrix-js-sdk";

export interface ThreadTarget {
  rootId: string;
  /** the thread's latest event: what clients without threads show it as a reply to */
  latestId: string;
  /** a message in the thread this one answers, if it answers one */
  replyTo?: string;
}

export function threadRelation(t: ThreadTarget): Record<string, unknown> {
  return {
    rel_type: "m.thread",
    event_id: t.rootId,
    is_falling_back: !t.replyTo,
    "m.in_reply_to": { event_id: t.replyTo ?? t.latestId },
  };
}

interface Relation {
  rel_type?: unknown;
  event_id?: unknown;
  is_falling_back?: unknown;
  "m.in_reply_to"?: { event_id?: unknown };
}

function relationOf(ev: MatrixEvent): Relation | undefined {
  // relations stay in cleartext in an encrypted event's wire content
  const wire = (ev.getWireContent() as { "m.relates_to"?: Relation })["m.relates_to"];
  return wire ?? (ev.getContent() as { "m.relates_to"?: Relation })["m.relates_to"];
}

/** The root of the thread this event is a reply in, or undefined (the main timeline). */
export function threadRootOf(ev: MatrixEvent): string | undefined {
  const rel = relationOf(ev);
  return rel?.rel_type === "m.thread" && typeof rel.event_id === "string" ? rel.event_id : undefined;
}

/** For a reply in a thread: the message it really answers (not the fallback), if any. */
export function threadReplyTarget(ev: MatrixEvent): string | undefined {
  const rel = relationOf(ev);
  if (rel?.rel_type !== "m.thread" || rel.is_falling_back === true) return undefined;
  const id = rel["m.in_reply_to"]?.event_id;
  return typeof id === "string" ? id : undefined;
}

/** What the server bundled about a thread under its root (unsigned m.relations m.thread). */
export interface ThreadSummaryData {
  count: number;
  latest?: { event_id?: string; sender?: string; origin_server_ts?: number };
  participated: boolean;
}

export function bundledThread(root: MatrixEvent): ThreadSummaryData | undefined {
  const agg = (root.getUnsigned() as { "m.relations"?: Record<string, unknown> })["m.relations"]?.["m.thread"] as
    | { count?: unknown; latest_event?: { event_id?: string; sender?: string; origin_server_ts?: number }; current_user_participated?: unknown }
    | undefined;
  if (!agg || typeof agg.count !== "number") return undefined;
  return { count: agg.count, latest: agg.latest_event, participated: agg.current_user_participated === true };
}
