import { lazy, Suspense, useCallback, useEffect, useRef, useState } from "react";
import {
  EventStatus,
  MatrixEventEvent,
  RoomEvent,
  RoomMemberEvent,
  RoomStateEvent,
  type MatrixClient,
  type MatrixEvent,
  type Room,
} from "matrix-js-sdk";
import { useEvents } from "../lib/hooks";
import { buildTimeline, continues, describeStateEvent, type TimelineItem } from "../lib/timeline";
import { directRoomUserId, sendFile, sendReaction, sendText } from "../lib/client";
import { dayLabel, plural } from "../lib/rooms";
import { describeError } from "../lib/errors";
import { Avatar } from "./Avatar";
import { IconBack, IconInfo, IconLock, IconShield } from "./Icons";
import { Message } from "./Message";
import { Composer } from "./Composer";
import { openRoom } from "../lib/route";
import { RoomReplaced, replacementOf } from "./roomsettings/RoomReplaced";
import { CallSlot } from "../calls/CallSlot";
import { useRoomTrust, useTrustEpoch } from "./trust";
import { useTimelineScroll } from "./useTimelineScroll";
import { useMessageFocus } from "./messageFocus";
import { useReadPosition } from "../reading/useReadPosition";
import { JumpToLatest, JumpToUnread, UnreadLine } from "../reading/ReadingControls";
import { timelineIndex } from "../reading/readPosition";
import { chainEvents, oldestTimeline } from "../lib/timelineChain";
import { RoomNotificationMenu } from "../notifications/RoomNotificationMenu";
import { useRoomThreads } from "./threads/useRoomThreads";
import { PanelButtons } from "./threads/PanelButtons";
import { useJumpRequests } from "./search/jump";
import type { VerificationRequest } from "matrix-js-sdk/lib/crypto-api/index.js";

const RoomSettingsDialog = lazy(() => import("./RoomSettingsDialog").then((m) => ({ default: m.RoomSettingsDialog })));

/** Events asked for per back-pagination request. */
const PAGE_SIZE = 40;
/** Pages loaded, when a room opens, to reach a read marker older than what is loaded (then the bar offers the rest). */
const OPEN_AT_MARKER_PAGES = 3;

export function RoomView({ client, room, onBack, onLeft, onVerify }: { client: MatrixClient; room: Room; onBack: () => void; onLeft: () => void; onVerify: (r: VerificationRequest) => void }) {
  useEvents(room, [RoomEvent.Timeline, RoomEvent.Redaction, RoomEvent.LocalEchoUpdated, RoomEvent.Receipt, RoomEvent.Name, RoomEvent.MyMembership, RoomEvent.TimelineReset, RoomStateEvent.Events]);
  useEvents(client, [MatrixEventEvent.Decrypted, RoomMemberEvent.Typing, RoomStateEvent.Events]);
  const [showSettings, setShowSettings] = useState(false);
  const [replyTo, setReplyTo] = useState<TimelineItem | null>(null);
  const [editing, setEditing] = useState<TimelineItem | null>(null);
  const [loadingBack, setLoadingBack] = useState(false);
  const [atStart, setAtStart] = useState(false);
  const [pageFailed, setPageFailed] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const me = client.getSafeUserId();
  const trust = useRoomTrust(client, room);
  const trustEpoch = useTrustEpoch(client);

  const events = chainEvents(room);
  const threads = useRoomThreads(client, room, room.getMyMembership() === "join");
  // replies in threads live in their thread (the side panel), not here
  const items = buildTimeline(events, me).filter(threads.inMain);
  const byId = new Map(items.map((i) => [i.id, i]));
  const focus = useMessageFocus(items.filter((i) => i.kind !== "notice").map((i) => i.id));
  const encrypted = room.hasEncryptionStateEvent();
  const membership = room.getMyMembership();
  const dmUser = directRoomUserId(client, room);
  const topic = room.currentState.getStateEvents("m.room.topic", "")?.getContent<{ topic?: string }>().topic;
  const nameOf = useCallback((userId: string) => room.getMember(userId)?.name ?? userId, [room]);

  // older messages: a page at a time, as the reader nears the top (see useTimelineScroll)
  const paginating = useRef(false);
  const paginate = useCallback(async () => {
    if (paginating.current) return;
    paginating.current = true;
    setLoadingBack(true);
    try {
      const more = await client.paginateEventTimeline(oldestTimeline(room), { backwards: true, limit: PAGE_SIZE });
      if (!more) setAtStart(true);
    } catch (e) {
      setPageFailed(true); // no more automatic attempts; "Load earlier messages" tries again
      if (navigator.onLine) setError(describeError(e).title); // offline: the banner already says so
    } finally {
      paginating.current = false;
      setLoadingBack(false);
    }
  }, [client, room]);
  // a gappy sync replaces the live timeline: there is history above it again
  useEffect(() => {
    const reset = () => setAtStart(false);
    room.on(RoomEvent.TimelineReset, reset);
    return () => void room.off(RoomEvent.TimelineReset, reset);
  }, [room]);
  // where the reader left off: the room opens there; receipts and the read marker follow what is seen
  const read = useReadPosition(client, room, items, membership === "join");
  const { scroller, content, followNewest, atBottom, scrollToBottom, scrollToEvent } = useTimelineScroll({
    canLoadOlder: !loadingBack && !atStart && !pageFailed,
    loadOlder: paginate,
    openAt: read.openAt,
    onView: read.onView,
  });
  // search results open their message here
  useJumpRequests(client, room, scrollToEvent, { atStart: () => setAtStart(true), error: setError });
  const section = useRef<HTMLElement>(null);

  // "Jump to first unread": older pages until the read marker is loaded, then scroll to the line
  const [seeking, setSeeking] = useState(false);
  async function jumpToFirstUnread(maxPages: number, auto = false) {
    if (read.firstUnreadId && scrollToEvent(read.firstUnreadId)) return;
    if (!read.markerId) return;
    (auto ? setAutoSeeking : setSeeking)(true);
    if (auto) read.hold(true);
    try {
      for (let i = 0; i < maxPages && !timelineIndex(room).has(read.markerId); i++) {
        if (!(await client.paginateEventTimeline(oldestTimeline(room), { backwards: true, limit: PAGE_SIZE }))) {
          setAtStart(true);
          break;
        }
      }
      const index = timelineIndex(room);
      const markerAt = index.get(read.markerId) ?? -1;
      const first = buildTimeline(chainEvents(room), me).find((it) => it.kind === "message" && (index.get(it.id) ?? -1) > markerAt);
      if (first) scrollToEvent(first.id);
    } catch (e) {
      setError(describeError(e).title);
    } finally {
      (auto ? setAutoSeeking : setSeeking)(false);
      if (auto) read.hold(false);
    }
  }

  // opening with the read marker a few pages above what is loaded: open at it all the same
  const [autoSeeking, setAutoSeeking] = useState(false);
  const autoJump = useRef(read.unreadAbove && !!read.markerId && !read.firstUnreadId);
  useEffect(() => {
    if (!autoJump.current) return;
    autoJump.current = false;
    void jumpToFirstUnread(OPEN_AT_MARKER_PAGES, true);
  });

  // Up in an empty composer edits my last text message still shown
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

  const typing = room.getMembers().filter((m) => m.typing && m.userId !== me);

  async function run(fn: () => Promise<unknown>) {
    setError(null);
    try {
      await fn();
    } catch (e) {
      const f = describeError(e);
      setError(`${f.title}${f.detail && f.title === "Something went wrong" ? `: ${f.detail}` : f.detail ? `. ${f.detail}` : ""}`);
      throw e;
    }
  }

  const receiptsFor = (ev: MatrixEvent) =>
    room
      .getUsersReadUpTo(ev)
      .filter((u) => u !== me && u !== ev.getSender())
      .map((u) => room.getMember(u))
      .filter(Boolean) as NonNullable<ReturnType<Room["getMember"]>>[];

  // show receipts only on the latest event each user has read
  const receiptShown = new Set<string>();
  const receiptMap = new Map<string, ReturnType<typeof receiptsFor>>();
  for (let i = items.length - 1; i >= 0; i--) {
    const it = items[i];
    if (!it.event.getId()) continue;
    const rs = receiptsFor(it.event).filter((m) => !receiptShown.has(m.userId));
    rs.forEach((m) => receiptShown.add(m.userId));
    if (rs.length) receiptMap.set(it.id, rs);
  }

  const renderItem = (item: TimelineItem, i: number) => {
            if (item.kind === "notice") {
              // runs of room/membership changes collapse into one line
              const prevIsNotice = items[i - 1]?.kind === "notice";
              if (prevIsNotice) return null;
              const run: string[] = [];
              for (let j = i; j < items.length && items[j].kind === "notice"; j++) {
                const text = describeStateEvent(items[j].event, nameOf);
                if (text) run.push(text);
              }
              if (run.length === 0) return null;
              if (run.length < 3) {
                return run.map((text, k) => (
                  <div key={`${item.id}-${k}`} className="notice muted small">
                    {text}
                  </div>
                ));
              }
              return (
                <details key={item.id} className="notice notice-group muted small">
                  <summary>
                    {run[0]} and {plural(run.length - 1, "more change", "more changes")}
                  </summary>
                  {run.slice(1).map((text, k) => (
                    <div key={k}>{text}</div>
                  ))}
                </details>
              );
            }
            const prev = items[i - 1];
            return (
              <Message
                key={item.id}
                client={client}
                room={room}
                item={item}
                grouped={continues(prev, item)}
                replyTarget={item.replyTo ? byId.get(item.replyTo) : undefined}
                receipts={receiptMap.get(item.id) ?? []}
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
                {...threads.propsFor(item)}
              />
            );
  };

  return (
    <section className="room" ref={section} data-testid="room-view" data-room-id={room.roomId}>
      <header className="room-header">
        <button className="icon-btn back" onClick={onBack} aria-label="Back to rooms">
          <IconBack />
        </button>
        <Avatar client={client} id={room.roomId} name={room.name} mxc={room.getMxcAvatarUrl() ?? (dmUser ? room.getMember(dmUser)?.getMxcAvatarUrl() : undefined)} size={38} presence={dmUser ? client.getUser(dmUser)?.presence : undefined} />
        <div className="room-title">
          <h2 data-testid="room-title">{room.name}</h2>
          <span className="muted small ellipsis">
            {encrypted ? (
              <span className={`trust trust-${trust.level}`} title={trust.detail} data-testid="room-trust">
                {trust.level === "verified" ? <IconShield width={12} height={12} /> : <IconLock width={12} height={12} />} {trust.label}
              </span>
            ) : (
              <span className="trust trust-none">Not encrypted</span>
            )}
            {topic ? ` · ${topic}` : dmUser ? ` · ${dmUser}` : ` · ${plural(room.getJoinedMemberCount(), "member")}`}
          </span>
        </div>
        <CallSlot client={client} room={room} />
        {membership === "join" && <RoomNotificationMenu client={client} room={room} />}
        <PanelButtons room={room} threadsUnread={threads.anyUnread} />
        <button className="icon-btn" onClick={() => setShowSettings(true)} aria-label="Room settings" data-testid="room-settings">
          <IconInfo />
        </button>
      </header>
      <div className="timeline-wrap">
      {read.unreadAbove && !autoSeeking && <JumpToUnread busy={seeking} onJump={() => void jumpToFirstUnread(25)} onDismiss={read.markAllRead} />}
      <div className="timeline" ref={scroller} data-testid="timeline">
        {/* a live region: new messages are announced as they arrive (role="log" is polite and reads additions only) */}
        <div className="timeline-inner" ref={content} role="log" aria-live="polite" aria-relevant="additions" aria-label={`Messages in ${room.name}`} onKeyDown={focus.onKeyDown} onFocus={focus.onFocus}>
          {atStart ? (
            <div className="timeline-start muted small" data-testid="timeline-start">This is the beginning of the conversation.</div>
          ) : (
            <button className="btn btn-ghost btn-sm load-more" onClick={() => {
                setPageFailed(false);
                void paginate();
              }}
              disabled={loadingBack} data-testid="load-more" aria-busy={loadingBack}>
              {loadingBack ? "Loading earlier messages…" : "Load earlier messages"}
            </button>
          )}
          {items.map((item, i) => {
            const prevItem = items[i - 1];
            const newDay = !prevItem || new Date(prevItem.ts).toDateString() !== new Date(item.ts).toDateString();
            const separator = newDay ? (
              <div key={`day-${item.id}`} className="day-separator" role="separator">
                <span>{dayLabel(item.ts)}</span>
              </div>
            ) : null;
            const body = renderItem(item, i);
            const line = item.id === read.firstUnreadId ? <UnreadLine key="unread-line" /> : null;
            return separator || line ? [separator, line, body] : body;
          })}
        </div>
      </div>
      {!atBottom && <JumpToLatest onClick={scrollToBottom} />}
      </div>
      <div className="typing muted small" aria-live="polite" data-testid="typing">
        {typing.length > 0 && (
          <>
            <span className="dots"><i /><i /><i /></span> {typing.map((m) => m.name).join(", ")} {typing.length === 1 ? "is" : "are"} typing…
          </>
        )}
      </div>
      {error && (
        <div className="alert alert-error room-error" role="alert" onClick={() => setError(null)}>
          {error}
        </div>
      )}
      {replacementOf(room) ? (
        <RoomReplaced client={client} room={room} replacement={replacementOf(room)!} />
      ) : membership === "join" ? (
        <Composer
          client={client}
          room={room}
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
            if (!ed) followNewest();
            await run(() =>
              sendText(client, room.roomId, text, {
                mentions,
                replyTo: r ? { eventId: r.id, sender: r.sender } : undefined,
                edit: ed ? { eventId: ed.id, mentioned: mentionedIn(ed.content) } : undefined,
              }),
            );
          }}
          onEditLast={editLast}
          dropTarget={section}
          onFile={async (file, progress) => {
            followNewest();
            await run(() => sendFile(client, room.roomId, file, progress));
          }}
        />
      ) : membership === "invite" ? (
        <div className="composer composer-invite">
          <span className="muted">You've been invited to this room.</span>
        </div>
      ) : null}
      {showSettings && (
        <Suspense fallback={null}>
          <RoomSettingsDialog
            client={client}
            room={room}
            onClose={() => setShowSettings(false)}
            onLeft={onLeft}
            onUpgraded={openRoom}
            onVerify={(r) => {
              setShowSettings(false);
              onVerify(r);
            }}
          />
        </Suspense>
      )}
    </section>
  );
}

function mentionedIn(content: Record<string, unknown>): string[] {
  const m = content["m.mentions"] as { user_ids?: unknown } | undefined;
  return Array.isArray(m?.user_ids) ? m.user_ids.filter((u): u is string => typeof u === "string") : [];
}
