import { useState } from "react";
import type { MatrixClient, Room } from "matrix-js-sdk";
import { describeError } from "../../lib/errors";
import { openRoom } from "../../lib/route";
import "./roomsettings.css";

/** The room's successor, when it has been upgraded (m.room.tombstone). */
export function replacementOf(room: Room): string | undefined {
  const id = room.currentState.getStateEvents("m.room.tombstone", "")?.getContent<{ replacement_room?: unknown }>().replacement_room;
  return typeof id === "string" && id.startsWith("!") ? id : undefined;
}

/** In place of the composer of an upgraded room: where the conversation continues, and one click to go there. */
export function RoomReplaced({ client, room, replacement }: { client: MatrixClient; room: Room; replacement: string }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const joined = client.getRoom(replacement)?.getMyMembership() === "join";
  async function go() {
    if (joined) return openRoom(replacement);
    setBusy(true);
    setError(null);
    try {
      // join through the server of whoever upgraded it, who is in the new room
      const sender = room.currentState.getStateEvents("m.room.tombstone", "")?.getSender() ?? "";
      const via = sender.includes(":") ? [sender.slice(sender.indexOf(":") + 1)] : undefined;
      const r = await client.joinRoom(replacement, { viaServers: via });
      openRoom(r.roomId);
    } catch (e) {
      setError(describeError(e).title);
    } finally {
      setBusy(false);
    }
  }
  return (
    <div className="composer composer-invite room-replaced" data-testid="room-replaced">
      <span className="muted">This room has been replaced and is closed.</span>
      <button className="btn btn-primary btn-sm" disabled={busy} onClick={() => void go()} data-testid="go-to-replacement">
        {joined ? "Go to the new room" : busy ? "Joining…" : "Join the new room"}
      </button>
      {error && <span className="small error-text">{error}</span>}
    </div>
  );
}
