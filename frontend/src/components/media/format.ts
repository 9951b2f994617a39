// Small formatting and text helpers for media and links.

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} byte${n === 1 ? "" : "s"}`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10 * 1024 ? 1 : 0)} KB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(1)} GB`;
}

/** 75_000 ms → "1:15"; an hour or more → "1:02:03". */
export function formatDuration(ms: number): string {
  const total = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const ss = String(s).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

// http(s) links in text; trailing punctuation belongs to the sentence, not the link
const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;

function trimUrl(url: string): string {
  let u = url;
  for (;;) {
    const last = u.at(-1);
    if (last && ".,;:!?'\"".includes(last)) u = u.slice(0, -1);
    else if (last === ")" && (u.match(/\(/g)?.length ?? 0) < (u.match(/\)/g)?.length ?? 0)) u = u.slice(0, -1);
    else if (last === "]" && !u.includes("[")) u = u.slice(0, -1);
    else return u;
  }
}

export type TextPart = { text: string } | { url: string };

/** Text split into plain runs and links, for showing plain-text messages with clickable links. */
export function linkParts(text: string): TextPart[] {
  const parts: TextPart[] = [];
  let at = 0;
  for (const m of text.matchAll(URL_RE)) {
    const url = trimUrl(m[0]);
    const start = m.index;
    if (start > at) parts.push({ text: text.slice(at, start) });
    parts.push({ url });
    at = start + url.length;
  }
  if (at < text.length) parts.push({ text: text.slice(at) });
  return parts;
}

/** Links worth a preview in a message: web pages, not Matrix permalinks, at most `max`, each once. */
export function previewableUrls(text: string, max = 2): string[] {
  const out: string[] = [];
  for (const part of linkParts(text)) {
    if (!("url" in part)) continue;
    let u: URL;
    try {
      u = new URL(part.url);
    } catch {
      continue;
    }
    if (u.hostname === "matrix.to") continue;
    u.hash = "";
    const s = u.toString();
    if (!out.includes(s)) out.push(s);
    if (out.length >= max) break;
  }
  return out;
}
