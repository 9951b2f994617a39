// The one call this tab is in (if any). It outlives room views: you can read and write in other
// rooms, or go back to the room list on a phone, while the call goes on.
import { useSyncExternalStore } from "react";

export interface ActiveCall {
  roomId: string;
  minimized: boolean;
}

let current: ActiveCall | null = null;
const listeners = new Set<() => void>();

function set(next: ActiveCall | null): void {
  current = next;
  for (const l of listeners) l();
}

export const callStore = {
  get: (): ActiveCall | null => current,
  subscribe: (fn: () => void): (() => void) => {
    listeners.add(fn);
    return () => listeners.delete(fn);
  },
  /** Join the room's call (leaving any other), shown full size. */
  start: (roomId: string) => set({ roomId, minimized: false }),
  setMinimized: (minimized: boolean) => current && current.minimized !== minimized && set({ ...current, minimized }),
  end: () => set(null),
};

export function useActiveCall(): ActiveCall | null {
  return useSyncExternalStore(callStore.subscribe, callStore.get, callStore.get);
}
