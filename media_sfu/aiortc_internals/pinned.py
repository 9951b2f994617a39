"""Every aiortc/aioice name outside their documented API that the SFU relies on, and its shape.

aiortc is pinned (1.16.0, aioice 0.13.0) because the SFU reaches into it. This list is the
contract: :func:`problems` checks each name exists with the expected kind, signature or type,
and says what the SFU uses it for, so an upgrade that moves one fails
``tests/media_sfu/test_aiortc_internals`` (and :class:`~media_sfu.server.SFUServer` at
startup) with one clear line per broken name, instead of silently forwarding nothing.

Three kinds of entries:

* :class:`Func` — a method or function, with its parameter names (the SFU calls it with
  keywords, replaces it on one instance with a function of the same signature, or overrides
  it in a subclass) and whether it is a coroutine function;
* :class:`Value` — a class or module attribute with its type;
* :class:`Attr` — an attribute set on instances (in ``__init__``), checked on a real
  transceiver: ``role`` says which object of the transceiver carries it.

``tests/media_sfu/test_aiortc_internals`` also checks that every private name used in this
package is listed here, and that no other SFU module touches any.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from types import ModuleType
from typing import Any

import aioice
import aioice.candidate
import aioice.ice
import aiortc
import aiortc.clock
import aiortc.codecs
import aiortc.mediastreams
import aiortc.rate
import aiortc.rtcdtlstransport
import aiortc.rtcicetransport
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import aiortc.rtp
import aiortc.sdp
import pylibsrtp

PINNED_VERSIONS = "aiortc 1.16.0, aioice 0.13.0"


class AiortcInternalsChanged(RuntimeError):
    pass


@dataclasses.dataclass(frozen=True)
class Func:
    owner: type | ModuleType
    name: str
    params: tuple[str, ...]  # parameter names after self/cls
    is_async: bool
    why: str
    # aiortc calls it and the SFU relies on what it does, without naming it itself
    indirect: bool = False


@dataclasses.dataclass(frozen=True)
class Value:
    owner: type | ModuleType
    name: str
    types: tuple[type, ...]
    why: str


@dataclasses.dataclass(frozen=True)
class Attr:
    role: str  # transceiver, receiver, sender, dtls, ice, connection, router
    name: str
    types: tuple[type, ...]
    why: str


_R = aiortc.rtcrtpreceiver.RTCRtpReceiver
_S = aiortc.rtcrtpsender.RTCRtpSender
_NONE = type(None)

FUNCS: tuple[Func, ...] = (
    Func(_R, "_handle_rtp_packet", ("packet", "arrival_time_ms"), True,
             "ReceiverTap replaces it per receiver: packets leave before the jitter buffer and decoder"),
    Func(_R, "_handle_rtcp_packet", ("packet",), True,
             "ReceiverTap wraps it per receiver to read the publisher's sender reports"),
    Func(_R, "_send_rtcp", ("packet",), True, "ReceiverTap sends REMB through it"),
    Func(_R, "_send_rtcp_nack", ("media_ssrc", "lost"), True, "ReceiverTap sends NACKs through it"),
    Func(_R, "_send_rtcp_pli", ("media_ssrc",), True, "ReceiverTap.request_keyframe"),
    Func(_S, "send", ("parameters",), True,
             "ForwardingSender wraps it per sender to learn payload type, MID and extension ids"),
    Func(_S, "_send_keyframe", (), False,
             "ForwardingSender replaces it per sender: a subscriber's PLI/FIR becomes a PLI to the publisher"),
    Func(_S, "_retransmit", ("sequence_number",), True,
             "ForwardingSender replaces it per sender: NACKs are answered from the SFU's history"),
    Func(_S, "_handle_rtcp_packet", ("packet",), True,
             "turns subscriber NACK/PLI/FIR into _retransmit/_send_keyframe calls", indirect=True),
    Func(aiortc.rtcdtlstransport.RtpRouter, "route_rtp", ("packet",), False,
             "route_unsignalled_by_mid wraps it per DTLS transport (simulcast SSRCs are never signalled)"),
    Func(aiortc.rtcrtpreceiver.NackGenerator, "__init__", (), False, "one NACK generator per simulcast SSRC"),
    Func(aiortc.rtcrtpreceiver.NackGenerator, "add", ("packet",), False, "ReceiverTap NACK generation"),
    Func(aiortc.rtcrtpreceiver.StreamStatistics, "__init__", ("clockrate",), False,
             "ReceiverTap keeps receiver-report statistics"),
    Func(aiortc.rtcrtpreceiver.StreamStatistics, "add", ("packet",), False,
             "ReceiverTap keeps receiver-report statistics"),
    Func(aiortc.rate.RemoteBitrateEstimator, "add", ("arrival_time_ms", "abs_send_time", "payload_size", "ssrc"),
             False, "ReceiverTap feeds it (keyword arguments) for REMB"),
    Func(aiortc.rtp, "unwrap_rtx", ("rtx", "payload_type", "ssrc"), False, "ReceiverTap RTX unwrapping"),
    Func(aiortc.rtp, "pack_remb_fci", ("bitrate", "ssrcs"), False, "ReceiverTap REMB"),
    Func(aiortc.rtp.RtcpPsfbPacket, "__init__", ("fmt", "ssrc", "media_ssrc", "fci"), False,
             "ReceiverTap REMB (keyword arguments)"),
    Func(aiortc.rtp.RtpPacket, "__init__",
             ("payload_type", "marker", "sequence_number", "timestamp", "ssrc", "payload"), False,
             "the packet the tap hands to forwarding (fields read by name)"),
    Func(aiortc.codecs, "is_rtx", ("codec",), False, "telling RTX codecs apart"),
    Func(aiortc.clock, "current_ntp_time", (), False, "abs-send-time and sender-report clock"),
    Func(aiortc.sdp, "candidate_from_sdp", ("sdp",), False, "trickled ICE candidates"),
    Func(aiortc.sdp.SessionDescription, "parse", ("sdp",), False, "msid track ids of the publisher offer"),
    Func(aiortc.sdp.SessionDescription, "webrtc_track_id", ("media",), False,
             "msid track ids of the publisher offer"),
    Func(aioice.ice.Connection, "gather_candidates", (), True,
             "SFUIceConnection overrides it (host-address cache scope)"),
    Func(aioice.ice.Connection, "get_component_candidates", ("component", "addresses", "timeout"), True,
             "SFUIceConnection overrides it: host candidates from the SFU's port range and public address"),
    Func(aioice.ice.Connection, "data_received", ("data", "component"), False,
             "SFUIceConnection overrides it: arrival timestamps (benchmark)"),
    Func(aioice.ice.Connection, "recvfrom", (), True,
             "SFUIceConnection overrides it: arrival timestamps (benchmark)"),
    Func(aioice.ice.StunProtocol, "__init__", ("receiver",), False,
             "SFUIceConnection creates its host sockets' protocols"),
    Func(aioice.ice.StunProtocol, "datagram_received", ("data", "addr"), False,
             "overridden for kernel receive timestamps (benchmark)"),
    Func(aioice.ice.StunProtocol, "send_data", ("data", "addr"), True, "ForwardingSender over a TURN relay"),
    Func(aioice.ice.CandidatePair, "__init__", ("protocol", "remote_candidate"), False,
             "ForwardingSender sends on the nominated pair's protocol"),
    Func(aioice.ice, "get_host_addresses", ("use_ipv4", "use_ipv6"), False,
             "replaced by a cached version for SFU connections (interface enumeration blocks the loop)"),
    Func(aioice.candidate, "candidate_foundation", ("candidate_type", "candidate_transport", "base_address"),
             False, "SFUIceConnection host candidates"),
    Func(aioice.candidate, "candidate_priority", ("candidate_component", "candidate_type", "local_pref"),
             False, "SFUIceConnection host candidates"),
)

VALUES: tuple[Value, ...] = (
    Value(aiortc.rtcdtlstransport.State, "CONNECTED", (aiortc.rtcdtlstransport.State,),
          "ForwardingSender sends only on a connected DTLS transport"),
    Value(aiortc.rtp, "RTCP_PSFB_APP", (int,), "REMB feedback type"),
    Value(aiortc.rtp, "RtcpSrPacket", (type,), "ReceiverTap reads the publisher's sender reports"),
    Value(aiortc.codecs, "HEADER_EXTENSIONS", (dict,), "install_rid_extensions adds the RID extensions"),
    Value(aiortc.rtcicetransport, "Connection", (type,),
          "install_ice points it at SFUIceConnection (RTCIceGatherer builds its Connection from it)"),
    Value(aiortc.mediastreams.MediaStreamTrack, "id", (property,),
          "SilentTrack overrides it: its id becomes the msid track id (the LiveKit track SID)"),
    Value(aioice.ice.CandidatePair, "remote_addr", (property,), "ForwardingSender sends to it"),
)

ATTRS: tuple[Attr, ...] = (
    Attr("receiver", "_enabled", (bool,), "ReceiverTap honours a disabled receiver"),
    Attr("receiver", "_RTCRtpReceiver__codecs", (dict,), "payload type -> codec"),
    Attr("receiver", "_RTCRtpReceiver__rtx_ssrc", (dict,), "signalled RTX SSRC -> media SSRC"),
    Attr("receiver", "_RTCRtpReceiver__nack_generator", (aiortc.rtcrtpreceiver.NackGenerator, _NONE),
         "set only on video receivers: ReceiverTap NACKs video only"),
    Attr("receiver", "_RTCRtpReceiver__remote_streams", (dict,), "SSRC -> StreamStatistics for receiver reports"),
    Attr("receiver", "_RTCRtpReceiver__remote_bitrate_estimator", (aiortc.rate.RemoteBitrateEstimator, _NONE),
         "REMB estimate (video)"),
    Attr("receiver", "_RTCRtpReceiver__rtcp_ssrc", (int, _NONE), "sender SSRC of the SFU's REMB"),
    Attr("sender", "_ssrc", (int,), "SSRC of the forwarded stream"),
    Attr("sender", "_rtx_ssrc", (int,), "SSRC of retransmissions"),
    Attr("sender", "_stream_id", (str,), "msid stream id (LiveKit: '<participant sid>|<track sid>')"),
    Attr("sender", "_RTCRtpSender__ntp_timestamp", (int,), "sender-report NTP time"),
    Attr("sender", "_RTCRtpSender__rtp_timestamp", (int,), "sender-report RTP time"),
    Attr("sender", "_RTCRtpSender__octet_count", (int,), "sender-report octet count"),
    Attr("sender", "_RTCRtpSender__packet_count", (int,), "sender-report packet count"),
    Attr("transceiver", "_codecs", (list,), "negotiated codecs, trimmed to the publisher's first choice"),
    Attr("transceiver", "_offerDirection", (str, _NONE), "whether the publisher still sends on an m-line"),
    Attr("dtls", "_state", (aiortc.rtcdtlstransport.State,), "ForwardingSender checks the transport is up"),
    Attr("dtls", "_tx_srtp", (pylibsrtp.Session, _NONE), "ForwardingSender SRTP-protects packets itself"),
    Attr("dtls", "_rtp_router", (aiortc.rtcdtlstransport.RtpRouter,), "MID fallback routing"),
    Attr("ice", "_connection", (aioice.Connection,), "the aioice connection under the transport"),
    Attr("connection", "_nominated", (dict,), "component -> nominated CandidatePair: ForwardingSender's socket"),
    Attr("connection", "_protocols", (list,), "SFUIceConnection registers its host sockets here"),
    Attr("router", "mid_table", (dict,), "MID fallback routing"),
    Attr("router", "ssrc_table", (dict,), "MID fallback routing learns SSRCs here"),
)

RTP_PACKET_FIELDS = ("payload_type", "marker", "sequence_number", "timestamp", "ssrc", "payload", "padding_size",
                     "extensions")
RTP_EXTENSION_FIELDS = ("abs_send_time", "audio_level", "mid", "rtp_stream_id", "repaired_rtp_stream_id")


@functools.cache
def private_names() -> frozenset[str]:
    """Underscore names of aiortc/aioice objects listed here."""
    names = {c.name for c in FUNCS} | {v.name for v in VALUES} | {a.name for a in ATTRS}
    return frozenset(n for n in names if n.startswith("_") and not n.startswith("__"))


@functools.cache
def _replaceable() -> frozenset[str]:
    return private_names() | {c.name for c in FUNCS}


def _where(owner: type | ModuleType) -> str:
    if isinstance(owner, ModuleType):
        return owner.__name__
    return f"{owner.__module__}.{owner.__qualname__}"


def _shape(is_async: bool, params: tuple[str, ...]) -> str:
    return f"{'async ' if is_async else ''}def ({', '.join(params)})"


def _check_func(c: Func) -> str | None:
    raw = inspect.getattr_static(c.owner, c.name, None)
    if raw is None:
        return "missing"
    is_static = isinstance(raw, staticmethod)
    fn = raw.__func__ if isinstance(raw, (classmethod, staticmethod)) else raw
    if not callable(fn):
        return f"expected a function, found {type(fn).__name__}"
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return "signature unreadable"
    params = [p.name for p in sig.parameters.values()
              if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
    if not isinstance(c.owner, ModuleType) and not is_static:
        params = params[1:]  # self / cls
    found = (inspect.iscoroutinefunction(fn), tuple(params))
    if found != (c.is_async, c.params):
        return f"expected {_shape(c.is_async, c.params)}, found {_shape(*found)}"
    return None


def _check_records() -> list[str]:
    """Fields of the packet objects the SFU reads by name."""
    out = []
    packet = aiortc.rtp.RtpPacket()
    for name in RTP_PACKET_FIELDS:
        if not hasattr(packet, name):
            out.append(f"aiortc.rtp.RtpPacket().{name}: missing (SFU use: forwarding reads it)")
    for name in RTP_EXTENSION_FIELDS:
        if not hasattr(packet.extensions, name):
            out.append(f"aiortc.rtp.RtpPacket().extensions.{name}: missing (SFU use: forwarding reads it)")
    if not isinstance(getattr(aiortc.rtcrtpreceiver.NackGenerator(), "missing", None), set):
        out.append("aiortc.rtcrtpreceiver.NackGenerator().missing: expected set (SFU use: NACK lists)")
    for cls, names in ((aiortc.rtp.RtcpSrPacket, ("ssrc", "sender_info")),
                       (aiortc.rtp.RtcpSenderInfo, ("ntp_timestamp", "rtp_timestamp"))):
        have = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
        for name in names:
            if name not in have:
                out.append(f"{_where(cls)}.{name}: missing field (SFU use: re-basing sender reports)")
    return out


def _check_value(v: Value) -> str | None:
    try:
        value = inspect.getattr_static(v.owner, v.name)
    except AttributeError:
        return "missing"
    if not isinstance(value, v.types):
        return f"expected {' | '.join(t.__name__ for t in v.types)}, found {type(value).__name__}"
    return None


def _roles(transceiver: Any = None, receiver: Any = None, sender: Any = None) -> dict[str, Any]:
    """The objects a transceiver's private attributes live on (missing ones are skipped)."""
    roles: dict[str, Any] = {}
    if transceiver is not None:
        roles["transceiver"] = transceiver
        receiver = receiver or transceiver.receiver
        sender = sender or transceiver.sender
    if receiver is not None:
        roles["receiver"] = receiver
        roles["dtls"] = receiver.transport
    if sender is not None:
        roles["sender"] = sender
        roles["dtls"] = sender.transport
    dtls = roles.get("dtls")
    if dtls is not None:
        roles["ice"] = dtls.transport
        roles["router"] = getattr(dtls, "_rtp_router", None)
        roles["connection"] = getattr(dtls.transport, "_connection", None)
    return roles


@functools.cache
def _static_problems() -> tuple[str, ...]:
    # classes and modules do not change while the process runs: checked once
    out = []
    for c in FUNCS:
        p = _check_func(c)
        if p:
            out.append(f"{_where(c.owner)}.{c.name}: {p} (SFU use: {c.why})")
    for v in VALUES:
        p = _check_value(v)
        if p:
            out.append(f"{_where(v.owner)}.{v.name}: {p} (SFU use: {v.why})")
    out += _check_records()
    return tuple(out)


def problems(transceiver: Any = None, *, receiver: Any = None, sender: Any = None) -> list[str]:
    """One line per listed name that is missing or has another shape.

    Class- and module-level names are always checked (once per process); instance attributes
    only on the objects given (a transceiver covers its receiver, sender and transports).
    """
    out = list(_static_problems())
    if transceiver is not None or receiver is not None or sender is not None:
        roles = _roles(transceiver, receiver, sender)
        for a in ATTRS:
            if a.role not in roles:
                continue
            obj = roles[a.role]
            where = f"{a.role} ({type(obj).__module__}.{type(obj).__qualname__})"
            if obj is None or not hasattr(obj, a.name):
                out.append(f"{where}.{a.name}: missing (SFU use: {a.why})")
            elif not isinstance(getattr(obj, a.name), a.types):
                found = type(getattr(obj, a.name)).__name__
                expected = " | ".join(t.__name__ for t in a.types)
                out.append(f"{where}.{a.name}: expected {expected}, found {found} (SFU use: {a.why})")
    return out


def check_internals(transceiver: Any = None, *, receiver: Any = None, sender: Any = None) -> None:
    """Raise :class:`AiortcInternalsChanged` listing every name of this module that broke."""
    found = problems(transceiver, receiver=receiver, sender=sender)
    if found:
        raise AiortcInternalsChanged(
            f"aiortc/aioice internals the SFU relies on changed (pinned: {PINNED_VERSIONS}; installed: "
            f"aiortc {aiortc.__version__}, aioice {aioice.__version__}):\n  " + "\n  ".join(found))


# ---- the only two ways this package changes aiortc/aioice objects ---------------------

def replace_on_instance(obj: object, name: str, replacement: object) -> None:
    """Replace a method on one aiortc object (not its class): the change is scoped to it.

    Idempotent: replacing again overwrites, it does not stack (callers take the original from
    the class, never from the instance).
    """
    if name not in _replaceable():
        raise AiortcInternalsChanged(f"{name} is not a listed aiortc internal")
    setattr(obj, name, replacement)


def patch_module(module: ModuleType, name: str, value: object) -> None:
    """Replace a module global of aiortc/aioice (process-wide; idempotent). Callers say why."""
    if not any(v.owner is module and v.name == name for v in VALUES) and not any(
            c.owner is module and c.name == name for c in FUNCS):
        raise AiortcInternalsChanged(f"{module.__name__}.{name} is not a listed aiortc internal")
    setattr(module, name, value)
