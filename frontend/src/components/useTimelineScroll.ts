// Scrolling a timeline: stay at the newest message unless the reader scrolled up, keep what they are
// reading exactly where it is when anything above it changes (older messages loaded, an image or a
// decrypted message changing height), and ask for older messages before the top comes into view.
//
// Browsers' own scroll anchoring (`overflow-anchor`) does none of this reliably here: Chrome turns it
// off at scrollTop 0 (where a reader waiting for older messages sits), Safari has none. So we anchor
// ourselves: before a change we remember the first visible message and its position within the
// content; after the change (after every render, and whenever the content's size changes) we scroll by
// however far that message moved. Positions are taken within the content, not the viewport, so a
// scroll the reader makes in the meantime is never undone.
import { useCallback, useEffect, useLayoutEffect, useRef, useState, type RefObject } from "react";

/** Within this distance of the bottom, the view follows new messages. */
const STICK_PX = 80;
/** Older messages are asked for while the top is within this many screen heights. */
const PREFETCH_SCREENS = 1.5;

interface Anchor {
  id: string;
  /** the anchor's top, relative to the top of the content */
  top: number;
}

function topWithin(node: Element, content: Element): number {
  return node.getBoundingClientRect().top - content.getBoundingClientRect().top;
}

/** The first message whose bottom is below the top of the viewport (binary search: they are in order). */
function firstVisible(scroller: HTMLElement, content: HTMLElement): Element | null {
  const nodes = content.querySelectorAll("[data-event-id]");
  const viewTop = scroller.getBoundingClientRect().top;
  let lo = 0;
  let hi = nodes.length - 1;
  let found: Element | null = null;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (nodes[mid].getBoundingClientRect().bottom > viewTop) {
      found = nodes[mid];
      hi = mid - 1;
    } else {
      lo = mid + 1;
    }
  }
  return found;
}

/** The last message whose top is above the bottom of the viewport. */
function lastVisible(scroller: HTMLElement, content: HTMLElement): Element | null {
  const nodes = content.querySelectorAll("[data-event-id]");
  const viewBottom = scroller.getBoundingClientRect().bottom;
  let lo = 0;
  let hi = nodes.length - 1;
  let found: Element | null = null;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (nodes[mid].getBoundingClientRect().top < viewBottom - 4) {
      found = nodes[mid];
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return found;
}

/** What the reader sees: the first and last messages on screen, and whether they are at the newest. */
export interface TimelineView {
  first: string | null;
  last: string | null;
  atBottom: boolean;
  /** the top of the viewport, within the content (to tell what is above it) */
  top: number;
}

interface ScrollState {
  /** follow new messages (the reader is at the bottom) */
  stick: boolean;
  anchor: Anchor | null;
  canLoadOlder: boolean;
  loadOlder: () => Promise<void>;
  /** a message to open the room at (the first unread), until it has been shown */
  openAt: string | null;
  onView?: (view: TimelineView) => void;
}

function record(state: ScrollState, scroller: HTMLElement, content: HTMLElement): void {
  const node = firstVisible(scroller, content);
  const id = node?.getAttribute("data-event-id");
  state.anchor = node && id ? { id, top: topWithin(node, content) } : null;
}

/** Space left above a message the view is scrolled to (the unread line sits there). */
const OPEN_AT_MARGIN = 72;

function scrollTo(state: ScrollState, scroller: HTMLElement, content: HTMLElement, node: Element): void {
  scroller.scrollTop += node.getBoundingClientRect().top - scroller.getBoundingClientRect().top - OPEN_AT_MARGIN;
  state.stick = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < STICK_PX;
}

function report(state: ScrollState, scroller: HTMLElement, content: HTMLElement): void {
  if (!state.onView) return;
  state.onView({
    first: firstVisible(scroller, content)?.getAttribute("data-event-id") ?? null,
    last: lastVisible(scroller, content)?.getAttribute("data-event-id") ?? null,
    atBottom: scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < STICK_PX,
    top: scroller.getBoundingClientRect().top - content.getBoundingClientRect().top,
  });
}

/** Puts the view back where the reader had it (or at the bottom), after the content changed. */
function restore(state: ScrollState, scroller: HTMLElement, content: HTMLElement): void {
  if (state.openAt) {
    const node = content.querySelector(`[data-event-id="${CSS.escape(state.openAt)}"]`);
    if (node) {
      state.openAt = null;
      scroller.scrollTop = scroller.scrollHeight;
      scrollTo(state, scroller, content, node);
      record(state, scroller, content);
      return;
    }
  }
  if (state.stick) {
    scroller.scrollTop = scroller.scrollHeight;
  } else if (state.anchor) {
    const node = content.querySelector(`[data-event-id="${CSS.escape(state.anchor.id)}"]`);
    if (node) {
      const moved = topWithin(node, content) - state.anchor.top;
      if (Math.abs(moved) >= 0.5) scroller.scrollTop += moved;
    }
  }
  record(state, scroller, content);
}

function maybeLoadOlder(state: ScrollState, scroller: HTMLElement): void {
  if (state.canLoadOlder && scroller.scrollTop < scroller.clientHeight * PREFETCH_SCREENS) void state.loadOlder();
}

/**
 * Attach `scroller` to the scrolling element and `content` to the element holding the messages (each
 * with `data-event-id`). `canLoadOlder` is false while a page is loading or the room's start is shown.
 * `openAt`: the message to show first (at the top, below a margin) instead of the newest, when the room
 * opens. `onView` hears what is on screen after every scroll and change (for read receipts and markers).
 */
export function useTimelineScroll({ canLoadOlder, loadOlder, openAt = null, onView }: { canLoadOlder: boolean; loadOlder: () => Promise<void>; openAt?: string | null; onView?: (view: TimelineView) => void }): {
  scroller: RefObject<HTMLDivElement | null>;
  content: RefObject<HTMLDivElement | null>;
  followNewest: () => void;
  atBottom: boolean;
  scrollToBottom: () => void;
  /** scrolls to a message (now, or once it is rendered) */
  scrollToEvent: (id: string) => boolean;
} {
  const scroller = useRef<HTMLDivElement>(null);
  const content = useRef<HTMLDivElement>(null);
  const state = useRef<ScrollState>({ stick: !openAt, anchor: null, canLoadOlder, loadOlder, openAt, onView });
  const [atBottom, setAtBottom] = useState(true);
  useEffect(() => {
    state.current.canLoadOlder = canLoadOlder;
    state.current.loadOlder = loadOlder;
    state.current.onView = onView;
  }, [canLoadOlder, loadOlder, onView]);

  // after every render: the messages may have changed above the reader
  useLayoutEffect(() => {
    if (scroller.current && content.current) {
      restore(state.current, scroller.current, content.current);
      report(state.current, scroller.current, content.current);
    }
  });
  // once a page has arrived (or when the room opens short), see whether the top is still close
  useEffect(() => {
    if (scroller.current) maybeLoadOlder(state.current, scroller.current);
  }, [canLoadOlder]);

  useEffect(() => {
    const el = scroller.current;
    const inner = content.current;
    if (!el || !inner) return;
    const s = state.current;
    const onScroll = () => {
      s.stick = el.scrollHeight - el.scrollTop - el.clientHeight < STICK_PX;
      setAtBottom(s.stick);
      record(s, el, inner);
      maybeLoadOlder(s, el);
      report(s, el, inner);
    };
    el.addEventListener("scroll", onScroll, { passive: true });
    // sizes change without a render too: images load, the window is resized, the composer grows
    const resized = new ResizeObserver(() => {
      restore(s, el, inner);
      maybeLoadOlder(s, el);
      report(s, el, inner);
    });
    resized.observe(inner);
    resized.observe(el);
    return () => {
      el.removeEventListener("scroll", onScroll);
      resized.disconnect();
    };
  }, []);

  const followNewest = useCallback(() => {
    state.current.stick = true;
    state.current.openAt = null;
  }, []);
  const scrollToBottom = useCallback(() => {
    const el = scroller.current;
    state.current.stick = true;
    state.current.openAt = null;
    if (el) el.scrollTop = el.scrollHeight;
    setAtBottom(true);
  }, []);
  const scrollToEvent = useCallback((id: string) => {
    const el = scroller.current;
    const inner = content.current;
    const node = inner?.querySelector(`[data-event-id="${CSS.escape(id)}"]`);
    if (!el || !inner || !node) {
      state.current.openAt = id; // not rendered yet: as soon as it is
      return false;
    }
    state.current.openAt = null;
    scrollTo(state.current, el, inner, node);
    setAtBottom(state.current.stick);
    record(state.current, el, inner);
    return true;
  }, []);
  return { scroller, content, followNewest, atBottom, scrollToBottom, scrollToEvent };
}
