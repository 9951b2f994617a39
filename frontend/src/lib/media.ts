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
  const [state, setState] = useState<{ url?: string; error?: string }>({});
  const key = src ? `${src.file?.url ?? src.mxc}|${src.size ?? ""}` : "";
  useEffect(() => {
    if (!client || !src || !(src.mxc || src.file)) {
      setState({});
      return;
    }
    let alive = true;
    loadMediaUrl(client, src).then(
      (url) => alive && setState({ url }),
      (e) => alive && setState({ error: e instanceof Error ? e.message : String(e) }),
    );
    return () => {
      alive = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [client, key]);
  return state;
}
