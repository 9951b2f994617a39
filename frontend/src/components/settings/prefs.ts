// Small per-browser preferences (localStorage), with a hook that re-renders when one changes.
import { useSyncExternalStore } from "react";

export interface Prefs {
  /** URL previews in encrypted rooms: off by default, as Element does, since the server fetches the link */
  encryptedLinkPreviews: boolean;
  /** URL previews at all */
  linkPreviews: boolean;
}

const KEY = "wspr.prefs";
const DEFAULTS: Prefs = { encryptedLinkPreviews: false, linkPreviews: true };
const listeners = new Set<() => void>();
let cached: { raw: string | null; prefs: Prefs } | null = null;

export function loadPrefs(): Prefs {
  let raw: string | null = null;
  try {
    raw = localStorage.getItem(KEY);
  } catch {
    /* unavailable */
  }
  if (cached && cached.raw === raw) return cached.prefs;
  let prefs = DEFAULTS;
  try {
    const v = raw ? (JSON.parse(raw) as Partial<Prefs>) : {};
    prefs = {
      encryptedLinkPreviews: typeof v.encryptedLinkPreviews === "boolean" ? v.encryptedLinkPreviews : DEFAULTS.encryptedLinkPreviews,
      linkPreviews: typeof v.linkPreviews === "boolean" ? v.linkPreviews : DEFAULTS.linkPreviews,
    };
  } catch {
    /* a damaged value: the defaults */
  }
  cached = { raw, prefs };
  return prefs;
}

export function setPref<K extends keyof Prefs>(key: K, value: Prefs[K]): void {
  try {
    localStorage.setItem(KEY, JSON.stringify({ ...loadPrefs(), [key]: value }));
  } catch {
    /* ignore */
  }
  for (const l of listeners) l();
}

function subscribe(fn: () => void): () => void {
  listeners.add(fn);
  return () => void listeners.delete(fn);
}

export function usePrefs(): Prefs {
  return useSyncExternalStore(subscribe, loadPrefs, () => DEFAULTS);
}
