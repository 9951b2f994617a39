// A room's history as one list, across gaps. With timelineSupport, a gappy (limited) sync starts a new
// live timeline and keeps the old one; paging back from the new one, matrix-js-sdk links the two once
// it reaches an event the old one holds, and goes on adding older events to the old one. So what is
// shown is the live timeline with every timeline linked before it, and paging back continues from the
// oldest of them.
import { EventTimeline, type MatrixEvent, type Room } from "matrix-js-sdk";

/** The live timeline and the timelines linked before it, oldest first. */
export function timelineChain(room: Room): EventTimeline[] {
  const chain = [room.getLiveTimeline()];
  const seen = new Set(chain);
  for (let t = chain[0].getNeighbouringTimeline(EventTimeline.BACKWARDS); t && !seen.has(t); t = t.getNeighbouringTimeline(EventTimeline.BACKWARDS)) {
    seen.add(t);
    chain.unshift(t);
  }
  return chain;
}

/** Every event of the chain, oldest first. */
export function chainEvents(room: Room): MatrixEvent[] {
  return timelineChain(room).flatMap((t) => t.getEvents());
}

/** The timeline to page back from: the oldest of the chain. */
export function oldestTimeline(room: Room): EventTimeline {
  return timelineChain(room)[0];
}
