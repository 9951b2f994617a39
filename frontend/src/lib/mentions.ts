// Mentions in messages: the pills other clients show (an HTML link to https://matrix.to/#/@user in
// formatted_body) and intentional mentions (`m.mentions`, spec "User and room mentions"), which is what
// push rules look at since v1.7 instead of the message text.
import { renderMarkdown, type MessageBody } from "./markdown";
import { permalinkForUser, userIdFromPermalink } from "./permalinks";

export { permalinkForUser, userIdFromPermalink };

/** A person picked from autocomplete: `text` ("@Bob") is what the composer shows until it is sent. */
export interface Mention {
  text: string;
  userId: string;
}

export interface Mentions {
  user_ids?: string[];
  room?: boolean;
}

export type ComposedMessage = MessageBody & { "m.mentions": Mentions };

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Matches `token` as a whole word: not inside a longer name (@Bob in @Bobby) or an address. */
function wordPattern(token: string): RegExp {
  return new RegExp(`(^|[^\\w@])${escapeRegExp(token)}(?![\\w-])`, "g");
}

function escapeMarkdownText(s: string): string {
  return s.replace(/([\\`*_[\]<>~|#])/g, "\\$1");
}

/**
 * The content of a message written in the composer: Markdown rendered as today, each picked mention
 * still present in the text becoming a pill (body: the name; formatted_body: a matrix.to link), and
 * `m.mentions` naming them (plus `room` for @room when the sender may notify the room).
 */
export function composeMessage(text: string, mentions: Mention[], opts: { canMentionRoom: boolean; alsoMention?: string[] }): ComposedMessage {
  let markdown = text;
  let body = text;
  const userIds = new Set<string>();
  // longest first, so "@Bob Smith" is replaced before "@Bob"
  for (const m of [...mentions].sort((a, b) => b.text.length - a.text.length)) {
    const re = wordPattern(m.text);
    if (!re.test(markdown)) continue;
    userIds.add(m.userId);
    const name = m.text.replace(/^@/, "");
    markdown = markdown.replace(wordPattern(m.text), (_all, pre: string) => `${pre}[${escapeMarkdownText(name)}](<${permalinkForUser(m.userId)}>)`);
    body = body.replace(wordPattern(m.text), (_all, pre: string) => `${pre}${name}`);
  }
  for (const id of opts.alsoMention ?? []) userIds.add(id);
  const room = opts.canMentionRoom && wordPattern("@room").test(text);
  const rendered = renderMarkdown(markdown);
  const mentioned: Mentions = { ...(userIds.size ? { user_ids: [...userIds] } : {}), ...(room ? { room: true } : {}) };
  return rendered.formatted_body ? { ...rendered, body, "m.mentions": mentioned } : { body, "m.mentions": mentioned };
}

/**
 * Text and mentions to edit a message with: the body (the Markdown it was written in, with names where
 * pills were), each pill's name turned back into "@name" so it stays a pill when sent again.
 */
export function editableText(content: Record<string, unknown>): { text: string; mentions: Mention[] } {
  let text = typeof content.body === "string" ? content.body : "";
  const html = content.format === "org.matrix.custom.html" && typeof content.formatted_body === "string" ? content.formatted_body : "";
  const mentions: Mention[] = [];
  if (!html || typeof DOMParser === "undefined") return { text, mentions };
  const doc = new DOMParser().parseFromString(html, "text/html");
  let from = 0;
  for (const a of Array.from(doc.querySelectorAll("a[href]"))) {
    const userId = userIdFromPermalink(a.getAttribute("href") ?? "");
    const name = a.textContent ?? "";
    if (!userId || !name) continue;
    const token = name.startsWith("@") ? name : `@${name}`;
    const at = text.indexOf(name, from);
    if (at < 0) continue;
    const already = text[at - 1] === "@" || name.startsWith("@");
    text = already ? text : text.slice(0, at) + "@" + text.slice(at);
    from = at + token.length;
    if (!mentions.some((m) => m.text === token)) mentions.push({ text: token, userId });
  }
  return { text, mentions };
}
