import { useRef, useState } from "react";
import type { MatrixClient, Room, RoomMember } from "matrix-js-sdk";
import type { TimelineItem } from "../lib/timeline";
import { plainTextOf, textField } from "../lib/timeline";
import { prepareReceivedHtml } from "../lib/markdown";
import { describeDecryptionFailure } from "../lib/errors";
import { MediaBody } from "./media/MediaBody";
import { ThreadSummary } from "./threads/ThreadSummary";
import { IconThread } from "./threads/icons";
import type { ThreadInfo, ThreadUnread } from "./threads/threadInfo";
import { LinkPreviews, Linkified } from "./media/LinkPreview";
import { formatTime } from "../lib/rooms";
import { Avatar } from "./Avatar";
import { IconEdit, IconPlus, IconReply, IconShieldAlert, IconSmile, IconTrash } from "./Icons";
import { EmojiPicker } from "./EmojiPicker";
import "./mentions.css";
import { useEventShield } from "./trust";

const QUICK_REACTIONS = ["👍", "❤️", "😂", "🎉", "😮", "🙏"];

interface Props {
  client: MatrixClient;
  room: Room;
  item: TimelineItem;
  grouped: boolean;
  replyTarget?: TimelineItem;
  receipts: RoomMember[];
  trustEpoch: number;
  onReply: () => void;
  onEdit: () => void;
  onDelete: () => void;
  onReact: (key: string, mine?: string) => void;
  onRetry: () => void;
  /** the thread this message starts (a summary under it), and opening it / replying in it */
  thread?: ThreadInfo;
  threadUnread?: ThreadUnread | null;
  onThread?: () => void;
  /** the list's roving tabindex: 0 for the message that is the list's Tab stop, else -1 */
  tabIndex?: number;
}

function MessageImpl({ client, room, item, grouped, replyTarget, receipts, trustEpoch, onReply, onEdit, onDelete, onReact, onRetry, thread, threadUnread, onThread, tabIndex = -1 }: Props) {
  const [picker, setPicker] = useState(false);
  // the picker opens beside the button that asked for it
  const [fullPicker, setFullPicker] = useState<HTMLElement | null>(null);
  const me = client.getSafeUserId();
  const mine = item.sender === me;
  const member = room.getMember(item.sender);
  const name = member?.name ?? item.sender;
  const shield = useEventShield(client, item.event, `${item.event.getClearContent() ? 1 : 0}:${trustEpoch}`);
  const canInteract = !item.redacted && !item.pending && item.decryptionFailure === undefined;
  // the push rules' verdict: mentions of me (by name, pill or m.mentions) and keywords
  const highlight = !mine && canInteract && !!client.getPushActionsForEvent(item.event)?.tweaks?.highlight;
  const react = (key: string) => onReact(key, item.reactions.find((r) => r.key === key)?.mine);
  const reactButton = useRef<HTMLButtonElement>(null);
  // closing the reaction pickers puts focus back on the button that opened them
  const closePicker = () => {
    setFullPicker(null);
    setPicker(false);
    reactButton.current?.focus();
  };

  return (
    <div
      className={`msg ${mine ? "mine" : ""} ${grouped ? "grouped" : ""} ${item.pending ? "pending" : ""} ${highlight ? "highlight" : ""}`}
      data-testid="message"
      data-event-id={item.id}
      data-sender={item.sender}
      data-encrypted={item.encrypted ? "true" : "false"}
      tabIndex={tabIndex}
    >
      {/* first in the message (it floats over its top-right corner): Tab from a focused message reaches the actions first */}
      {canInteract && (
        <div className="msg-actions" role="toolbar" aria-label="Message actions">
          <button ref={reactButton} className="icon-btn sm" aria-label="React" aria-expanded={picker} onClick={() => setPicker((p) => !p)}>
            <IconSmile width={16} height={16} />
          </button>
          {picker && (
            <div className="reaction-picker" role="group" aria-label="Quick reactions" onKeyDown={(e) => e.key === "Escape" && (e.stopPropagation(), closePicker())}>
              {QUICK_REACTIONS.map((k, i) => (
                <button
                  key={k}
                  autoFocus={i === 0}
                  aria-label={`React with ${k}`}
                  onClick={() => {
                    closePicker();
                    react(k);
                  }}
                >
                  {k}
                </button>
              ))}
              <button className="more-reactions" aria-label="More reactions" title="More reactions" data-testid="more-reactions" onClick={(e) => setFullPicker(e.currentTarget)}>
                <IconPlus width={16} height={16} />
              </button>
            </div>
          )}
          <button className="icon-btn sm" aria-label="Reply" onClick={onReply}>
            <IconReply width={16} height={16} />
          </button>
          {onThread && (
            <button className="icon-btn sm" aria-label="Reply in thread" onClick={onThread} data-testid="reply-in-thread">
              <IconThread width={16} height={16} />
            </button>
          )}
          {mine && item.content.msgtype === "m.text" && (
            <button className="icon-btn sm" aria-label="Edit" onClick={onEdit}>
              <IconEdit width={16} height={16} />
            </button>
          )}
          {mine && (
            <button className="icon-btn sm" aria-label="Delete" onClick={() => confirm("Delete this message for everyone?") && onDelete()}>
              <IconTrash width={16} height={16} />
            </button>
          )}
          {fullPicker && (
            <EmojiPicker
              anchor={fullPicker}
              label="React with an emoji"
              onPick={(u) => {
                closePicker();
                react(u);
              }}
              onClose={closePicker}
            />
          )}
        </div>
      )}
      <div className="msg-gutter">{!grouped && <Avatar client={client} id={item.sender} name={name} mxc={member?.getMxcAvatarUrl()} size={36} />}</div>
      <div className="msg-main">
        {!grouped && (
          <div className="msg-meta">
            <strong className="msg-sender" style={{ color: "var(--sender)" }}>{name}</strong>
            <span className="muted small" title={new Date(item.ts).toLocaleString()}>{formatTime(item.ts)}</span>
          </div>
        )}
        {replyTarget || item.replyTo ? (
          <div className="reply-quote">
            <strong>{replyTarget ? (room.getMember(replyTarget.sender)?.name ?? replyTarget.sender) : "Reply"}</strong>
            <span className="ellipsis">{replyTarget ? plainTextOf(replyTarget) : "Original message not loaded"}</span>
          </div>
        ) : null}
        <div className="msg-body-row">
          <div className="msg-body" data-testid="message-body">
            <Body client={client} room={room} item={item} me={me} />
            {item.edited && !item.redacted && <span className="muted small edited"> (edited)</span>}
          </div>
          {shield.colour !== "none" && !item.redacted && (
            <span className={`shield shield-${shield.colour}`} title={shield.text} aria-label={shield.text} data-testid="shield">
              <IconShieldAlert width={14} height={14} />
            </span>
          )}
          {grouped && <span className="muted small hover-time">{formatTime(item.ts)}</span>}
        </div>
        {canInteract && (item.content.msgtype === "m.text" || item.content.msgtype === "m.notice" || item.content.msgtype === "m.emote") && (
          <LinkPreviews client={client} text={textField(item.content.body)} ts={item.ts} encrypted={item.encrypted} />
        )}
        {item.failed && (
          <div className="msg-failed small">
            Not sent. <button className="link" onClick={onRetry}>Retry</button>
          </div>
        )}
        {item.reactions.length > 0 && (
          <div className="reactions">
            {item.reactions.map((r) => (
              <button key={r.key} className={`reaction ${r.mine ? "mine" : ""}`} aria-pressed={!!r.mine} onClick={() => onReact(r.key, r.mine)} title={r.senders.map((s) => room.getMember(s)?.name ?? s).join(", ")}>
                {r.key} <span>{r.senders.length}</span>
              </button>
            ))}
          </div>
        )}
        {thread && onThread && <ThreadSummary client={client} room={room} info={thread} unread={threadUnread ?? null} onOpen={onThread} />}
        {receipts.length > 0 && (
          <div className="receipts" title={`Seen by ${receipts.map((m) => m.name).join(", ")}`}>
            {receipts.slice(0, 5).map((m) => (
              <Avatar key={m.userId} client={client} id={m.userId} name={m.name} mxc={m.getMxcAvatarUrl()} size={16} />
            ))}
            {receipts.length > 5 && <span className="muted small">+{receipts.length - 5}</span>}
          </div>
        )}
      </div>
    </div>
  );
}

function Body({ client, room, item, me }: { client: MatrixClient; room: Room; item: TimelineItem; me: string }) {
  if (item.redacted) return <span className="muted deleted">Message deleted</span>;
  if (item.decryptionFailure === null) return <span className="muted decrypting">Decrypting…</span>;
  if (item.decryptionFailure !== undefined) {
    const d = describeDecryptionFailure(item.decryptionFailure);
    return (
      <span className="utd" data-testid="utd">
        <span>🔒 {d.text}</span>
        <span className="muted small">{d.hint}</span>
      </span>
    );
  }
  const c = item.content;
  switch (c.msgtype) {
    case "m.image":
    case "m.file":
    case "m.video":
    case "m.audio":
      return <MediaBody client={client} room={room} eventId={item.id} content={c} />;
    case "m.emote":
      return <em>* {textField(c.body)}</em>;
    default:
      if (c.format === "org.matrix.custom.html" && typeof c.formatted_body === "string") {
        return <span className="html" dangerouslySetInnerHTML={{ __html: prepareReceivedHtml(c.formatted_body, me) }} />;
      }
      return (
        <span className="text">
          <Linkified text={textField(c.body)} />
        </span>
      );
  }
}

export const Message = MessageImpl;

export { formatBytes } from "./media/format";
