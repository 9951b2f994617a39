"""Send already-encoded RTP through an aiortc sender.

aiortc's ``RTCRtpSender`` always pulls frames from a track and encodes them. An SFU has the
packets already. :class:`ForwardingSender` drives a sender whose track never yields a frame
(:class:`SilentTrack`) and writes rewritten packets straight to its DTLS transport. It keeps
them in its own history so it answers the subscriber's NACKs (with RTX when negotiated),
updates the counters aiortc's RTCP sender reports are built from, and turns the subscriber's
PLI/FIR (which aiortc would turn into "encode a keyframe") into a callback.

The sender is created inside ``RTCPeerConnection.addTransceiver``, so its methods are
replaced on that one instance (:func:`~.pinned.replace_on_instance`), not on the class.
"""

from __future__ import annotations

import asyncio
import random
import struct
import types
from collections.abc import Callable
from typing import NoReturn

from aioice.ice import StunProtocol
from aiortc import MediaStreamTrack, RTCDtlsTransport, RTCRtpSender
from aiortc.clock import current_ntp_time
from aiortc.codecs import is_rtx
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpSendParameters
from aiortc.rtp import RtpPacket

from .pinned import check_internals, replace_on_instance

# name-mangled sender-report counters of RTCRtpSender (listed in pinned.ATTRS)
_SR_NTP = "_RTCRtpSender__ntp_timestamp"
_SR_RTP = "_RTCRtpSender__rtp_timestamp"
_SR_OCTETS = "_RTCRtpSender__octet_count"
_SR_PACKETS = "_RTCRtpSender__packet_count"
_HEADER = struct.Struct("!BBHII")
_SEQ = struct.Struct("!H")
_SSRC = struct.Struct("!I")


class SilentTrack(MediaStreamTrack):
    """A track that never produces a frame: it parks the sender's encode loop for good.

    Its id becomes the sender's msid track id, which LiveKit clients read as the track SID.
    """

    def __init__(self, kind: str, track_id: str) -> None:
        super().__init__()
        self.kind = kind
        self._sfu_track_id = track_id
        self._sfu_never: asyncio.Future[None] = asyncio.get_event_loop().create_future()

    @property
    def id(self) -> str:
        return self._sfu_track_id

    async def recv(self) -> NoReturn:
        await self._sfu_never
        raise RuntimeError("unreachable")

    def stop(self) -> None:
        super().stop()
        if not self._sfu_never.done():
            self._sfu_never.cancel()


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
        # aiortc's own send, from the class: never a previous wrapper's
        self._orig_send = types.MethodType(RTCRtpSender.send, sender)
        # until the publisher's first SR arrives, SRs map "now" to the last timestamp sent
        self._sr_from_publisher = False
        replace_on_instance(sender, "send", self._send_parameters)
        # aiortc would force its encoder to produce a keyframe; we ask the publisher instead
        replace_on_instance(sender, "_send_keyframe", on_keyframe_request)
        replace_on_instance(sender, "_retransmit", self._retransmit)

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
            plain = (_HEADER.pack(0x80, (src.marker << 7) | self.payload_type, seq, ts, s._ssrc)
                     + (payload or src.payload))
        self._history[seq % self.HISTORY] = plain
        _transmit(dtls, plain)
        # counters for aiortc's RTCP sender reports
        v = self._vars
        if not self._sr_from_publisher:
            v[_SR_NTP] = current_ntp_time()
            v[_SR_RTP] = ts
        v[_SR_OCTETS] += len(src.payload)
        v[_SR_PACKETS] += 1
        self.packets += 1
        return True

    async def _retransmit(self, sequence_number: int) -> None:
        """Answer a subscriber's NACK from our history (RTX-wrapped when negotiated)."""
        seq = sequence_number
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


def _transmit(dtls: RTCDtlsTransport, plain: bytes) -> None:
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
