// Web Push: notifications while the app is closed. The browser's push subscription (its endpoint and
// keys) becomes a pusher of kind "http" on the homeserver, pointing at WSPR's own push gateway
// (`/_wspr/push/v1/notify`), which encrypts each notification for this browser (RFC 8291) and sends it
// to the browser's push service; the service worker shows it (public/push-sw.js). Only a homeserver
// that serves `/_wspr/push/v1/web` offers it. As with Sygnal's webpush pushers, the pushkey is the
// subscription's public key (p256dh) and the endpoint and auth secret travel in the pusher's data.
import type { MatrixClient } from "matrix-js-sdk";
import { fromBase64 } from "../lib/attachments";

export interface WebPushInfo {
  vapid_public_key: string;
  gateway_url: string;
  app_id: string;
}

export function webPushSupported(): boolean {
  return typeof window !== "undefined" && "serviceWorker" in navigator && "PushManager" in window && typeof Notification !== "undefined";
}

/** What the homeserver's gateway needs (null: this homeserver offers no Web Push). */
export async function fetchWebPushInfo(client: MatrixClient): Promise<WebPushInfo | null> {
  try {
    const res = await fetch(`${client.baseUrl.replace(/\/$/, "")}/_wspr/push/v1/web`);
    if (!res.ok) return null;
    const info = (await res.json()) as Partial<WebPushInfo>;
    return typeof info.vapid_public_key === "string" && typeof info.gateway_url === "string" && typeof info.app_id === "string" ? (info as WebPushInfo) : null;
  } catch {
    return null;
  }
}

const KEY = "wspr.webpush";

/** The pusher this browser registered for the account, if any. */
export function webPushPusher(userId: string): { app_id: string; pushkey: string } | null {
  try {
    const v = JSON.parse(localStorage.getItem(KEY) ?? "null") as { userId?: string; app_id?: string; pushkey?: string } | null;
    return v?.userId === userId && v.app_id && v.pushkey ? { app_id: v.app_id, pushkey: v.pushkey } : null;
  } catch {
    return null;
  }
}

function sameKey(a: ArrayBuffer | null | undefined, b: Uint8Array): boolean {
  if (!a) return false;
  const x = new Uint8Array(a);
  return x.length === b.length && x.every((v, i) => v === b[i]);
}

export async function enableWebPush(client: MatrixClient, info: WebPushInfo, deviceName: string): Promise<void> {
  if ((await Notification.requestPermission()) !== "granted") throw new Error("Notifications are blocked for this site. Allow them in the browser's site settings.");
  const reg = await navigator.serviceWorker.ready;
  const key = fromBase64(info.vapid_public_key);
  let sub = await reg.pushManager.getSubscription();
  if (sub && !sameKey(sub.options.applicationServerKey, key)) {
    await sub.unsubscribe(); // made for another server's key
    sub = null;
  }
  sub ??= await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
  const json = sub.toJSON();
  if (!json.endpoint || !json.keys?.p256dh || !json.keys.auth) throw new Error("The browser's push subscription is incomplete.");
  await client.setPusher({
    kind: "http",
    app_id: info.app_id,
    pushkey: json.keys.p256dh,
    app_display_name: "WSPR",
    device_display_name: deviceName,
    lang: navigator.language || "en",
    data: { url: info.gateway_url, endpoint: json.endpoint, auth: json.keys.auth } as { url: string },
    append: false,
  });
  localStorage.setItem(KEY, JSON.stringify({ userId: client.getSafeUserId(), app_id: info.app_id, pushkey: json.keys.p256dh }));
}

export async function disableWebPush(client: MatrixClient): Promise<void> {
  const p = webPushPusher(client.getSafeUserId());
  if (p) await client.setPusher({ kind: null, app_id: p.app_id, pushkey: p.pushkey } as never);
  localStorage.removeItem(KEY);
  await unsubscribeBrowser();
}

/** Ends this browser's push subscription (at sign-out: the pusher goes with the device). */
export async function unsubscribeBrowser(): Promise<void> {
  if (!webPushSupported()) return;
  try {
    const reg = await navigator.serviceWorker.getRegistration();
    await (await reg?.pushManager.getSubscription())?.unsubscribe();
  } catch {
    /* nothing to end */
  }
  localStorage.removeItem(KEY);
}
