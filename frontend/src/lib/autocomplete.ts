// What the composer offers while typing: `@name` → room members (and @room), `:name` → emoji.

export interface Trigger {
  kind: "user" | "emoji";
  /** what was typed after the @ or : */
  query: string;
  /** the range of the text the chosen completion replaces */
  start: number;
  end: number;
}

/** The completion being typed at the caret, if any. */
export function findTrigger(text: string, caret: number): Trigger | null {
  const before = text.slice(0, caret);
  const user = /(?:^|\s)(@[^\s@:]*)$/.exec(before);
  if (user) return { kind: "user", query: user[1].slice(1), start: caret - user[1].length, end: caret };
  const emoji = /(?:^|\s)(:[a-z0-9_+-]{2,})$/i.exec(before);
  if (emoji) return { kind: "emoji", query: emoji[1].slice(1).toLowerCase(), start: caret - emoji[1].length, end: caret };
  return null;
}

export interface MemberLike {
  userId: string;
  name: string;
}

/** Members whose name or user ID starts with (then contains) the query; prefix matches first. */
export function rankMembers<T extends MemberLike>(members: T[], query: string, limit = 8): T[] {
  const q = query.toLowerCase();
  const scored: { m: T; score: number }[] = [];
  for (const m of members) {
    const name = m.name.toLowerCase();
    const id = m.userId.toLowerCase().slice(1);
    let score: number;
    if (!q) score = 3;
    else if (name.startsWith(q)) score = 0;
    else if (id.startsWith(q)) score = 1;
    else if (name.split(/\s+/).some((w) => w.startsWith(q))) score = 1.5;
    else if (name.includes(q) || id.includes(q)) score = 2;
    else continue;
    scored.push({ m, score });
  }
  scored.sort((a, b) => a.score - b.score || a.m.name.localeCompare(b.m.name));
  return scored.slice(0, limit).map((s) => s.m);
}

/** Replaces the trigger's range with `insert` (plus a space), returning the new text and caret. */
export function applyCompletion(text: string, t: Trigger, insert: string): { text: string; caret: number } {
  const after = text.slice(t.end);
  const spaced = after.startsWith(" ") ? insert : `${insert} `;
  return { text: text.slice(0, t.start) + spaced + after, caret: t.start + spaced.length + (after.startsWith(" ") ? 1 : 0) };
}
