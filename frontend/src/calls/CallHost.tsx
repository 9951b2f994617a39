import { lazy, Suspense, useEffect, useRef } from "react";
import type { MatrixClient } from "matrix-js-sdk";
import { callStore, useActiveCall } from "./store";

// livekit-client (~480 kB) only loads when someone opens a call.
const CallView = lazy(() => import("./CallView"));

/**
 * Hosts the active call over the conversation pane (the whole screen on phones), independent of
 * which room is open. Opening another room tucks the call into a bar; leaving the app (sign out)
 * leaves the call.
 */
export function CallHost({ client, selectedRoomId }: { client: MatrixClient; selectedRoomId: string | null }) {
  const call = useActiveCall();
  const room = call ? client.getRoom(call.roomId) : null;
  const lastSelected = useRef(selectedRoomId);
  useEffect(() => {
    if (lastSelected.current !== selectedRoomId) {
      lastSelected.current = selectedRoomId;
      callStore.setMinimized(true);
    }
  }, [selectedRoomId]);
  useEffect(() => () => callStore.end(), []);
  useEffect(() => {
    if (call && (!room || room.getMyMembership() !== "join")) callStore.end();
  }, [call, room]);

  if (!call || !room) return null;
  return (
    <Suspense
      fallback={
        <div className="call-view call-loading" role="status">
          Starting call…
        </div>
      }
    >
      <CallView
        key={call.roomId}
        client={client}
        room={room}
        minimized={call.minimized}
        overList={selectedRoomId === null}
        onMinimize={(m) => callStore.setMinimized(m)}
        onClose={() => callStore.end()}
      />
    </Suspense>
  );
}
