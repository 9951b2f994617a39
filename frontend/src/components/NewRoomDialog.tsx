import { useState, type FormEvent } from "react";
import type { MatrixClient } from "matrix-js-sdk";
import { createDirectMessage, createGroupRoom } from "../lib/client";
import { describeError } from "../lib/errors";
import { Dialog, ErrorText } from "./Dialog";
import { parseRoomTarget } from "./roomsettings/inviteLink";
import { Explore } from "./search/Explore";
import { typedUserId, UserPicker, type Person } from "./search/UserPicker";

export type NewChatTab = "dm" | "room" | "join" | "explore";
const TABS: Record<NewChatTab, string> = { dm: "Direct message", room: "New room", join: "Join room", explore: "Explore" };

function friendly(err: unknown): string {
  const f = describeError(err);
  return `${f.title}${f.detail ? `. ${f.detail}` : ""}`;
}

export function NewRoomDialog({ client, initialTab = "dm", initialTerm, onClose, onCreated }: { client: MatrixClient; initialTab?: NewChatTab; initialTerm?: string; onClose: () => void; onCreated: (roomId: string) => void }) {
  const [tab, setTab] = useState<NewChatTab>(initialTab);
  const [userId, setUserId] = useState("");
  const [name, setName] = useState("");
  const [topic, setTopic] = useState("");
  const [isPublic, setPublic] = useState(false);
  const [encrypted, setEncrypted] = useState(true);
  const [alias, setAlias] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const domain = client.getDomain() ?? "server";

  async function startDm(target: string) {
    if (target === client.getSafeUserId()) throw new Error("That's you. Enter someone else's user ID.");
    onCreated(await createDirectMessage(client, target));
  }

  /** someone picked from the directory: straight into the chat */
  async function pick(p: Person) {
    setBusy(true);
    setError(null);
    try {
      await startDm(p.userId);
    } catch (err) {
      setError(friendly(err));
    } finally {
      setBusy(false);
    }
  }

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (tab === "dm") {
        const target = typedUserId(userId, domain);
        if (!target) throw new Error("Choose someone from the list, or enter a full user ID like @bob:example.org.");
        await startDm(target);
      } else if (tab === "room") {
        onCreated(await createGroupRoom(client, { name: name.trim(), topic: topic.trim(), isPublic, encrypted: !isPublic && encrypted, alias: isPublic ? alias.trim() : undefined }));
      } else {
        // an address, a room id, or an invite link (matrix.to, with its via servers)
        const parsed = parseRoomTarget(alias, domain);
        if (!parsed) throw new Error("That isn't a room address or a room link.");
        const room = await client.joinRoom(parsed.target, { viaServers: parsed.via.length ? parsed.via : undefined });
        onCreated(room.roomId);
      }
    } catch (err) {
      setError(describeError(err).title === "Not found" && tab === "dm" ? "No one with that user ID exists." : friendly(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <Dialog title="New chat" onClose={onClose} testId="new-chat-dialog">
      <div className="segmented">
        {(Object.keys(TABS) as NewChatTab[]).map((t) => (
          <button key={t} type="button" className={tab === t ? "on" : ""} onClick={() => { setTab(t); setError(null); }}>
            {TABS[t]}
          </button>
        ))}
      </div>
      {tab === "explore" ? (
        <Explore client={client} initialTerm={initialTerm} onJoined={onCreated} onCancel={onClose} />
      ) : (
      <form onSubmit={submit} className="stack">
        {tab === "dm" && (
          <>
            <UserPicker client={client} value={userId} onChange={setUserId} onPick={(p) => void pick(p)} exclude={[client.getSafeUserId()]} />
            <p className="muted small">Direct messages are end-to-end encrypted.</p>
          </>
        )}
        {tab === "room" && (
          <>
            <label className="field">
              <span>Name</span>
              <input autoFocus value={name} onChange={(e) => setName(e.target.value)} placeholder="Team chat" required data-testid="room-name" />
            </label>
            <label className="field">
              <span>Topic (optional)</span>
              <input value={topic} onChange={(e) => setTopic(e.target.value)} />
            </label>
            <label className="check">
              <input type="checkbox" checked={isPublic} onChange={(e) => setPublic(e.target.checked)} data-testid="room-public" /> Anyone can find and join (public)
            </label>
            {isPublic && (
              <label className="field">
                <span>Address</span>
                <input value={alias} onChange={(e) => setAlias(e.target.value.replace(/[^a-z0-9._=-]/gi, "").toLowerCase())} placeholder="team" data-testid="room-alias" />
                <span className="muted small">People can join with #{alias || "address"}:{domain}</span>
              </label>
            )}
            {!isPublic && (
              <label className="check">
                <input type="checkbox" checked={encrypted} onChange={(e) => setEncrypted(e.target.checked)} /> End-to-end encrypted (can't be turned off later)
              </label>
            )}
          </>
        )}
        {tab === "join" && (
          <label className="field">
            <span>Room address or invite link</span>
            <input autoFocus value={alias} onChange={(e) => setAlias(e.target.value)} placeholder={`#room:${domain} or https://matrix.to/#/…`} required data-testid="join-alias" />
          </label>
        )}
        <ErrorText error={error} />
        <div className="row end gap">
          <button type="button" className="btn btn-ghost" onClick={onClose}>Cancel</button>
          <button className="btn btn-primary" disabled={busy} data-testid="new-chat-submit">
            {busy ? "Working…" : tab === "dm" ? "Start chat" : tab === "room" ? "Create room" : "Join"}
          </button>
        </div>
      </form>
      )}
    </Dialog>
  );
}
