import { useEffect, useState } from "react";
import type { MatrixClient, Room } from "matrix-js-sdk";
import { ErrorText } from "../Dialog";
import { useRun } from "./useRun";

/** Sorts room versions as numbers where they are ("2" before "10"), others after. */
export function sortVersions(versions: string[]): string[] {
  return [...versions].sort((a, b) => {
    const na = Number(a);
    const nb = Number(b);
    if (Number.isFinite(na) && Number.isFinite(nb)) return na - nb;
    if (Number.isFinite(na)) return -1;
    if (Number.isFinite(nb)) return 1;
    return a.localeCompare(b);
  });
}

/** The room's id and version, and upgrading it to a newer version (with what that means). */
export function Advanced({ client, room, onUpgraded }: { client: MatrixClient; room: Room; onUpgraded: (newRoomId: string) => void }) {
  const me = client.getSafeUserId();
  const [versions, setVersions] = useState<{ default: string; available: Record<string, string> } | null>(null);
  const [target, setTarget] = useState("");
  const [inviteAll, setInviteAll] = useState(true);
  const [understood, setUnderstood] = useState(false);
  const { busy, error, info, run } = useRun();
  const current = room.getVersion();
  const canUpgrade = room.currentState.maySendStateEvent("m.room.tombstone", me);
  const joinRule: string = room.getJoinRule();
  const isPublic = joinRule === "public";
  const replacement = room.currentState.getStateEvents("m.room.tombstone", "")?.getContent<{ replacement_room?: string }>().replacement_room;

  useEffect(() => {
    let alive = true;
    client.getCapabilities().then(
      (caps) => {
        const rv = caps["m.room_versions"];
        if (!alive || !rv) return;
        setVersions({ default: rv.default, available: rv.available });
        setTarget(rv.default !== current ? rv.default : "");
      },
      () => {},
    );
    return () => {
      alive = false;
    };
  }, [client, current]);

  const stable = versions ? sortVersions(Object.keys(versions.available)).filter((v) => versions.available[v] === "stable") : [];
  const recommended = versions?.default;

  function upgrade() {
    void run(async () => {
      const { replacement_room } = await client.upgradeRoom(room.roomId, target);
      if (inviteAll && !isPublic) {
        // as Element offers: bring the members of a private room along (they still have to accept)
        const others = room.getJoinedMembers().filter((m) => m.userId !== me);
        await Promise.allSettled(others.map((m) => client.invite(replacement_room, m.userId)));
      }
      onUpgraded(replacement_room);
    });
  }

  return (
    <div className="stack" data-testid="room-advanced">
      <dl className="facts">
        <dt>Room ID</dt>
        <dd>
          <code className="selectable">{room.roomId}</code>
        </dd>
        <dt>Room version</dt>
        <dd data-testid="room-version">
          {current}
          {recommended && current === recommended ? " (the server's recommended version)" : ""}
        </dd>
      </dl>
      {replacement ? (
        <p className="small">This room has been upgraded and is closed.</p>
      ) : canUpgrade && versions ? (
        <div className="card-inner reset-card stack" data-testid="room-upgrade">
          <strong>Upgrade the room</strong>
          <p className="small">
            {recommended && current !== recommended ? `Room version ${current} is older than this server's recommended ${recommended}. ` : ""}
            Upgrading makes a new room with the same name, settings and members' roles, and closes this one:
          </p>
          <ul className="small reset-costs">
            <li>Nobody can send messages here any more; a notice points to the new room.</li>
            <li>Everyone has to join the new room themselves. The history stays here, readable as before.</li>
            <li>People on servers that don't support the new version can't join it.</li>
          </ul>
          <label className="field">
            <span>New version</span>
            <select value={target} onChange={(e) => setTarget(e.target.value)} data-testid="upgrade-version">
              <option value="" disabled>
                Choose a version
              </option>
              {stable.map((v) => (
                <option key={v} value={v} disabled={v === current}>
                  {v}
                  {v === recommended ? " (recommended)" : ""}
                  {v === current ? " (current)" : ""}
                </option>
              ))}
            </select>
          </label>
          {!isPublic && (
            <label className="check small">
              <input type="checkbox" checked={inviteAll} onChange={(e) => setInviteAll(e.target.checked)} /> Invite this room's members to the new room
            </label>
          )}
          <label className="check small">
            <input type="checkbox" checked={understood} onChange={(e) => setUnderstood(e.target.checked)} data-testid="upgrade-understood" /> I understand this can't be undone
          </label>
          <button className="btn btn-danger" disabled={!target || !understood || busy} onClick={upgrade} data-testid="upgrade-submit">
            {busy ? "Upgrading…" : `Upgrade to version ${target || "…"}`}
          </button>
        </div>
      ) : !canUpgrade ? (
        <p className="muted small">Only people who may upgrade the room (admins, usually) can change its version.</p>
      ) : null}
      <ErrorText error={error} />
      {info && <div className="alert alert-ok" role="status">{info}</div>}
    </div>
  );
}
