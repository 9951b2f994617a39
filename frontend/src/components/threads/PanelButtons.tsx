import type { Room } from "matrix-js-sdk";
import { IconSearch } from "../Icons";
import { openPanel, usePanel } from "../panel";
import { IconThread } from "./icons";
import "./threads.css";

/** The room header's buttons for the side panel: threads (with a dot while any has unread replies) and search. */
export function PanelButtons({ room, threadsUnread }: { room: Room; threadsUnread: boolean }) {
  const panel = usePanel(room.roomId);
  const toggle = (kind: "threads" | "search") => openPanel(panel?.kind === kind ? null : { roomId: room.roomId, kind });
  return (
    <>
      <button className="icon-btn" onClick={() => toggle("search")} aria-label="Search messages" aria-pressed={panel?.kind === "search"} data-testid="open-search">
        <IconSearch />
      </button>
      <button className="icon-btn icon-badge" onClick={() => toggle("threads")} aria-label={threadsUnread ? "Threads (unread replies)" : "Threads"} aria-pressed={panel?.kind === "threads" || panel?.kind === "thread"} data-testid="open-threads">
        <IconThread />
        {threadsUnread && <span className="thread-dot" data-testid="threads-unread" />}
      </button>
    </>
  );
}
