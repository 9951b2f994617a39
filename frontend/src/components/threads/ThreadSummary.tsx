import type { MatrixClient, Room } from "matrix-js-sdk";
import { formatTime } from "../../lib/rooms";
import { Avatar } from "../Avatar";
import type { ThreadInfo, ThreadUnread } from "./threadInfo";
import "./threads.css";

/** Under a thread's first message in the timeline: who replied, how many, when last, unread; opens the thread. */
export function ThreadSummary({ client, room, info, unread, onOpen }: { client: MatrixClient; room: Room; info: ThreadInfo; unread: ThreadUnread | null; onOpen: () => void }) {
  const people = info.participants.slice(-3);
  return (
    <button className={`thread-summary ${unread ? "unread" : ""}`} onClick={onOpen} data-testid="thread-summary" data-count={info.count}>
      <span className="thread-summary-avatars" aria-hidden="true">
        {people.map((u) => (
          <Avatar key={u} client={client} id={u} name={room.getMember(u)?.name ?? u} mxc={room.getMember(u)?.getMxcAvatarUrl()} size={20} />
        ))}
      </span>
      <strong>{info.count === 1 ? "1 reply" : `${info.count} replies`}</strong>
      {info.latestTs && <span className="muted small">Last reply {formatTime(info.latestTs)}</span>}
      {unread && <span className={`thread-dot ${unread.highlight ? "highlight" : ""}`} aria-label="Unread replies" data-testid="thread-summary-unread" />}
    </button>
  );
}
