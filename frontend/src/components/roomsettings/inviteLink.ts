// Shareable room links (matrix.to, which every Matrix client understands) and reading them back.
import type { Room } from "matrix-js-sdk";

const MATRIX_TO = "https://matrix.to/#/";

function serverOf(id: string): string {
  const i = id.indexOf(":");
  return i >= 0 ? id.slice(i + 1) : "";
}

/**
 * Servers to join through, for a link by room id (the spec's "Routing" advice for permalinks): the
 * server of the highest-powered member, then the servers with the most members, at most three.
 */
export function viaServers(members: { userId: string; powerLevel: number }[], max = 3): string[] {
  const counts = new Map<string, number>();
  for (const m of members) {
    const s = serverOf(m.userId);
    // IP literals are no good as a join route (they change, and don't name the server)
    if (s && !/^(\d+\.){3}\d+(:\d+)?$/.test(s) && !s.startsWith("[")) counts.set(s, (counts.get(s) ?? 0) + 1);
  }
  const out: string[] = [];
  const top = [...members].filter((m) => counts.has(serverOf(m.userId))).sort((a, b) => b.powerLevel - a.powerLevel)[0];
  if (top && top.powerLevel >= 50) out.push(serverOf(top.userId));
  for (const [s] of [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))) {
    if (out.length >= max) break;
    if (!out.includes(s)) out.push(s);
  }
  return out;
}

/** A matrix.to link to a room: by its address where it has one, else by id with via servers. */
export function roomLink(alias: string | null | undefined, roomId: string, via: string[]): string {
  if (alias) return MATRIX_TO + encodeURIComponent(alias).replace(/%3A/g, ":");
  const query = via.map((s) => `via=${encodeURIComponent(s)}`).join("&");
  return MATRIX_TO + encodeURIComponent(roomId).replace(/%3A/g, ":") + (query ? `?${query}` : "");
}

export function roomLinkFor(room: Room): string {
  const members = room.getJoinedMembers().map((m) => ({ userId: m.userId, powerLevel: m.powerLevel }));
  return roomLink(room.getCanonicalAlias(), room.roomId, viaServers(members));
}

/** A room address, id or matrix.to link as typed or pasted: what to join, and through which servers. */
export function parseRoomTarget(input: string, defaultServer: string): { target: string; via: string[] } | null {
  let text = input.trim();
  if (!text) return null;
  let via: string[] = [];
  const link = /^https:\/\/matrix\.to\/#\/([^?]+)(?:\?(.*))?$/.exec(text);
  if (link) {
    try {
      text = decodeURIComponent(link[1]);
    } catch {
      return null;
    }
    via = new URLSearchParams(link[2] ?? "").getAll("via");
    // a link to an event in a room: the room
    text = text.split("/")[0];
    if (!/^[#!]/.test(text)) return null; // a person or something else
    return { target: text, via };
  }
  if (!/^[#!]/.test(text)) text = `#${text}`;
  if (!text.includes(":")) text = `${text}:${defaultServer}`;
  return { target: text, via };
}
