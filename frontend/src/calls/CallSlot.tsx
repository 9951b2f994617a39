import { lazy, Suspense, useEffect, useState } from "react";
import type { MatrixClient, Room } from "matrix-js-sdk";
import { activeCallMembers } from "./rtc";
import { IconVideo } from "./icons";
import "./slot.css";

// livekit-client (~400 kB) only loads when someone opens a call.
const CallView = lazy(() => import("./CallView"));

/** Calls are on unless the build sets VITE_WSPR_CALLS=0. */
export const callsEnabled = import.meta.env.VITE_WSPR_CALLS !== "0";

/**
 * The room header's call button: starts or joins the room's group call (MatrixRTC with a LiveKit SFU),
 * shows "N in call" while members have live `org.matrix.msc3401.call.member` state, and owns the call view.
 * RoomView re-renders on room state events, which is what keeps the count fresh.
 */
export function CallSlot({ client, room }: { client: MatrixClient; room: Room }) {
  const [open, setOpen] = useState(false);
  const [minimized, setMinimized] = useState(false);
  const [, setNow] = useState(0);
  // memberships expire with time, not only with events
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 30000);
    return () => clearInterval(t);
  }, []);
  // a call belongs to its room: switching rooms leaves it
  useEffect(() => setOpen(false), [room.roomId]);
  useEffect(() => setMinimized(false), [open]);

  if (!callsEnabled || room.getMyMembership() !== "join") return null;
  const me = client.getSafeUserId();
  const myDevice = client.getDeviceId();
  const members = activeCallMembers(room);
  const others = members.filter((m) => !(m.userId === me && m.deviceId === myDevice));
  const count = new Set(members.map((m) => `${m.userId}|${m.deviceId}`)).size;
  const live = others.length > 0;

  return (
    <>
      <button
        className={`call-btn ${live ? "call-btn-live" : "icon-btn"}`}
        onClick={() => (open ? setMinimized(false) : setOpen(true))}
        disabled={open && !minimized}
        aria-label={open ? "Return to call" : live ? `Join call (${count} in call)` : "Start call"}
        title={open ? "Return to the call" : live ? `Call in progress (${count}): join` : "Start a call"}
        data-testid="call-button"
        data-call-count={count}
      >
        <IconVideo />
        {live && (
          <span className="call-btn-label" data-testid="call-in-progress">
            <span className="call-btn-long">{open ? "In call" : "Join call"}</span> ({count})
          </span>
        )}
      </button>
      {open && (
        <Suspense
          fallback={
            <div className="call-view call-loading" role="status">
              Starting call…
            </div>
          }
        >
          <CallView key={room.roomId} client={client} room={room} minimized={minimized} onMinimize={setMinimized} onClose={() => setOpen(false)} />
        </Suspense>
      )}
    </>
  );
}
