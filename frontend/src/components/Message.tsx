import { useState } from "react";
import type { MatrixClient, Room, RoomMember } from "matrix-js-sdk";
import type { TimelineItem } from "../lib/timeline";
import { plainTextOf } from "../lib/timeline";
import { prepareReceivedHtml } from "../lib/markdown";
import { describeDecryptionFailure } from "../lib/errors";
import { useMedia } from "../lib/media";
import { formatTime } from "../lib/rooms";
import { Avatar } from "./Avatar";
import { IconEdit, IconFile, IconReply, IconShieldAlert, IconSmile, IconTrash } from "./Icons";
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
}

function MessageImpl({ client, room, item, grouped, replyTarget, receipts, trustEpoch, onReply, onEdit, onDelete, onReact, onRetry }: Props) {
  const [picker, setPicker] = useState(false);
  const me = client.getSafeUserId();
  const mine = item.sender === me;
  const member = room.getMember(item.sender);
  const name = member?.name ?? item.sender;
  const shield = useEventShield(client, item.event, `${item.event.getClearContent() ? 1 : 0}:${trustEpoch}`);
  const canInteract = !item.redacted && !item.pending && item.decryptionFailure === undefined;

  return (
    <div
      className={`msg ${mine ? "mine" : ""} ${grouped ? "grouped" : ""} ${item.pending ? "pending" : ""}`}
      data-testid="message"
      data-event-id={item.id}
      data-sender={item.sender}
      data-encrypted={item.encrypted ? "true" : "false"}
    >
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
            <Body client={client} item={item} />
            {item.edited && !item.redacted && <span className="muted small edited"> (edited)</span>}
          </div>
          {shield.colour !== "none" && !item.redacted && (
            <span className={`shield shield-${shield.colour}`} title={shield.text} aria-label={shield.text} data-testid="shield">
              <IconShieldAlert width={14} height={14} />
            </span>
          )}
          {grouped && <span className="muted small hover-time">{formatTime(item.ts)}</span>}
        </div>
        {item.failed && (
          <div className="msg-failed small">
            Not sent. <button className="link" onClick={onRetry}>Retry</button>
          </div>
        )}
        {item.reactions.length > 0 && (
          <div className="reactions">
            {item.reactions.map((r) => (
              <button key={r.key} className={`reaction ${r.mine ? "mine" : ""}`} onClick={() => onReact(r.key, r.mine)} title={r.senders.map((s) => room.getMember(s)?.name ?? s).join(", ")}>
                {r.key} <span>{r.senders.length}</span>
              </button>
            ))}
          </div>
        )}
        {receipts.length > 0 && (
          <div className="receipts" title={`Seen by ${receipts.map((m) => m.name).join(", ")}`}>
            {receipts.slice(0, 5).map((m) => (
              <Avatar key={m.userId} client={client} id={m.userId} name={m.name} mxc={m.getMxcAvatarUrl()} size={16} />
            ))}
            {receipts.length > 5 && <span className="muted small">+{receipts.length - 5}</span>}
          </div>
        )}
      </div>
      {canInteract && (
        <div className="msg-actions" role="toolbar" aria-label="Message actions">
          <button className="icon-btn sm" aria-label="React" onClick={() => setPicker((p) => !p)}>
            <IconSmile width={16} height={16} />
          </button>
          <button className="icon-btn sm" aria-label="Reply" onClick={onReply}>
            <IconReply width={16} height={16} />
          </button>
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
          {picker && (
            <div className="reaction-picker">
              {QUICK_REACTIONS.map((k) => (
                <button
                  key={k}
                  onClick={() => {
                    setPicker(false);
                    onReact(k, item.reactions.find((r) => r.key === k)?.mine);
                  }}
                >
                  {k}
                </button>
              ))}
            </div>
          )}
        </div>
      )}
    </div>
  );
}

function Body({ client, item }: { client: MatrixClient; item: TimelineItem }) {
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
      return <ImageBody client={client} content={c} />;
    case "m.file":
    case "m.video":
    case "m.audio":
      return <FileBody client={client} content={c} />;
    case "m.emote":
      return <em>* {String(c.body ?? "")}</em>;
    default:
      if (c.format === "org.matrix.custom.html" && typeof c.formatted_body === "string") {
        return <span className="html" dangerouslySetInnerHTML={{ __html: prepareReceivedHtml(c.formatted_body) }} />;
      }
      return <span className="text">{String(c.body ?? "")}</span>;
  }
}

function ImageBody({ client, content }: { client: MatrixClient; content: Record<string, any> }) {
  const { url, error } = useMedia(client, { mxc: content.url, file: content.file, mimetype: content.info?.mimetype });
  const w = content.info?.w as number | undefined;
  const h = content.info?.h as number | undefined;
  const maxW = 320;
  const scale = w && w > maxW ? maxW / w : 1;
  const style = w && h ? { width: Math.round(w * scale), aspectRatio: `${w} / ${h}` } : { width: 240, height: 180 };
  if (error) return <span className="muted">🖼️ {content.body} (couldn't load: {error})</span>;
  return (
    <a className="image" href={url} target="_blank" rel="noreferrer" style={style} data-testid="image">
      {url ? <img src={url} alt={content.body ?? "image"} /> : <span className="image-loading" />}
    </a>
  );
}

function FileBody({ client, content }: { client: MatrixClient; content: Record<string, any> }) {
  const [want, setWant] = useState(false);
  const { url, error } = useMedia(client, want ? { mxc: content.url, file: content.file, mimetype: content.info?.mimetype } : null);
  const size = content.info?.size as number | undefined;
  return (
    <div className="file-card">
      <IconFile />
      <div className="file-meta">
        <strong className="ellipsis">{content.body}</strong>
        <span className="muted small">{size != null ? formatBytes(size) : ""}{content.file ? " · encrypted" : ""}</span>
        {error && <span className="small error-text">{error}</span>}
      </div>
      {url ? (
        <a className="btn btn-sm" href={url} download={content.body}>Save</a>
      ) : (
        <button className="btn btn-sm" onClick={() => setWant(true)} disabled={want}>{want ? "…" : "Download"}</button>
      )}
    </div>
  );
}

export const Message = MessageImpl;

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} byte${n === 1 ? "" : "s"}`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10 * 1024 ? 1 : 0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}
