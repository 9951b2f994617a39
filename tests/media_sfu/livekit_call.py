"""Drive real LiveKit Python SDK clients (Rust core) through a call on an in-process SFU."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from livekit import rtc

from media_sfu.config import SFUConfig
from media_sfu.server import SFUServer
from media_sfu.tokens import mint_access_token

log = logging.getLogger(__name__)

API_KEY = "testkey"
API_SECRET = "s" * 40
WIDTH, HEIGHT = 320, 240  # < 480 px: the Rust core publishes one encoding (no simulcast)

COLOURS = [(230, 30, 30), (30, 200, 30), (40, 40, 230), (220, 220, 40), (200, 40, 200)]
TONES = [440.0, 660.0, 880.0, 550.0, 770.0]


def sfu_config(**extra) -> SFUConfig:
    d = {
        "bind_address": "127.0.0.1",
        "port": 0,
        "api_key": API_KEY,
        "api_secret": API_SECRET,
        "rtc": {"public_ip": "127.0.0.1", "udp_port_min": 41000, "udp_port_max": 41999},
    }
    d.update(extra)
    return SFUConfig.from_dict(d)


@dataclass
class Received:
    video_frames: int = 0
    size: tuple[int, int] = (0, 0)
    colour: tuple[int, int, int] | None = None
    audio_frames: int = 0
    loud_audio_frames: int = 0


@dataclass
class CallClient:
    identity: str
    index: int
    room: rtc.Room = field(default_factory=rtc.Room)
    received: dict[tuple[str, str], Received] = field(default_factory=dict)
    tasks: list[asyncio.Task] = field(default_factory=list)
    disconnected_peers: list[str] = field(default_factory=list)
    active_speakers: set[str] = field(default_factory=set)
    muted_seen: list[tuple[str, str]] = field(default_factory=list)
    unpublished_seen: list[tuple[str, str]] = field(default_factory=list)
    data_seen: list[tuple[str, bytes, str]] = field(default_factory=list)
    local_tracks: dict[str, rtc.LocalVideoTrack | rtc.LocalAudioTrack] = field(default_factory=dict)

    def rx(self, identity: str, kind: str) -> Received:
        return self.received.setdefault((identity, kind), Received())

    async def join(self, url: str, room_name: str, e2ee_key: bytes | None = None, dynacast: bool = False,
                   auto_subscribe: bool = True, token: str | None = None) -> None:
        """``token``: a JWT from the homeserver's token service; by default one is minted here."""
        if token is None:
            token = mint_access_token(API_KEY, API_SECRET, self.identity, room_name, name=self.identity)

        @self.room.on("track_subscribed")
        def _on_track(track, publication, participant):
            if track.kind == rtc.TrackKind.KIND_VIDEO:
                self.tasks.append(asyncio.ensure_future(self._consume_video(track, participant.identity)))
            elif track.kind == rtc.TrackKind.KIND_AUDIO:
                self.tasks.append(asyncio.ensure_future(self._consume_audio(track, participant.identity)))

        @self.room.on("participant_disconnected")
        def _on_gone(participant):
            self.disconnected_peers.append(participant.identity)

        @self.room.on("track_muted")
        def _on_muted(participant, publication):
            self.muted_seen.append((participant.identity, publication.sid))

        @self.room.on("data_received")
        def _on_data(packet):
            who = packet.participant.identity if packet.participant else ""
            self.data_seen.append((who, bytes(packet.data), packet.topic or ""))

        @self.room.on("track_unpublished")
        def _on_unpublished(publication, participant):
            self.unpublished_seen.append((participant.identity, publication.sid))

        @self.room.on("active_speakers_changed")
        def _on_speakers(speakers):
            self.active_speakers = {p.identity for p in speakers}

        options = rtc.RoomOptions(auto_subscribe=auto_subscribe, dynacast=dynacast)
        if e2ee_key is not None:
            options.encryption = rtc.E2EEOptions(key_provider_options=rtc.KeyProviderOptions(shared_key=e2ee_key))
        await self.room.connect(url, token, options)

    async def publish(self, audio: bool = True, size: tuple[int, int] = (WIDTH, HEIGHT)) -> None:
        vsrc = rtc.VideoSource(*size)
        vtrack = rtc.LocalVideoTrack.create_video_track("camera", vsrc)
        self.video_publication = await self.room.local_participant.publish_track(
            vtrack, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA))
        self.local_tracks["video"] = vtrack
        self.tasks.append(asyncio.ensure_future(self._feed_video(vsrc, *size)))
        if not audio:
            return
        asrc = rtc.AudioSource(48000, 1)
        atrack = rtc.LocalAudioTrack.create_audio_track("mic", asrc)
        await self.room.local_participant.publish_track(
            atrack, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
        self.local_tracks["audio"] = atrack
        self.tasks.append(asyncio.ensure_future(self._feed_audio(asrc)))

    async def _feed_video(self, src: rtc.VideoSource, width: int = WIDTH, height: int = HEIGHT) -> None:
        r, g, b = COLOURS[self.index % len(COLOURS)]
        buf = np.empty((height, width, 4), dtype=np.uint8)
        buf[:, :] = (r, g, b, 255)
        # a moving bar so the encoder keeps producing real frames
        n = 0
        while True:
            frame_buf = buf.copy()
            x = (n * 4) % (width - 16)
            frame_buf[:16, x:x + 16] = (255, 255, 255, 255)
            src.capture_frame(rtc.VideoFrame(width, height, rtc.VideoBufferType.RGBA, frame_buf.tobytes()))
            n += 1
            await asyncio.sleep(1 / 15)

    async def _feed_audio(self, src: rtc.AudioSource) -> None:
        freq = TONES[self.index % len(TONES)]
        sr, spf = 48000, 480
        phase = 0
        start = time.monotonic()
        sent = 0
        while True:
            t = (np.arange(spf) + phase) / sr
            pcm = (0.4 * 32767 * np.sin(2 * math.pi * freq * t)).astype(np.int16)
            phase += spf
            await src.capture_frame(rtc.AudioFrame(pcm.tobytes(), sr, 1, spf))
            sent += 1
            # capture_frame queues; pace to real time
            ahead = start + sent * 0.01 - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)

    async def unpublish_video(self) -> None:
        await self.room.local_participant.unpublish_track(self.video_publication.sid)

    async def _consume_video(self, track, identity: str) -> None:
        rx = self.rx(identity, "video")
        async for ev in rtc.VideoStream(track, format=rtc.VideoBufferType.RGBA):
            f = ev.frame
            rx.video_frames += 1
            rx.size = (f.width, f.height)
            if rx.video_frames % 5 == 1:
                arr = np.frombuffer(bytes(f.data), dtype=np.uint8).reshape(f.height, f.width, 4)
                c = arr[f.height * 3 // 4, f.width // 2]
                rx.colour = (int(c[0]), int(c[1]), int(c[2]))

    async def _consume_audio(self, track, identity: str) -> None:
        rx = self.rx(identity, "audio")
        async for ev in rtc.AudioStream(track, sample_rate=48000, num_channels=1):
            rx.audio_frames += 1
            pcm = np.frombuffer(bytes(ev.frame.data), dtype=np.int16).astype(np.float32)
            if pcm.size and float(np.sqrt(np.mean(pcm * pcm))) > 2000:
                rx.loud_audio_frames += 1

    async def leave(self) -> None:
        for t in self.tasks:
            t.cancel()
        await self.room.disconnect()


def colour_close(a: tuple[int, int, int] | None, b: tuple[int, int, int], tol: int = 40) -> bool:
    return a is not None and all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


async def leave_all(clients: Iterable[CallClient], timeout: float = 5) -> None:
    """Teardown: every client leaves; one that cannot (already gone, stuck) does not stop the rest."""
    for c in clients:
        try:
            await asyncio.wait_for(c.leave(), timeout)
        except Exception:
            log.debug("client leave failed during teardown", exc_info=True)


async def wait_for(pred, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(interval)
    return pred()


async def start_sfu(**extra) -> SFUServer:
    server = SFUServer(sfu_config(**extra))
    await server.start()
    return server
