// Emoji for the picker and `:shortcode:` completion, from emojibase-data (the data Element uses):
// loaded on first use as a separate chunk (about 70 kB compressed), so the app's first load doesn't
// carry it. Shortcodes are iamcal's (Slack's and Element's: :thumbsup:, :+1:, :joy:).

export interface Emoji {
  unicode: string;
  label: string;
  shortcodes: string[];
  tags: string[];
  group: number;
  order: number;
}

export interface EmojiGroup {
  id: number;
  name: string;
  emoji: Emoji[];
}

export interface EmojiData {
  all: Emoji[];
  groups: EmojiGroup[];
  byShortcode: Map<string, Emoji>;
}

// emojibase's group numbers (2, skin-tone components, is not offered)
const GROUP_NAMES: Record<number, string> = {
  0: "Smileys & emotion",
  1: "People & body",
  3: "Animals & nature",
  4: "Food & drink",
  5: "Travel & places",
  6: "Activities",
  7: "Objects",
  8: "Symbols",
  9: "Flags",
};

interface CompactEmoji {
  hexcode: string;
  label: string;
  unicode: string;
  group?: number;
  order?: number;
  tags?: string[];
}

export function buildEmojiData(compact: CompactEmoji[], shortcodes: Record<string, string | string[]>): EmojiData {
  const all: Emoji[] = [];
  const byShortcode = new Map<string, Emoji>();
  for (const e of compact) {
    if (e.group === undefined || e.group === 2 || e.order === undefined) continue;
    const sc = shortcodes[e.hexcode];
    const codes = sc === undefined ? [] : Array.isArray(sc) ? sc : [sc];
    const emoji: Emoji = { unicode: e.unicode, label: e.label, shortcodes: codes, tags: e.tags ?? [], group: e.group, order: e.order };
    all.push(emoji);
    for (const c of codes) if (!byShortcode.has(c)) byShortcode.set(c, emoji);
  }
  all.sort((a, b) => a.order - b.order);
  const groups = Object.entries(GROUP_NAMES).map(([id, name]) => ({ id: Number(id), name, emoji: all.filter((e) => e.group === Number(id)) }));
  return { all, groups, byShortcode };
}

let loading: Promise<EmojiData> | null = null;

/** The emoji data, fetched once (a lazily loaded chunk). */
export function loadEmoji(): Promise<EmojiData> {
  loading ??= Promise.all([import("emojibase-data/en/compact.json"), import("emojibase-data/en/shortcodes/iamcal.json")]).then(([c, s]) =>
    buildEmojiData(c.default as CompactEmoji[], s.default as Record<string, string | string[]>),
  );
  loading.catch(() => (loading = null));
  return loading;
}

/** Emoji matching a search: shortcode prefix first, then names and tags (every word typed must match). */
export function searchEmoji(data: EmojiData, query: string, limit = 50): Emoji[] {
  const q = query.trim().toLowerCase().replace(/^:|:$/g, "");
  if (!q) return [];
  const terms = q.split(/[\s_:,-]+/).filter(Boolean);
  const scored: { e: Emoji; s: number }[] = [];
  for (const e of data.all) {
    let s = 99;
    for (const c of e.shortcodes) {
      if (c === q) s = Math.min(s, 0);
      else if (c.startsWith(q)) s = Math.min(s, 1);
      else if (c.includes(q)) s = Math.min(s, 3);
    }
    const label = e.label.toLowerCase();
    if (label === q) s = Math.min(s, 0);
    else if (label.startsWith(q)) s = Math.min(s, 2);
    else {
      const words = [...label.split(/[\s:,-]+/), ...e.tags, ...e.shortcodes.flatMap((c) => c.split("_"))];
      if (terms.every((t) => words.some((w) => w.startsWith(t)))) s = Math.min(s, terms.length > 1 || words.indexOf(terms[0]) < 0 ? 2.5 : 2.2);
    }
    if (s < 99) scored.push({ e, s });
  }
  scored.sort((a, b) => a.s - b.s || a.e.order - b.e.order);
  return scored.slice(0, limit).map((x) => x.e);
}

const RECENT_KEY = "wspr.recentEmoji";

export function recentEmoji(): string[] {
  try {
    const v: unknown = JSON.parse(localStorage.getItem(RECENT_KEY) ?? "[]");
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string").slice(0, 24) : [];
  } catch {
    return [];
  }
}

export function rememberEmoji(unicode: string): void {
  try {
    localStorage.setItem(RECENT_KEY, JSON.stringify([unicode, ...recentEmoji().filter((u) => u !== unicode)].slice(0, 24)));
  } catch {
    /* ignore */
  }
}
