// Link previews from the homeserver's preview endpoint (GET /_matrix/client/v1/media/preview_url, the
// SDK's getUrlPreview). Nothing shows when the server has no preview for the link, or no preview
// endpoint at all. Off in encrypted rooms unless the person turned them on (Settings → Appearance):
// the server fetches the page, so it learns the link.
import { useEffect, useState } from "react";
import { MatrixError, type MatrixClient } from "matrix-js-sdk";
import { useMedia } from "../../lib/media";
import { usePrefs } from "../settings/prefs";
import { linkParts, previewableUrls } from "./format";
import "./media.css";

/** The Open Graph fields we show (spec: GET /preview_url). */
export interface Preview {
  "og:title"?: string;
  "og:description"?: string;
  "og:site_name"?: string;
  "og:image"?: string;
  "og:url"?: string;
}

// the server said it has no preview endpoint: don't ask again this session
let unsupported = false;

export function isUnsupported(e: unknown): boolean {
  return e instanceof MatrixError && (e.errcode === "M_UNRECOGNIZED" || (e.httpStatus === 404 && !e.errcode) || e.httpStatus === 405);
}

function str(v: unknown, max: number): string | undefined {
  return typeof v === "string" && v.trim() ? v.trim().slice(0, max) : undefined;
}

/** Only the fields we show, as strings, trimmed: the server passes on whatever the page said. */
export function cleanPreview(raw: Record<string, unknown>): Preview | null {
  const p: Preview = {
    "og:title": str(raw["og:title"], 300),
    "og:description": str(raw["og:description"], 600),
    "og:site_name": str(raw["og:site_name"], 100),
    "og:image": typeof raw["og:image"] === "string" && raw["og:image"].startsWith("mxc://") ? raw["og:image"] : undefined,
  };
  return p["og:title"] || p["og:description"] ? p : null;
}

function usePreview(client: MatrixClient, url: string, ts: number): Preview | null {
  const [preview, setPreview] = useState<{ url: string; p: Preview | null } | null>(null);
  useEffect(() => {
    if (unsupported) return;
    let alive = true;
    client.getUrlPreview(url, ts).then(
      (raw) => alive && setPreview({ url, p: cleanPreview(raw as Record<string, unknown>) }),
      (e: unknown) => {
        if (isUnsupported(e)) unsupported = true;
        if (alive) setPreview({ url, p: null });
      },
    );
    return () => {
      alive = false;
    };
  }, [client, url, ts]);
  return preview?.url === url ? preview.p : null;
}

function LinkPreview({ client, url, ts }: { client: MatrixClient; url: string; ts: number }) {
  const p = usePreview(client, url, ts);
  const image = useMedia(client, p?.["og:image"] ? { mxc: p["og:image"], size: 96 } : null);
  if (!p) return null;
  let host = "";
  try {
    host = new URL(url).hostname;
  } catch {
    /* shown without */
  }
  return (
    <a className="link-preview" href={url} target="_blank" rel="noreferrer noopener" data-testid="link-preview">
      {image.url && <img src={image.url} alt="" className="link-preview-image" />}
      <span className="link-preview-text">
        <span className="small muted ellipsis">{p["og:site_name"] ?? host}</span>
        {p["og:title"] && <strong className="link-preview-title">{p["og:title"]}</strong>}
        {p["og:description"] && <span className="small link-preview-desc">{p["og:description"]}</span>}
      </span>
    </a>
  );
}

/** Previews of the first links in a message's text (none in encrypted rooms unless turned on). */
export function LinkPreviews({ client, text, ts, encrypted }: { client: MatrixClient; text: string; ts: number; encrypted: boolean }) {
  const prefs = usePrefs();
  if (!prefs.linkPreviews || (encrypted && !prefs.encryptedLinkPreviews) || unsupported) return null;
  const urls = previewableUrls(text);
  if (!urls.length) return null;
  return (
    <div className="link-previews">
      {urls.map((u) => (
        <LinkPreview key={u} client={client} url={u} ts={ts} />
      ))}
    </div>
  );
}

/** Plain text with its links clickable (opening in a new tab, without the referrer). */
export function Linkified({ text }: { text: string }) {
  const parts = linkParts(text);
  if (parts.length === 1 && "text" in parts[0]) return <>{text}</>;
  return (
    <>
      {parts.map((part, i) =>
        "url" in part ? (
          <a key={i} href={part.url} target="_blank" rel="noreferrer noopener">
            {part.url}
          </a>
        ) : (
          part.text
        ),
      )}
    </>
  );
}
