// The room's threads, newest activity first (GET /rooms/{roomId}/threads), all or only those I took part
// in, each with its reply count, latest activity and unread state; threads that come alive while the
// list is open join it from the live timeline.
import { useEffect, useState } from "react";
import { ClientPrefix, Method, MatrixEventEvent, RoomEvent, type IEvent, type MatrixClient, type MatrixEvent, type Room } from "matrix-js-sdk";
import { useEvents } from "../../lib/hooks";
import { describeError } from "../../lib/errors";
import { formatTime } from "../../lib/rooms";
import { plainTextOf, buildTimeline } from "../../lib/timeline";
import { Avatar } from "../Avatar";
import { liveReplies, threadInfo, threadUnread, type ThreadInfo } from "./threadInfo";

type Include = "all" | "participated";

interface ThreadsPage {
  chunk: IEvent[];
  next_batch?: string;
}

async function fetchThreads(client: MatrixClient, roomId: string, include: Include, from?: string): Promise<{ roots: MatrixEvent[]; next?: string }> {
  const params: Record<string, string> = { include, limit: "20" };
  if (from) params.from = from;
  const res = await client.http.authedRequest<ThreadsPage>(Method.Get, `/rooms/${encodeURIComponent(roomId)}/threads`, params, undefined, { prefix: ClientPrefix.V1 });
  const mapper = client.getEventMapper();
  const roots = (res.chunk ?? []).map((e) => mapper(e));
  await Promise.all(roots.map((e) => client.decryptEventIfNeeded(e).catch(() => {})));
  return { roots, next: res.next_batch };
}

export function ThreadList({ client, room, onOpen }: { client: MatrixClient; room: Room; onOpen: (rootId: string) => void }) {
  useEvents(room, [RoomEvent.Timeline, RoomEvent.UnreadNotifications, RoomEvent.Receipt, RoomEvent.Redaction]);
  useEvents(client, [MatrixEventEvent.Decrypted]);
  const me = client.getSafeUserId();
  const [include, setInclude] = useState<Include>("all");
  const [page, setPage] = useState<{ include: Include; roots: MatrixEvent[]; next?: string } | null>(null);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<string | null>(null);

  // the first page, again whenever the filter changes
  useEffect(() => {
    let alive = true;
    fetchThreads(client, room.roomId, include).then(
      (r) => alive && setPage({ include, roots: r.roots, next: r.next }),
      (e: unknown) => {
        if (!alive) return;
        setError(describeError(e).title);
        setPage({ include, roots: [] });
      },
    );
    return () => {
      alive = false;
    };
  }, [client, room.roomId, include]);

  async function more(from: string) {
    setLoading(true);
    setError(null);
    try {
      const r = await fetchThreads(client, room.roomId, include, from);
      setPage((p) => ({ include, roots: p?.include === include ? [...p.roots, ...r.roots] : r.roots, next: r.next }));
    } catch (e) {
      setError(describeError(e).title);
    } finally {
      setLoading(false);
    }
  }

  // the server's list, plus threads the live timeline shows that it didn't have yet
  const replies = liveReplies(room);
  const roots = new Map<string, MatrixEvent>();
  for (const r of page?.include === include ? page.roots : []) if (r.getId()) roots.set(r.getId()!, room.findEventById(r.getId()!) ?? r);
  for (const [rootId, list] of replies) {
    if (roots.has(rootId)) continue;
    const root = room.findEventById(rootId);
    if (!root) continue;
    if (include === "participated" && root.getSender() !== me && !list.some((e) => e.getSender() === me)) continue;
    roots.set(rootId, root);
  }
  const infos = [...roots.values()]
    .map((root) => ({ root, info: threadInfo(root, replies.get(root.getId()!) ?? []) }))
    .filter((x): x is { root: MatrixEvent; info: ThreadInfo } => !!x.info)
    .sort((a, b) => (b.info.latestTs ?? b.root.getTs()) - (a.info.latestTs ?? a.root.getTs()));

  return (
    <div className="thread-list" data-testid="thread-list">
      <div className="segmented thread-filter" role="tablist">
        {(["all", "participated"] as Include[]).map((i) => (
          <button key={i} className={include === i ? "on" : ""} role="tab" aria-selected={include === i} onClick={() => setInclude(i)}>
            {i === "all" ? "All threads" : "My threads"}
          </button>
        ))}
      </div>
      {error && <div className="alert alert-error small">{error}</div>}
      {page === null ? (
        <p className="muted small thread-status" role="status">
          Loading threads…
        </p>
      ) : infos.length === 0 ? (
        <div className="thread-empty muted">
          <p>{include === "all" ? "No threads here yet." : "You haven't taken part in a thread here."}</p>
          <p className="small">Hover a message (or tap it) and choose “Reply in thread” to start one.</p>
        </div>
      ) : (
        <ul className="thread-items">
          {infos.map(({ root, info }) => {
            const unread = threadUnread(room, info, me);
            const rootItem = buildTimeline([root], me)[0];
            const sender = root.getSender() ?? "";
            const name = room.getMember(sender)?.name ?? sender;
            return (
              <li key={info.rootId}>
                <button className={`thread-item ${unread ? "unread" : ""}`} onClick={() => onOpen(info.rootId)} data-testid="thread-item" data-root-id={info.rootId}>
                  <Avatar client={client} id={sender} name={name} mxc={room.getMember(sender)?.getMxcAvatarUrl()} size={32} />
                  <span className="thread-item-text">
                    <span className="thread-item-top">
                      <strong className="ellipsis">{name}</strong>
                      <span className="muted small">{formatTime(info.latestTs ?? root.getTs())}</span>
                    </span>
                    <span className="ellipsis thread-item-body">{plainTextOf(rootItem) || "…"}</span>
                    <span className="small muted">
                      {info.count === 1 ? "1 reply" : `${info.count} replies`}
                      {info.latestSender ? ` · last from ${room.getMember(info.latestSender)?.name ?? info.latestSender}` : ""}
                    </span>
                  </span>
                  {unread && <span className={`thread-dot ${unread.highlight ? "highlight" : ""}`} aria-label={unread.count ? `${unread.count} unread` : "Unread"} data-testid="thread-unread" />}
                </button>
              </li>
            );
          })}
        </ul>
      )}
      {page?.next && (
        <button className="btn btn-ghost btn-sm thread-more" disabled={loading} onClick={() => void more(page.next!)}>
          {loading ? "Loading…" : "More threads"}
        </button>
      )}
    </div>
  );
}
