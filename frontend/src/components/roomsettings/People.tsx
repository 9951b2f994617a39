import { useState } from "react";
import { KnownMembership, type MatrixClient, type Room, type RoomMember } from "matrix-js-sdk";
import type { VerificationRequest } from "matrix-js-sdk/lib/crypto-api/index.js";
import { Avatar } from "../Avatar";
import { ErrorText } from "../Dialog";
import { CREATOR, levelChoices, mayChangeUserLevel, roleName, roomCreators, userLevel, withUserLevel, type PowerLevels } from "./powerLevels";
import { useRun } from "./useRun";

const GROUPS: { membership: string; title: string }[] = [
  { membership: KnownMembership.Join, title: "Members" },
  { membership: KnownMembership.Invite, title: "Invited" },
  { membership: KnownMembership.Knock, title: "Asking to join" },
  { membership: KnownMembership.Ban, title: "Banned" },
];

/** Who is in the room, with their role; moderators change roles, remove, ban and unban (with a reason). */
export function People({ client, room, onVerify }: { client: MatrixClient; room: Room; onVerify?: (r: VerificationRequest) => void }) {
  const me = client.getSafeUserId();
  const pl: PowerLevels = (room.currentState.getStateEvents("m.room.power_levels", "")?.getContent<PowerLevels>() ?? {});
  const creators = roomCreators(room);
  const { busy, error, info, run } = useRun();
  const [open, setOpen] = useState<string | null>(null);
  const [filter, setFilter] = useState("");
  const members = room.getMembers();
  const q = filter.trim().toLowerCase();
  const shown = q ? members.filter((m) => m.name.toLowerCase().includes(q) || m.userId.toLowerCase().includes(q)) : members;
  const byLevel = (a: RoomMember, b: RoomMember) => compareLevels(userLevel(pl, b.userId, creators), userLevel(pl, a.userId, creators)) || a.name.localeCompare(b.name);

  return (
    <div className="stack" data-testid="room-people">
      {members.length > 8 && <input className="people-filter" value={filter} onChange={(e) => setFilter(e.target.value)} placeholder="Find a member" aria-label="Find a member" />}
      <ErrorText error={error} />
      {info && <div className="alert alert-ok" role="status">{info}</div>}
      {GROUPS.map((g) => {
        const list = shown.filter((m) => m.membership === g.membership).sort(byLevel);
        if (!list.length) return null;
        return (
          <section key={g.membership} className="stack tight">
            <h3 className="section-title">
              {g.title} · {list.length}
            </h3>
            <ul className="member-list people-list">
              {list.map((m) => (
                <MemberRow
                  key={m.userId}
                  client={client}
                  room={room}
                  member={m}
                  pl={pl}
                  creators={creators}
                  me={me}
                  open={open === m.userId}
                  onToggle={() => setOpen(open === m.userId ? null : m.userId)}
                  busy={busy}
                  // done: the row folds up again (the member may have moved to another list)
                  run={async (fn, ok) => {
                    const done = await run(fn, ok);
                    if (done) setOpen(null);
                    return done;
                  }}
                  onVerify={onVerify}
                />
              ))}
            </ul>
          </section>
        );
      })}
    </div>
  );
}

/** b − a for levels that may be the creators' Infinity (where Infinity − Infinity is NaN). */
function compareLevels(b: number, a: number): number {
  return b === a ? 0 : b > a ? 1 : -1;
}

function MemberRow({ client, room, member: m, pl, creators, me, open, onToggle, busy, run, onVerify }: {
  client: MatrixClient;
  room: Room;
  member: RoomMember;
  pl: PowerLevels;
  creators: ReadonlySet<string>;
  me: string;
  open: boolean;
  onToggle: () => void;
  busy: boolean;
  run: (fn: () => Promise<unknown>, ok?: string) => Promise<boolean>;
  onVerify?: (r: VerificationRequest) => void;
}) {
  const [reason, setReason] = useState("");
  const state = room.currentState;
  const level = userLevel(pl, m.userId, creators);
  const myLevel = userLevel(pl, me, creators);
  const canSendPl = state.maySendStateEvent("m.room.power_levels", me);
  const isMe = m.userId === me;
  const joined = m.membership === KnownMembership.Join;
  const canKick = !isMe && (joined || m.membership === KnownMembership.Invite || m.membership === KnownMembership.Knock) && state.hasSufficientPowerLevelFor("kick", myLevel) && level < myLevel;
  const canBan = !isMe && m.membership !== KnownMembership.Ban && state.hasSufficientPowerLevelFor("ban", myLevel) && level < myLevel;
  const canUnban = m.membership === KnownMembership.Ban && state.hasSufficientPowerLevelFor("ban", myLevel);
  const canAdmit = m.membership === KnownMembership.Knock && room.canInvite(me);
  const canSetRole = joined && mayChangeUserLevel(pl, me, m.userId, Math.min(level, myLevel), canSendPl, creators);
  const hasActions = canKick || canBan || canUnban || canSetRole || canAdmit;
  const name = m.name;

  function setLevel(newLevel: number) {
    if (isMe && newLevel < level && !confirm("Lower your own role? You can't raise it again yourself.")) return;
    if (newLevel >= myLevel && newLevel !== level && !isMe && !confirm(`Give ${name} the same power as you? You won't be able to undo it.`)) return;
    void run(async () => {
      const fresh: PowerLevels = (state.getStateEvents("m.room.power_levels", "")?.getContent<PowerLevels>() ?? {});
      await client.sendStateEvent(room.roomId, "m.room.power_levels" as never, withUserLevel(fresh, m.userId, newLevel) as never, "");
    }, `${name} is now ${roleName(newLevel, pl.users_default ?? 0).toLowerCase()}`);
  }

  return (
    <li className={`people-row ${open ? "open" : ""}`} data-testid="member" data-user-id={m.userId}>
      <div className="people-main">
        <Avatar client={client} id={m.userId} name={name} mxc={m.getMxcAvatarUrl()} size={32} presence={client.getUser(m.userId)?.presence} />
        <span className="people-text">
          <strong className="ellipsis">
            {name}
            {isMe && <span className="muted small"> (you)</span>}
          </strong>
          <span className="muted small ellipsis">{m.userId}</span>
        </span>
        {level !== (pl.users_default ?? 0) || level >= 50 ? <span className={`role role-${level === CREATOR ? "owner" : level >= 100 ? "admin" : level >= 50 ? "mod" : "custom"}`} data-testid="member-role">{roleName(level, pl.users_default ?? 0)}</span> : <span />}
        {onVerify && !isMe && joined && room.hasEncryptionStateEvent() ? (
          <button className="btn btn-sm" data-testid="verify-user" disabled={busy} onClick={() => void run(async () => onVerify(await client.getCrypto()!.requestVerificationDM(m.userId, room.roomId)))}>
            Verify
          </button>
        ) : (
          <span />
        )}
        {hasActions ? (
          <button className="icon-btn sm people-more" aria-expanded={open} aria-label={`Manage ${name}`} onClick={onToggle} data-testid="member-manage">
            ⋯
          </button>
        ) : (
          <span />
        )}
      </div>
      {open && (
        <div className="people-actions stack tight">
          {canSetRole && (
            <label className="field">
              <span>Role</span>
              <select value={level} disabled={busy} onChange={(e) => setLevel(Number(e.target.value))} data-testid="member-role-select">
                {levelChoices(level, myLevel).map((c) => (
                  <option key={c.level} value={c.level} disabled={c.disabled}>
                    {c.label}
                  </option>
                ))}
              </select>
            </label>
          )}
          {canAdmit && (
            <button className="btn btn-sm btn-primary" disabled={busy} onClick={() => void run(() => client.invite(room.roomId, m.userId), `Let ${name} in`)}>
              Let in
            </button>
          )}
          {(canKick || canBan) && (
            <input value={reason} onChange={(e) => setReason(e.target.value)} placeholder="Reason (optional, everyone in the room sees it)" aria-label="Reason" data-testid="member-reason" />
          )}
          <div className="row gap wrap">
            {canKick && (
              <button className="btn btn-sm btn-danger-ghost" disabled={busy} data-testid="member-kick" onClick={() => void run(() => client.kick(room.roomId, m.userId, reason.trim() || undefined), `Removed ${name}`)}>
                {m.membership === KnownMembership.Invite ? "Withdraw invite" : m.membership === KnownMembership.Knock ? "Turn away" : "Remove from room"}
              </button>
            )}
            {canBan && (
              <button className="btn btn-sm btn-danger" disabled={busy} data-testid="member-ban" onClick={() => confirm(`Ban ${name}? They can't rejoin until unbanned.`) && void run(() => client.ban(room.roomId, m.userId, reason.trim() || undefined), `Banned ${name}`)}>
                Ban
              </button>
            )}
            {canUnban && (
              <button className="btn btn-sm" disabled={busy} data-testid="member-unban" onClick={() => void run(() => client.unban(room.roomId, m.userId), `Unbanned ${name}`)}>
                Unban
              </button>
            )}
          </div>
          {m.membership === KnownMembership.Ban && m.events.member?.getContent().reason && <span className="muted small">Reason: {String(m.events.member.getContent().reason)}</span>}
        </div>
      )}
    </li>
  );
}
