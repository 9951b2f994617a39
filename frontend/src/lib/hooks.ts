import { useEffect, useReducer } from "react";

interface Emitter {
  on(event: string, fn: (...args: any[]) => void): unknown;
  off(event: string, fn: (...args: any[]) => void): unknown;
}

/** Re-renders the component whenever any of the given events fire (coalesced to one render per frame). */
export function useEvents(emitter: Emitter | null | undefined, events: string[]): number {
  const [tick, bump] = useReducer((x: number) => x + 1, 0);
  const key = events.join("|");
  useEffect(() => {
    if (!emitter) return;
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
    for (const e of events) emitter.on(e, fn);
    return () => {
      for (const e of events) emitter.off(e, fn);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [emitter, key]);
  return tick;
}
