import { useEffect, useReducer, useSyncExternalStore } from "react";

interface Emitter {
  on(event: string, fn: () => void): unknown;
  off(event: string, fn: () => void): unknown;
}

/** Re-renders the component whenever any of the given events fire (coalesced to one render per frame). */
export function useEvents(emitter: Emitter | null | undefined, events: readonly string[]): number {
  const [tick, bump] = useReducer((x: number) => x + 1, 0);
  const key = events.join("|");
  useEffect(() => {
    if (!emitter) return;
    const names = key.split("|");
    let scheduled = false;
    const fn = () => {
      if (scheduled) return;
      scheduled = true;
      const run = () => {
        scheduled = false;
        bump();
      };
      if (typeof requestAnimationFrame === "function" && document.visibilityState === "visible") requestAnimationFrame(run);
      else setTimeout(run, 0);
    };
    for (const e of names) emitter.on(e, fn);
    return () => {
      for (const e of names) emitter.off(e, fn);
    };
  }, [emitter, key]);
  return tick;
}

function subscribeOnline(onChange: () => void): () => void {
  window.addEventListener("online", onChange);
  window.addEventListener("offline", onChange);
  return () => {
    window.removeEventListener("online", onChange);
    window.removeEventListener("offline", onChange);
  };
}

/** Whether the browser thinks it is online (`navigator.onLine`), kept current. */
export function useOnline(): boolean {
  return useSyncExternalStore(
    subscribeOnline,
    () => navigator.onLine,
    () => true,
  );
}
