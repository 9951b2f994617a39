// Drafts per room, kept in localStorage so they survive switching rooms and reloading. Keyed by the
// account, and removed at sign-out (`clearDrafts`), so another account on this browser never sees them.
import type { Mention } from "./mentions";

export interface Draft {
  text: string;
  mentions: Mention[];
  /** the event replied to */
  replyTo?: string;
}

const PREFIX = "wspr.draft.";

function key(userId: string, roomId: string): string {
  return `${PREFIX}${userId}|${roomId}`;
}

export function loadDraft(userId: string, roomId: string): Draft | null {
  try {
    const raw = localStorage.getItem(key(userId, roomId));
    if (!raw) return null;
    const d = JSON.parse(raw) as Partial<Draft>;
    if (typeof d.text !== "string") return null;
    const mentions = Array.isArray(d.mentions) ? d.mentions.filter((m): m is Mention => typeof m?.text === "string" && typeof m?.userId === "string") : [];
    return { text: d.text, mentions, replyTo: typeof d.replyTo === "string" ? d.replyTo : undefined };
  } catch {
    return null;
  }
}

export function saveDraft(userId: string, roomId: string, draft: Draft): void {
  try {
    if (!draft.text && !draft.replyTo) localStorage.removeItem(key(userId, roomId));
    else localStorage.setItem(key(userId, roomId), JSON.stringify(draft));
  } catch {
    /* storage full or unavailable: the draft lives as long as the page */
  }
}

export function clearDrafts(): void {
  try {
    for (let i = localStorage.length - 1; i >= 0; i--) {
      const k = localStorage.key(i);
      if (k?.startsWith(PREFIX)) localStorage.removeItem(k);
    }
  } catch {
    /* ignore */
  }
}
