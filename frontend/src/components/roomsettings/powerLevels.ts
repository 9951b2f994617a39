// m.room.power_levels, read and changed as pure functions (spec: "m.room.power_levels", and the auth
// rules that say who may change what). Content from the wire is untrusted: every field is checked.
import type { Room } from "matrix-js-sdk";

export interface PowerLevels {
  users?: Record<string, number>;
  users_default?: number;
  events?: Record<string, number>;
  events_default?: number;
  state_default?: number;
  ban?: number;
  kick?: number;
  redact?: number;
  invite?: number;
  notifications?: Record<string, number>;
  [key: string]: unknown;
}

export const ADMIN = 100;
export const MODERATOR = 50;
/** Room creators' level in room versions 12+ (MSC4289): above any number, never in `users`. */
export const CREATOR = Infinity;

/**
 * The room's creators where they hold the creator level: room versions 12 and later (and the
 * MSC4289 test version `org.matrix.hydra.11`) give the create event's sender and its
 * `additional_creators` infinite power. Empty for older versions, where creators are ordinary users.
 */
export function privilegedCreators(roomVersion: string, createSender: string | undefined, createContent: Record<string, unknown> | undefined): Set<string> {
  const v = Number(roomVersion);
  const privileged = (Number.isInteger(v) && v >= 12) || roomVersion.startsWith("org.matrix.hydra.");
  if (!privileged || !createSender) return new Set();
  const extra = Array.isArray(createContent?.additional_creators) ? createContent.additional_creators.filter((u): u is string => typeof u === "string") : [];
  return new Set([createSender, ...extra]);
}

function num(v: unknown, fallback: number): number {
  return typeof v === "number" && Number.isFinite(v) ? v : fallback;
}

/** `privilegedCreators` of a room as the client has it. */
export function roomCreators(room: Room): Set<string> {
  const create = room.currentState.getStateEvents("m.room.create", "");
  return privilegedCreators(room.getVersion(), create?.getSender(), create?.getContent());
}

/** A user's level: a creator's in v12+ rooms, else their entry in `users`, else `users_default`. */
export function userLevel(pl: PowerLevels, userId: string, creators: ReadonlySet<string> = new Set()): number {
  if (creators.has(userId)) return CREATOR;
  const users = pl.users && typeof pl.users === "object" ? pl.users : {};
  return num(users[userId], num(pl.users_default, 0));
}

export function roleName(level: number, usersDefault = 0): string {
  if (level === CREATOR) return "Owner"; // Element's name for a v12 room's creators
  if (level >= ADMIN) return "Admin";
  if (level >= MODERATOR) return "Moderator";
  if (level === usersDefault || level === 0) return "Member";
  return `Custom (${level})`;
}

/** The content with one user's level changed (the entry is dropped when it equals the default). */
export function withUserLevel(pl: PowerLevels, userId: string, level: number): PowerLevels {
  const users: Record<string, number> = { ...(pl.users ?? {}) };
  if (level === num(pl.users_default, 0)) delete users[userId];
  else users[userId] = level;
  return { ...pl, users };
}

/**
 * Whether `me` may set `target`'s level to `level` (the spec's auth rules for m.room.power_levels):
 * I can send the event, the new level is no higher than mine, and the target's current level is
 * below mine (or the target is me: anyone may lower themselves).
 */
export function mayChangeUserLevel(pl: PowerLevels, me: string, target: string, level: number, canSendPowerLevels: boolean, creators: ReadonlySet<string> = new Set()): boolean {
  if (!canSendPowerLevels) return false;
  // a creator's level is not in the content: nobody can change it (v12 auth rules refuse them in `users`)
  if (creators.has(target)) return false;
  const mine = userLevel(pl, me, creators);
  if (level > mine) return false;
  if (target === me) return true;
  return userLevel(pl, target, creators) < mine;
}

/** The permissions shown in room settings: where each lives in the content, and its default. */
export interface Permission {
  id: string;
  label: string;
  get: (pl: PowerLevels) => number;
  set: (pl: PowerLevels, level: number) => PowerLevels;
}

function top(key: "ban" | "kick" | "redact" | "invite" | "events_default" | "state_default" | "users_default", label: string, fallback: number): Permission {
  return { id: key, label, get: (pl) => num(pl[key], fallback), set: (pl, level) => ({ ...pl, [key]: level }) };
}

function event(type: string, label: string): Permission {
  return {
    id: `events.${type}`,
    label,
    // an event type without its own entry needs state_default (state events, which all of these are)
    get: (pl) => num(pl.events?.[type], num(pl.state_default, MODERATOR)),
    set: (pl, level) => ({ ...pl, events: { ...(pl.events ?? {}), [type]: level } }),
  };
}

function messageEvent(type: string, label: string): Permission {
  return {
    id: `events.${type}`,
    label,
    get: (pl) => num(pl.events?.[type], num(pl.events_default, 0)),
    set: (pl, level) => ({ ...pl, events: { ...(pl.events ?? {}), [type]: level } }),
  };
}

export const PERMISSIONS: Permission[] = [
  top("users_default", "Role of new members", 0),
  messageEvent("m.room.message", "Send messages"),
  top("invite", "Invite people", 0),
  top("kick", "Remove people", MODERATOR),
  top("ban", "Ban people", MODERATOR),
  top("redact", "Delete other people's messages", MODERATOR),
  {
    id: "notifications.room",
    label: "Notify everyone with @room",
    get: (pl) => num(pl.notifications?.room, MODERATOR),
    set: (pl, level) => ({ ...pl, notifications: { ...(pl.notifications ?? {}), room: level } }),
  },
  event("m.room.name", "Change the name"),
  event("m.room.topic", "Change the topic"),
  event("m.room.avatar", "Change the picture"),
  event("m.room.join_rules", "Change who can join"),
  event("m.room.history_visibility", "Change who can read history"),
  event("m.room.power_levels", "Change roles and permissions"),
  event("m.room.tombstone", "Upgrade the room"),
  top("state_default", "Change other settings", MODERATOR),
];

/** The levels a select offers: the named roles, plus the current value where it is something else. */
export function levelChoices(current: number, max: number): { level: number; label: string; disabled: boolean }[] {
  const base = [
    { level: 0, label: "Member" },
    { level: MODERATOR, label: "Moderator" },
    { level: ADMIN, label: "Admin" },
  ];
  const list = base.some((b) => b.level === current) ? base : [...base, { level: current, label: `Custom (${current})` }].sort((a, b) => a.level - b.level);
  return list.map((c) => ({ ...c, disabled: c.level > max }));
}
