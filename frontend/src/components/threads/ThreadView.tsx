// One thread: its root, its replies (older ones fetched with /relations, new ones as they arrive), and a
// composer whose messages go into the thread (m.thread relation, with the reply fallback).
import { useEffect, useLayoutEffect, useRef, useState } from "react";
import { Direction, EventStatus, Method, MatrixEventEvent, NotificationCountType, RoomEvent, type MatrixClient, type MatrixEvent, type Room } from "matrix-js-sdk";
import { useEvents } from "../../lib/hooks";
import { buildTimeline, continues, type TimelineItem } from "../../lib/timeline";
import { sendFile, sendReaction, sendText } from "../../lib/client";
import { describeError } from "../../lib/errors";
import { Message } from "../Message";
import { useMessageFocus } from "../messageFocus";
import { Composer } from "../Composer";
import { useTrustEpoch } from "../trust";
import { threadReplyTarget, threadRootOf } from "./relation";
import { markThreadSeen } from "./threadInfo";
import { chainEvents } from "../../lib/timelineChain";

const PAGE = 50;
const EMPTY: MatrixEvent[] = [];

interface Fetched {
  root: MatrixEvent | null;
  events: MatrixEvent[];
  next: string | null;
}

/** Sends a threaded read receipt (thread_id: the root), without the SDK's unthreaded local echo. */
function sendThreadReceipt(client: MatrixClient, ev: MatrixEvent, rootId: string): Promise<unknown> {
  const path = `/rooms/${encodeURIComponent(ev.getRoomId() ?? "")}/receipt/m.read/${encodeURIComponent(ev.getId() ?? "")}`;
  return client.http.authedRequest(Method.Post, path, undefined, { thread_id: rootId });
}

export function ThreadView({ client, room, rootId }: { client: MatrixClient; room: Room; rootId: string }) {
  useEvents(room, [RoomEvent.Timeline, RoomEvent.Redaction, RoomEvent.LocalEchoUpdated]);
  useEvents(client, [MatrixEventEvent.Decrypted]);
  const me = client.getSafeUserId();
  const trustEpoch = useTrustEpoch(client);
  const [fetched, setFetched] = useState<Fetched | null>(null);
  const [loadingOlder, setLoadingOlder] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [replyTo, setReplyTo] = useState<TimelineItem | null>(null);
  const [editing, setEditing] = useState<TimelineItem | null>(null);
  const panel = useRef<HTMLElement>(null);
  const scroller = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);

  // the thread as the server has it (newest page first)
  useEffect(() => {
    let alive = true;
    client.relations(room.roomId, rootId, "m.thread", null, { dir: Direction.Backward, limit: PAGE }).then(
      (r) => alive && setFetched({ root: r.originalEvent ?? null, events: r.events, next: r.nextBatch ?? null }),
      (e: unknown) => {
        if (!alive) return;
        setFetched({ root: null, events: [], next: null });
        setError(describeError(e).title);
      },
    );
    return () => {
      alive = false;
    };
  }, [client, room.roomId, rootId]);

  async function loadOlder() {
    if (!fetched?.next) return;
    setLoadingOlder(true);
    try {
      const r = await client.relations(room.roomId, rootId, "m.thread", null, { dir: Direction.Backward, limit: PAGE, from: fetched.next });
      setFetched((f) => (f ? { ...f, events: [...f.events, ...r.events], next: r.nextBatch ?? null } : f));
    } catch (e) {
      setError(describeError(e).title);
    } finally {
      setLoadingOlder(false);
    }
  }

  const live = chainEvents(room);
  const root = room.findEventById(rootId) ?? fetched?.root ?? null;
  // replies: fetched and live, once each (a live event wins: it carries local echo and status)
  const byId = new Map<string, MatrixEvent>();
  for (const ev of fetched?.events ?? EMPTY) if (ev.getId()) byId.set(ev.getId()!, ev);
  for (const ev of live) if (threadRootOf(ev) === rootId) byId.set(ev.getId() ?? ev.getTxnId() ?? "", ev);
  const replies = [...byId.values()].sort((a, b) => a.getTs() - b.getTs());
  const replyIds = new Set(replies.map((r) => r.getId() ?? r.getTxnId()));
  // edits, reactions and redactions of thread messages arrive in the live timeline
  const annotations = live.filter((ev) => ev.isRedaction() || ev.getType() === "m.reaction" || (ev.getWireContent() as { "m.relates_to"?: { rel_type?: string } })["m.relates_to"]?.rel_type === "m.replace");
  const items = buildTimeline([...(root ? [root] : []), ...replies, ...annotations], me)
    .filter((it) => it.id === rootId || replyIds.has(it.id))
    // in a thread, m.in_reply_to is only the fallback for clients without threads, unless it says otherwise
    .map((it) => (it.id === rootId ? it : { ...it, replyTo: threadReplyTarget(it.event) }));
  const itemById = new Map(items.map((i) => [i.id, i]));
  const focus = useMessageFocus(items.map((i) => i.id));
  const latest = replies.at(-1) ?? root;
  const latestId = latest?.getId();

  // follow new replies while at the bottom
  useLayoutEffect(() => {
    const el = scroller.current;
    if (el && atBottom.current) el.scrollTop = el.scrollHeight;
  }, [items.length]);

  // read: a threaded receipt on the latest reply (someone else's), and this device remembers it
  const receipted = useRef<string | null>(null);
  useEffect(() => {
    if (!latest || !latestId || latest.status || receipted.current === latestId) return;
    receipted.current = latestId;
    markThreadSeen(rootId, latest.getTs());
    room.setThreadUnreadNotificationCount(rootId, NotificationCountType.Total, 0);
    room.setThreadUnreadNotificationCount(rootId, NotificationCountType.Highlight, 0);
    if (latest.getSender() !== me && latest !== root) sendThreadReceipt(client, latest, rootId).catch(() => {});
  });

  async function run(fn: () => Promise<unknown>) {
    setError(null);
    try {
      await fn();
    } catch (e) {
      setError(describeError(e).title);
      throw e;
    }
  }

  const editLast = () => {
    for (let i = items.length - 1; i >= 0; i--) {
      const it = items[i];
      if (it.sender === me && it.kind === "message" && !it.redacted && !it.pending && it.content.msgtype === "m.text" && it.decryptionFailure === undefined) {
        setReplyTo(null);
        setEditing(it);
        return;
      }
    }
  };

  const thread = latestId ? { rootId, latestId } : null;
  return (
    <section className="thread-view" ref={panel} data-testid="thread-view" data-root-id={rootId}>
      <div
        className="thread-scroll"
        ref={scroller}
        onScroll={(e) => {
          const el = e.currentTarget;
          atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
        }}
      >
        {fetched === null && !root ? (
          <p className="muted small thread-status" role="status">
            Loading the thread…
          </p>
        ) : !root ? (
          <p className="muted small thread-status">This thread's first message isn't available.</p>
        ) : null}
        <div role="log" aria-live="polite" aria-relevant="additions" aria-label="Thread" onKeyDown={focus.onKeyDown} onFocus={focus.onFocus}>
        {items.map((item, i) => (
          <div key={item.id} className={item.id === rootId ? "thread-root" : undefined}>
            <Message
              client={client}
              room={room}
              item={item}
              grouped={i > 1 && continues(items[i - 1], item)}
              replyTarget={item.replyTo ? itemById.get(item.replyTo) : undefined}
              receipts={[]}
              trustEpoch={trustEpoch}
              tabIndex={focus.tabIndexFor(item.id)}
              onReply={() => {
                setEditing(null);
                setReplyTo(item);
              }}
              onEdit={() => {
                setReplyTo(null);
                setEditing(item);
              }}
              onDelete={() => run(() => client.redactEvent(room.roomId, item.id))}
              onReact={(key, mine) => run(() => (mine ? client.redactEvent(room.roomId, mine) : sendReaction(client, room.roomId, item.id, key)))}
              onRetry={() => item.event.status === EventStatus.NOT_SENT && run(() => client.resendEvent(item.event, room))}
            />
            {item.id === rootId && (
              <div className="thread-divider muted small" role="separator">
                <span>{replies.length === 1 ? "1 reply" : `${replies.length} replies`}</span>
                {fetched?.next && (
                  <button className="link small" onClick={() => void loadOlder()} disabled={loadingOlder}>
                    {loadingOlder ? "Loading…" : "Load older replies"}
                  </button>
                )}
              </div>
            )}
          </div>
        ))}
        </div>
      </div>
      {error && (
        <div className="alert alert-error room-error" role="alert" onClick={() => setError(null)}>
          {error}
        </div>
      )}
      {thread && room.getMyMembership() === "join" && (
        <Composer
          client={client}
          room={room}
          draftKey={`${room.roomId}|thread|${rootId}`}
          placeholder="Reply in thread…"
          replyTo={replyTo}
          editing={editing}
          onCancel={() => {
            setReplyTo(null);
            setEditing(null);
          }}
          onSend={async (text, mentions) => {
            const r = replyTo;
            const ed = editing;
            setReplyTo(null);
            setEditing(null);
            atBottom.current = true;
            await run(() =>
              sendText(client, room.roomId, text, {
                mentions,
                thread: ed ? undefined : thread,
                replyTo: r && r.id !== rootId ? { eventId: r.id, sender: r.sender } : undefined,
                edit: ed ? { eventId: ed.id, mentioned: mentionedIn(ed.content) } : undefined,
              }),
            );
          }}
          onEditLast={editLast}
          dropTarget={panel}
          onFile={async (file, progress) => {
            atBottom.current = true;
            await run(() => sendFile(client, room.roomId, file, progress, { thread }));
          }}
        />
      )}
    </section>
  );
}

function mentionedIn(content: Record<string, unknown>): string[] {
  const m = content["m.mentions"] as { user_ids?: unknown } | undefined;
  return Array.isArray(m?.user_ids) ? m.user_ids.filter((u): u is string => typeof u === "string") : [];
}
