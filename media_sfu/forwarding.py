"""Packet forwarding: one published track fans out to one down-track per subscriber."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiortc import RTCRtpCodecParameters, RTCRtpReceiver
from livekit.protocol import models

from . import vp8
from .aiortc_internals import (
    ForwardingSender,
    PacketHandler,
    ReceiverTap,
    RtpPacket,
    SenderReportHandler,
    current_ntp_time,
)
from .rtp_rewrite import RtpRewriter

log = logging.getLogger(__name__)


@dataclass
class ForwardingStats:
    """Process-wide counters, read by the benchmark through the stats endpoint."""

    packets_in: int = 0
    packets_out: int = 0
    bytes_out: int = 0
    # SFU-added latency samples in seconds (tap entry → forwarded copy handed to the socket);
    # only collected when enabled, it costs a perf_counter per copy
    collect_latency: bool = False
    latencies: list[float] = field(default_factory=list)
    # the SFU's own part of it: tap entry (decrypted, parsed) -> copy handed to the socket
    processing: list[float] = field(default_factory=list)

    def reset(self) -> None:
        self.packets_in = self.packets_out = self.bytes_out = 0
        self.latencies = []
        self.processing = []


STATS = ForwardingStats()


# LiveKit's simulcast rids and the VideoQuality they carry (LOW, MEDIUM, HIGH)
RID_QUALITY = {"q": 0, "h": 1, "f": 2}
HIGHEST = 2
LAYER_TIMEOUT = 1.0  # a layer with no packet for this long is considered paused


class PublishedTrack:
    """A publisher's track as received by the SFU, with its subscribers.

    A simulcast video track arrives as several SSRCs (one per layer, told apart by their
    RID header extension) on one receiver; each down-track forwards one layer at a time.
    Layers are indexed by LiveKit VideoQuality (0 low .. 2 high); a plain track is layer 2.
    """

    def __init__(
        self,
        info: models.TrackInfo,
        publisher_sid: str,
        codec: RTCRtpCodecParameters,
        *,
        pli_interval: float,
        on_audio_level: Callable[[int], None] | None = None,
        rids: list[str] | None = None,
    ) -> None:
        self.info = info
        self.sid = info.sid
        self.kind = "audio" if info.type == models.TrackType.AUDIO else "video"
        self.publisher_sid = publisher_sid
        self.codec = codec
        self.is_vp8 = codec.mimeType.lower() == "video/vp8"
        self.pli_interval = pli_interval
        self.on_audio_level = on_audio_level
        self.downtracks: dict[str, DownTrack] = {}
        self._fanout: tuple[DownTrack, ...] = ()  # snapshot iterated per packet
        self.client_track_id: str | None = None  # the publisher's msid track id (= cid)
        self.tap: ReceiverTap | None = None
        self.media_ssrc: int | None = None
        self.closed = False
        # latest sender report of the publisher: (ssrc, ntp, rtp); version bumps on each
        self.sender_report: tuple[int, int, int] | None = None
        self.sr_version = 0
        # simulcast
        rids = rids or []
        self.simulcast = len(rids) > 1
        self.rid_layer = {rid: RID_QUALITY.get(rid, min(i, HIGHEST)) for i, rid in enumerate(rids)}
        self.layer_ssrc: dict[int, int] = {}
        self._ssrc_layer: dict[int, int] = {}
        self._layer_seen: dict[int, float] = {}
        self._available: tuple[int, ...] = ()
        self._available_at = 0.0
        self._last_pli: dict[int, float] = {}
        # dynacast: tell the publisher which layers anyone wants, so it stops encoding the rest
        self.on_subscribed_layers: Callable[[PublishedTrack, int], None] | None = None
        self._announced_max: int | None = None
        self._downgrade: asyncio.TimerHandle | None = None

    def attach_receiver(
        self,
        tap_factory: Callable[[RTCRtpReceiver, PacketHandler, SenderReportHandler], ReceiverTap],
        receiver: RTCRtpReceiver,
    ) -> None:
        self.tap = tap_factory(receiver, self._on_packet, self._on_sender_report)

    def _on_sender_report(self, ssrc: int, ntp: int, rtp_ts: int) -> None:
        self.sender_report = (ssrc, ntp, rtp_ts)
        self.sr_version += 1

    def _layer_of(self, packet: RtpPacket) -> int:
        layer = self._ssrc_layer.get(packet.ssrc)
        if layer is None:
            if not self.simulcast:
                layer = HIGHEST
            else:
                rid = packet.extensions.rtp_stream_id
                layer = self.rid_layer.get(rid) if rid is not None else None
                if layer is None:
                    return -1  # not identified yet: wait for a packet carrying its RID
            self._ssrc_layer[packet.ssrc] = layer
            self.layer_ssrc[layer] = packet.ssrc
        return layer

    def available_layers(self) -> tuple[int, ...]:
        """Layers that carried packets recently (the publisher pauses layers it cannot afford)."""
        now = time.monotonic()
        if now - self._available_at > 0.1:
            self._available = tuple(sorted(q for q, t in self._layer_seen.items() if now - t < LAYER_TIMEOUT))
            self._available_at = now
        return self._available

    async def _on_packet(self, packet: RtpPacket, codec: RTCRtpCodecParameters) -> None:
        if self.closed:
            return
        stats = STATS
        stats.packets_in += 1
        self.media_ssrc = packet.ssrc
        if self.on_audio_level is not None and packet.extensions.audio_level is not None:
            self.on_audio_level(packet.extensions.audio_level[1])
        layer = self._layer_of(packet)
        if layer < 0:
            return
        if self.simulcast:
            self._layer_seen[layer] = time.monotonic()
        fanout = self._fanout
        if not fanout:
            return
        t0 = self.tap.arrival_time() if stats.collect_latency and self.tap else 0.0
        p0 = time.perf_counter() if t0 else 0.0
        # one abs-send-time for all copies: it is the SFU's send time, which the subscriber's
        # bandwidth estimator needs (the publisher's value would include its uplink delay)
        abs_send_time = (current_ntp_time() >> 14) & 0x00FFFFFF
        if not packet.payload:
            return  # padding-only probe: meaningless to the subscribers' decoders
        for dt in fanout:
            dt.forward(packet, layer, abs_send_time)
            if t0:
                stats.latencies.append(time.time() - t0)
                stats.processing.append(time.perf_counter() - p0)

    def request_keyframe(self, layer: int | None = None) -> None:
        """Ask the publisher for a keyframe of a layer, at most once per ``pli_interval``.

        Every subscriber that loses a packet, joins or switches layer asks; the publisher
        must not be flooded.
        """
        if self.kind != "video" or self.tap is None or self.closed:
            return
        ssrc = self.layer_ssrc.get(layer) if layer is not None else None
        if ssrc is None:
            ssrc = self.media_ssrc
        if ssrc is None:
            return
        now = time.monotonic()
        if now - self._last_pli.get(ssrc, -1e9) < self.pli_interval:
            return
        self._last_pli[ssrc] = now
        asyncio.ensure_future(self._send_pli(ssrc))

    async def _send_pli(self, ssrc: int) -> None:
        if self.tap is None:
            return
        try:
            await self.tap.request_keyframe(ssrc)
        except ConnectionError:
            pass

    def add_downtrack(self, dt: DownTrack) -> None:
        self.downtracks[dt.subscriber_sid] = dt
        self._fanout = tuple(self.downtracks.values())
        self.update_subscribed_layers()

    def remove_downtrack(self, subscriber_sid: str) -> None:
        self.downtracks.pop(subscriber_sid, None)
        self._fanout = tuple(self.downtracks.values())
        self.update_subscribed_layers()

    def close(self) -> None:
        self.closed = True
        self.downtracks.clear()
        self._fanout = ()
        if self._downgrade is not None:
            self._downgrade.cancel()

    # dynacast: more layers are enabled at once, fewer only after DOWNGRADE_DELAY (a tile
    # that shrinks for a moment must not cost the publisher a keyframe cycle)
    DOWNGRADE_DELAY = 3.0

    def update_subscribed_layers(self) -> None:
        if not self.simulcast or self.on_subscribed_layers is None or self.closed:
            return
        wanted = max((dt.target_layer for dt in self.downtracks.values() if not dt.paused), default=-1)
        if wanted == self._announced_max:
            if self._downgrade is not None:
                self._downgrade.cancel()
                self._downgrade = None
            return
        if self._announced_max is None or wanted > self._announced_max:
            self._announce(wanted)
        elif self._downgrade is None:
            self._downgrade = asyncio.get_event_loop().call_later(self.DOWNGRADE_DELAY, self._downgrade_now)

    def _downgrade_now(self) -> None:
        self._downgrade = None
        if self.closed:
            return
        wanted = max((dt.target_layer for dt in self.downtracks.values() if not dt.paused), default=-1)
        if self._announced_max is None or wanted < self._announced_max:
            self._announce(wanted)

    def _announce(self, max_layer: int) -> None:
        self._announced_max = max_layer
        if self.on_subscribed_layers is not None:
            self.on_subscribed_layers(self, max_layer)

    def layer_for_size(self, width: int, height: int) -> int:
        """Smallest announced layer at least this big (adaptive stream sends element sizes)."""
        layers = sorted(self.info.layers, key=lambda layer: layer.width * layer.height)
        for layer in layers:
            if layer.width >= width and layer.height >= height:
                return int(layer.quality)
        return HIGHEST


class DownTrack:
    """One published track as sent to one subscriber."""

    def __init__(self, track: PublishedTrack, subscriber_sid: str, sender: ForwardingSender) -> None:
        self.track = track
        self.subscriber_sid = subscriber_sid
        self.sender = sender
        self.rewriter = RtpRewriter(clock_rate=track.codec.clockRate)
        self.paused = False
        self._started = False
        self._sr_version = 0
        self.target_layer = HIGHEST  # what the subscriber asked for
        self.current_layer: int | None = None  # what it gets
        self.picture_ids = vp8.PictureIdRewriter() if track.simulcast and track.is_vp8 else None

    def _wanted_layer(self) -> int | None:
        avail = self.track.available_layers()
        if not avail:
            return None
        below = [q for q in avail if q <= self.target_layer]
        return below[-1] if below else avail[0]

    def forward(self, packet: RtpPacket, layer: int, abs_send_time: int) -> None:
        if self.paused:
            return
        if not self._started:
            if not self.sender.ready:
                return  # no sequence numbers burnt before the subscriber's transport is up
            # a subscriber that starts mid-GOP can decode nothing until the next keyframe
            self._started = True
            self.track.request_keyframe(layer)
        track = self.track
        if layer != self.current_layer:
            if not track.simulcast:
                self.current_layer = layer
            else:
                if layer != self._wanted_layer():
                    return
                # switch only at a keyframe of the new layer; until then keep the old one
                if track.is_vp8 and not vp8.is_keyframe_start(packet.payload):
                    track.request_keyframe(layer)
                    return
                self.current_layer = layer
                if self.picture_ids is not None:
                    self.picture_ids.switch()
        out = self.rewriter.rewrite(packet.ssrc, packet.sequence_number, packet.timestamp)
        if out is None:
            return
        seq, ts = out
        if track.sr_version != self._sr_version and track.sender_report is not None:
            self._sr_version = track.sr_version
            sr_ssrc, ntp, rtp_ts = track.sender_report
            mapped = self.rewriter.map_timestamp(sr_ssrc, rtp_ts)
            if mapped is not None:
                self.sender.set_sender_report(ntp, mapped)
        payload = self.picture_ids.rewrite(packet.payload) if self.picture_ids is not None else None
        if not self.sender.send(packet, seq, ts, abs_send_time, payload):
            return
        STATS.packets_out += 1
        STATS.bytes_out += len(packet.payload)

    def request_keyframe(self) -> None:
        """The subscriber lost the picture (PLI/FIR): ask for its current layer."""
        self.track.request_keyframe(self.current_layer)

    def set_target_layer(self, layer: int) -> None:
        layer = max(0, min(HIGHEST, layer))
        if layer != self.target_layer:
            self.target_layer = layer
            self.track.update_subscribed_layers()

    def set_paused(self, paused: bool) -> None:
        if self.paused and not paused:
            self.track.request_keyframe(self.current_layer)
        if paused != self.paused:
            self.paused = paused
            self.track.update_subscribed_layers()
