// The bell in the room header: all messages, mentions and keywords only, or mute (see roomRules).
import { useEffect, useRef, useState } from "react";
import { ClientEvent, type MatrixClient, type Room } from "matrix-js-sdk";
import { useEvents } from "../lib/hooks";
import { describeError } from "../lib/errors";
import { getRoomNotifState, ROOM_NOTIF_LABELS, setRoomNotifState, type RoomNotifState } from "./roomRules";
import { IconBell, IconBellOff } from "./icons";
import "./notifications.css";

export function RoomNotificationMenu({ client, room }: { client: MatrixClient; room: Room }) {
  useEvents(client, [ClientEvent.AccountData]);
  const [open, setOpen] = useState(false);
  const [pending, setPending] = useState<RoomNotifState | null>(null);
  const [error, setError] = useState<string | null>(null);
  const menu = useRef<HTMLDivElement>(null);
  const state = pending ?? getRoomNotifState(client, room.roomId);
  // the server's answer arrives with the next sync: show the choice until then
  if (pending && getRoomNotifState(client, room.roomId) === pending) setPending(null);

  useEffect(() => {
    if (!open) return;
    const onDown = (e: PointerEvent) => !menu.current?.contains(e.target as Node) && setOpen(false);
    const onKey = (e: KeyboardEvent) => e.key === "Escape" && setOpen(false);
    window.addEventListener("pointerdown", onDown, true);
    window.addEventListener("keydown", onKey);
    return () => {
      window.removeEventListener("pointerdown", onDown, true);
      window.removeEventListener("keydown", onKey);
    };
  }, [open]);

  async function choose(s: RoomNotifState) {
    setOpen(false);
    setError(null);
    if (s === state) return;
    setPending(s);
    try {
      await setRoomNotifState(client, room.roomId, s);
    } catch (e) {
      setPending(null);
      setError(describeError(e).title);
    }
  }

  const Icon = state === "mute" ? IconBellOff : IconBell;
  return (
    <div className="notif-menu" ref={menu}>
      <button className={`icon-btn notif-${state}`} aria-label={`Notifications: ${ROOM_NOTIF_LABELS[state].label}`} title={`Notifications: ${ROOM_NOTIF_LABELS[state].label}`} aria-haspopup="menu" aria-expanded={open} onClick={() => setOpen((o) => !o)} data-testid="room-notifications" data-state={state}>
        <Icon />
        {state === "mentions" && <span className="notif-at" aria-hidden="true">@</span>}
      </button>
      {open && (
        <div className="notif-popup" role="menu" aria-label="Notifications for this room" data-testid="room-notifications-menu">
          {(Object.keys(ROOM_NOTIF_LABELS) as RoomNotifState[]).map((s) => (
            <button key={s} role="menuitemradio" aria-checked={s === state} className={s === state ? "on" : ""} onClick={() => void choose(s)} data-testid={`notif-${s}`}>
              <strong>{ROOM_NOTIF_LABELS[s].label}</strong>
              <span className="muted small">{ROOM_NOTIF_LABELS[s].detail}</span>
            </button>
          ))}
        </div>
      )}
      {error && <div className="notif-error alert alert-error small" role="alert" onClick={() => setError(null)}>{error}</div>}
    </div>
  );
}
