// Web Push in WSPR's service worker (imported by the generated worker: vite.config.ts importScripts).
// The homeserver's push gateway (homeserver/push_gateway) sends one JSON object per notification,
// encrypted for this browser (RFC 8291):
//   {room_id, event_id, type, sender, sender_display_name?, room_name?, membership?, content?: {msgtype, body}, unread?}
// Encrypted messages carry no content (the server can't read them): they show as "New message". The
// service worker doesn't decrypt them: the keys live in the page's crypto store, which a worker
// woken by a push can't safely open while a tab may be using it.

function describe(n) {
  const who = n.sender_display_name || n.sender || "Someone";
  if (n.type === "m.room.member" && n.membership === "invite") return `${who} invited you`;
  if (n.type === "m.room.encrypted" || !n.content) return n.room_name ? `${who}: New message` : "New message";
  const body = typeof n.content.body === "string" ? n.content.body : "";
  const kinds = { "m.image": "sent an image", "m.video": "sent a video", "m.audio": "sent an audio message", "m.file": "sent a file" };
  if (kinds[n.content.msgtype]) return `${who} ${kinds[n.content.msgtype]}`;
  if (n.content.msgtype === "m.emote") return `* ${who} ${body}`;
  return n.room_name ? `${who}: ${body}` : body;
}

async function onPush(event) {
  let n;
  try {
    n = event.data ? event.data.json() : {};
  } catch {
    n = {};
  }
  if (typeof n.unread === "number" && self.navigator.setAppBadge) {
    await (n.unread > 0 ? self.navigator.setAppBadge(n.unread) : self.navigator.clearAppBadge()).catch(() => {});
  }
  // an open, visible app shows its own notifications (decrypted, and not for the room on screen)
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  if (windows.some((c) => c.visibilityState === "visible")) return;
  const title = n.room_name || n.sender_display_name || n.sender || "WSPR";
  await self.registration.showNotification(title, {
    body: describe(n),
    tag: n.room_id || "wspr",
    renotify: true,
    icon: "/icons/icon-192.png",
    data: { roomId: n.room_id, eventId: n.event_id },
  });
}

self.addEventListener("push", (event) => event.waitUntil(onPush(event)));

async function openRoom(roomId) {
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  const app = windows[0];
  if (app) {
    await app.focus();
    app.postMessage({ type: "wspr.open-room", roomId });
    return;
  }
  await self.clients.openWindow(roomId ? `/#/room/${encodeURIComponent(roomId)}` : "/");
}

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(openRoom(event.notification.data && event.notification.data.roomId));
});
