import { EventStatus, type MatrixEvent } from "matrix-js-sdk";

export interface Reaction {
  key: string;
  senders: string[];
  /** our own reaction event, for removing it */
  mine?: string;
}

export interface TimelineItem {
  kind: "message" | "notice" | "hidden";
  event: MatrixEvent;
  id: string;
  sender: string;
  ts: number;
  /** effective content after applying the latest edit */
  content: Record<string, unknown>;
  edited: boolean;
  redacted: boolean;
  replyTo?: string;
  reactions: Reaction[];
  decryptionFailure?: string | null;
  encrypted: boolean;
  pending: boolean;
  failed: boolean;
}

const MESSAGE_TYPES = new Set(["m.room.message", "m.sticker"]);

interface Relation {
  rel_type?: string;
  event_id?: string;
  key?: string;
  "m.in_reply_to"?: { event_id?: string };
}

function contentRelation(ev: MatrixEvent): Relation | undefined {
  return ev.getContent<{ "m.relates_to"?: Relation }>()["m.relates_to"];
}

/** A content field meant to be text (`body`, `formatted_body`...): "" unless it really is a string. */
export function textField(value: unknown): string {
  return typeof value === "string" ? value : "";
}

function relation(ev: MatrixEvent): Relation | undefined {
  // relations stay in cleartext in the wire content of encrypted events
  return (ev.getWireContent() as { "m.relates_to"?: Relation })["m.relates_to"] ?? contentRelation(ev);
}

/** Describes a state event for the timeline, or null to hide it. */
/**
 * A reply's content without the quote of the replied-to message that older clients put in it (the
 * spec's rich-reply fallback, dropped from the spec in v1.13): the leading "> " lines of `body` and
 * the leading `<mx-reply>` of `formatted_body`. The reply is shown with its own preview of that message.
 */
export function stripReplyFallback(content: Record<string, unknown>): Record<string, unknown> {
  const out = { ...content };
  if (typeof out.body === "string" && out.body.startsWith(">")) {
    const lines = out.body.split("\n");
    let i = 0;
    while (i < lines.length && (lines[i].startsWith("> ") || lines[i] === ">")) i++;
    if (i < lines.length && lines[i] === "") i++;
    if (i > 0 && i < lines.length) out.body = lines.slice(i).join("\n");
  }
  if (typeof out.formatted_body === "string") out.formatted_body = out.formatted_body.replace(/^\s*<mx-reply>[\s\S]*?<\/mx-reply>/, "");
  return out;
}

export function describeStateEvent(ev: MatrixEvent, nameOf: (userId: string) => string): string | null {
  const c = ev.getContent();
  const p = ev.getPrevContent();
  const who = nameOf(ev.getSender() ?? "");
  switch (ev.getType()) {
    case "m.room.member": {
      const target = nameOf(ev.getStateKey() ?? "");
      const m = c.membership;
      const pm = p?.membership;
      if (m === "join" && pm === "join") {
        if (c.displayname !== p.displayname) return `${p.displayname ?? ev.getStateKey()} is now ${c.displayname ?? ev.getStateKey()}`;
        if (c.avatar_url !== p.avatar_url) return `${target} changed their avatar`;
        return null;
      }
      if (m === "join") return `${target} joined`;
      if (m === "invite") return `${who} invited ${target}`;
      if (m === "leave") return ev.getSender() === ev.getStateKey() ? (pm === "invite" ? `${target} declined the invite` : `${target} left`) : `${who} removed ${target}`;
      if (m === "ban") return `${who} banned ${target}`;
      return null;
    }
    case "m.room.name":
      return c.name ? `${who} named the room “${c.name}”` : `${who} removed the room name`;
    case "m.room.topic":
      return c.topic ? `${who} set the topic: ${c.topic}` : `${who} removed the topic`;
    case "m.room.avatar":
      return `${who} changed the room picture`;
    case "m.room.encryption":
      return `${who} turned on end-to-end encryption`;
    case "m.room.create":
      return `${who} created the room`;
    case "m.room.message":
      return c.msgtype === "m.key.verification.request" ? `${who} asked ${nameOf(typeof c.to === "string" ? c.to : "")} to verify` : null;
    default:
      return null;
  }
}

/**
 * Folds edits, reactions and redactions into the messages they refer to. Pure: takes the
 * live timeline's events (oldest first) and returns one item per visible event.
 */
export function buildTimeline(events: MatrixEvent[], myUserId: string): TimelineItem[] {
  // matrix-js-sdk only applies redactions that carry a top-level `redacts`; in room v11+ it lives in
  // content (servers are only asked to copy it up). Honour both so deletions show everywhere.
  const redactedIds = new Set<string>();
  for (const ev of events) {
    if (!ev.isRedaction()) continue;
    const target: unknown = (ev.event as { redacts?: string }).redacts ?? ev.getContent().redacts;
    if (typeof target === "string") redactedIds.add(target);
  }
  const isRedacted = (ev: MatrixEvent) => ev.isRedacted() || redactedIds.has(ev.getId() ?? "");
  const edits = new Map<string, MatrixEvent>();
  const reactions = new Map<string, Map<string, Reaction>>();
  for (const ev of events) {
    if (isRedacted(ev) || ev.isRedaction()) continue;
    const rel = relation(ev);
    if (!rel?.event_id) continue;
    if (rel.rel_type === "m.replace" && ev.getContent()?.["m.new_content"]) {
      const prev = edits.get(rel.event_id);
      if (!prev || prev.getTs() <= ev.getTs()) edits.set(rel.event_id, ev);
    } else if (rel.rel_type === "m.annotation" && ev.getType() === "m.reaction" && rel.key) {
      let byKey = reactions.get(rel.event_id);
      if (!byKey) reactions.set(rel.event_id, (byKey = new Map<string, Reaction>()));
      const r = byKey.get(rel.key) ?? { key: rel.key, senders: [] };
      const sender = ev.getSender()!;
      if (!r.senders.includes(sender)) r.senders.push(sender);
      if (sender === myUserId) r.mine = ev.getId();
      byKey.set(rel.key, r);
    }
  }
  const items: TimelineItem[] = [];
  for (const ev of events) {
    const type = ev.getType();
    const rel = relation(ev);
    if (type === "m.reaction" || ev.isRedaction() || type.startsWith("m.key.verification.")) continue;
    if (rel?.rel_type === "m.replace") continue;
    const id = ev.getId() ?? ev.getTxnId() ?? String(items.length);
    const encrypted = ev.isEncrypted();
    const base = {
      event: ev,
      id,
      sender: ev.getSender() ?? "",
      ts: ev.getTs(),
      redacted: isRedacted(ev),
      reactions: [...(reactions.get(id)?.values() ?? [])],
      encrypted,
      pending: !!ev.status && ev.status !== EventStatus.SENT,
      failed: ev.status === EventStatus.NOT_SENT,
      edited: false,
    };
    if (base.redacted) {
      items.push({ ...base, kind: "message", content: {} });
      continue;
    }
    if (ev.isDecryptionFailure()) {
      items.push({ ...base, kind: "message", content: {}, decryptionFailure: ev.decryptionFailureReason ?? "UNKNOWN_ERROR" });
      continue;
    }
    if (type === "m.room.encrypted") {
      // still decrypting
      items.push({ ...base, kind: "message", content: {}, decryptionFailure: null });
      continue;
    }
    if (type === "m.room.message" && ev.getContent()?.msgtype === "m.key.verification.request") {
      items.push({ ...base, kind: "notice", content: ev.getContent() });
      continue;
    }
    if (MESSAGE_TYPES.has(type)) {
      const edit = edits.get(id);
      const newContent = edit?.getContent()["m.new_content"] as Record<string, unknown> | undefined;
      const replyTo = rel?.["m.in_reply_to"]?.event_id ?? contentRelation(ev)?.["m.in_reply_to"]?.event_id;
      const raw: Record<string, unknown> = newContent ? { ...newContent } : { ...ev.getContent() };
      const content = replyTo && !newContent ? stripReplyFallback(raw) : raw;
      items.push({ ...base, kind: "message", content, edited: !!edit, replyTo });
      continue;
    }
    if (ev.isState()) {
      items.push({ ...base, kind: "notice", content: ev.getContent() });
      continue;
    }
  }
  return items;
}

/** Whether two consecutive messages should be visually grouped (same sender, within 5 minutes). */
export function continues(prev: TimelineItem | undefined, item: TimelineItem): boolean {
  return !!prev && prev.kind === "message" && item.kind === "message" && prev.sender === item.sender && item.ts - prev.ts < 5 * 60 * 1000;
}

export function plainTextOf(item: TimelineItem | undefined): string {
  if (!item) return "";
  if (item.redacted) return "Message deleted";
  if (item.decryptionFailure !== undefined) return "Encrypted message";
  const c = item.content;
  switch (c.msgtype) {
    case "m.image":
      return "📷 Image";
    case "m.file":
      return `📎 ${textField(c.body) || "File"}`;
    case "m.video":
      return "🎬 Video";
    case "m.audio":
      return "🎵 Audio";
    default:
      return textField(c.body);
  }
}
