"""Take RTP packets from an aiortc receiver before its jitter buffer.

aiortc has no packet-level receive API: an ``RTCRtpReceiver`` always depacketizes,
jitter-buffers and decodes. :class:`ReceiverTap` replaces the receiver's
``_handle_rtp_packet`` (called by the DTLS transport for every decrypted RTP packet) on that
one receiver with a version that keeps what the publisher needs from a receiver (RTCP
receiver-report statistics, REMB bandwidth estimates from abs-send-time, RTX unwrapping,
NACKs for lost packets) and then hands the packet to the SFU instead of the jitter buffer and
decoder. The receiver is created inside ``RTCPeerConnection``, so replacing the method on the
instance is the narrowest hook there is (subclassing would mean patching aiortc's module).
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Callable

from aiortc import RTCRtpCodecParameters, RTCRtpReceiver
from aiortc.codecs import is_rtx
from aiortc.rtcrtpreceiver import NackGenerator, StreamStatistics
from aiortc.rtp import (
    RTCP_PSFB_APP,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
    unwrap_rtx,
)

from .ice import SFUIceConnection
from .pinned import check_internals, replace_on_instance

PacketHandler = Callable[[RtpPacket, RTCRtpCodecParameters], Awaitable[None]]
SenderReportHandler = Callable[[int, int, int], None]  # (ssrc, ntp timestamp, rtp timestamp)

# name-mangled private attributes of RTCRtpReceiver (listed in pinned.ATTRS)
_CODECS = "_RTCRtpReceiver__codecs"
_RTX_SSRC = "_RTCRtpReceiver__rtx_ssrc"
_NACK_GENERATOR = "_RTCRtpReceiver__nack_generator"
_REMOTE_STREAMS = "_RTCRtpReceiver__remote_streams"
_BITRATE_ESTIMATOR = "_RTCRtpReceiver__remote_bitrate_estimator"
_RTCP_SSRC = "_RTCRtpReceiver__rtcp_ssrc"


class ReceiverTap:
    """Take RTP packets from an ``RTCRtpReceiver`` before its jitter buffer.

    One tap per receiver at a time: tapping a receiver again (libwebrtc reuses an m-line for
    the next track) replaces the previous tap's hooks instead of stacking on them.
    """

    def __init__(
        self,
        receiver: RTCRtpReceiver,
        on_packet: PacketHandler,
        on_sender_report: SenderReportHandler | None = None,
    ) -> None:
        check_internals(receiver=receiver)
        self.receiver = receiver
        self.on_packet = on_packet
        self.on_sender_report = on_sender_report
        self.packets = 0
        self.bytes = 0
        # RTX streams that were never signalled (browser simulcast): media SSRC by RID, and
        # the learnt RTX SSRC -> media SSRC
        self._ssrc_by_rid: dict[str, int] = {}
        self._learnt_rtx: dict[int, int] = {}
        self._media_ssrcs: set[int] = set()
        self._nack: dict[int, NackGenerator] = {}
        # aiortc's own handler, from the class: never a previous tap's
        self._orig_handle_rtcp = types.MethodType(RTCRtpReceiver._handle_rtcp_packet, receiver)
        replace_on_instance(receiver, "_handle_rtp_packet", self._handle_rtp_packet)
        replace_on_instance(receiver, "_handle_rtcp_packet", self._handle_rtcp_packet)

    def arrival_time(self) -> float:
        """Wall-clock arrival of the datagram being handled (see ice.record_arrivals)."""
        connection = self.receiver.transport.transport._connection
        return connection.current_arrival if isinstance(connection, SFUIceConnection) else 0.0

    async def _handle_rtcp_packet(self, packet: AnyRtcpPacket) -> None:
        # the publisher's NTP<->RTP mapping, re-based per subscriber, keeps SRs meaningful
        if self.on_sender_report is not None and isinstance(packet, RtcpSrPacket):
            self.on_sender_report(packet.ssrc, packet.sender_info.ntp_timestamp, packet.sender_info.rtp_timestamp)
        await self._orig_handle_rtcp(packet)

    async def _handle_rtp_packet(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        r = self.receiver
        if not r._enabled:
            return
        rbe = getattr(r, _BITRATE_ESTIMATOR)
        if rbe is not None and packet.extensions.abs_send_time is not None:
            # REMB keeps the publisher's bandwidth estimate (and so its bitrate) up
            remb = rbe.add(
                abs_send_time=packet.extensions.abs_send_time,
                arrival_time_ms=arrival_time_ms,
                payload_size=len(packet.payload) + packet.padding_size,
                ssrc=packet.ssrc,
            )
            rtcp_ssrc = getattr(r, _RTCP_SSRC)
            if rtcp_ssrc is not None and remb is not None:
                await r._send_rtcp(
                    RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(*remb))
                )
        codecs = getattr(r, _CODECS)
        codec = codecs.get(packet.payload_type)
        if codec is None:
            return
        streams = getattr(r, _REMOTE_STREAMS)
        stats = streams.get(packet.ssrc)
        if stats is None:
            stats = streams[packet.ssrc] = StreamStatistics(codec.clockRate)
        stats.add(packet)
        if is_rtx(codec):
            original_ssrc = getattr(r, _RTX_SSRC).get(packet.ssrc) or self._learn_rtx(packet)
            apt = codec.parameters.get("apt")
            if original_ssrc is None or len(packet.payload) < 2 or not isinstance(apt, int) or apt not in codecs:
                return
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
            codec = codecs[apt]
        elif packet.ssrc not in self._media_ssrcs:
            self._media_ssrcs.add(packet.ssrc)
        if packet.extensions.rtp_stream_id is not None:
            self._ssrc_by_rid[packet.extensions.rtp_stream_id] = packet.ssrc
        if getattr(r, _NACK_GENERATOR) is not None:  # video receivers only
            # one generator per SSRC: simulcast layers share this receiver, and aiortc's
            # single generator would read their interleaved sequence spaces as huge losses
            nackgen = self._nack.get(packet.ssrc)
            if nackgen is None:
                nackgen = self._nack[packet.ssrc] = NackGenerator()
            if nackgen.add(packet):
                await r._send_rtcp_nack(packet.ssrc, sorted(nackgen.missing))
        self.packets += 1
        self.bytes += len(packet.payload)
        await self.on_packet(packet, codec)

    def _learn_rtx(self, packet: RtpPacket) -> int | None:
        ssrc = self._learnt_rtx.get(packet.ssrc)
        if ssrc is None:
            rid = packet.extensions.repaired_rtp_stream_id
            if rid is not None:
                ssrc = self._ssrc_by_rid.get(rid)
            elif len(self._media_ssrcs) == 1:
                ssrc = next(iter(self._media_ssrcs))
            if ssrc is not None:
                self._learnt_rtx[packet.ssrc] = ssrc
        return ssrc

    async def request_keyframe(self, media_ssrc: int) -> None:
        await self.receiver._send_rtcp_pli(media_ssrc)
