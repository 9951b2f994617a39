import { Marked } from "marked";
import DOMPurify from "dompurify";
import { userIdFromPermalink } from "./permalinks";

const marked = new Marked({ gfm: true, breaks: true, async: false });

// Tags allowed by the Matrix spec for m.room.message formatted_body (org.matrix.custom.html).
const ALLOWED_TAGS = [
  "font", "del", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "p", "a", "ul", "ol", "sup", "sub", "li", "b", "i",
  "u", "strong", "em", "strike", "code", "hr", "br", "div", "table", "thead", "tbody", "tr", "th", "td", "caption",
  "pre", "span", "img", "details", "summary", "s",
];
const ALLOWED_ATTR = ["href", "name", "target", "width", "height", "alt", "title", "src", "start", "class", "data-mx-color", "data-mx-bg-color", "data-mx-spoiler", "colspan", "rowspan"];

/** True when the text contains something Markdown would change; plain text is sent without formatted_body. */
export function looksLikeMarkdown(text: string): boolean {
  return /[*_`~#>[\]|]|^\s*[-+]\s|^\s*\d+\.\s|https?:\/\//m.test(text);
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

export function sanitizeHtml(html: string): string {
  // DOMPurify returns its input untouched where it can't run: never trust that, show text instead.
  if (!DOMPurify.isSupported) return escapeHtml(html);
  return DOMPurify.sanitize(html, {
    ALLOWED_TAGS,
    ALLOWED_ATTR,
    // Remote images would leak the reader's IP; only mxc: images are meaningful and we don't inline them.
    FORBID_TAGS: ["img", "style", "script", "iframe"],
    ALLOWED_URI_REGEXP: /^(?:https?|mailto|matrix|mxc):/i,
  });
}

export interface MessageBody {
  body: string;
  format?: "org.matrix.custom.html";
  formatted_body?: string;
}

/** Markdown → {body, format, formatted_body}. Plain text stays plain. */
export function renderMarkdown(text: string): MessageBody {
  const body = text;
  if (!looksLikeMarkdown(text)) return { body };
  let html = (marked.parse(text) as string).trim();
  // a single paragraph doesn't need the <p> wrapper
  const single = /^<p>([\s\S]*)<\/p>$/.exec(html);
  if (single && !single[1].includes("<p>")) html = single[1];
  html = sanitizeHtml(html);
  const escaped = text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/\n/g, "<br>");
  if (html === escaped || html === text) return { body };
  return { body, format: "org.matrix.custom.html", formatted_body: html };
}

/**
 * Received HTML made safe to show: sanitised, links opening in a new tab, and links to people
 * (matrix.to) shown as mention pills (`pill`, and `pill-me` for the reader).
 */
export function prepareReceivedHtml(html: string, me?: string): string {
  const clean = sanitizeHtml(html);
  if (typeof document === "undefined") return clean.replace(/<a /g, '<a target="_blank" rel="noreferrer noopener" ');
  const t = document.createElement("template");
  t.innerHTML = clean;
  for (const a of Array.from(t.content.querySelectorAll("a"))) {
    a.setAttribute("target", "_blank");
    a.setAttribute("rel", "noreferrer noopener");
    const userId = userIdFromPermalink(a.getAttribute("href") ?? "");
    if (userId) {
      a.classList.add("pill");
      if (userId === me) a.classList.add("pill-me");
      a.setAttribute("data-user-id", userId);
    }
  }
  return t.innerHTML;
}
