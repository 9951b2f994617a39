"""Negotiation state aiortc keeps private, and what the SFU adds to it.

* The codecs aiortc negotiated for a transceiver and the direction the remote offered live in
  ``RTCRtpTransceiver._codecs`` / ``_offerDirection``; the SFU trims the codecs to the
  publisher's first choice (what it will send, and what every subscriber is negotiated for)
  and reads the direction to see whether the publisher still sends on an m-line.
* The msid stream id of a sender (``RTCRtpSender._stream_id``): LiveKit clients find the
  publisher and track from ``<participant sid>|<track sid>``.
* Simulcast (browsers send ``a=rid`` layers without ``a=ssrc``): aiortc knows neither the RID
  header extensions nor routing by MID, see :func:`install_rid_extensions` and
  :func:`route_unsignalled_by_mid`.
"""

from __future__ import annotations

import weakref

from aiortc import (
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpSender,
    RTCRtpTransceiver,
)
from aiortc.codecs import HEADER_EXTENSIONS
from aiortc.rtcdtlstransport import RtpReceiver, RtpRouter
from aiortc.rtp import RtpPacket
from aiortc.sdp import SessionDescription

from .pinned import replace_on_instance

RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RID_URI = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    return list(transceiver._codecs)


def keep_codecs(transceiver: RTCRtpTransceiver, codecs: list[RTCRtpCodecParameters]) -> None:
    """Restrict what aiortc answers and receives on this transceiver to ``codecs``."""
    transceiver._codecs = codecs


def offer_direction(transceiver: RTCRtpTransceiver) -> str | None:
    """The direction of the remote offer's m-line, seen from our side (None before one)."""
    return transceiver._offerDirection


def set_msid_stream(sender: RTCRtpSender, stream_id: str) -> None:
    """The msid stream id aiortc writes for this sender (its track id comes from the track)."""
    sender._stream_id = stream_id


def offered_track_ids(sdp: str) -> dict[str | None, str | None]:
    """MID -> msid track id of each m-line of an offer."""
    offer = SessionDescription.parse(sdp)
    return {m.rtp.muxId: offer.webrtc_track_id(m) for m in offer.media}


def install_rid_extensions() -> None:
    """Make aiortc accept (and parse) the RID header extensions on video (idempotent).

    Process-wide on purpose: aiortc reads its module-level extension list when it answers
    (and offers), with no per-connection setting. It only adds extensions aiortc parses; a
    peer that does not offer them does not get them in an answer.
    """
    video = HEADER_EXTENSIONS["video"]
    uris = {e.uri for e in video}
    for ext_id, uri in ((10, RID_URI), (11, REPAIRED_RID_URI)):
        if uri not in uris:
            video.append(RTCRtpHeaderExtensionParameters(id=ext_id, uri=uri))


_mid_routed: weakref.WeakSet[RtpRouter] = weakref.WeakSet()


def route_unsignalled_by_mid(transceiver: RTCRtpTransceiver) -> None:
    """Route packets with unsignalled SSRCs by their MID header extension (idempotent).

    aiortc 1.16 routes only by signalled SSRC or by a payload type unique across the bundle;
    browser simulcast layers have neither. The router belongs to this transceiver's DTLS
    transport only, so wrapping its ``route_rtp`` changes no other connection.
    """
    router = transceiver.receiver.transport._rtp_router
    if router in _mid_routed:
        return
    _mid_routed.add(router)
    original = router.route_rtp

    def route_rtp(packet: RtpPacket) -> RtpReceiver | None:
        receiver = original(packet)
        if receiver is None:
            mid = packet.extensions.mid
            receiver = router.mid_table.get(mid) if mid is not None else None
            if receiver is not None:
                # learn it: later packets of this SSRC may no longer carry the MID
                router.ssrc_table[packet.ssrc] = receiver
        return receiver

    replace_on_instance(router, "route_rtp", route_rtp)
