// Desktop notifications while the app is open: for each new event the account's push rules say to
// notify about (matrix-js-sdk's getPushActionsForEvent, evaluated again once an encrypted message is
// decrypted, so the text and mentions inside count), except in the room the reader is looking at.
// Shown through the service worker when there is one (Android Chrome allows no other way), so a click
// is handled by the worker (see public/push-sw.js), which focuses the app and opens the room.
import { EventType, MatrixEventEvent, RoomEvent, SyncState, type IRoomTimelineData, type MatrixClient, type MatrixEvent, type Room } from "matrix-js-sdk";
import { openRoom } from "../lib/route";
import { describeForNotification } from "./describe";

const SETTING = "wspr.notify.desktop";

/** Whether this device shows desktop notifications (the browser's permission aside). */
export function desktopNotificationsWanted(): boolean {
  return localStorage.getItem(SETTING) !== "off";
}

export function setDesktopNotificationsWanted(on: boolean): void {
  localStorage.setItem(SETTING, on ? "on" : "off");
}

export function notificationPermission(): NotificationPermission | "unsupported" {
  return typeof Notification === "undefined" ? "unsupported" : Notification.permission;
}

function waitForDecryption(ev: MatrixEvent, ms: number): Promise<void> {
  if (!ev.isBeingDecrypted() && !ev.shouldAttemptDecryption()) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      ev.off(MatrixEventEvent.Decrypted, done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    ev.on(MatrixEventEvent.Decrypted, done);
  });
}

export async function showNotification(title: string, roomId: string, options: NotificationOptions): Promise<void> {
  const reg = "serviceWorker" in navigator ? await navigator.serviceWorker.getRegistration() : undefined;
  if (reg?.active) {
    await reg.showNotification(title, { ...options, data: { roomId } });
    return;
  }
  const n = new Notification(title, { ...options, data: { roomId } });
  n.onclick = () => {
    window.focus();
    openRoom(roomId);
    n.close();
  };
}

function isDirectRoom(client: MatrixClient, room: Room): boolean {
  const direct = client.getAccountData(EventType.Direct)?.getContent<Record<string, string[]>>() ?? {};
  return Object.values(direct).some((ids) => Array.isArray(ids) && ids.includes(room.roomId));
}

/** Starts notifying; returns the function that stops. `openRoomId` names the room on screen. */
export function startDesktopNotifications(client: MatrixClient, openRoomId: () => string | null): () => void {
  const me = client.getSafeUserId();
  const startedAt = Date.now();
  const handle = async (ev: MatrixEvent, room: Room) => {
    if (ev.getSender() === me || ev.getTs() < startedAt - 60_000) return;
    await waitForDecryption(ev, 10_000);
    const actions = client.getPushActionsForEvent(ev, true);
    if (!actions?.notify || !desktopNotificationsWanted() || notificationPermission() !== "granted") return;
    if (room.roomId === openRoomId() && document.visibilityState === "visible" && document.hasFocus()) return;
    const { title, body } = describeForNotification(ev, room, isDirectRoom(client, room));
    await showNotification(title, room.roomId, { body, tag: room.roomId, icon: "/icons/icon-192.png", silent: !actions.tweaks?.sound });
  };
  const onTimeline = (ev: MatrixEvent, room: Room | undefined, toStart: boolean | undefined, removed: boolean, data: IRoomTimelineData) => {
    // only what arrives live, once the first sync is done (not the backlog of a start or a gap)
    if (!room || toStart || removed || !data?.liveEvent || client.getSyncState() !== SyncState.Syncing) return;
    handle(ev, room).catch((e) => console.warn("[wspr] notification failed", e));
  };
  client.on(RoomEvent.Timeline, onTimeline);
  // a click on a notification shown by the service worker asks the open app to show the room
  const onMessage = (e: MessageEvent<{ type?: string; roomId?: string }>) => {
    if (e.data?.type === "wspr.open-room" && e.data.roomId) openRoom(e.data.roomId);
  };
  navigator.serviceWorker?.addEventListener("message", onMessage);
  return () => {
    client.off(RoomEvent.Timeline, onTimeline);
    navigator.serviceWorker?.removeEventListener("message", onMessage);
  };
}

