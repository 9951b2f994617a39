// What the room view needs from threads: which events stay out of the main timeline (replies in
// threads), the summary and unread state under each thread's first message, and opening a thread.
import { RoomEvent, type MatrixClient, type Room } from "matrix-js-sdk";
import { useEvents } from "../../lib/hooks";
import type { TimelineItem } from "../../lib/timeline";
import { openPanel } from "../panel";
import { threadRootOf } from "./relation";
import { liveReplies, threadInfo, threadUnread, type ThreadInfo, type ThreadUnread } from "./threadInfo";
import { chainEvents } from "../../lib/timelineChain";

export interface RoomThreads {
  /** whether an item belongs in the main timeline (a reply in a thread doesn't) */
  inMain: (item: TimelineItem) => boolean;
  /** the Message props for an item: its thread summary, and opening (or starting) its thread */
  propsFor: (item: TimelineItem) => { thread?: ThreadInfo; threadUnread?: ThreadUnread | null; onThread?: () => void };
  /** some thread in the room has unread replies */
  anyUnread: boolean;
}

export function useRoomThreads(client: MatrixClient, room: Room, canReply: boolean): RoomThreads {
  useEvents(room, [RoomEvent.UnreadNotifications]);
  const me = client.getSafeUserId();
  const replies = liveReplies(room);
  const infos = new Map<string, { info: ThreadInfo; unread: ThreadUnread | null }>();
  for (const ev of chainEvents(room)) {
    const id = ev.getId();
    if (!id || threadRootOf(ev) || ev.isRedaction()) continue;
    const info = threadInfo(ev, replies.get(id));
    if (info) infos.set(id, { info, unread: threadUnread(room, info, me) });
  }
  const open = (rootId: string) => openPanel({ roomId: room.roomId, kind: "thread", rootId });
  return {
    inMain: (item) => !threadRootOf(item.event),
    propsFor: (item) => {
      const t = infos.get(item.id);
      // a thread can start from any message that isn't itself in one (or a pending local echo)
      const startable = canReply && !item.pending && !item.redacted && item.kind === "message" && item.id.startsWith("$");
      return { thread: t?.info, threadUnread: t?.unread, onThread: t || startable ? () => open(item.id) : undefined };
    },
    anyUnread: [...infos.values()].some((t) => t.unread) || room.hasThreadUnreadNotification(),
  };
}
