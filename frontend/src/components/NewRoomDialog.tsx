import { useState, type FormEvent } from "react";
import type { MatrixClient } from "matrix-js-sdk";
import { createDirectMessage, createGroupRoom } from "../lib/client";
import { describeError } from "../lib/errors";
import { Dialog, ErrorText } from "./Dialog";

type Tab = "dm" | "room" | "join";

export function NewRoomDialog({ client, onClose, onCreated }: { client: MatrixClient; onClose: () => void; onCreated: (roomId: string) => void }) {
  const [tab, setTab] = useState<Tab>("dm");
  const [userId, setUserId] = useState("");
  const [name, setName] = useState("");
  const [topic, setTopic] = useState("");
  const [isPublic, setPublic] = useState(false);
  const [encrypted, setEncrypted] = useState(true);
  const [alias, setAlias] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const domain = client.getDomain() ?? "server";

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (tab === "dm") {
        let target = userId.trim();
        if (!target.startsWith("@")) target = `@${target}`;
        if (!target.includes(":")) target = `${target}:${domain}`;
        if (target === client.getSafeUserId()) throw new Error("That's you. Enter someone else's user ID.");
        onCreated(await createDirectMessage(client, target));
      } else if (tab === "room") {
        onCreated(await createGroupRoom(client, { name: name.trim(), topic: topic.trim(), isPublic, encrypted: !isPublic && encrypted, alias: isPublic ? alias.trim() : undefined }));
      } else {
        let target = alias.trim();
        if (!/^[#!]/.test(target)) target = `#${target}`;
        if (!target.includes(":")) target = `${target}:${domain}`;
        const room = await client.joinRoom(target);
        onCreated(room.roomId);
      }
    } catch (err) {
      const f = describeError(err);
      setError(f.title === "Not found" && tab === "dm" ? "No one with that user ID exists." : `${f.title}${f.detail ? `. ${f.detail}` : ""}`);
    } finally {
      setBusy(false);
    }
  }

  return (
    <Dialog title="New chat" onClose={onClose} testId="new-chat-dialog">
      <div className="segmented">
        {(["dm", "room", "join"] as Tab[]).map((t) => (
          <button key={t} type="button" className={tab === t ? "on" : ""} onClick={() => { setTab(t); setError(null); }}>
            {t === "dm" ? "Direct message" : t === "room" ? "New room" : "Join room"}
          </button>
        ))}
      </div>
      <form onSubmit={submit} className="stack">
        {tab === "dm" && (
          <>
            <label className="field">
              <span>User ID</span>
              <input autoFocus value={userId} onChange={(e) => setUserId(e.target.value)} placeholder={`@bob:${domain}`} data-testid="dm-user" required />
            </label>
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
            <span>Room address</span>
            <input autoFocus value={alias} onChange={(e) => setAlias(e.target.value)} placeholder={`#room:${domain}`} required data-testid="join-alias" />
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
    </Dialog>
  );
}
