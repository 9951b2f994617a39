"""The only module that touches aiortc's private internals (aiortc is pinned to 1.16.0).

aiortc has no packet-level API: an ``RTCRtpReceiver`` always depacketizes, jitter-buffers and
decodes, and an ``RTCRtpSender`` always pulls frames from a track and encodes them. An SFU
needs neither, so:

* :class:`ReceiverTap` replaces a receiver's ``_handle_rtp_packet`` (called by the DTLS
  transport for every decrypted RTP packet) with a version that keeps what the publisher
  needs from a receiver (RTCP receiver-report statistics, REMB bandwidth estimates from
  abs-send-time, RTX unwrapping, NACKs for lost packets) and then hands the packet to the SFU
  instead of the jitter buffer and decoder.
* :class:`ForwardingSender` drives an ``RTCRtpSender`` whose track never yields a frame, and
  writes rewritten packets straight to its DTLS transport. It stores them in the sender's
  own RTP history so aiortc answers the subscriber's NACKs (with RTX when negotiated),
  updates the counters aiortc's RTCP sender reports are built from, and turns the
  subscriber's PLI/FIR (which aiortc would turn into "encode a keyframe") into a callback.

Every private name used is listed in :data:`RECEIVER_PRIVATE_ATTRS`,
:data:`SENDER_PRIVATE_ATTRS` and :data:`PRIVATE_METHODS`; :func:`check_internals` verifies
them at startup and tests/media_sfu/test_aiortc_internals.py covers them, so an aiortc
upgrade that moves them fails loudly instead of silently forwarding nothing.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
from typing import Awaitable, Callable

from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc import clock as aiortc_clock
from aiortc.codecs import is_rtx
from aioice.ice import StunProtocol
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpSendParameters
from aiortc.rtcrtpreceiver import NackGenerator, StreamStatistics
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RtcpPsfbPacket,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
    unwrap_rtx,
)

log = logging.getLogger(__name__)

_R = "_RTCRtpReceiver__"
_S = "_RTCRtpSender__"

RECEIVER_PRIVATE_ATTRS = (
    _R + "codecs",  # dict[payload type, RTCRtpCodecParameters]
    _R + "rtx_ssrc",  # dict[rtx ssrc, media ssrc]
    _R + "nack_generator",  # NackGenerator | None: tells video receivers apart
    _R + "remote_streams",  # dict[ssrc, StreamStatistics] feeding receiver reports
    _R + "remote_bitrate_estimator",  # RemoteBitrateEstimator | None (video only)
    _R + "rtcp_ssrc",  # SSRC used as sender of our RTCP
    _R + "active_ssrc",
)
SENDER_PRIVATE_ATTRS = (
    _S + "ntp_timestamp",  # sender report counters
    _S + "rtp_timestamp",
    _S + "octet_count",
    _S + "packet_count",
)
# Hot send path: RTCDtlsTransport._state/_tx_srtp/transport, RTCIceTransport._connection,
# aioice Connection._nominated -> CandidatePair.protocol/.remote_addr, StunProtocol.transport.
PRIVATE_METHODS = (
    (RTCRtpReceiver, "_handle_rtp_packet"),
    (RTCRtpReceiver, "_send_rtcp"),
    (RTCRtpReceiver, "_send_rtcp_nack"),
    (RTCRtpReceiver, "_send_rtcp_pli"),
    (RTCRtpReceiver, "_handle_rtcp_packet"),
    (RTCRtpSender, "_send_keyframe"),
    (RTCRtpSender, "_retransmit"),
    (RTCRtpSender, "_handle_rtcp_packet"),
    (RTCRtpSender, "send"),
)


class AiortcInternalsChanged(RuntimeError):
    pass


def check_internals(receiver: RTCRtpReceiver | None = None, sender: RTCRtpSender | None = None) -> None:
    """Raise :class:`AiortcInternalsChanged` if a private name this module relies on is gone."""
    for cls, name in PRIVATE_METHODS:
        if not callable(getattr(cls, name, None)):
            raise AiortcInternalsChanged(f"{cls.__name__}.{name} is missing")
    if not hasattr(DtlsState, "CONNECTED"):
        raise AiortcInternalsChanged("aiortc.rtcdtlstransport.State.CONNECTED is missing")
    if not callable(getattr(StunProtocol, "send_data", None)):
        raise AiortcInternalsChanged("aioice StunProtocol.send_data is missing")
    for obj, names in ((receiver, RECEIVER_PRIVATE_ATTRS), (sender, SENDER_PRIVATE_ATTRS)):
        if obj is None:
            continue
        for name in names:
            if not hasattr(obj, name):
                raise AiortcInternalsChanged(f"{type(obj).__name__} has no attribute {name}")
    if sender is not None:
        dtls = sender.transport
        for name in ("_state", "_tx_srtp", "transport"):
            if not hasattr(dtls, name):
                raise AiortcInternalsChanged(f"RTCDtlsTransport has no attribute {name}")
        if not hasattr(dtls.transport, "_connection") or not hasattr(dtls.transport._connection, "_nominated"):
            raise AiortcInternalsChanged("RTCIceTransport._connection._nominated is missing")
        if not hasattr(sender, "_rtx_ssrc"):
            raise AiortcInternalsChanged("RTCRtpSender._rtx_ssrc is missing")


PacketHandler = Callable[[RtpPacket, RTCRtpCodecParameters], Awaitable[None]]
SenderReportHandler = Callable[[int, int, int], None]  # (ssrc, ntp timestamp, rtp timestamp)


class ReceiverTap:
    """Take RTP packets from an ``RTCRtpReceiver`` before its jitter buffer."""

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
        receiver._handle_rtp_packet = self._handle_rtp_packet  # type: ignore[method-assign]
        self._orig_handle_rtcp = receiver._handle_rtcp_packet
        receiver._handle_rtcp_packet = self._handle_rtcp_packet  # type: ignore[method-assign]

    def arrival_time(self) -> float:
        """Wall-clock arrival of the datagram being handled (see ice.RECORD_ARRIVALS)."""
        try:
            return self.receiver.transport.transport._connection.current_arrival
        except AttributeError:
            return 0.0

    async def _handle_rtcp_packet(self, packet) -> None:
        # the publisher's NTP<->RTP mapping, re-based per subscriber, keeps SRs meaningful
        if self.on_sender_report is not None and isinstance(packet, RtcpSrPacket):
            self.on_sender_report(packet.ssrc, packet.sender_info.ntp_timestamp, packet.sender_info.rtp_timestamp)
        await self._orig_handle_rtcp(packet)

    async def _handle_rtp_packet(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        r = self.receiver
        if not r._enabled:
            return
        rbe = getattr(r, _R + "remote_bitrate_estimator")
        if rbe is not None and packet.extensions.abs_send_time is not None:
            # REMB keeps the publisher's bandwidth estimate (and so its bitrate) up
            remb = rbe.add(
                abs_send_time=packet.extensions.abs_send_time,
                arrival_time_ms=arrival_time_ms,
                payload_size=len(packet.payload) + packet.padding_size,
                ssrc=packet.ssrc,
            )
            rtcp_ssrc = getattr(r, _R + "rtcp_ssrc")
            if rtcp_ssrc is not None and remb is not None:
                await r._send_rtcp(
                    RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(*remb))
                )
        codecs = getattr(r, _R + "codecs")
        codec = codecs.get(packet.payload_type)
        if codec is None:
            return
        streams = getattr(r, _R + "remote_streams")
        stats = streams.get(packet.ssrc)
        if stats is None:
            stats = streams[packet.ssrc] = StreamStatistics(codec.clockRate)
        stats.add(packet)
        if is_rtx(codec):
            original_ssrc = getattr(r, _R + "rtx_ssrc").get(packet.ssrc) or self._learn_rtx(packet)
            apt = codec.parameters.get("apt")
            if original_ssrc is None or len(packet.payload) < 2 or not isinstance(apt, int) or apt not in codecs:
                return
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)
            codec = codecs[apt]
        elif packet.ssrc not in self._media_ssrcs:
            self._media_ssrcs.add(packet.ssrc)
        if packet.extensions.rtp_stream_id is not None:
            self._ssrc_by_rid[packet.extensions.rtp_stream_id] = packet.ssrc
        if getattr(r, _R + "nack_generator") is not None:  # video receivers only
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


class SilentTrack(MediaStreamTrack):
    """A track that never produces a frame: it parks the sender's encode loop for good.

    Its id becomes the sender's msid track id, which LiveKit clients read as the track SID.
    """

    def __init__(self, kind: str, track_id: str) -> None:
        super().__init__()
        self.kind = kind
        self._id = track_id
        self._never: asyncio.Future[None] = asyncio.get_event_loop().create_future()

    async def recv(self):  # type: ignore[override]
        await self._never
        raise RuntimeError("unreachable")

    def stop(self) -> None:
        super().stop()
        if not self._never.done():
            self._never.cancel()


class ForwardingSender:
    """Write already-encoded RTP packets through an ``RTCRtpSender``'s transport.

    Hot path, run once per packet per subscriber, so it avoids aiortc's per-packet machinery:
    the RTP header and one-byte header extensions are packed directly, and the SRTP-protected
    packet goes straight to the nominated ICE pair's socket (aiortc would await four coroutine
    layers per packet). Plain packets are kept in our own history, which also answers NACKs.
    """

    HISTORY = 1024  # packets; ~1 s of 8 Mbps video, aiortc keeps only 128

    def __init__(self, sender: RTCRtpSender, on_keyframe_request: Callable[[], None]) -> None:
        check_internals(sender=sender)
        self.sender = sender
        self.params: RTCRtpSendParameters | None = None
        self.payload_type: int | None = None
        self.mid: str | None = None
        self.packets = 0
        self.retransmissions = 0
        self._history: dict[int, bytes] = {}
        self._ext_mid = b""
        self._ast_id = 0
        self._audio_level_id = 0
        self._rtx_payload_type: int | None = None
        self._rtx_seq = random.randrange(1 << 15)
        self._vars = sender.__dict__  # aiortc's SR counters live here, name-mangled
        self._orig_send = sender.send
        # until the publisher's first SR arrives, SRs map "now" to the last timestamp sent
        self._sr_from_publisher = False
        sender.send = self._send_parameters  # type: ignore[method-assign]
        # aiortc would force its encoder to produce a keyframe; we ask the publisher instead
        sender._send_keyframe = on_keyframe_request  # type: ignore[method-assign]
        sender._retransmit = self._retransmit  # type: ignore[method-assign]

    async def _send_parameters(self, parameters: RTCRtpSendParameters) -> None:
        if self.params is None:
            self.params = parameters
            self.mid = parameters.muxId
            if parameters.codecs:
                self.payload_type = parameters.codecs[0].payloadType
                for c in parameters.codecs:
                    if is_rtx(c) and c.parameters.get("apt") == self.payload_type:
                        self._rtx_payload_type = c.payloadType
            for ext in parameters.headerExtensions:
                if ext.uri == "urn:ietf:params:rtp-hdrext:sdes:mid" and self.mid:
                    mid = self.mid.encode()
                    self._ext_mid = bytes([(ext.id << 4) | (len(mid) - 1)]) + mid
                elif ext.uri == "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time":
                    self._ast_id = ext.id
                elif ext.uri == "urn:ietf:params:rtp-hdrext:ssrc-audio-level":
                    self._audio_level_id = ext.id
        await self._orig_send(parameters)

    @property
    def ready(self) -> bool:
        return self.payload_type is not None and self.sender.transport._state is DtlsState.CONNECTED

    def send(self, src: RtpPacket, seq: int, ts: int, abs_send_time: int | None,
             payload: bytes | None = None) -> bool:
        """Send ``src``'s payload (or ``payload``) as (seq, ts) on our SSRC; False if the
        transport is not up."""
        s = self.sender
        dtls = s.transport
        if dtls._state is not DtlsState.CONNECTED or self.payload_type is None:
            return False
        ext = self._ext_mid
        if abs_send_time is not None and self._ast_id:
            ext += bytes([(self._ast_id << 4) | 2]) + (abs_send_time & 0xFFFFFF).to_bytes(3, "big")
        level = src.extensions.audio_level
        if level is not None and self._audio_level_id:
            ext += bytes([self._audio_level_id << 4, (0x80 if level[0] else 0) | (level[1] & 0x7F)])
        if ext:
            pad = -len(ext) % 4
            if pad:
                ext += bytes(pad)
            header = _HEADER.pack(0x90, (src.marker << 7) | self.payload_type, seq, ts, s._ssrc)
            plain = header + b"\xbe\xde" + (len(ext) // 4).to_bytes(2, "big") + ext + (payload or src.payload)
        else:
            plain = _HEADER.pack(0x80, (src.marker << 7) | self.payload_type, seq, ts, s._ssrc) + (payload or src.payload)
        self._history[seq % self.HISTORY] = plain
        _transmit(dtls, plain)
        # counters for aiortc's RTCP sender reports
        v = self._vars
        if not self._sr_from_publisher:
            v[_SR_NTP] = aiortc_clock.current_ntp_time()
            v[_SR_RTP] = ts
        v[_SR_OCTETS] += len(src.payload)
        v[_SR_PACKETS] += 1
        self.packets += 1
        return True

    async def _retransmit(self, seq: int) -> None:
        """Answer a subscriber's NACK from our history (RTX-wrapped when negotiated)."""
        plain = self._history.get(seq % self.HISTORY)
        if plain is None or _SEQ.unpack_from(plain, 2)[0] != seq:
            return
        dtls = self.sender.transport
        if dtls._state is not DtlsState.CONNECTED:
            return
        if self._rtx_payload_type is not None:
            # RFC 4588: RTX payload = original sequence number + original payload
            header_len = 12
            if plain[0] & 0x10:
                header_len += 4 + 4 * _SEQ.unpack_from(plain, 14)[0]
            rtx = bytearray(plain[:header_len])
            rtx[1] = (plain[1] & 0x80) | self._rtx_payload_type
            _SEQ.pack_into(rtx, 2, self._rtx_seq)
            _SSRC.pack_into(rtx, 8, self.sender._rtx_ssrc)
            plain = bytes(rtx) + plain[2:4] + plain[header_len:]
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
        self.retransmissions += 1
        _transmit(dtls, plain)

    def set_sender_report(self, ntp_timestamp: int, rtp_timestamp: int) -> None:
        """Use the publisher's NTP/RTP pair (RTP already rewritten) in our sender reports."""
        self._sr_from_publisher = True
        self._vars[_SR_NTP] = ntp_timestamp
        self._vars[_SR_RTP] = rtp_timestamp


_SR_NTP = _S + "ntp_timestamp"
_SR_RTP = _S + "rtp_timestamp"
_SR_OCTETS = _S + "octet_count"
_SR_PACKETS = _S + "packet_count"
_HEADER = struct.Struct("!BBHII")
_SEQ = struct.Struct("!H")
_SSRC = struct.Struct("!I")


def _transmit(dtls, plain: bytes) -> None:
    """SRTP-protect and send on the nominated pair, synchronously when it is a UDP socket."""
    data = dtls._tx_srtp.protect(plain)
    pair = dtls.transport._connection._nominated.get(1)
    if pair is None:
        return
    protocol = pair.protocol
    if isinstance(protocol, StunProtocol):
        protocol.transport.sendto(data, pair.remote_addr)
    else:  # TURN relay: aioice's async path
        asyncio.ensure_future(protocol.send_data(data, pair.remote_addr))
