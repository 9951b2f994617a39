// Jumping to a message (from search results): open its room, page back until it is loaded, scroll to
// it and flash it. A reply in a thread opens its thread instead.
import { useEffect, useRef, useSyncExternalStore } from "react";
import { Direction, type MatrixClient, type Room } from "matrix-js-sdk";
import { openRoom } from "../../lib/route";
import { openPanel } from "../panel";
import { chainEvents, oldestTimeline } from "../../lib/timelineChain";

/** Pages of 50 read back at most to find a message (older ones: "Load earlier messages" by hand). */
const MAX_PAGES = 30;

interface Request {
  roomId: string;
  eventId: string;
  seq: number;
}

let current: Request | null = null;
let seq = 0;
const listeners = new Set<() => void>();

export function jumpToMessage(roomId: string, eventId: string, threadRoot?: string): void {
  openRoom(roomId);
  if (threadRoot) {
    openPanel({ roomId, kind: "thread", rootId: threadRoot });
    return;
  }
  current = { roomId, eventId, seq: ++seq };
  for (const l of listeners) l();
}

function subscribe(fn: () => void): () => void {
  listeners.add(fn);
  return () => void listeners.delete(fn);
}

function flash(eventId: string): void {
  requestAnimationFrame(() => {
    const el = document.querySelector(`[data-testid=room-view] [data-event-id="${CSS.escape(eventId)}"]`);
    if (!el) return;
    el.classList.add("flash");
    setTimeout(() => el.classList.remove("flash"), 2500);
  });
}

/** In the room view: carries out jump requests for this room with its own scrolling. */
export function useJumpRequests(client: MatrixClient, room: Room, scrollToEvent: (id: string) => boolean, on: { atStart: () => void; error: (msg: string) => void }): void {
  const req = useSyncExternalStore(subscribe, () => current, () => null);
  const handlers = useRef(on);
  useEffect(() => {
    handlers.current = on;
  });
  useEffect(() => {
    if (!req || req.roomId !== room.roomId) return;
    current = null; // taken
    let alive = true;
    const loaded = () => chainEvents(room).some((e) => e.getId() === req.eventId);
    void (async () => {
      try {
        for (let i = 0; i < MAX_PAGES && !loaded() && alive; i++) {
          if (!(await client.paginateEventTimeline(oldestTimeline(room), { backwards: true, limit: 50 }))) {
            handlers.current.atStart();
            break;
          }
        }
        if (!alive) return;
        if (!loaded()) {
          handlers.current.error(oldestTimeline(room).getPaginationToken(Direction.Backward) ? "That message is further back than WSPR reads at once. Scroll up to load more." : "That message isn't in this room's history any more.");
          return;
        }
        // rendered after this render at the latest: scrollToEvent remembers it until then
        scrollToEvent(req.eventId);
        setTimeout(() => flash(req.eventId), 50);
      } catch (e) {
        if (alive) handlers.current.error(e instanceof Error ? e.message : String(e));
      }
    })();
    return () => {
      alive = false;
    };
  }, [req, room, client, scrollToEvent]);
}
