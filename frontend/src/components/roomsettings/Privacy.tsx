import { useEffect, useState, type FormEvent } from "react";
import { Visibility, type MatrixClient, type Room } from "matrix-js-sdk";
import { encryptedRooms, encryptionState } from "../../lib/client";
import { ErrorText } from "../Dialog";
import { useRun } from "./useRun";

const JOIN_RULES: { value: string; label: string; hint: string; minVersion?: number }[] = [
  { value: "invite", label: "Invited people only", hint: "Members invite whoever may join." },
  { value: "knock", label: "Ask to join", hint: "Anyone can ask; a moderator lets them in.", minVersion: 7 },
  { value: "public", label: "Anyone", hint: "Anyone who finds the room or has its link can join." },
];

const HISTORY: { value: string; label: string }[] = [
  { value: "shared", label: "Members, all of the history (also from before they joined)" },
  { value: "invited", label: "Members, from when they were invited" },
  { value: "joined", label: "Members, from when they joined" },
  { value: "world_readable", label: "Anyone, without joining" },
];

/**
 * A choice shown at once while the server takes it: the value picked, until the room's state changes
 * (to it, or to anything else someone set meanwhile), or null when sending failed.
 */
function usePending(actual: string): [string, (value: string | null) => void] {
  const [pending, setPending] = useState<{ value: string; base: string } | null>(null);
  const shown = pending && pending.base === actual ? pending.value : actual;
  return [shown, (value) => setPending(value === null ? null : { value, base: actual })];
}

function versionNumber(room: Room): number {
  const n = parseInt(room.getVersion(), 10);
  return Number.isFinite(n) ? n : 1;
}

/** Who can join, who can read the history, the room's address and directory listing, encryption. */
export function Privacy({ client, room }: { client: MatrixClient; room: Room }) {
  const me = client.getSafeUserId();
  const state = room.currentState;
  const joinRule: string = room.getJoinRule();
  const history: string = room.getHistoryVisibility();
  const alias = room.getCanonicalAlias();
  const encrypted = room.hasEncryptionStateEvent();
  const version = versionNumber(room);
  const { busy, error, info, run } = useRun();
  const [shownJoinRule, pickJoinRule] = usePending(joinRule);
  const [shownHistory, pickHistory] = usePending(history);
  const [listed, setListed] = useState<boolean | null>(null);
  const [newAlias, setNewAlias] = useState("");
  const domain = client.getDomain() ?? "server";
  const can = (type: string) => state.maySendStateEvent(type, me);

  useEffect(() => {
    let alive = true;
    client.getRoomDirectoryVisibility(room.roomId).then(
      (r) => alive && setListed(r.visibility === Visibility.Public),
      () => alive && setListed(null),
    );
    return () => {
      alive = false;
    };
  }, [client, room.roomId]);

  const send = (type: string, content: Record<string, unknown>, ok: string, pick: (v: string | null) => void, value: string) => {
    pick(value);
    void run(() => client.sendStateEvent(room.roomId, type as never, content as never, ""), ok).then((done) => done || pick(null));
  };

  function addAlias(e: FormEvent) {
    e.preventDefault();
    const local = newAlias.trim().replace(/^#/, "").replace(/:.*$/, "");
    if (!local) return;
    const full = `#${local}:${domain}`;
    void run(async () => {
      await client.createAlias(full, room.roomId);
      await client.sendStateEvent(room.roomId, "m.room.canonical_alias" as never, { ...(state.getStateEvents("m.room.canonical_alias", "")?.getContent() ?? {}), alias: full } as never, "");
      setNewAlias("");
    }, `The room's address is now ${full}`);
  }

  return (
    <div className="stack" data-testid="room-privacy">
      <fieldset className="plain-fieldset stack tight">
        <legend className="section-title">Who can join</legend>
        {JOIN_RULES.filter((r) => !r.minVersion || version >= r.minVersion || r.value === joinRule).map((r) => (
          <label key={r.value} className="choice">
            <input type="radio" name="join_rule" value={r.value} checked={shownJoinRule === r.value} disabled={busy || !can("m.room.join_rules")} onChange={() => send("m.room.join_rules", { join_rule: r.value }, "Saved who can join", pickJoinRule, r.value)} data-testid={`join-rule-${r.value}`} />
            <span>
              <strong>{r.label}</strong>
              <span className="muted small"> {r.hint}</span>
            </span>
          </label>
        ))}
        {!JOIN_RULES.some((r) => r.value === joinRule) && <span className="muted small">Currently: {joinRule}</span>}
        {version < 7 && <span className="muted small">“Ask to join” needs room version 7 or newer (this room is version {room.getVersion()}: see Advanced).</span>}
      </fieldset>
      <fieldset className="plain-fieldset stack tight">
        <legend className="section-title">Who can read the history</legend>
        {HISTORY.map((h) => (
          <label key={h.value} className="choice">
            <input type="radio" name="history" value={h.value} checked={shownHistory === h.value} disabled={busy || !can("m.room.history_visibility")} onChange={() => send("m.room.history_visibility", { history_visibility: h.value }, "Saved who can read the history", pickHistory, h.value)} data-testid={`history-${h.value}`} />
            <span>{h.label}</span>
          </label>
        ))}
        <span className="muted small">Changes apply to messages sent from now on.{encrypted ? " In an encrypted room, people can only read messages whose keys they were given." : ""}</span>
      </fieldset>
      <fieldset className="plain-fieldset stack tight">
        <legend className="section-title">Address and directory</legend>
        <span className="small">{alias ? <>Address: <code data-testid="room-alias">{alias}</code></> : "No address yet."}</span>
        {can("m.room.canonical_alias") && (
          <form className="row gap invite-row" onSubmit={addAlias}>
            <input value={newAlias} onChange={(e) => setNewAlias(e.target.value.replace(/[^a-z0-9._=-]/gi, "").toLowerCase())} placeholder={`new-address (→ #new-address:${domain})`} aria-label="New address" data-testid="new-alias" />
            <button className="btn" disabled={busy || !newAlias.trim()}>
              {alias ? "Change" : "Set"}
            </button>
          </form>
        )}
        <label className="check">
          <input
            type="checkbox"
            checked={!!listed}
            disabled={busy || listed === null}
            data-testid="publish-directory"
            onChange={(e) => {
              const on = e.target.checked;
              setListed(on);
              void run(
                () => client.setRoomDirectoryVisibility(room.roomId, on ? Visibility.Public : Visibility.Private),
                on ? "Listed in the public room directory" : "Removed from the public room directory",
              ).then((done) => done || setListed(!on));
            }}
          />
          List this room in {domain}'s public room directory
        </label>
      </fieldset>
      <fieldset className="plain-fieldset stack tight">
        <legend className="section-title">Encryption</legend>
        {encrypted ? (
          <span className="small">🔒 Messages here are end-to-end encrypted. This can't be turned off.</span>
        ) : (
          <>
            <span className="small">Messages here are not encrypted: the server can read them.</span>
            {can("m.room.encryption") && (
              <button
                className="btn btn-sm link-btn"
                disabled={busy}
                data-testid="enable-encryption"
                onClick={() =>
                  confirm(joinRule === "public" ? "Encrypt this public room? Anyone can still join and read new messages, and search by the server stops working. It can't be undone." : "Turn on end-to-end encryption? It can't be turned off again.") &&
                  void run(async () => {
                    await client.sendStateEvent(room.roomId, encryptionState.type as never, encryptionState.content as never, "");
                    encryptedRooms.mark(room.roomId);
                  }, "Encryption is on")
                }
              >
                Turn on encryption
              </button>
            )}
          </>
        )}
      </fieldset>
      <ErrorText error={error} />
      {info && <div className="alert alert-ok" role="status">{info}</div>}
    </div>
  );
}
