// Images, videos, audio and files in the timeline. Media is fetched with the access token and, in
// encrypted rooms, decrypted in the browser (lib/media.ts); large media is fetched when asked for.
import { lazy, Suspense, useEffect, useRef, useState } from "react";
import type { MatrixClient, Room } from "matrix-js-sdk";
import { useMedia } from "../../lib/media";
import type { EncryptedFileInfo } from "../../lib/attachments";
import { textField } from "../../lib/timeline";
import { IconFile } from "../Icons";
import { formatBytes, formatDuration } from "./format";
import "./media.css";

const Lightbox = lazy(() => import("./Lightbox").then((m) => ({ default: m.Lightbox })));

/** What m.image / m.video / m.audio / m.file content carries (as sent; nothing here is checked by the server). */
export interface MediaContent {
  msgtype?: unknown;
  body?: unknown;
  filename?: unknown;
  url?: string;
  file?: EncryptedFileInfo;
  info?: {
    mimetype?: string;
    w?: number;
    h?: number;
    size?: number;
    duration?: number;
    thumbnail_url?: string;
    thumbnail_file?: EncryptedFileInfo;
    thumbnail_info?: { w?: number; h?: number };
  };
}

function num(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : undefined;
}

/** The file's name, and a caption when the body says something else (spec: `filename` with `body` as caption). */
export function nameAndCaption(c: MediaContent): { name: string; caption?: string } {
  const body = textField(c.body);
  const filename = textField(c.filename);
  if (filename && body && body !== filename) return { name: filename, caption: body };
  return { name: filename || body || "file" };
}

function mediaSrc(c: MediaContent) {
  return { mxc: typeof c.url === "string" ? c.url : undefined, file: c.file, mimetype: c.info?.mimetype };
}

/** The box a picture takes in the timeline: its aspect ratio, at most 320 px wide and 360 px tall. */
function boxStyle(w?: number, h?: number, fallback = { width: 240, height: 180 }) {
  if (!w || !h) return fallback;
  const scale = Math.min(1, 320 / w, 360 / h);
  return { width: Math.max(80, Math.round(w * scale)), aspectRatio: `${w} / ${h}` };
}

export function MediaBody({ client, room, eventId, content }: { client: MatrixClient; room: Room; eventId: string; content: MediaContent }) {
  const { caption } = nameAndCaption(content);
  let body;
  switch (content.msgtype) {
    case "m.image":
      body = <ImageBody client={client} room={room} eventId={eventId} content={content} />;
      break;
    case "m.video":
      body = <VideoBody client={client} room={room} eventId={eventId} content={content} />;
      break;
    case "m.audio":
      body = <AudioBody client={client} content={content} />;
      break;
    default:
      body = <FileBody client={client} content={content} />;
  }
  return caption ? (
    <span className="media-with-caption">
      {body}
      <span className="media-caption">{caption}</span>
    </span>
  ) : (
    body
  );
}

function ImageBody({ client, room, eventId, content }: { client: MatrixClient; room: Room; eventId: string; content: MediaContent }) {
  const { url, error } = useMedia(client, mediaSrc(content));
  const [open, setOpen] = useState(false);
  const { name } = nameAndCaption(content);
  if (error) return <span className="muted">🖼️ {name} (couldn't load: {error})</span>;
  return (
    <>
      <button type="button" className="image" style={boxStyle(num(content.info?.w), num(content.info?.h))} data-testid="image" onClick={() => setOpen(true)} aria-label={`View ${name}`} disabled={!url}>
        {url ? <img src={url} alt={name} /> : <span className="image-loading" />}
      </button>
      {open && (
        <Suspense fallback={null}>
          <Lightbox client={client} room={room} eventId={eventId} onClose={() => setOpen(false)} />
        </Suspense>
      )}
    </>
  );
}

function VideoBody({ client, room, eventId, content }: { client: MatrixClient; room: Room; eventId: string; content: MediaContent }) {
  const info = content.info ?? {};
  const [play, setPlay] = useState(false);
  const [open, setOpen] = useState(false);
  const poster = useMedia(client, info.thumbnail_file || info.thumbnail_url ? { mxc: info.thumbnail_url, file: info.thumbnail_file, mimetype: "image/jpeg" } : null);
  const video = useMedia(client, play ? mediaSrc(content) : null);
  const { name } = nameAndCaption(content);
  const duration = num(info.duration);
  const style = boxStyle(num(info.w) ?? num(info.thumbnail_info?.w), num(info.h) ?? num(info.thumbnail_info?.h), { width: 320, height: 180 });
  return (
    <span className="video" style={style} data-testid="video">
      {video.url ? (
        <video src={video.url} controls autoPlay playsInline poster={poster.url} aria-label={name} />
      ) : (
        <button type="button" className="video-poster" onClick={() => setPlay(true)} aria-label={`Play ${name}`} data-testid="video-play">
          {poster.url ? <img src={poster.url} alt="" /> : <span className="video-blank" />}
          <span className="play-badge" aria-hidden="true">
            {play && !video.error ? <span className="spinner" /> : "▶"}
          </span>
          {duration !== undefined && <span className="media-duration">{formatDuration(duration)}</span>}
        </button>
      )}
      {video.error && <span className="small error-text media-error">Couldn't load the video: {video.error}</span>}
      <button type="button" className="icon-btn sm media-expand" onClick={() => setOpen(true)} aria-label="Open in viewer" title="Open in viewer">
        ⤢
      </button>
      {open && (
        <Suspense fallback={null}>
          <Lightbox client={client} room={room} eventId={eventId} onClose={() => setOpen(false)} />
        </Suspense>
      )}
    </span>
  );
}

function AudioBody({ client, content }: { client: MatrixClient; content: MediaContent }) {
  const [play, setPlay] = useState(false);
  const audio = useMedia(client, play ? mediaSrc(content) : null);
  const { name } = nameAndCaption(content);
  const duration = num(content.info?.duration);
  const size = num(content.info?.size);
  return (
    <span className="file-card audio-card" data-testid="audio">
      {audio.url ? (
        <audio src={audio.url} controls autoPlay aria-label={name} />
      ) : (
        <button type="button" className="audio-play" onClick={() => setPlay(true)} disabled={play && !audio.error} aria-label={`Play ${name}`} data-testid="audio-play">
          {play && !audio.error ? <span className="spinner" /> : "▶"}
        </button>
      )}
      <span className="file-meta">
        <strong className="ellipsis">{name}</strong>
        <span className="muted small">
          {[duration !== undefined ? formatDuration(duration) : null, size !== undefined ? formatBytes(size) : null, content.file ? "encrypted" : null].filter(Boolean).join(" · ")}
        </span>
        {audio.error && <span className="small error-text">{audio.error}</span>}
      </span>
    </span>
  );
}

/** A short label for a file's type: "PDF", "ZIP", from its name or mimetype. */
export function fileKind(name: string, mimetype?: string): string {
  const ext = /\.([a-z0-9]{1,5})$/i.exec(name)?.[1];
  if (ext) return ext.toUpperCase();
  const sub = mimetype?.split("/")[1]?.split(/[+.;-]/)[0];
  return sub ? sub.toUpperCase() : "FILE";
}

function FileBody({ client, content }: { client: MatrixClient; content: MediaContent }) {
  const [want, setWant] = useState(false);
  const { url, error } = useMedia(client, want ? mediaSrc(content) : null);
  const { name } = nameAndCaption(content);
  const size = num(content.info?.size);
  const link = useRef<HTMLAnchorElement>(null);
  // one click: fetched (and decrypted), then saved
  const saved = useRef(false);
  useEffect(() => {
    if (url && !saved.current) {
      saved.current = true;
      link.current?.click();
    }
  }, [url]);
  return (
    <span className="file-card" data-testid="file">
      <IconFile />
      <span className="file-meta">
        <strong className="ellipsis" title={name}>
          {name}
        </strong>
        <span className="muted small" data-testid="file-info">
          {[fileKind(name, content.info?.mimetype), size !== undefined ? formatBytes(size) : null, content.file ? "encrypted" : null].filter(Boolean).join(" · ")}
        </span>
        {error && <span className="small error-text">{error}</span>}
      </span>
      {url ? (
        <a ref={link} className="btn btn-sm" href={url} download={name}>
          Save
        </a>
      ) : (
        <button className="btn btn-sm" onClick={() => setWant(true)} disabled={want && !error}>
          {want && !error ? "…" : "Download"}
        </button>
      )}
    </span>
  );
}
