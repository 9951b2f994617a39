// Unread counts outside the page: "(3) WSPR" in the title and the installed app's badge
// (navigator.setAppBadge). The counts are the server's notification counts (push rules applied, muted
// rooms at zero), corrected by matrix-js-sdk for decrypted messages; invites count one each.
import { useEffect } from "react";
import { ClientEvent, NotificationCountType, RoomEvent, type MatrixClient } from "matrix-js-sdk";
import { useEvents } from "../lib/hooks";

const EVENTS = [ClientEvent.Room, ClientEvent.DeleteRoom, RoomEvent.UnreadNotifications, RoomEvent.Receipt, RoomEvent.Timeline, RoomEvent.MyMembership, ClientEvent.Sync];

export function unreadTotal(client: MatrixClient): number {
  let n = 0;
  for (const room of client.getRooms()) {
    const m = room.getMyMembership();
    if (m === "invite") n += 1;
    else if (m === "join") n += room.getUnreadNotificationCount(NotificationCountType.Total) ?? 0;
  }
  return n;
}

export function titleFor(total: number): string {
  return total > 0 ? `(${total > 99 ? "99+" : total}) WSPR` : "WSPR";
}

export function useUnreadBadge(client: MatrixClient): number {
  useEvents(client, EVENTS);
  const total = unreadTotal(client);
  useEffect(() => {
    document.title = titleFor(total);
    const nav = navigator as Navigator & { setAppBadge?: (n?: number) => Promise<void>; clearAppBadge?: () => Promise<void> };
    if (total > 0) nav.setAppBadge?.(total).catch(() => {});
    else nav.clearAppBadge?.().catch(() => {});
  }, [total]);
  useEffect(() => () => void (document.title = "WSPR"), []);
  return total;
}
