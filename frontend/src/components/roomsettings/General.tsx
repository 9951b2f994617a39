import { useRef, useState, type FormEvent } from "react";
import type { MatrixClient, Room } from "matrix-js-sdk";
import { Avatar } from "../Avatar";
import { ErrorText } from "../Dialog";
import { roomLinkFor } from "./inviteLink";
import { useRun } from "./useRun";

function stateContent<T extends object>(room: Room, type: string): T | undefined {
  return room.currentState.getStateEvents(type, "")?.getContent<T>();
}

/** Name, topic, picture, the invite link, inviting by user ID, and leaving. */
export function General({ client, room, onClose, onLeft }: { client: MatrixClient; room: Room; onClose: () => void; onLeft: () => void }) {
  const me = client.getSafeUserId();
  const savedName = stateContent<{ name?: string }>(room, "m.room.name")?.name ?? "";
  const savedTopic = stateContent<{ topic?: string }>(room, "m.room.topic")?.topic ?? "";
  const [name, setName] = useState(savedName);
  const [topic, setTopic] = useState(savedTopic);
  const [invitee, setInvitee] = useState("");
  const [copied, setCopied] = useState(false);
  const { busy, error, info, run } = useRun();
  const picker = useRef<HTMLInputElement>(null);
  const canEditName = room.currentState.maySendStateEvent("m.room.name", me);
  const canEditTopic = room.currentState.maySendStateEvent("m.room.topic", me);
  const canEditAvatar = room.currentState.maySendStateEvent("m.room.avatar", me);
  const canInvite = room.canInvite(me);
  const domain = client.getDomain() ?? "server";
  const link = roomLinkFor(room);
  const joinRule: string = room.getJoinRule();

  function save(e: FormEvent) {
    e.preventDefault();
    void run(async () => {
      if (canEditName && name !== savedName) await client.setRoomName(room.roomId, name);
      if (canEditTopic && topic !== savedTopic) await client.setRoomTopic(room.roomId, topic);
    }, "Saved");
  }

  function invite(e: FormEvent) {
    e.preventDefault();
    let target = invitee.trim();
    if (!target.startsWith("@")) target = `@${target}`;
    if (!target.includes(":")) target = `${target}:${domain}`;
    void run(async () => {
      await client.invite(room.roomId, target);
      setInvitee("");
    }, `Invited ${target}`);
  }

  return (
    <div className="stack">
      <div className="row gap room-identity">
        <Avatar client={client} id={room.roomId} name={room.name} mxc={room.getMxcAvatarUrl()} size={72} />
        <div className="stack tight">
          {canEditAvatar && (
            <div className="row gap">
              <button className="btn btn-sm" disabled={busy} onClick={() => picker.current?.click()} data-testid="room-avatar-change">
                {room.getMxcAvatarUrl() ? "Change picture" : "Add a picture"}
              </button>
              {room.getMxcAvatarUrl() && (
                <button className="btn btn-sm btn-ghost" disabled={busy} onClick={() => void run(() => client.sendStateEvent(room.roomId, "m.room.avatar" as never, {} as never, ""), "Picture removed")}>
                  Remove
                </button>
              )}
            </div>
          )}
          <span className="muted small">{room.hasEncryptionStateEvent() ? "🔒 End-to-end encrypted" : "Not encrypted"}</span>
        </div>
        <input
          ref={picker}
          type="file"
          accept="image/*"
          hidden
          data-testid="room-avatar-input"
          onChange={(e) => {
            const f = e.target.files?.[0];
            e.target.value = "";
            if (!f) return;
            void run(async () => {
              // a room's picture is public to everyone who can see the room (like its name), even in encrypted rooms
              const { content_uri } = await client.uploadContent(f, { type: f.type, name: f.name });
              await client.sendStateEvent(room.roomId, "m.room.avatar" as never, { url: content_uri } as never, "");
            }, "Picture updated");
          }}
        />
      </div>
      <form onSubmit={save} className="stack">
        <label className="field">
          <span>Name</span>
          <input value={name} onChange={(e) => setName(e.target.value)} disabled={!canEditName} data-testid="room-settings-name" />
        </label>
        <label className="field">
          <span>Topic</span>
          <textarea rows={2} value={topic} onChange={(e) => setTopic(e.target.value)} disabled={!canEditTopic} data-testid="room-settings-topic" />
        </label>
        <div className="row end">
          <button className="btn btn-primary" disabled={busy || (!canEditName && !canEditTopic)}>Save</button>
        </div>
      </form>
      <ErrorText error={error} />
      {info && <div className="alert alert-ok" role="status">{info}</div>}
      <div className="stack tight">
        <h3 className="section-title">Invite link</h3>
        <div className="row gap invite-link">
          <input readOnly value={link} aria-label="Invite link" data-testid="invite-link" onFocus={(e) => e.currentTarget.select()} />
          <button
            className="btn btn-sm"
            onClick={() => {
              navigator.clipboard?.writeText(link).then(() => setCopied(true), () => setCopied(false));
            }}
          >
            {copied ? "Copied" : "Copy"}
          </button>
        </div>
        <span className="muted small">
          {joinRule === "public"
            ? "Anyone with the link can join."
            : joinRule === "knock"
              ? "People with the link can ask to join; a moderator lets them in."
              : "Only invited people can join with it. Change who can join under Privacy."}
        </span>
      </div>
      {canInvite && (
        <form onSubmit={invite} className="row gap invite-row">
          <input value={invitee} onChange={(e) => setInvitee(e.target.value)} placeholder={`Invite @user:${domain}`} aria-label="Invite by user ID" data-testid="invite-user" required />
          <button className="btn" disabled={busy}>Invite</button>
        </form>
      )}
      <div className="row between danger-zone">
        <span className="muted small">{room.getJoinedMemberCount() === 1 ? "You're the only member: leaving ends the room for good." : "You can rejoin only if you're invited again, or the room is public."}</span>
        <button
          className="btn btn-danger"
          disabled={busy}
          onClick={() =>
            confirm("Leave this room?") &&
            void run(async () => {
              await client.leave(room.roomId);
              onClose();
              onLeft();
            })
          }
        >
          Leave room
        </button>
      </div>
    </div>
  );
}
