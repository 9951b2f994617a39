// The call itself: a livekit-client Room connected to the homeserver's SFU. Lazily loaded by CallSlot.
import { type CSSProperties, useEffect, useReducer, useRef, useState } from "react";
import {
  ConnectionState,
  DisconnectReason,
  type Participant,
  type RemoteTrack,
  Room as LkRoom,
  RoomEvent,
  Track,
} from "livekit-client";
import type { MatrixClient, Room } from "matrix-js-sdk";
import { MatrixRTCSessionEvent } from "matrix-js-sdk/lib/matrixrtc/index.js";
import { Avatar } from "../components/Avatar";
import { describeError } from "../lib/errors";
import { callSession, clearCallMembershipOnUnload, discoverLivekitService, getSfuCredentials, joinCall, leaveCall, localpart } from "./rtc";
import { gridShape } from "./layout";
import { IconMic, IconMicOff, IconPhoneOff, IconVideo, IconVideoOff } from "./icons";
import "./call.css";

type Phase = "connecting" | "connected" | "reconnecting" | "failed" | "ended";

const ROOM_EVENTS = [
  RoomEvent.ParticipantConnected,
  RoomEvent.ParticipantDisconnected,
  RoomEvent.TrackSubscribed,
  RoomEvent.TrackUnsubscribed,
  RoomEvent.TrackMuted,
  RoomEvent.TrackUnmuted,
  RoomEvent.TrackPublished,
  RoomEvent.TrackUnpublished,
  RoomEvent.LocalTrackPublished,
  RoomEvent.LocalTrackUnpublished,
  RoomEvent.ActiveSpeakersChanged,
  RoomEvent.ParticipantNameChanged,
  RoomEvent.ConnectionStateChanged,
] as const;

function useNarrow(): boolean {
  const query = "(max-width: 760px)";
  const [narrow, setNarrow] = useState(() => window.matchMedia?.(query).matches ?? false);
  useEffect(() => {
    const mq = window.matchMedia?.(query);
    if (!mq) return;
    const on = () => setNarrow(mq.matches);
    mq.addEventListener("change", on);
    return () => mq.removeEventListener("change", on);
  }, []);
  return narrow;
}

export default function CallView({
  client,
  room,
  minimized,
  overList = false,
  onMinimize,
  onClose,
}: {
  client: MatrixClient;
  room: Room;
  minimized: boolean;
  /** no conversation open (phone room list): the bar sits at the bottom */
  overList?: boolean;
  onMinimize: (m: boolean) => void;
  onClose: () => void;
}) {
  const narrow = useNarrow();
  const [lk] = useState(() => new LkRoom({ adaptiveStream: true, dynacast: true }));
  const [, bump] = useReducer((x: number) => x + 1, 0);
  const [phase, setPhase] = useState<Phase>("connecting");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const joined = useRef(false);

  useEffect(() => {
    let cancelled = false;
    const session = callSession(client, room);
    const leave = () => {
      if (!joined.current) return;
      joined.current = false;
      void leaveCall(client, room).catch(() => {});
    };
    const onChange = () => bump();
    for (const e of ROOM_EVENTS) lk.on(e, onChange);
    const onState = (s: ConnectionState) => {
      if (s === ConnectionState.Reconnecting || s === ConnectionState.SignalReconnecting) setPhase("reconnecting");
      else if (s === ConnectionState.Connected) setPhase("connected");
    };
    const onDisconnected = (reason?: DisconnectReason) => {
      if (cancelled) return;
      leave();
      if (reason !== DisconnectReason.CLIENT_INITIATED) {
        setPhase("ended");
        setError("The call was disconnected.");
      }
    };
    // The SDK gave up sending our membership (e.g. no power for call.member state in this room): media
    // still flows; only the room's "in call" list (and Element Call's) won't show us.
    const onMembershipError = (e: unknown) => {
      console.warn("[wspr] call membership not sent", e);
      if (cancelled) return;
      const forbidden = (e as { errcode?: unknown } | null)?.errcode === "M_FORBIDDEN";
      const f = describeError(e);
      setError(
        forbidden
          ? "You're in the call, but this room doesn't let you announce it, so others may not see that you joined. A room admin can allow it."
          : `You're in the call, but others may not see that you joined (${f.title}${f.detail ? `: ${f.detail}` : ""}).`,
      );
    };
    lk.on(RoomEvent.ConnectionStateChanged, onState);
    lk.on(RoomEvent.Disconnected, onDisconnected);
    session.on(MatrixRTCSessionEvent.MembershipManagerError, onMembershipError);
    const onUnload = () => {
      if (joined.current) clearCallMembershipOnUnload(client, room);
    };
    window.addEventListener("pagehide", onUnload);

    (async () => {
      const service = await discoverLivekitService(client);
      if (!service) throw new Error("This homeserver does not offer calls (no LiveKit service).");
      const creds = await getSfuCredentials(client, service, room.roomId);
      if (cancelled) return;
      await lk.connect(creds.url, creds.jwt);
      if (cancelled) return;
      joined.current = true;
      setPhase("connected");
      joinCall(client, room, service);
      // no camera or microphone (or permission refused) still lets you join and watch
      await lk.localParticipant.setMicrophoneEnabled(true).catch((e) => console.warn("[wspr] microphone", e));
      await lk.localParticipant.setCameraEnabled(true).catch((e) => console.warn("[wspr] camera", e));
      bump();
    })().catch((e: unknown) => {
      if (cancelled) return;
      console.warn("[wspr] call failed", e);
      setPhase("failed");
      const f = describeError(e);
      const plain = e instanceof Error && !(e instanceof TypeError) && !("errcode" in e) && !("data" in e);
      setError(plain ? e.message : `${f.title}${f.detail ? `. ${f.detail}` : ""}`);
    });

    return () => {
      cancelled = true;
      for (const e of ROOM_EVENTS) lk.off(e, onChange);
      lk.off(RoomEvent.ConnectionStateChanged, onState);
      lk.off(RoomEvent.Disconnected, onDisconnected);
      session.off(MatrixRTCSessionEvent.MembershipManagerError, onMembershipError);
      window.removeEventListener("pagehide", onUnload);
      void lk.disconnect();
      leave();
    };
  }, [client, room, lk]);

  const local = lk.localParticipant;
  const participants: Participant[] = phase === "connecting" || phase === "failed" ? [] : [local, ...lk.remoteParticipants.values()];
  const shape = gridShape(participants.length, narrow);
  const micOn = local.isMicrophoneEnabled;
  const camOn = local.isCameraEnabled;

  async function toggle(kind: "mic" | "camera") {
    setBusy(true);
    try {
      if (kind === "mic") await local.setMicrophoneEnabled(!micOn);
      else await local.setCameraEnabled(!camOn);
    } catch (e) {
      setError(`${kind === "mic" ? "Microphone" : "Camera"}: ${(e as Error)?.message ?? e}`);
    } finally {
      setBusy(false);
      bump();
    }
  }

  return (
    <div className={`call-view ${minimized ? "minimized" : ""} ${overList ? "over-list" : ""}`} data-testid="call-view" data-phase={phase} data-minimized={minimized} role="region" aria-label={`Call in ${room.name}`}>
      <div className="call-top">
        <span className={`call-dot ${phase}`} aria-hidden="true" />
        <div className="call-title">
          <strong className="ellipsis">{minimized ? "In call" : room.name}</strong>
          <span className="call-sub">
            {phase === "connecting"
              ? "Connecting…"
              : phase === "reconnecting"
                ? "Reconnecting…"
                : phase === "failed"
                  ? "Couldn't join the call"
                  : phase === "ended"
                    ? "Call ended"
                    : minimized
                      ? `${room.name} · ${participants.length}`
                      : `${participants.length} in call`}
          </span>
        </div>
        <button className="call-chat-btn" onClick={() => onMinimize(!minimized)} data-testid="call-minimize" aria-label={minimized ? "Return to call" : "Back to chat"}>
          {minimized ? "Return to call" : "Show chat"}
        </button>
      </div>
      {error && (
        <div className="call-error" role="alert" data-testid="call-error">
          {error}
        </div>
      )}
      <div
        className={`call-grid ${shape.rows > (narrow ? 4 : 3) ? "scroll" : ""}`}
        data-testid="call-grid"
        style={{ "--cols": shape.cols, "--rows": shape.rows } as CSSProperties}
      >
        {participants.map((p) => (
          <Tile key={p.identity} client={client} room={room} participant={p} isLocal={p === local} />
        ))}
        {phase === "connecting" && <div className="call-placeholder">Connecting to the call…</div>}
      </div>
      <RemoteAudio lk={lk} />
      <div className="call-controls">
        <button
          className={`call-ctl ${micOn ? "" : "off"}`}
          onClick={() => toggle("mic")}
          disabled={busy || phase !== "connected"}
          aria-pressed={!micOn}
          aria-label={micOn ? "Mute microphone" : "Unmute microphone"}
          title={micOn ? "Mute" : "Unmute"}
          data-testid="call-mic"
        >
          {micOn ? <IconMic /> : <IconMicOff />}
        </button>
        <button
          className={`call-ctl ${camOn ? "" : "off"}`}
          onClick={() => toggle("camera")}
          disabled={busy || phase !== "connected"}
          aria-pressed={!camOn}
          aria-label={camOn ? "Turn camera off" : "Turn camera on"}
          title={camOn ? "Camera off" : "Camera on"}
          data-testid="call-camera"
        >
          {camOn ? <IconVideo /> : <IconVideoOff />}
        </button>
        <button className="call-ctl leave" onClick={onClose} aria-label="Leave call" title="Leave" data-testid="call-leave">
          <IconPhoneOff />
        </button>
      </div>
    </div>
  );
}

function Tile({ client, room, participant, isLocal }: { client: MatrixClient; room: Room; participant: Participant; isLocal: boolean }) {
  const video = useRef<HTMLVideoElement>(null);
  const camPub = participant.getTrackPublication(Track.Source.Camera);
  const micPub = participant.getTrackPublication(Track.Source.Microphone);
  const camTrack = camPub && !camPub.isMuted ? camPub.videoTrack : undefined;
  const micMuted = !micPub || micPub.isMuted;
  // the token service names participants after their Matrix user id
  const userId = participant.name?.startsWith("@") ? participant.name : participant.identity.replace(/:[^:]*$/, "");
  const member = room.getMember(userId);
  const name = isLocal ? "You" : (member?.name ?? localpart(userId));

  useEffect(() => {
    const el = video.current;
    if (!el || !camTrack) return;
    camTrack.attach(el);
    return () => {
      camTrack.detach(el);
    };
  }, [camTrack]);

  return (
    <div
      className={`call-tile ${participant.isSpeaking ? "speaking" : ""} ${isLocal ? "local" : ""}`}
      data-testid="call-tile"
      data-identity={participant.identity}
      data-user-id={userId}
      data-local={isLocal}
      data-camera={camTrack ? "on" : "off"}
      data-mic={micMuted ? "muted" : "on"}
      data-speaking={participant.isSpeaking}
    >
      {camTrack ? (
        <video ref={video} className={isLocal ? "mirror" : ""} autoPlay playsInline muted data-testid="call-video" />
      ) : (
        <div className="call-avatar">
          <Avatar client={client} id={userId} name={member?.name ?? localpart(userId)} mxc={member?.getMxcAvatarUrl()} size={88} />
        </div>
      )}
      <div className="call-name">
        {micMuted ? <IconMicOff width={14} height={14} aria-label="muted" data-testid="tile-muted" /> : <span className="call-level" aria-hidden="true"><i /><i /><i /></span>}
        <span className="ellipsis">{name}</span>
      </div>
    </div>
  );
}

/** Plays every remote microphone (tiles only carry video). */
function RemoteAudio({ lk }: { lk: LkRoom }) {
  const holder = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const attached = new Map<RemoteTrack, HTMLMediaElement>();
    const add = (track: RemoteTrack) => {
      if (track.kind !== Track.Kind.Audio || attached.has(track)) return;
      const el = track.attach();
      el.dataset.testid = "call-audio";
      holder.current?.appendChild(el);
      attached.set(track, el);
    };
    const remove = (track: RemoteTrack) => {
      const el = attached.get(track);
      if (!el) return;
      track.detach(el);
      el.remove();
      attached.delete(track);
    };
    for (const p of lk.remoteParticipants.values()) for (const pub of p.audioTrackPublications.values()) if (pub.track) add(pub.track);
    lk.on(RoomEvent.TrackSubscribed, add);
    lk.on(RoomEvent.TrackUnsubscribed, remove);
    return () => {
      lk.off(RoomEvent.TrackSubscribed, add);
      lk.off(RoomEvent.TrackUnsubscribed, remove);
      for (const t of [...attached.keys()]) remove(t);
    };
  }, [lk]);
  return <div ref={holder} hidden />;
}
