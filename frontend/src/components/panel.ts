// The right-hand panel beside the open room: its threads, one thread, or message search. A tiny store
// (like the call's) so the room header can open it and Chat can lay it out beside the room.
import { useSyncExternalStore } from "react";

export type Panel = { roomId: string; kind: "threads" } | { roomId: string; kind: "thread"; rootId: string; from?: "threads" } | { roomId: string; kind: "search" };

let current: Panel | null = null;
const listeners = new Set<() => void>();

export function openPanel(p: Panel | null): void {
  current = p;
  for (const l of listeners) l();
}

export function getPanel(): Panel | null {
  return current;
}

function subscribe(fn: () => void): () => void {
  listeners.add(fn);
  return () => void listeners.delete(fn);
}

/** The open panel, if it belongs to this room (null otherwise). */
export function usePanel(roomId: string | null): Panel | null {
  const p = useSyncExternalStore(subscribe, getPanel, () => null);
  return p && p.roomId === roomId ? p : null;
}
