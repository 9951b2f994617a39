import { useState } from "react";
import type { MatrixClient, Room } from "matrix-js-sdk";
import { ErrorText } from "../Dialog";
import { levelChoices, PERMISSIONS, roomCreators, userLevel, type PowerLevels } from "./powerLevels";
import { useRun } from "./useRun";

/** Who can do what: each permission's minimum role. Saved as one m.room.power_levels event. */
export function Permissions({ client, room }: { client: MatrixClient; room: Room }) {
  const me = client.getSafeUserId();
  const saved: PowerLevels = (room.currentState.getStateEvents("m.room.power_levels", "")?.getContent<PowerLevels>() ?? {});
  const [changes, setChanges] = useState<Record<string, number>>({});
  const { busy, error, info, run } = useRun();
  const myLevel = userLevel(saved, me, roomCreators(room));
  const canEdit = room.currentState.maySendStateEvent("m.room.power_levels", me);
  const dirty = Object.keys(changes).length > 0;
  const admins = Object.entries(saved.users ?? {}).filter(([, l]) => typeof l === "number" && l >= 100).length;

  function save() {
    void run(async () => {
      // apply the changes to the latest content (someone may have changed another field meanwhile)
      let next: PowerLevels = (room.currentState.getStateEvents("m.room.power_levels", "")?.getContent<PowerLevels>() ?? {});
      for (const p of PERMISSIONS) if (p.id in changes) next = p.set(next, changes[p.id]);
      await client.sendStateEvent(room.roomId, "m.room.power_levels" as never, next as never, "");
      setChanges({});
    }, "Permissions saved");
  }

  return (
    <div className="stack" data-testid="room-permissions">
      <p className="muted small">
        Roles: Admin (100), Moderator (50), Member (0). {canEdit ? "You can set any permission up to your own role." : "Only people who can change roles and permissions can edit these."} This room has {admins} admin{admins === 1 ? "" : "s"}.
      </p>
      <div className="perm-table">
        {PERMISSIONS.map((p) => {
          const current = p.get(saved);
          const value = changes[p.id] ?? current;
          // a permission above my own level is out of my reach
          const locked = !canEdit || current > myLevel;
          return (
            <label key={p.id} className="perm-row">
              <span>{p.label}</span>
              <select
                value={value}
                disabled={locked || busy}
                data-testid={`perm-${p.id}`}
                onChange={(e) => {
                  const level = Number(e.target.value);
                  setChanges((c) => {
                    const next = { ...c };
                    if (level === current) delete next[p.id];
                    else next[p.id] = level;
                    return next;
                  });
                }}
              >
                {levelChoices(value, myLevel).map((c) => (
                  <option key={c.level} value={c.level} disabled={c.disabled}>
                    {c.label}
                  </option>
                ))}
              </select>
            </label>
          );
        })}
      </div>
      <ErrorText error={error} />
      {info && <div className="alert alert-ok" role="status">{info}</div>}
      {canEdit && (
        <div className="row end gap">
          <button className="btn btn-ghost" disabled={!dirty || busy} onClick={() => setChanges({})}>
            Undo changes
          </button>
          <button className="btn btn-primary" disabled={!dirty || busy} onClick={save} data-testid="perm-save">
            Save
          </button>
        </div>
      )}
    </div>
  );
}
