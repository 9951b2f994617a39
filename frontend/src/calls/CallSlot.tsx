import type { MatrixClient, Room } from "matrix-js-sdk";
import { useCallMembers } from "./rtc";
import { callStore, useActiveCall } from "./store";
import { IconVideo } from "./icons";
import "./slot.css";

/** Calls are on unless the build sets VITE_WSPR_CALLS=0. */
export const callsEnabled = import.meta.env.VITE_WSPR_CALLS !== "0";

/**
 * The room header's call button: starts or joins the room's group call (MatrixRTC with a LiveKit SFU),
 * shows "Join call (N)" while members have live `org.matrix.msc3401.call.member` state, and brings a
 * tucked-away call back. The call itself lives in CallHost. The room's MatrixRTC session keeps the
 * count fresh (memberships arriving, leaving, expiring).
 */
export function CallSlot({ client, room }: { client: MatrixClient; room: Room }) {
  const call = useActiveCall();
  const members = useCallMembers(client, room);

  if (!callsEnabled || room.getMyMembership() !== "join") return null;
  const inThisCall = call?.roomId === room.roomId;
  const me = client.getSafeUserId();
  const myDevice = client.getDeviceId();
  const others = members.filter((m) => !(m.userId === me && m.deviceId === myDevice));
  const count = new Set(members.map((m) => `${m.userId}|${m.deviceId}`)).size;
  const live = others.length > 0 || inThisCall;

  return (
    <button
      className={`call-btn ${live ? "call-btn-live" : "icon-btn"}`}
      onClick={() => (inThisCall ? callStore.setMinimized(false) : callStore.start(room.roomId))}
      disabled={inThisCall && !call?.minimized}
      aria-label={inThisCall ? "Return to call" : live ? `Join call (${count} in call)` : "Start call"}
      title={inThisCall ? "Return to the call" : live ? `Call in progress (${count}): join` : "Start a call"}
      data-testid="call-button"
      data-call-count={count}
    >
      <IconVideo />
      {live && (
        <span className="call-btn-label" data-testid="call-in-progress">
          <span className="call-btn-long">{inThisCall ? "In call" : "Join call"}</span> ({count})
        </span>
      )}
    </button>
  );
}
