"""A synthetic LiveKit v0 client for SFU load tests: real signalling, real SRTP, no codecs.

It speaks the same protobuf signalling as the LiveKit SDKs (``/rtc``, publisher PC offered by
the client, subscriber PC offered by the server) but sends pre-made RTP payloads instead of
encoding, and counts received packets instead of decoding, so that ten of them fit on one
core next to the SFU. Video payloads carry the send time (wall clock) after a one-byte VP8
descriptor, which gives end-to-end latency at the receiver; ``payloads=`` replaces them with
real VP8 (for the transcoding baseline, which must decode).
"""

from __future__ import annotations

import asyncio
import struct
import time
from dataclasses import dataclass, field

import aiohttp
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtp import RtpPacket
from livekit.protocol import models, rtc

from media_sfu.aiortc_internals import ForwardingSender, SilentTrack

MAGIC = 0x10  # VP8 payload descriptor: start of partition, partition 0
MAX_PAYLOAD = 1100


def pc_config() -> RTCConfiguration:
    return RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


@dataclass
class RxStats:
    packets: int = 0
    bytes: int = 0
    frames: int = 0  # RTP marker bits on video = frames
    latencies: list[float] = field(default_factory=list)


@dataclass
class StreamState:
    sender: ForwardingSender
    clock_rate: int
    seq: int = 0
    ts: int = 0


class SyntheticClient:
    def __init__(self, identity: str, url: str, token: str, *, video_kbps: int = 600, fps: int = 30,
                 audio: bool = True, video_payloads: list[list[bytes]] | None = None) -> None:
        self.identity = identity
        self.url = url
        self.token = token
        self.video_kbps = video_kbps
        self.fps = fps
        self.audio = audio
        self.video_payloads = video_payloads
        self.rx = RxStats()
        self.tx_bytes = 0
        self.tx_packets = 0
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.pub: RTCPeerConnection | None = None
        self.sub: RTCPeerConnection | None = None
        self.video: StreamState | None = None
        self.audio_stream: StreamState | None = None
        self._published: dict[str, asyncio.Future] = {}
        self._answer: asyncio.Future | None = None
        self._reader: asyncio.Task | None = None
        self._frame = 0
        self.subscribed_tracks = 0

    async def connect(self, session: aiohttp.ClientSession) -> None:
        self.ws = await session.ws_connect(f"{self.url}/rtc?access_token={self.token}&auto_subscribe=1",
                                           max_msg_size=0)
        msg = await self.ws.receive()
        first = rtc.SignalResponse.FromString(msg.data)
        assert first.WhichOneof("message") == "join", first
        self.sid = first.join.participant.sid
        self._reader = asyncio.ensure_future(self._read())

    async def _send(self, req: rtc.SignalRequest) -> None:
        assert self.ws is not None
        await self.ws.send_bytes(req.SerializeToString())

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.BINARY:
                continue
            resp = rtc.SignalResponse.FromString(msg.data)
            kind = resp.WhichOneof("message")
            if kind == "track_published":
                fut = self._published.get(resp.track_published.cid)
                if fut and not fut.done():
                    fut.set_result(resp.track_published.track)
            elif kind == "answer" and self._answer is not None and not self._answer.done():
                self._answer.set_result(resp.answer)
            elif kind == "offer":
                await self._on_subscriber_offer(resp.offer)

    async def _on_subscriber_offer(self, sd: rtc.SessionDescription) -> None:
        if self.sub is None:
            self.sub = RTCPeerConnection(pc_config())
            self.sub.on("track", self._on_track)
        await self.sub.setRemoteDescription(RTCSessionDescription(sdp=sd.sdp, type="offer"))
        await self.sub.setLocalDescription(await self.sub.createAnswer())
        await self._send(rtc.SignalRequest(answer=rtc.SessionDescription(
            type="answer", sdp=self.sub.localDescription.sdp, id=sd.id)))

    def _on_track(self, track) -> None:
        assert self.sub is not None
        for t in self.sub.getTransceivers():
            if t.receiver.track is track:
                # count only: no jitter buffer, decoder, NACK or REMB work in the load generator
                t.receiver._handle_rtp_packet = self._on_rx
                self.subscribed_tracks += 1

    async def _on_rx(self, packet: RtpPacket, arrival_time_ms: int = 0) -> None:
        rx = self.rx
        rx.packets += 1
        rx.bytes += len(packet.payload)
        if packet.marker and packet.payload_type != 111:
            rx.frames += 1
        p = packet.payload
        if self.video_payloads is None and len(p) >= 9 and p[0] == MAGIC:
            rx.latencies.append(time.time() - struct.unpack_from("!d", p, 1)[0])

    async def publish(self) -> None:
        cids = {"video": f"{self.identity}-v"}
        if self.audio:
            cids["audio"] = f"{self.identity}-a"
        loop = asyncio.get_running_loop()
        for kind, cid in cids.items():
            self._published[cid] = loop.create_future()
            await self._send(rtc.SignalRequest(add_track=rtc.AddTrackRequest(
                cid=cid, name=kind, type=models.TrackType.VIDEO if kind == "video" else models.TrackType.AUDIO,
                source=models.TrackSource.CAMERA if kind == "video" else models.TrackSource.MICROPHONE,
                width=640, height=360)))
        await asyncio.wait_for(asyncio.gather(*self._published.values()), 10)
        self.pub = RTCPeerConnection(pc_config())
        vt = self.pub.addTransceiver(SilentTrack("video", cids["video"]), direction="sendonly")
        self.video = StreamState(ForwardingSender(vt.sender, lambda: None), 90000)
        if self.audio:
            at = self.pub.addTransceiver(SilentTrack("audio", cids["audio"]), direction="sendonly")
            self.audio_stream = StreamState(ForwardingSender(at.sender, lambda: None), 48000)
        await self.pub.setLocalDescription(await self.pub.createOffer())
        self._answer = loop.create_future()
        await self._send(rtc.SignalRequest(offer=rtc.SessionDescription(
            type="offer", sdp=self.pub.localDescription.sdp, id=1)))
        answer = await asyncio.wait_for(self._answer, 10)
        await self.pub.setRemoteDescription(RTCSessionDescription(sdp=answer.sdp, type="answer"))
        for _ in range(200):
            if self.video.sender.ready:
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.identity}: publisher PC did not connect")

    async def _send_packet(self, st: StreamState, payload: bytes, marker: int, audio_level=None) -> None:
        pkt = RtpPacket(marker=marker, payload=payload)
        pkt.extensions.audio_level = audio_level
        if not st.sender.send(pkt, st.seq, st.ts, None):
            return
        st.seq = (st.seq + 1) & 0xFFFF
        self.tx_bytes += len(payload) + 12
        self.tx_packets += 1

    async def send_video_frame(self) -> None:
        st = self.video
        if st is None or not st.sender.ready:
            return
        if self.video_payloads is not None:
            payloads = self.video_payloads[self._frame % len(self.video_payloads)]
        else:
            size = self.video_kbps * 1000 // 8 // self.fps
            n = max(1, -(-size // MAX_PAYLOAD))
            stamp = struct.pack("!d", time.time())
            body = bytes(size // n - 9)
            payloads = [bytes([MAGIC]) + stamp + body for _ in range(n)]
        for i, p in enumerate(payloads):
            await self._send_packet(st, p, int(i == len(payloads) - 1))
        st.ts = (st.ts + 90000 // self.fps) & 0xFFFFFFFF
        self._frame += 1

    async def send_audio_frame(self) -> None:
        st = self.audio_stream
        if st is None or not st.sender.ready:
            return
        await self._send_packet(st, bytes(80), 0, audio_level=(True, 30))
        st.ts = (st.ts + 960) & 0xFFFFFFFF

    async def close(self) -> None:
        if self.ws is not None and not self.ws.closed:
            try:
                await self._send(rtc.SignalRequest(leave=rtc.LeaveRequest(
                    reason=models.DisconnectReason.CLIENT_INITIATED)))
            except Exception:
                pass
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
        for pc in (self.pub, self.sub):
            if pc is not None:
                await pc.close()


async def pace(clients: list[SyntheticClient], duration: float, fps: int = 30) -> None:
    """Send every client's video at ``fps`` and audio every 20 ms for ``duration`` seconds.

    Clients get evenly spread phases, like independent cameras and microphones; sending all
    of them in the same instant would measure burst queueing, not forwarding.
    """
    start = time.monotonic()
    n = max(1, len(clients))
    vint, aint = 1 / fps, 0.02
    next_video = [start + vint * i / n for i in range(n)]
    next_audio = [start + aint * i / n for i in range(n)]
    while True:
        now = time.monotonic()
        if now - start >= duration:
            return
        for i, c in enumerate(clients):
            if now >= next_video[i]:
                await c.send_video_frame()
                next_video[i] += vint
                if next_video[i] < now:  # fell behind (loaded machine): skip, do not burst
                    next_video[i] = now + vint
            if now >= next_audio[i]:
                await c.send_audio_frame()
                next_audio[i] += aint
                if next_audio[i] < now:
                    next_audio[i] = now + aint
        await asyncio.sleep(max(0.0, min(min(next_video), min(next_audio)) - time.monotonic()))
