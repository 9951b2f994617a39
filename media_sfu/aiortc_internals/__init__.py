"""The only part of the SFU that touches aiortc's and aioice's internals (aiortc pinned to 1.16.0).

aiortc has no packet-level API and no hooks for the SFU's ICE, simulcast or msid needs, so
the SFU reaches into it. All of that happens in this package, and nowhere else:

* other SFU modules import from ``aiortc``/``aioice`` only names of their top-level
  ``__all__`` (the documented API), touch no underscore attribute of their objects, and get
  everything else from here;
* every name used here that is not documented API is listed, with its expected shape and what
  the SFU uses it for, in :mod:`.pinned`; :func:`check_internals` verifies the list (at SFU
  startup, and in ``tests/media_sfu/test_aiortc_internals``, which also checks the two rules
  above by reading the source), so an aiortc upgrade that moves one fails with one line per
  name instead of silently forwarding nothing;
* aiortc objects are changed in two ways only: a method replaced on one instance
  (:func:`.pinned.replace_on_instance`: receivers, senders and RTP routers are created inside
  ``RTCPeerConnection``, so wrapping the instance is the narrowest hook), and two module
  globals replaced process-wide where aiortc offers no per-connection hook
  (:func:`.ice.install_ice`), whose replacements behave like the originals outside SFU code.
  The RID header extensions are added to aiortc's extension list
  (:func:`.negotiation.install_rid_extensions`). All three are idempotent (:func:`install`).

Modules: :mod:`.receive` (tap packets before the jitter buffer), :mod:`.send` (forward
encoded packets through a sender), :mod:`.ice` (host candidates from the SFU's policy),
:mod:`.negotiation` (codecs, directions, msid, simulcast routing), :mod:`.pinned` (the list).
"""

from __future__ import annotations

from aiortc import RTCPeerConnection
from aiortc.clock import current_ntp_time
from aiortc.codecs import is_rtx
from aiortc.sdp import candidate_from_sdp

from .ice import SFUIceConnection, install_ice, record_arrivals
from .negotiation import (
    install_rid_extensions,
    keep_codecs,
    negotiated_codecs,
    offer_direction,
    offered_track_ids,
    route_unsignalled_by_mid,
    set_msid_stream,
)
from .pinned import AiortcInternalsChanged, check_internals
from .receive import PacketHandler, ReceiverTap, RtpPacket, SenderReportHandler
from .send import ForwardingSender, SilentTrack

__all__ = [
    "AiortcInternalsChanged",
    "ForwardingSender",
    "PacketHandler",
    "ReceiverTap",
    "RtpPacket",
    "SFUIceConnection",
    "SenderReportHandler",
    "SilentTrack",
    "candidate_from_sdp",
    "check_internals",
    "current_ntp_time",
    "install",
    "install_ice",
    "install_rid_extensions",
    "is_rtx",
    "keep_codecs",
    "negotiated_codecs",
    "offer_direction",
    "offered_track_ids",
    "record_arrivals",
    "route_unsignalled_by_mid",
    "set_msid_stream",
    "verify",
]


def install() -> None:
    """Everything the SFU changes in aiortc/aioice for the process (idempotent)."""
    install_ice()
    install_rid_extensions()


async def verify() -> None:
    """Check every listed internal, including instance attributes on a throwaway transceiver.

    Raises :class:`AiortcInternalsChanged`; the SFU calls it at startup so a broken
    assumption stops it before the first call rather than during one.
    """
    pc = RTCPeerConnection()
    try:
        check_internals(pc.addTransceiver("video"))
    finally:
        await pc.close()
