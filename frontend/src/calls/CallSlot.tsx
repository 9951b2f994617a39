import type { MatrixClient, Room } from "matrix-js-sdk";

/**
 * Where the room header's call button goes.
 *
 * Group calls (MatrixRTC: `org.matrix.msc3401.call.member` state + a LiveKit SFU found via
 * `/_matrix/client/unstable/org.matrix.msc4143/rtc/transports`, joined with `livekit-client`)
 * are not implemented yet. Implement them in this folder:
 *   - `CallSlot` renders the button (and a "join" badge when `call.member` events are live);
 *   - a lazily imported `CallView` owns the livekit-client Room, so the SDK stays out of the main bundle.
 * Enable with the build-time flag VITE_WSPR_CALLS=1 until then.
 */
export function CallSlot(_props: { client: MatrixClient; room: Room }) {
  if (import.meta.env.VITE_WSPR_CALLS !== "1") return null;
  return null;
}
