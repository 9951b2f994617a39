import { useEffect, useState } from "react";
import type { MatrixClient } from "matrix-js-sdk";
import { decryptAttachment, type EncryptedFileInfo } from "./attachments";

// Media is fetched with the access token (authenticated media, MSC3916) and handed to <img> as blob: URLs.
const cache = new Map<string, Promise<string>>();

async function fetchMedia(client: MatrixClient, mxc: string, size?: number): Promise<Blob> {
  const token = client.getAccessToken();
  const headers: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
  const authed = size
    ? client.mxcUrlToHttp(mxc, size, size, "crop", false, true, true)
    : client.mxcUrlToHttp(mxc, undefined, undefined, undefined, false, true, true);
  if (!authed) throw new Error("Not a valid media URL");
  let res = await fetch(authed, { headers });
  if (res.status === 404 || res.status === 400 || res.status === 405) {
    // older servers: unauthenticated media endpoints
    const legacy = size ? client.mxcUrlToHttp(mxc, size, size, "crop", false, true, false) : client.mxcUrlToHttp(mxc, undefined, undefined, undefined, false, true, false);
    if (legacy) {
      const res2 = await fetch(legacy, { headers });
      if (res2.ok) res = res2;
    }
  }
  if (!res.ok) throw new Error(`Couldn't download (HTTP ${res.status})`);
  return res.blob();
}

export function loadMediaUrl(client: MatrixClient, src: { mxc?: string; file?: EncryptedFileInfo; mimetype?: string; size?: number }): Promise<string> {
  const mxc = src.file?.url ?? src.mxc;
  if (!mxc) return Promise.reject(new Error("No media"));
  const key = `${mxc}|${src.file ? "enc" : ""}|${src.size ?? ""}`;
  let p = cache.get(key);
  if (!p) {
    p = (async () => {
      if (src.file) {
        const blob = await fetchMedia(client, mxc);
        const plain = await decryptAttachment(await blob.arrayBuffer(), src.file);
        return URL.createObjectURL(new Blob([plain], { type: src.mimetype || "application/octet-stream" }));
      }
      const blob = await fetchMedia(client, mxc, src.size);
      return URL.createObjectURL(blob);
    })();
    p.catch(() => cache.delete(key));
    cache.set(key, p);
  }
  return p;
}

export function useMedia(
  client: MatrixClient | null,
  src: { mxc?: string; file?: EncryptedFileInfo; mimetype?: string; size?: number } | null,
): { url?: string; error?: string } {
  const mxc = src?.mxc;
  const file = src?.file;
  const mimetype = src?.mimetype;
  const size = src?.size;
  const key = src ? `${file?.url ?? mxc}|${size ?? ""}` : "";
  // what we loaded, for which key: a result for an earlier key is never shown
  const [state, setState] = useState<{ key: string; url?: string; error?: string }>({ key: "" });
  useEffect(() => {
    if (!client || !(mxc || file)) return;
    let alive = true;
    loadMediaUrl(client, { mxc, file, mimetype, size }).then(
      (url) => alive && setState({ key, url }),
      (e: unknown) => alive && setState({ key, error: e instanceof Error ? e.message : String(e) }),
    );
    return () => {
      alive = false;
    };
  }, [client, key, mxc, file, mimetype, size]);
  return state.key === key && key ? { url: state.url, error: state.error } : {};
}
