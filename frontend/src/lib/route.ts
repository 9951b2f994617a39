// The app's one route: which room is open, kept in the URL hash (#/room/<id>) so reloads, links and
// the browser's back button work. A tiny store over `location.hash` and the history API.
import { useSyncExternalStore } from "react";

const listeners = new Set<() => void>();

export function roomFromHash(hash: string = location.hash): string | null {
  const m = /^#\/room\/(.+)$/.exec(hash);
  return m ? decodeURIComponent(m[1]) : null;
}

function subscribe(onChange: () => void): () => void {
  listeners.add(onChange);
  window.addEventListener("hashchange", onChange);
  window.addEventListener("popstate", onChange);
  return () => {
    listeners.delete(onChange);
    window.removeEventListener("hashchange", onChange);
    window.removeEventListener("popstate", onChange);
  };
}

/** Opens a room (or, with null, the room list), as a new history entry. */
export function openRoom(roomId: string | null): void {
  const hash = roomId ? `#/room/${encodeURIComponent(roomId)}` : "";
  if (location.hash === hash) return;
  history.pushState(null, "", hash || location.pathname + location.search);
  for (const l of listeners) l(); // pushState fires no event of its own
}

/** The open room's id (null: the room list), and re-renders when it changes. */
export function useOpenRoom(): string | null {
  return useSyncExternalStore(subscribe, () => roomFromHash(), () => null);
}
