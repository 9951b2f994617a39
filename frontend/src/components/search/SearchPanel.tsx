// Message search: the server's /search for unencrypted rooms, this device's own index for encrypted
// ones (localIndex.ts), in this room or in all rooms; results open the message where it was said.
import { useEffect, useRef, useState, type FormEvent } from "react";
import { Direction, EventType, type IResultRoomEvents, type ISearchResults, type MatrixClient, type Room } from "matrix-js-sdk";
import { describeError } from "../../lib/errors";
import { formatTime } from "../../lib/rooms";
import { Avatar } from "../Avatar";
import { getLocalIndex, onIndexWritten, settleIndex } from "./indexer";
import { tokenize, type Coverage } from "./localIndex";
import { jumpToMessage } from "./jump";
import { openPanel } from "../panel";
import "./search.css";
import { chainEvents, oldestTimeline } from "../../lib/timelineChain";

type Scope = "room" | "all";

export interface Hit {
  roomId: string;
  eventId: string;
  ts: number;
  sender: string;
  body: string;
  threadRoot?: string;
  from: "server" | "device";
}

/** Pages read back per "Search further back" (each decrypted and indexed as it arrives). */
const FURTHER_PAGES = 5;

interface ServerEvent {
  event_id?: string;
  room_id?: string;
  sender?: string;
  origin_server_ts?: number;
  content?: { body?: unknown; filename?: unknown; "m.relates_to"?: { rel_type?: string; event_id?: string } };
}

async function serverSearch(client: MatrixClient, term: string, rooms: string[], next?: string): Promise<{ hits: Hit[]; next?: string; count?: number }> {
  if (!rooms.length) return { hits: [] };
  const res = (await client.search({
    body: { search_categories: { room_events: { search_term: term, order_by: "recent" as never, filter: { rooms, types: [EventType.RoomMessage] } } } },
    next_batch: next,
  })) as ISearchResults & { search_categories: { room_events: IResultRoomEvents } };
  const cat = res.search_categories.room_events;
  const hits: Hit[] = [];
  for (const r of cat.results ?? []) {
    const e = r.result as ServerEvent;
    if (!e.event_id || !e.room_id) continue;
    const rel = e.content?.["m.relates_to"];
    if (rel?.rel_type === "m.replace") continue; // the edit's text matched: the original is what to open
    const body = typeof e.content?.body === "string" ? e.content.body : typeof e.content?.filename === "string" ? e.content.filename : "";
    hits.push({ roomId: e.room_id, eventId: e.event_id, ts: e.origin_server_ts ?? 0, sender: e.sender ?? "", body, threadRoot: rel?.rel_type === "m.thread" ? rel.event_id : undefined, from: "server" });
  }
  return { hits, next: cat.next_batch, count: cat.count };
}

function Highlighted({ text, words }: { text: string; words: string[] }) {
  if (!words.length) return <>{text}</>;
  const re = new RegExp(`(${words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})`, "gi");
  return (
    <>
      {text.split(re).map((part, i) => (i % 2 ? <mark key={i}>{part}</mark> : part))}
    </>
  );
}

export function SearchPanel({ client, room }: { client: MatrixClient; room: Room }) {
  const [term, setTerm] = useState("");
  const [scope, setScope] = useState<Scope>("room");
  const [asked, setAsked] = useState<{ term: string; scope: Scope; roomId: string } | null>(null);
  const [hits, setHits] = useState<Hit[] | null>(null);
  const [next, setNext] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [coverage, setCoverage] = useState<Coverage | null>(null);
  const [further, setFurther] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  const encrypted = room.hasEncryptionStateEvent();
  const joined = client.getRooms().filter((r) => r.getMyMembership() === "join");

  useEffect(() => input.current?.focus(), []);

  // Messages decrypted after the search ran (sync catching up after a reload, history read back)
  // join the results on screen: the device's hits are read again, the server's kept.
  useEffect(() => {
    if (!asked) return;
    const rooms = asked.scope === "room" ? joined.filter((r) => r.roomId === asked.roomId) : joined;
    const secret = rooms.filter((r) => r.hasEncryptionStateEvent()).map((r) => r.roomId);
    if (!secret.length) return;
    let current = true;
    const refresh = async () => {
      const idx = await getLocalIndex();
      if (!idx || !current) return;
      const device: Hit[] = (await idx.search(asked.term, { rooms: secret, limit: 200 })).map((m) => ({ roomId: m.roomId, eventId: m.id, ts: m.ts, sender: m.sender, body: m.body, threadRoot: m.threadRoot, from: "device" as const }));
      const cover = asked.scope === "room" ? await idx.coverage(asked.roomId) : null;
      if (!current) return;
      setHits((h) => [...device, ...(h ?? []).filter((x) => x.from !== "device")].sort((a, b) => b.ts - a.ts));
      if (cover) setCoverage(cover);
    };
    const off = onIndexWritten(() => void refresh());
    return () => {
      current = false;
      off();
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps -- `joined` is recomputed each render; `asked` says what to refresh
  }, [asked]);

  async function runSearch(q: { term: string; scope: Scope; roomId: string }, more?: string) {
    setBusy(true);
    setError(null);
    try {
      const rooms = q.scope === "room" ? joined.filter((r) => r.roomId === q.roomId) : joined;
      const plain = rooms.filter((r) => !r.hasEncryptionStateEvent()).map((r) => r.roomId);
      const secret = rooms.filter((r) => r.hasEncryptionStateEvent()).map((r) => r.roomId);
      const [server, device] = await Promise.all([
        serverSearch(client, q.term, plain, more).catch((e: unknown) => ({ error: e })),
        !more && secret.length ? getLocalIndex().then((idx) => idx?.search(q.term, { rooms: secret, limit: 200 }) ?? []) : Promise.resolve([]),
      ]);
      let found: Hit[] = (device ?? []).map((m) => ({ roomId: m.roomId, eventId: m.id, ts: m.ts, sender: m.sender, body: m.body, threadRoot: m.threadRoot, from: "device" as const }));
      let serverNext: string | undefined;
      if ("error" in server) {
        if (!found.length) throw server.error;
      } else {
        found = [...found, ...server.hits];
        serverNext = server.next;
      }
      found.sort((a, b) => b.ts - a.ts);
      setHits((h) => (more && h ? [...h, ...found] : found));
      setNext(serverNext);
      setAsked(q);
      if (q.scope === "room" && secret.length) setCoverage((await (await getLocalIndex())?.coverage(q.roomId)) ?? null);
      else setCoverage(null);
    } catch (e) {
      const f = describeError(e);
      setError(f.title + (f.detail ? `. ${f.detail}` : ""));
    } finally {
      setBusy(false);
    }
  }

  function submit(e?: FormEvent) {
    e?.preventDefault();
    if (!tokenize(term).length) return;
    void runSearch({ term: term.trim(), scope, roomId: room.roomId });
  }

  /** Encrypted room: read older history (decrypting and indexing it), then search again. */
  async function searchFurther() {
    if (!asked) return;
    setFurther(true);
    try {
      for (let i = 0; i < FURTHER_PAGES; i++) {
        if (!(await client.paginateEventTimeline(oldestTimeline(room), { backwards: true, limit: 100 }))) break;
      }
      await settleIndex();
      await runSearch(asked);
    } catch (e) {
      setError(describeError(e).title);
    } finally {
      setFurther(false);
    }
  }

  const words = asked ? tokenize(asked.term) : [];
  // the room's creation is loaded (or there's nothing older): all of its history has been read here
  const atStart = oldestTimeline(room).getPaginationToken(Direction.Backward) === null || chainEvents(room).some((e) => e.getType() === "m.room.create");
  const phone = () => typeof matchMedia === "function" && matchMedia("(max-width: 1100px)").matches;

  return (
    <div className="search-panel" data-testid="search">
      <form className="search-form" onSubmit={submit} role="search">
        <input ref={input} type="search" value={term} onChange={(e) => setTerm(e.target.value)} placeholder="Search messages" aria-label="Search messages" data-testid="search-input" enterKeyHint="search" />
        <button className="btn btn-primary btn-sm" disabled={busy || !tokenize(term).length} data-testid="search-submit">
          Search
        </button>
      </form>
      <div className="segmented search-scope" role="tablist">
        {(["room", "all"] as Scope[]).map((s) => (
          <button
            key={s}
            role="tab"
            aria-selected={scope === s}
            className={scope === s ? "on" : ""}
            onClick={() => {
              setScope(s);
              if (asked && tokenize(term).length) void runSearch({ term: term.trim(), scope: s, roomId: room.roomId });
            }}
          >
            {s === "room" ? "This room" : "All rooms"}
          </button>
        ))}
      </div>
      {error && <div className="alert alert-error small">{error}</div>}
      {asked && scope === "room" && encrypted && coverage && (
        <div className="search-coverage small muted" data-testid="search-coverage">
          🔒 Encrypted: searched on this device, in the {coverage.count.toLocaleString()} message{coverage.count === 1 ? "" : "s"} it has decrypted
          {coverage.oldestTs ? `, back to ${new Date(coverage.oldestTs).toLocaleString([], { day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit" })}` : ""}
          {atStart ? " (the whole history this device can read)." : "."}
          {!atStart && (
            <button className="link small" disabled={further || busy} onClick={() => void searchFurther()} data-testid="search-further">
              {further ? "Reading older messages…" : "Search further back"}
            </button>
          )}
        </div>
      )}
      {asked && scope === "all" && joined.some((r) => r.hasEncryptionStateEvent()) && (
        <p className="small muted search-coverage">Encrypted rooms are searched on this device, in the messages it has decrypted.</p>
      )}
      {busy && !hits?.length && (
        <p className="muted small" role="status">
          Searching…
        </p>
      )}
      {hits && !busy && hits.length === 0 && <p className="muted search-empty">No messages match “{asked?.term}”.</p>}
      {hits && hits.length > 0 && (
        <ul className="search-results" aria-label="Search results">
          {hits.map((h) => {
            const r = client.getRoom(h.roomId);
            const name = r?.getMember(h.sender)?.name ?? h.sender;
            return (
              <li key={`${h.roomId}${h.eventId}`}>
                <button
                  className="search-hit"
                  data-testid="search-result"
                  data-event-id={h.eventId}
                  onClick={() => {
                    if (phone()) openPanel(null); // the panel covers the room on small screens
                    jumpToMessage(h.roomId, h.eventId, h.threadRoot);
                  }}
                >
                  <Avatar client={client} id={h.sender} name={name} mxc={r?.getMember(h.sender)?.getMxcAvatarUrl()} size={28} />
                  <span className="search-hit-text">
                    <span className="search-hit-top">
                      <strong className="ellipsis">{name}</strong>
                      <span className="muted small">
                        {asked?.scope === "all" && r ? `${r.name} · ` : ""}
                        {formatTime(h.ts)}
                      </span>
                    </span>
                    <span className="search-hit-body">
                      <Highlighted text={h.body.length > 300 ? `${h.body.slice(0, 300)}…` : h.body} words={words} />
                    </span>
                    {h.threadRoot && <span className="small muted">In a thread</span>}
                  </span>
                </button>
              </li>
            );
          })}
        </ul>
      )}
      {next && asked && (
        <button className="btn btn-ghost btn-sm search-more" disabled={busy} onClick={() => void runSearch(asked, next)}>
          {busy ? "Loading…" : "More results"}
        </button>
      )}
    </div>
  );
}
