import { useCallback, useEffect, useLayoutEffect, useRef, useState } from "react";
import {
  Direction,
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
import { dayLabel } from "../lib/rooms";
import { describeError } from "../lib/errors";
import { Avatar } from "./Avatar";
import { IconBack, IconInfo, IconLock, IconShield } from "./Icons";
import { Message } from "./Message";
import { Composer } from "./Composer";
import { RoomSettingsDialog } from "./RoomSettingsDialog";
import { CallSlot } from "../calls/CallSlot";
import { useRoomTrust, useTrustEpoch } from "./trust";
import type { VerificationRequest } from "matrix-js-sdk/lib/crypto-api/index.js";

export function RoomView({ client, room, onBack, onLeft, onVerify }: { client: MatrixClient; room: Room; onBack: () => void; onLeft: () => void; onVerify: (r: VerificationRequest) => void }) {
  useEvents(room, [RoomEvent.Timeline, RoomEvent.Redaction, RoomEvent.LocalEchoUpdated, RoomEvent.Receipt, RoomEvent.Name, RoomEvent.MyMembership, RoomEvent.TimelineReset, RoomStateEvent.Events as string]);
  useEvents(client, [MatrixEventEvent.Decrypted, RoomMemberEvent.Typing, RoomStateEvent.Events]);
  const [showSettings, setShowSettings] = useState(false);
  const [replyTo, setReplyTo] = useState<TimelineItem | null>(null);
  const [editing, setEditing] = useState<TimelineItem | null>(null);
  const [loadingBack, setLoadingBack] = useState(false);
  const [atStart, setAtStart] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const scroller = useRef<HTMLDivElement>(null);
  const stickToBottom = useRef(true);
  const me = client.getSafeUserId();
  const trust = useRoomTrust(client, room);
  const trustEpoch = useTrustEpoch(client);

  const events = room.getLiveTimeline().getEvents();
  const items = buildTimeline(events, me);
  const byId = new Map(items.map((i) => [i.id, i]));
  const encrypted = room.hasEncryptionStateEvent();
  const membership = room.getMyMembership();
  const dmUser = directRoomUserId(client, room);
  const topic = room.currentState.getStateEvents("m.room.topic", "")?.getContent()?.topic as string | undefined;
  const nameOf = useCallback((userId: string) => room.getMember(userId)?.name ?? userId, [room]);

  const paginate = useCallback(async () => {
    if (loadingBack || atStart) return;
    setLoadingBack(true);
    try {
      const more = await client.paginateEventTimeline(room.getLiveTimeline(), { backwards: true, limit: 30 });
      if (!more) setAtStart(true);
    } catch (e) {
      if (navigator.onLine) setError(describeError(e).title); // offline: the banner already says so
    } finally {
      setLoadingBack(false);
    }
  }, [client, room, loadingBack, atStart]);

  // keep the view pinned to the newest message unless the reader scrolled up
  useLayoutEffect(() => {
    const el = scroller.current;
    if (el && stickToBottom.current) el.scrollTop = el.scrollHeight;
  });
  useEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const onScroll = () => {
      stickToBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
      if (el.scrollTop < 120) void paginate();
    };
    el.addEventListener("scroll", onScroll, { passive: true });
    return () => el.removeEventListener("scroll", onScroll);
  }, [paginate]);
  // short rooms: fill the screen
  useEffect(() => {
    if (!atStart && items.length < 15 && room.getLiveTimeline().getPaginationToken(Direction.Backward)) void paginate();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [room.roomId, items.length]);

  // read receipts for the newest event, when the window is visible
  const newest = events[events.length - 1];
  useEffect(() => {
    if (!newest || newest.status || document.visibilityState !== "visible" || membership !== "join") return;
    if (room.hasUserReadEvent(me, newest.getId()!)) return;
    client.sendReadReceipt(newest).catch(() => {});
  }, [client, room, newest, me, membership]);

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
                    {run[0]} and {run.length - 1} more change{run.length === 2 ? "" : "s"}
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
            );
  };

  return (
    <section className="room" data-testid="room-view" data-room-id={room.roomId}>
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
            {topic ? ` · ${topic}` : dmUser ? ` · ${dmUser}` : ` · ${room.getJoinedMemberCount()} members`}
          </span>
        </div>
        <CallSlot client={client} room={room} />
        <button className="icon-btn" onClick={() => setShowSettings(true)} aria-label="Room settings" data-testid="room-settings">
          <IconInfo />
        </button>
      </header>
      <div className="timeline" ref={scroller} data-testid="timeline">
        <div className="timeline-inner">
          {atStart ? (
            <div className="timeline-start muted small">This is the beginning of the conversation.</div>
          ) : (
            <button className="btn btn-ghost btn-sm load-more" onClick={paginate} disabled={loadingBack}>
              {loadingBack ? "Loading…" : "Load earlier messages"}
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
            return separator ? [separator, body] : body;
          })}
        </div>
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
      {membership === "join" ? (
        <Composer
          client={client}
          room={room}
          replyTo={replyTo}
          editing={editing}
          onCancel={() => {
            setReplyTo(null);
            setEditing(null);
          }}
          onSend={async (text) => {
            const r = replyTo;
            const ed = editing;
            setReplyTo(null);
            setEditing(null);
            stickToBottom.current = true;
            await run(() => sendText(client, room.roomId, text, { replyTo: r?.id, edit: ed?.id }));
          }}
          onFile={async (file, progress) => {
            stickToBottom.current = true;
            await run(() => sendFile(client, room.roomId, file, progress));
          }}
        />
      ) : membership === "invite" ? (
        <div className="composer composer-invite">
          <span className="muted">You've been invited to this room.</span>
        </div>
      ) : null}
      {showSettings && (
        <RoomSettingsDialog
          client={client}
          room={room}
          onClose={() => setShowSettings(false)}
          onLeft={onLeft}
          onVerify={(r) => {
            setShowSettings(false);
            onVerify(r);
          }}
        />
      )}
    </section>
  );
}
