// What the room view shows of the reading position: the "New messages" line, a bar to jump up to the
// first unread message (or mark everything read), and a button back down to the newest.
import { IconX } from "../components/Icons";
import "./reading.css";

export function UnreadLine() {
  return (
    <div className="unread-line" data-testid="unread-line" role="separator" aria-label="New messages">
      <span>New messages</span>
    </div>
  );
}

export function JumpToUnread({ busy, onJump, onDismiss }: { busy: boolean; onJump: () => void; onDismiss: () => void }) {
  return (
    <div className="jump-unread" data-testid="jump-to-unread">
      <button className="jump-unread-main" onClick={onJump} disabled={busy}>
        <svg width="16" height="16" viewBox="0 0 24 24" fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round" aria-hidden="true"><path d="M12 19V5M5 12l7-7 7 7" /></svg>
        {busy ? "Finding the first unread message…" : "Jump to first unread message"}
      </button>
      <button className="icon-btn sm" aria-label="Mark as read" title="Mark as read" onClick={onDismiss} data-testid="mark-read">
        <IconX width={14} height={14} />
      </button>
    </div>
  );
}

export function JumpToLatest({ onClick }: { onClick: () => void }) {
  return (
    <button className="jump-latest" onClick={onClick} aria-label="Jump to latest message" title="Jump to latest message" data-testid="jump-to-latest">
      <svg width="20" height="20" viewBox="0 0 24 24" fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round" strokeLinejoin="round" aria-hidden="true"><path d="M12 5v14M19 12l-7 7-7-7" /></svg>
    </button>
  );
}
