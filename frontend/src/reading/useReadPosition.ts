// Read receipts and the read marker of the open room, sent as the reader sees messages (never while
// the page is hidden), and what the room view shows of it: the "New messages" line where the reader
// left off, the message to open the room at, and whether that line is above the screen.
import { useCallback, useEffect, useRef, useState } from "react";
import type { MatrixClient, MatrixEvent, Room } from "matrix-js-sdk";
import type { TimelineItem } from "../lib/timeline";
import type { TimelineView } from "../components/useTimelineScroll";
import { fullyReadEventId, newestSentEvent, readMarkerAtOpen, timelineIndex } from "./readPosition";

export interface ReadPosition {
  /** the read marker when the room was opened */
  markerId: string | null;
  /** the first message after the read marker (the line goes above it); null: none shown */
  firstUnreadId: string | null;
  /** whether the room was opened with unread messages */
  hadUnread: boolean;
  /** unread messages older than what is loaded, or scrolled above the screen */
  unreadAbove: boolean;
  /** the message the room opens at (null: the newest) */
  openAt: string | null;
  onView: (view: TimelineView) => void;
  /** holds receipts and the marker (while the room pages back to open at the marker) */
  hold: (on: boolean) => void;
  /** marks everything read and hides the line */
  markAllRead: () => void;
  dismissed: boolean;
}

export function useReadPosition(client: MatrixClient, room: Room, items: TimelineItem[], joined: boolean): ReadPosition {
  const me = client.getSafeUserId();
  const [atOpen] = useState(() => readMarkerAtOpen(room, me));
  const [dismissed, setDismissed] = useState(false);
  const [firstVisible, setFirstVisible] = useState<string | null>(null);
  const sentReceipt = useRef<string | null>(null);
  const sentMarker = useRef<string | null>(null);
  const lastView = useRef<TimelineView | null>(null);
  // Unread messages the reader hasn't reached yet (the room opened at the newest, the marker older than
  // what is loaded) keep the marker where it is until the reader has been back to the line or marked
  // everything read: a glance at the newest is not reading what came between.
  const markerReached = useRef(!atOpen.unread);
  const firstUnreadRef = useRef<string | null>(null);

  const index = timelineIndex(room);
  const markerIndex = atOpen.markerId ? index.get(atOpen.markerId) : undefined;
  const firstUnreadId = atOpen.unread && markerIndex !== undefined ? (items.find((it) => (index.get(it.id) ?? -1) > markerIndex && it.kind === "message")?.id ?? null) : null;
  const [openAt] = useState(firstUnreadId);
  // while the room pages back to open at a marker older than what is loaded (RoomView does, at once),
  // what is on screen is not being read
  const held = useRef(atOpen.unread && markerIndex === undefined);
  useEffect(() => {
    firstUnreadRef.current = firstUnreadId;
  });

  const update = useCallback(
    (view: TimelineView) => {
      lastView.current = view;
      setFirstVisible(view.first);
      if (!joined || held.current || document.visibilityState !== "visible") return;
      const idx = timelineIndex(room);
      const newest = newestSentEvent(room);
      // the receipt: the newest message on screen (everything, at the bottom)
      const target: MatrixEvent | undefined = view.atBottom ? newest : view.last ? room.findEventById(view.last) : undefined;
      const targetId = target?.getId();
      if (target && targetId && !target.status && targetId !== sentReceipt.current) {
        const current = room.getEventReadUpTo(me);
        const currentAt = current ? (idx.get(current) ?? -1) : -1;
        if ((idx.get(targetId) ?? -1) > currentAt) {
          sentReceipt.current = targetId;
          client.sendReadReceipt(target).catch(() => (sentReceipt.current = null));
        }
      }
      // the marker: to the newest once seen; to the last message on screen once the reader scrolled past it
      const marker = fullyReadEventId(room);
      const markerAt = marker ? (idx.get(marker) ?? -1) : -1;
      const firstAt = view.first ? (idx.get(view.first) ?? -1) : -1;
      const lineAt = firstUnreadRef.current ? idx.get(firstUnreadRef.current) : undefined;
      if (lineAt !== undefined && firstAt >= 0 && firstAt <= lineAt) markerReached.current = true;
      if (!markerReached.current) return;
      const rm = view.atBottom ? newest : markerAt < firstAt && targetId ? target : undefined;
      const rmId = rm?.getId();
      if (rmId && rmId !== sentMarker.current && rmId !== marker && (idx.get(rmId) ?? -1) > markerAt) {
        sentMarker.current = rmId;
        client.setRoomReadMarkers(room.roomId, rmId).catch(() => (sentMarker.current = null));
      }
    },
    [client, room, me, joined],
  );

  // coming back to the page counts as seeing what is on screen
  useEffect(() => {
    const onVisible = () => document.visibilityState === "visible" && lastView.current && update(lastView.current);
    document.addEventListener("visibilitychange", onVisible);
    window.addEventListener("focus", onVisible);
    return () => {
      document.removeEventListener("visibilitychange", onVisible);
      window.removeEventListener("focus", onVisible);
    };
  }, [update]);

  const markAllRead = useCallback(() => {
    markerReached.current = true;
    setDismissed(true);
    const newest = newestSentEvent(room);
    const id = newest?.getId();
    if (id && id !== fullyReadEventId(room)) {
      sentMarker.current = id;
      client.setRoomReadMarkers(room.roomId, id, newest).catch(() => (sentMarker.current = null));
    }
  }, [client, room]);

  // released once the jump is asked for: the next report (after the jump renders) is what is read
  const hold = useCallback((on: boolean) => {
    held.current = on;
  }, []);

  const firstVisibleAt = firstVisible ? index.get(firstVisible) : undefined;
  const firstUnreadAt = firstUnreadId ? index.get(firstUnreadId) : undefined;
  const unreadAbove =
    atOpen.unread && !dismissed && (firstUnreadAt === undefined ? markerIndex === undefined : firstVisibleAt !== undefined && firstUnreadAt < firstVisibleAt);
  return { markerId: atOpen.markerId, firstUnreadId: dismissed ? null : firstUnreadId, hadUnread: atOpen.unread, unreadAbove, openAt, onView: update, hold, markAllRead, dismissed };
}
