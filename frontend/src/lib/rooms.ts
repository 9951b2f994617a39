import { NotificationCountType, type MatrixClient, type MatrixEvent, type Room } from "matrix-js-sdk";

export interface RoomSummary {
  roomId: string;
  name: string;
  membership: string;
  lastActivity: number;
  lastEvent?: MatrixEvent;
  unread: number;
  highlight: number;
  isDirect: boolean;
  encrypted: boolean;
}

const PREVIEW_TYPES = new Set(["m.room.message", "m.room.encrypted", "m.sticker"]);

export function lastMessage(room: Room): MatrixEvent | undefined {
  const events = room.getLiveTimeline().getEvents();
  for (let i = events.length - 1; i >= 0; i--) {
    const ev = events[i];
    if (!PREVIEW_TYPES.has(ev.getType())) continue;
    if (ev.getWireContent()?.["m.relates_to"]?.rel_type === "m.replace") continue;
    if (ev.getContent()?.msgtype === "m.key.verification.request") continue;
    return ev;
  }
  return undefined;
}

export function summarise(client: MatrixClient, room: Room, directRooms: Set<string>): RoomSummary {
  const last = lastMessage(room);
  const membership = room.getMyMembership();
  const me = room.getMember(client.getSafeUserId());
  const inviteTs = membership === "invite" ? (me?.events.member?.getTs() ?? Date.now()) : 0;
  return {
    roomId: room.roomId,
    name: room.name || "Empty room",
    membership,
    lastActivity: Math.max(room.getLastActiveTimestamp() > 0 ? room.getLastActiveTimestamp() : 0, last?.getTs() ?? 0, inviteTs),
    lastEvent: last,
    unread: room.getUnreadNotificationCount(NotificationCountType.Total) ?? 0,
    highlight: room.getUnreadNotificationCount(NotificationCountType.Highlight) ?? 0,
    isDirect: directRooms.has(room.roomId) || !!me?.getDMInviter(),
    encrypted: room.hasEncryptionStateEvent(),
  };
}

/** Invites first, then by most recent activity; ties broken by name for a stable order. */
export function sortRooms<T extends Pick<RoomSummary, "membership" | "lastActivity" | "name">>(rooms: T[]): T[] {
  return [...rooms].sort((a, b) => {
    const ai = a.membership === "invite" ? 0 : 1;
    const bi = b.membership === "invite" ? 0 : 1;
    if (ai !== bi) return ai - bi;
    if (b.lastActivity !== a.lastActivity) return b.lastActivity - a.lastActivity;
    return a.name.localeCompare(b.name);
  });
}

const pluralRules = new Intl.PluralRules("en");

/** "1 member", "2 members", "0 members". */
export function plural(count: number, one: string, other = `${one}s`): string {
  return `${count.toLocaleString()} ${pluralRules.select(count) === "one" ? one : other}`;
}

export function formatTime(ts: number, now = Date.now()): string {
  const d = new Date(ts);
  const n = new Date(now);
  if (d.toDateString() === n.toDateString()) return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  if (now - ts < 6 * 24 * 3600 * 1000) return d.toLocaleDateString([], { weekday: "short" });
  return d.toLocaleDateString([], { day: "numeric", month: "short" });
}

export function colorFor(id: string): string {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) >>> 0;
  return `hsl(${h % 360} 55% 48%)`;
}

export function initialOf(name: string): string {
  const t = name.replace(/^[@#!+]/, "").trim();
  const ch = Array.from(t)[0];
  return (ch ?? "?").toUpperCase();
}

/** "Today", "Yesterday", or a date, for day separators in the timeline. */
export function dayLabel(ts: number, now = Date.now()): string {
  const d = new Date(ts);
  const n = new Date(now);
  const startOf = (x: Date) => new Date(x.getFullYear(), x.getMonth(), x.getDate()).getTime();
  const days = Math.round((startOf(n) - startOf(d)) / 86_400_000);
  if (days === 0) return "Today";
  if (days === 1) return "Yesterday";
  return d.toLocaleDateString([], { weekday: "long", day: "numeric", month: "long", year: d.getFullYear() === n.getFullYear() ? undefined : "numeric" });
}
