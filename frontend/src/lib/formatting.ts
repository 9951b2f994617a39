// The formatting toolbar and its shortcuts: Markdown written into the composer's text (the message is
// sent as Markdown rendered to HTML, as typed by hand), keeping the selection on what was formatted.

export type Format = "bold" | "italic" | "code" | "link" | "quote" | "bullets" | "numbers";

export interface Edit {
  text: string;
  selStart: number;
  selEnd: number;
}

const WRAP: Partial<Record<Format, string>> = { bold: "**", italic: "*", code: "`" };

function wrap(e: Edit, marker: string): Edit {
  const { text, selStart: s, selEnd: t } = e;
  // already wrapped: unwrap (the toolbar button works as a toggle)
  if (text.slice(s - marker.length, s) === marker && text.slice(t, t + marker.length) === marker && !(marker === "*" && text.slice(s - 2, s) === "**" && text.slice(t, t + 2) === "**")) {
    return { text: text.slice(0, s - marker.length) + text.slice(s, t) + text.slice(t + marker.length), selStart: s - marker.length, selEnd: t - marker.length };
  }
  return { text: text.slice(0, s) + marker + text.slice(s, t) + marker + text.slice(t), selStart: s + marker.length, selEnd: t + marker.length };
}

/** The start of the line holding `i`, and the end of the line holding `j`. */
function lineRange(text: string, i: number, j: number): [number, number] {
  const start = text.lastIndexOf("\n", i - 1) + 1;
  const nl = text.indexOf("\n", j);
  return [start, nl < 0 ? text.length : nl];
}

function prefixLines(e: Edit, prefix: (n: number) => string, strip: RegExp): Edit {
  const [a, b] = lineRange(e.text, e.selStart, e.selEnd > e.selStart && e.text[e.selEnd - 1] === "\n" ? e.selEnd - 1 : e.selEnd);
  const lines = e.text.slice(a, b).split("\n");
  const all = lines.every((l) => strip.test(l));
  const out = lines.map((l, i) => (all ? l.replace(strip, "") : prefix(i + 1) + l)).join("\n");
  const text = e.text.slice(0, a) + out + e.text.slice(b);
  // Markdown needs a blank line between a paragraph and a list or quote
  const needsGap = !all && a > 0 && e.text[a - 2] !== "\n" && e.text.slice(0, a).trim() !== "";
  const withGap = needsGap ? text.slice(0, a) + "\n" + text.slice(a) : text;
  const shift = needsGap ? 1 : 0;
  return { text: withGap, selStart: a + shift, selEnd: a + shift + out.length };
}

export function applyFormat(e: Edit, f: Format): Edit {
  const marker = WRAP[f];
  if (marker) {
    if (f === "code" && e.text.slice(e.selStart, e.selEnd).includes("\n")) {
      const sel = e.text.slice(e.selStart, e.selEnd);
      const before = e.selStart > 0 && e.text[e.selStart - 1] !== "\n" ? "\n" : "";
      const block = `${before}\`\`\`\n${sel}\n\`\`\`\n`;
      return { text: e.text.slice(0, e.selStart) + block + e.text.slice(e.selEnd), selStart: e.selStart + before.length + 4, selEnd: e.selStart + before.length + 4 + sel.length };
    }
    return wrap(e, marker);
  }
  switch (f) {
    case "link": {
      const sel = e.text.slice(e.selStart, e.selEnd);
      const isUrl = /^https?:\/\/\S+$/.test(sel);
      const label = isUrl ? "" : sel || "link";
      const url = isUrl ? sel : "https://";
      const ins = `[${label}](${url})`;
      const text = e.text.slice(0, e.selStart) + ins + e.text.slice(e.selEnd);
      // select what still has to be typed: the address, or the label of a pasted address
      if (isUrl) return { text, selStart: e.selStart + 1, selEnd: e.selStart + 1 };
      const urlAt = e.selStart + label.length + 3;
      return { text, selStart: urlAt, selEnd: urlAt + url.length };
    }
    case "quote":
      return prefixLines(e, () => "> ", /^> ?/);
    case "bullets":
      return prefixLines(e, () => "- ", /^[-*+] /);
    case "numbers":
      return prefixLines(e, (n) => `${n}. `, /^\d+\. /);
    default:
      return e;
  }
}

/** The format a keyboard shortcut asks for (Ctrl or ⌘ with B, I, E), as Element's composer has them. */
export function shortcutFormat(e: { key: string; ctrlKey: boolean; metaKey: boolean; shiftKey: boolean; altKey: boolean }): Format | null {
  if (!(e.ctrlKey || e.metaKey) || e.altKey || e.shiftKey) return null;
  switch (e.key.toLowerCase()) {
    case "b":
      return "bold";
    case "i":
      return "italic";
    case "e":
      return "code";
    default:
      return null;
  }
}
