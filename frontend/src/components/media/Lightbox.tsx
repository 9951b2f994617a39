// The image and video viewer: full screen, zoom (wheel, buttons, double-click, pinch, keys + - 0),
// pan by dragging, previous/next through the room's pictures and videos (arrow keys, swipe on phones),
// download, and Escape to close. Encrypted media is decrypted as in the timeline (lib/media.ts).
import { useCallback, useEffect, useRef, useState, type PointerEvent as ReactPointerEvent } from "react";
import { createPortal } from "react-dom";
import type { MatrixClient, MatrixEvent, Room } from "matrix-js-sdk";
import { useMedia } from "../../lib/media";
import { chainEvents } from "../../lib/timelineChain";
import { formatTime } from "../../lib/rooms";
import { IconX } from "../Icons";
import { nameAndCaption, type MediaContent } from "./MediaBody";
import { clampScale, zoomAt, type View } from "./zoom";
import "./media.css";

const VIEWABLE = new Set(["m.image", "m.video"]);

/** The room's loaded pictures and videos, oldest first (what ← and → step through). */
function viewableEvents(room: Room): MatrixEvent[] {
  return chainEvents(room).filter((e) => e.getType() === "m.room.message" && !e.isRedacted() && VIEWABLE.has(e.getContent().msgtype as string));
}

const FIT: View = { scale: 1, x: 0, y: 0 };

export function Lightbox({ client, room, eventId, onClose }: { client: MatrixClient; room: Room; eventId: string; onClose: () => void }) {
  const [current, setCurrent] = useState(eventId);
  const [view, setView] = useState<View>(FIT);
  const stage = useRef<HTMLDivElement>(null);
  const closeBtn = useRef<HTMLButtonElement>(null);
  const pointers = useRef(new Map<number, { x: number; y: number }>());
  const gesture = useRef<{ dist: number; view: View; start: { x: number; y: number }; moved: boolean } | null>(null);
  // the last gesture dragged: the click that ends it doesn't close the viewer
  const dragged = useRef(false);

  const list = viewableEvents(room);
  const index = list.findIndex((e) => e.getId() === current);
  const event = index >= 0 ? list[index] : room.findEventById(current);
  const content = (event?.getContent() ?? {}) as MediaContent;
  const isVideo = content.msgtype === "m.video";
  const { name } = nameAndCaption(content);
  const media = useMedia(client, { mxc: typeof content.url === "string" ? content.url : undefined, file: content.file, mimetype: content.info?.mimetype });
  const sender = event ? (room.getMember(event.getSender() ?? "")?.name ?? event.getSender()) : "";

  function go(step: number) {
    const next = list[index + step];
    if (next?.getId()) {
      setCurrent(next.getId()!);
      setView(FIT);
    }
  }

  const zoomBy = useCallback((factor: number, at?: { x: number; y: number }) => {
    setView((v) => zoomAt(v, clampScale(v.scale * factor), at ?? { x: 0, y: 0 }));
  }, []);

  // the keyboard listener is installed once and calls the latest handlers
  const keys = useRef({ go, onClose, isVideo });
  useEffect(() => {
    keys.current = { go, onClose, isVideo };
  });
  useEffect(() => {
    closeBtn.current?.focus();
    const onKey = (e: KeyboardEvent) => {
      const k = keys.current;
      if (e.key === "Escape") k.onClose();
      else if (e.key === "ArrowLeft") k.go(-1);
      else if (e.key === "ArrowRight") k.go(1);
      else if ((e.key === "+" || e.key === "=") && !k.isVideo) zoomBy(1.25);
      else if (e.key === "-" && !k.isVideo) zoomBy(0.8);
      else if (e.key === "0") setView(FIT);
      else return;
      e.preventDefault();
      e.stopPropagation();
    };
    // capture: ahead of any dialog underneath listening for Escape
    window.addEventListener("keydown", onKey, true);
    return () => window.removeEventListener("keydown", onKey, true);
  }, [zoomBy]);

  // wheel zoom needs a non-passive listener (React's onWheel is passive)
  useEffect(() => {
    const el = stage.current;
    if (!el || isVideo) return;
    const onWheel = (e: WheelEvent) => {
      e.preventDefault();
      const r = el.getBoundingClientRect();
      zoomBy(Math.exp(-e.deltaY / 300), { x: e.clientX - r.left - r.width / 2, y: e.clientY - r.top - r.height / 2 });
    };
    el.addEventListener("wheel", onWheel, { passive: false });
    return () => el.removeEventListener("wheel", onWheel);
  }, [zoomBy, isVideo]);

  function centre(e: { clientX: number; clientY: number }) {
    const r = stage.current!.getBoundingClientRect();
    return { x: e.clientX - r.left - r.width / 2, y: e.clientY - r.top - r.height / 2 };
  }

  function onPointerDown(e: ReactPointerEvent) {
    if (isVideo) return;
    (e.target as Element).setPointerCapture?.(e.pointerId);
    pointers.current.set(e.pointerId, { x: e.clientX, y: e.clientY });
    const ps = [...pointers.current.values()];
    gesture.current = { dist: ps.length === 2 ? Math.hypot(ps[0].x - ps[1].x, ps[0].y - ps[1].y) : 0, view, start: { x: e.clientX, y: e.clientY }, moved: false };
  }
  function onPointerMove(e: ReactPointerEvent) {
    const g = gesture.current;
    if (!g || !pointers.current.has(e.pointerId)) return;
    pointers.current.set(e.pointerId, { x: e.clientX, y: e.clientY });
    const ps = [...pointers.current.values()];
    if (ps.length === 2 && g.dist > 0) {
      // pinch: scale by the change in finger distance, around their midpoint
      const d = Math.hypot(ps[0].x - ps[1].x, ps[0].y - ps[1].y);
      const mid = centre({ clientX: (ps[0].x + ps[1].x) / 2, clientY: (ps[0].y + ps[1].y) / 2 });
      setView(zoomAt(g.view, clampScale((g.view.scale * d) / g.dist), mid));
      g.moved = true;
    } else if (ps.length === 1) {
      const dx = e.clientX - g.start.x;
      const dy = e.clientY - g.start.y;
      if (Math.abs(dx) + Math.abs(dy) > 4) g.moved = true;
      if (g.view.scale > 1) setView({ ...g.view, x: g.view.x + dx, y: g.view.y + dy });
    }
  }
  function onPointerUp(e: ReactPointerEvent) {
    const g = gesture.current;
    pointers.current.delete(e.pointerId);
    if (!g) return;
    // a swipe at fit size steps through the room's media
    if (g.view.scale === 1 && pointers.current.size === 0) {
      const dx = e.clientX - g.start.x;
      if (Math.abs(dx) > 60 && Math.abs(dx) > Math.abs(e.clientY - g.start.y)) go(dx < 0 ? 1 : -1);
    }
    if (pointers.current.size === 0) {
      dragged.current = g.moved;
      gesture.current = null;
    }
  }

  return createPortal(
    <div className="lightbox" role="dialog" aria-modal="true" aria-label={`Viewer: ${name}`} data-testid="lightbox">
      <header className="lightbox-bar">
        <span className="lightbox-title">
          <strong className="ellipsis">{name}</strong>
          <span className="small ellipsis">
            {sender}
            {event ? ` · ${formatTime(event.getTs())}` : ""}
            {list.length > 1 && index >= 0 ? ` · ${index + 1} of ${list.length}` : ""}
          </span>
        </span>
        {!isVideo && (
          <>
            <button className="lightbox-btn" onClick={() => zoomBy(0.8)} aria-label="Zoom out" disabled={view.scale <= 1}>
              −
            </button>
            <span className="lightbox-zoom small" data-testid="lightbox-zoom">
              {Math.round(view.scale * 100)}%
            </span>
            <button className="lightbox-btn" onClick={() => zoomBy(1.25)} aria-label="Zoom in" data-testid="lightbox-zoom-in">
              +
            </button>
          </>
        )}
        {media.url ? (
          <a className="lightbox-btn" href={media.url} download={name} aria-label="Download" title="Download" data-testid="lightbox-download">
            ⤓
          </a>
        ) : (
          <span className="lightbox-btn" aria-hidden="true" />
        )}
        <button ref={closeBtn} className="lightbox-btn" onClick={onClose} aria-label="Close viewer" data-testid="lightbox-close">
          <IconX />
        </button>
      </header>
      <div
        ref={stage}
        className={`lightbox-stage ${view.scale > 1 ? "zoomed" : ""}`}
        onPointerDown={onPointerDown}
        onPointerMove={onPointerMove}
        onPointerUp={onPointerUp}
        onPointerCancel={onPointerUp}
        onDoubleClick={(e) => !isVideo && setView((v) => (v.scale > 1 ? FIT : zoomAt(v, 2.5, centre(e))))}
        onClick={(e) => e.target === e.currentTarget && !dragged.current && onClose()}
      >
        {media.error ? (
          <p className="lightbox-error">Couldn't load it: {media.error}</p>
        ) : !media.url ? (
          <span className="spinner big" role="status" aria-label="Loading" />
        ) : isVideo ? (
          <video src={media.url} controls autoPlay playsInline className="lightbox-media" />
        ) : (
          <img
            src={media.url}
            alt={name}
            className="lightbox-media"
            draggable={false}
            data-testid="lightbox-image"
            style={{ transform: `translate(${view.x}px, ${view.y}px) scale(${view.scale})` }}
          />
        )}
        {index > 0 && (
          <button className="lightbox-nav prev" onClick={() => go(-1)} aria-label="Previous">
            ‹
          </button>
        )}
        {index >= 0 && index < list.length - 1 && (
          <button className="lightbox-nav next" onClick={() => go(1)} aria-label="Next" data-testid="lightbox-next">
            ›
          </button>
        )}
      </div>
    </div>,
    document.body,
  );
}
