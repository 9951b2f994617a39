import { useState, type FormEvent } from "react";
import { KnownMembership, type MatrixClient, type Room } from "matrix-js-sdk";
import { describeError } from "../lib/errors";
import { Dialog, ErrorText } from "./Dialog";
import { Avatar } from "./Avatar";
import type { VerificationRequest } from "matrix-js-sdk/lib/crypto-api/index.js";

export function RoomSettingsDialog({ client, room, onClose, onLeft, onVerify }: { client: MatrixClient; room: Room; onClose: () => void; onLeft: () => void; onVerify?: (r: VerificationRequest) => void }) {
  const currentTopic = (room.currentState.getStateEvents("m.room.topic", "")?.getContent()?.topic as string) ?? "";
  const [name, setName] = useState(room.currentState.getStateEvents("m.room.name", "")?.getContent()?.name ?? "");
  const [topic, setTopic] = useState(currentTopic);
  const [invitee, setInvitee] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [info, setInfo] = useState<string | null>(null);
  const me = client.getSafeUserId();
  const canEditName = room.currentState.maySendStateEvent("m.room.name", me);
  const canEditTopic = room.currentState.maySendStateEvent("m.room.topic", me);
  const canInvite = room.canInvite(me);
  const members = room.getMembers().filter((m) => m.membership === KnownMembership.Join || m.membership === KnownMembership.Invite);
  const domain = client.getDomain() ?? "server";

  async function run(fn: () => Promise<unknown>, ok?: string) {
    setBusy(true);
    setError(null);
    setInfo(null);
    try {
      await fn();
      if (ok) setInfo(ok);
    } catch (e) {
      const f = describeError(e);
      setError(`${f.title}${f.detail ? `. ${f.detail}` : ""}`);
    } finally {
      setBusy(false);
    }
  }

  function save(e: FormEvent) {
    e.preventDefault();
    void run(async () => {
      if (canEditName && name !== (room.currentState.getStateEvents("m.room.name", "")?.getContent()?.name ?? "")) await client.setRoomName(room.roomId, name);
      if (canEditTopic && topic !== currentTopic) await client.setRoomTopic(room.roomId, topic);
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
    <Dialog title="Room settings" onClose={onClose} testId="room-settings-dialog">
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
      {canInvite && (
        <form onSubmit={invite} className="row gap invite-row">
          <input value={invitee} onChange={(e) => setInvitee(e.target.value)} placeholder={`Invite @user:${domain}`} aria-label="Invite by user ID" data-testid="invite-user" required />
          <button className="btn" disabled={busy}>Invite</button>
        </form>
      )}
      <ErrorText error={error} />
      {info && <div className="alert alert-ok">{info}</div>}
      <h3 className="section-title">{members.length} member{members.length === 1 ? "" : "s"}</h3>
      <ul className="member-list">
        {members.map((m) => (
          <li key={m.userId}>
            <Avatar client={client} id={m.userId} name={m.name} mxc={m.getMxcAvatarUrl()} size={28} presence={client.getUser(m.userId)?.presence} />
            <span className="ellipsis">{m.name}</span>
            <span className="muted small ellipsis">{m.membership === "invite" ? "invited" : m.userId}</span>
            {onVerify && m.userId !== me && m.membership === "join" && room.hasEncryptionStateEvent() ? (
              <button
                className="btn btn-sm"
                data-testid="verify-user"
                disabled={busy}
                onClick={() => void run(async () => onVerify(await client.getCrypto()!.requestVerificationDM(m.userId, room.roomId)))}
              >
                Verify
              </button>
            ) : (
              <span />
            )}
          </li>
        ))}
      </ul>
      <div className="row between danger-zone">
        <span className="muted small">{room.hasEncryptionStateEvent() ? "🔒 End-to-end encrypted" : "Not encrypted"}</span>
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
    </Dialog>
  );
}
