// The public room directory of this server or another (POST /publicRooms with `server`): search, page
// through with "More rooms" (next_batch), and join with one click (through that server).
import { useEffect, useState } from "react";
import type { IPublicRoomsChunkRoom, MatrixClient } from "matrix-js-sdk";
import { describeError } from "../../lib/errors";
import { plural } from "../../lib/rooms";
import { Avatar } from "../Avatar";
import { ErrorText } from "../Dialog";
import "./search.css";

const PAGE = 30;

function friendly(err: unknown): string {
  const f = describeError(err);
  return `${f.title}${f.detail ? `. ${f.detail}` : ""}`;
}

function fetchPage(client: MatrixClient, server: string, term: string, since?: string) {
  const t = term.trim();
  return client.publicRooms({ server: server.trim() || undefined, limit: PAGE, since, ...(t ? { filter: { generic_search_term: t } } : {}) });
}

interface Listing {
  key: string;
  rooms: IPublicRoomsChunkRoom[];
  next?: string;
  total?: number;
}

export function Explore({ client, initialTerm = "", onJoined, onCancel }: { client: MatrixClient; initialTerm?: string; onJoined: (roomId: string) => void; onCancel: () => void }) {
  const [term, setTerm] = useState(initialTerm);
  const [server, setServer] = useState("");
  const [listing, setListing] = useState<Listing | null>(null);
  const [loadingMore, setLoadingMore] = useState(false);
  const [joining, setJoining] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const domain = client.getDomain() ?? "server";
  const key = `${server.trim()}|${term.trim()}`;

  // the first page, a moment after typing stops
  useEffect(() => {
    let current = true;
    const k = `${server.trim()}|${term.trim()}`;
    const t = setTimeout(() => {
      fetchPage(client, server, term).then(
        (r) => {
          if (!current) return;
          setListing({ key: k, rooms: r.chunk, next: r.next_batch, total: r.total_room_count_estimate });
          setError(null);
        },
        (e: unknown) => {
          if (!current) return;
          setListing({ key: k, rooms: [] });
          setError(friendly(e));
        },
      );
    }, 250);
    return () => {
      current = false;
      clearTimeout(t);
    };
  }, [client, server, term]);

  async function more() {
    if (!listing?.next) return;
    setLoadingMore(true);
    try {
      const r = await fetchPage(client, server, term, listing.next);
      setListing((l) => (l && l.key === key ? { ...l, rooms: [...l.rooms, ...r.chunk.filter((x) => !l.rooms.some((y) => y.room_id === x.room_id))], next: r.next_batch } : l));
    } catch (e) {
      setError(friendly(e));
    } finally {
      setLoadingMore(false);
    }
  }

  async function join(r: IPublicRoomsChunkRoom) {
    setJoining(r.room_id);
    setError(null);
    try {
      const via = server.trim() ? [server.trim()] : undefined;
      const room = await client.joinRoom(r.canonical_alias ?? r.room_id, { viaServers: via });
      onJoined(room.roomId);
    } catch (e) {
      setError(friendly(e));
    } finally {
      setJoining(null);
    }
  }

  const rooms = listing?.key === key ? listing.rooms : null;
  return (
    <div className="stack" data-testid="explore">
      <div className="row gap explore-fields">
        <label className="field grow">
          <span>Search</span>
          <input autoFocus value={term} onChange={(e) => setTerm(e.target.value)} placeholder="Name or topic" data-testid="explore-search" />
        </label>
        <label className="field explore-server">
          <span>Server</span>
          <input value={server} onChange={(e) => setServer(e.target.value.trim())} placeholder={domain} data-testid="explore-server" />
        </label>
      </div>
      <ErrorText error={error} />
      {rooms === null ? (
        <p className="muted" role="status">
          Loading the directory…
        </p>
      ) : rooms.length === 0 ? (
        <p className="muted">{term.trim() ? "No public rooms match." : server.trim() ? `No public rooms on ${server.trim()}.` : "No public rooms on this server yet. Create one under New room."}</p>
      ) : (
        <ul className="explore-list" data-testid="explore-list">
          {rooms.map((r) => {
            const name = r.name || r.canonical_alias || r.room_id;
            const mine = client.getRoom(r.room_id)?.getMyMembership() === "join";
            return (
              <li key={r.room_id} data-testid="explore-room">
                <Avatar client={client} id={r.room_id} name={name} mxc={r.avatar_url} size={40} />
                <span className="grow explore-text">
                  <strong className="ellipsis">{name}</strong>
                  <span className="muted small ellipsis">
                    {plural(r.num_joined_members, "member")}
                    {r.canonical_alias ? ` · ${r.canonical_alias}` : ""}
                  </span>
                  {r.topic && <span className="small explore-topic">{r.topic}</span>}
                </span>
                <button className="btn btn-sm btn-primary" disabled={joining !== null} onClick={() => (mine ? onJoined(r.room_id) : void join(r))}>
                  {mine ? "Open" : joining === r.room_id ? "Joining…" : "Join"}
                </button>
              </li>
            );
          })}
          {listing?.next && (
            <li className="explore-more-row">
              <button className="btn btn-ghost btn-sm explore-more" disabled={loadingMore} onClick={() => void more()} data-testid="explore-more">
                {loadingMore ? "Loading…" : `More rooms${listing.total ? ` (${rooms.length} of about ${listing.total})` : ""}`}
              </button>
            </li>
          )}
        </ul>
      )}
      <div className="row end">
        <button type="button" className="btn btn-ghost" onClick={onCancel}>
          Close
        </button>
      </div>
    </div>
  );
}
