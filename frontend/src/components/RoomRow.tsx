import { useState } from "react";
import type { MatrixClient, Room } from "matrix-js-sdk";
import { acceptInvite, directRoomUserId } from "../lib/client";
import { describeError } from "../lib/errors";
import { formatTime, type RoomSummary } from "../lib/rooms";
import { buildTimeline, plainTextOf } from "../lib/timeline";
import { Avatar } from "./Avatar";
import { IconLock } from "./Icons";
import { IconBellOff } from "../notifications/icons";
import { getRoomNotifState } from "../notifications/roomRules";

/** One room in the room list: avatar, name, last message, unread badge; Accept/Decline for invites. */
export function RoomRow({ client, room, summary, active, onSelect, onError }: { client: MatrixClient; room: Room; summary: RoomSummary; active: boolean; onSelect: () => void; onError: (m: string) => void }) {
  const dmUser = summary.isDirect ? directRoomUserId(client, room) : undefined;
  const presence = dmUser ? client.getUser(dmUser)?.presence : undefined;
  const avatarMxc = room.getMxcAvatarUrl() ?? (dmUser ? room.getMember(dmUser)?.getMxcAvatarUrl() : undefined);
  const [busy, setBusy] = useState(false);
  const notif = getRoomNotifState(client, room.roomId);
  let preview = "";
  if (summary.membership === "invite") {
    const inviter = room.getMember(client.getSafeUserId())?.events.member?.getSender();
    preview = `Invited by ${inviter ? (room.getMember(inviter)?.name ?? inviter) : "someone"}`;
  } else if (summary.lastEvent) {
    const [item] = buildTimeline([summary.lastEvent], client.getSafeUserId());
    const sender = summary.lastEvent.getSender();
    const who = sender === client.getSafeUserId() ? "You" : sender ? (room.getMember(sender)?.name ?? "") : "";
    preview = item ? `${summary.isDirect && who !== "You" ? "" : who + ": "}${plainTextOf(item)}` : "";
  }
  async function act(fn: () => Promise<unknown>) {
    setBusy(true);
    try {
      await fn();
    } catch (e) {
      const f = describeError(e);
      onError(`${f.title}${f.detail ? `: ${f.detail}` : ""}`);
    } finally {
      setBusy(false);
    }
  }
  return (
    <div className={`room-row ${active ? "active" : ""} ${summary.unread ? "unread" : ""}`} data-testid="room-row" data-room-id={summary.roomId} data-room-name={summary.name}>
      <button className="room-row-main" onClick={onSelect} aria-current={active ? "page" : undefined}>
        <Avatar client={client} id={summary.roomId} name={summary.name} mxc={avatarMxc} size={44} presence={presence} />
        <span className="room-row-text">
          <span className="room-row-top">
            <span className="room-name">
              {summary.encrypted && <IconLock width={12} height={12} className="lock" />} {summary.name}
            </span>
            {summary.lastActivity > 0 && summary.membership !== "invite" && <span className="muted small">{formatTime(summary.lastActivity)}</span>}
          </span>
          <span className="room-row-bottom">
            <span className="preview muted">{preview}</span>
            {notif === "mute" && <IconBellOff width={14} height={14} className="muted-icon" aria-label="Muted" data-testid="muted-icon" />}
            {summary.highlight > 0 ? (
              <span className="badge badge-highlight" aria-label={`${summary.highlight} mentions`}>{summary.highlight}</span>
            ) : summary.unread > 0 ? (
              <span className="badge" aria-label={`${summary.unread} unread`}>{summary.unread}</span>
            ) : null}
          </span>
        </span>
      </button>
      {summary.membership === "invite" && (
        <div className="invite-actions">
          <button className="btn btn-primary btn-sm" disabled={busy} data-testid="accept-invite" onClick={() => act(() => acceptInvite(client, room))}>
            Accept
          </button>
          <button className="btn btn-sm" disabled={busy} onClick={() => act(() => client.leave(room.roomId))}>
            Decline
          </button>
        </div>
      )}
    </div>
  );
}
