"""Pin the aiortc 1.16 / aioice 0.13 internals the SFU relies on.

* Every name listed in ``media_sfu.aiortc_internals.pinned`` exists with its expected shape
  (an aiortc upgrade fails here first, one line per broken name).
* Only ``media_sfu/aiortc_internals/`` touches aiortc/aioice internals, every private name it
  uses is listed, and no SFU module patches another module's attributes (read from source).
* Through a real packet path: publisher (aiortc, real VP8 encoder) -> SFU ingress PC
  (ReceiverTap) -> PublishedTrack -> DownTrack -> SFU egress PC (ForwardingSender) ->
  subscriber (aiortc, real VP8 decoder).
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import struct
import tempfile
from pathlib import Path

import aioice
import aiortc
import aiortc.codecs
import aiortc.rtcicetransport
import av
import numpy as np
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    VideoStreamTrack,
)
from aiortc.rtcrtpreceiver import RemoteStreamTrack, RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import RtcpSenderInfo, RtcpSrPacket, RtpPacket
from livekit.protocol import models
from twisted.trial import unittest

import media_sfu
from media_sfu import aiortc_internals
from media_sfu.aiortc_internals import (
    ForwardingSender,
    ReceiverTap,
    SFUIceConnection,
    SilentTrack,
    negotiated_codecs,
    pinned,
    route_unsignalled_by_mid,
    set_msid_stream,
)
from media_sfu.aiortc_internals.negotiation import REPAIRED_RID_URI, RID_URI
from media_sfu.forwarding import DownTrack, PublishedTrack
from media_sfu.ice import IcePolicy, policy_applied

from .asyncio_helper import run

PORT_MIN, PORT_MAX = 42000, 42099

SFU_DIR = Path(media_sfu.__file__).parent
PACKAGE = "aiortc_internals"


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _imported_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names |= {a.asname or a.name for a in node.names}
    return names


def boundary_violations(sfu_dir: Path) -> list[str]:
    """Private aiortc/aioice use outside aiortc_internals/, and runtime patching of other modules."""
    public = {"aiortc": set(aiortc.__all__), "aioice": set(aioice.__all__)}
    out = []
    for path in sorted(sfu_dir.rglob("*.py")):
        rel = path.relative_to(sfu_dir)
        if rel.parts[0] == PACKAGE:
            continue
        tree = ast.parse(path.read_text(), str(path))
        imported = _imported_names(tree)
        for node in ast.walk(tree):
            where = f"{rel}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] in public:
                        out.append(f"{where}: import {a.name} "
                                   f"(only `from {a.name.split('.')[0]} import <documented name>`)")
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                top = node.module.split(".")[0]
                if top in public:
                    for a in node.names:
                        if node.module != top or a.name not in public[top]:
                            out.append(f"{where}: from {node.module} import {a.name} "
                                       f"(only `from {top} import <name in {top}.__all__>`)")
            elif isinstance(node, ast.Attribute) and _is_private(node.attr):
                if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                    out.append(f"{where}: .{node.attr} of another object")
            elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    root = t
                    while isinstance(root, (ast.Attribute, ast.Subscript)):
                        root = root.value
                    if t is not root and isinstance(root, ast.Name) and root.id in imported:
                        out.append(f"{where}: assigns {ast.unparse(t)} (patches an imported name)")
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id in ("setattr", "delattr")):
                out.append(f"{where}: {node.func.id}() (patching belongs in aiortc_internals)")
    return sorted(out, key=lambda v: (v.split(":")[0], int(v.split(":")[1])))


def private_names_used(package_dir: Path) -> dict[str, str]:
    """Underscore names of aiortc/aioice objects the package uses -> first place of use.

    Attributes of anything but ``self`` (and of ``self`` in subclasses of aiortc/aioice
    classes), plus string constants naming one (name-mangled attributes, replaced methods).
    The SFU's own attributes on aiortc objects start with ``_sfu_``.
    """
    used: dict[str, str] = {}

    def use(name: str, where: str) -> None:
        if _is_private(name) and not name.startswith("_sfu_"):
            used.setdefault(name, where)

    for path in sorted(package_dir.glob("*.py")):
        if path.name == "pinned.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        subclasses = {n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)
                      and any(not (isinstance(b, ast.Name) and b.id in ("object", "RuntimeError")) for b in n.bases)}
        foreign_self = set()
        for cls in subclasses:
            for n in ast.walk(cls):
                if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "self":
                    foreign_self.add(id(n))
        for node in ast.walk(tree):
            where = f"{path.name}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Attribute):
                own = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
                if not own or id(node) in foreign_self:
                    use(node.attr, where)
            elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
                  and re.fullmatch(r"_[A-Za-z]\w*", node.value)):
                use(node.value, where)
    return used



def pc_config() -> RTCConfiguration:
    return RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


class SmallVideo(VideoStreamTrack):
    async def recv(self):
        pts, time_base = await self.next_timestamp()
        img = np.full((120, 160, 3), 90, dtype=np.uint8)
        img[:, (pts // 3000) % 150:(pts // 3000) % 150 + 10] = 250
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


async def connect(offerer: RTCPeerConnection, answerer: RTCPeerConnection, policy=None) -> None:
    with policy_applied(policy):
        await offerer.setLocalDescription(await offerer.createOffer())
        await answerer.setRemoteDescription(offerer.localDescription)
        await answerer.setLocalDescription(await answerer.createAnswer())
        await offerer.setRemoteDescription(answerer.localDescription)


async def wait_until(pred, timeout=10.0):
    for _ in range(int(timeout / 0.05)):
        if pred():
            return True
        await asyncio.sleep(0.05)
    return pred()


class Pipeline:
    """Build the chain; keep references for the assertions."""

    async def start(self) -> None:
        aiortc_internals.install()
        self.policy = IcePolicy(public_ip="127.0.0.1", bind_ip="127.0.0.1", port_min=PORT_MIN, port_max=PORT_MAX)
        self.publisher = RTCPeerConnection(pc_config())
        self.pub_sender = self.publisher.addTrack(SmallVideo())
        self.keyframe_requests = 0
        orig = self.pub_sender._send_keyframe

        def spy() -> None:
            self.keyframe_requests += 1
            orig()

        # count the keyframes the SFU makes the publisher encode (the publisher is a test client)
        pinned.replace_on_instance(self.pub_sender, "_send_keyframe", spy)

        with policy_applied(self.policy):
            self.ingress = RTCPeerConnection(pc_config())
        tracks: list[RemoteStreamTrack] = []
        self.ingress.on("track", tracks.append)
        await connect(self.publisher, self.ingress, self.policy)
        transceiver = self.ingress.getTransceivers()[0]
        codec = negotiated_codecs(transceiver)[0]
        info = models.TrackInfo(sid="TR_test", type=models.TrackType.VIDEO)
        self.track = PublishedTrack(info, "PA_pub", codec, pli_interval=0.3)
        self.track.attach_receiver(ReceiverTap, transceiver.receiver)
        self.remote_track = tracks[0]

        with policy_applied(self.policy):
            self.egress = RTCPeerConnection(pc_config())
            t = self.egress.addTransceiver(SilentTrack("video", "TR_test"), direction="sendonly")
        set_msid_stream(t.sender, "PA_pub|TR_test")
        self.fwd = ForwardingSender(t.sender, self.track.request_keyframe)
        self.down = DownTrack(self.track, "PA_sub", self.fwd)
        self.track.add_downtrack(self.down)

        self.subscriber = RTCPeerConnection(pc_config())
        self.frames: list[av.VideoFrame] = []
        self.sub_tracks: list[aiortc.MediaStreamTrack] = []

        def on_sub_track(track):
            self.sub_tracks.append(track)
            asyncio.ensure_future(self._consume(track))

        self.subscriber.on("track", on_sub_track)
        await connect(self.egress, self.subscriber, self.policy)

    async def _consume(self, track) -> None:
        try:
            while True:
                self.frames.append(await track.recv())
        except aiortc.MediaStreamError:
            pass  # the track ended

    async def stop(self) -> None:
        for pc in (self.publisher, self.ingress, self.egress, self.subscriber):
            await pc.close()


class InternalsTests(unittest.TestCase):
    def test_forwarding_path(self):
        async def scenario():
            p = Pipeline()
            await p.start()
            try:
                # media crosses the SFU untouched and decodes at the subscriber
                self.assertTrue(await wait_until(lambda: len(p.frames) >= 10, 15), "no frames decoded")
                self.assertEqual(p.frames[-1].width, 160)
                assert p.track.tap is not None
                self.assertGreater(p.track.tap.packets, 10)
                # instance internals of connected transports (SRTP session, nominated pair)
                self.assertEqual([], pinned.problems(p.egress.getTransceivers()[0]))
                self.assertEqual([], pinned.problems(p.ingress.getTransceivers()[0]))
                # the tap kept packets out of the SFU's own jitter buffer and decoder
                self.assertTrue(p.remote_track._queue.empty())

                # the egress SDP carries LiveKit's msid convention and our ICE policy
                sdp = p.egress.localDescription.sdp
                self.assertIn("a=msid:PA_pub|TR_test TR_test", sdp)
                ports = [int(m) for m in re.findall(r"a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 (\d+) typ host", sdp)]
                self.assertTrue(ports)
                self.assertTrue(all(PORT_MIN <= port <= PORT_MAX for port in ports), ports)

                # the sender's SR counters are fed
                s = p.fwd.sender
                self.assertGreater(vars(s)["_RTCRtpSender__packet_count"], 10)

                # the publisher's sender report is re-based into ours (aiortc sends one every ~1 s)
                self.assertTrue(await wait_until(lambda: p.fwd._sr_from_publisher, 5), "publisher SR not used")
                assert p.track.sender_report is not None
                sr_ssrc, _, sr_rtp = p.track.sender_report
                self.assertEqual(vars(s)["_RTCRtpSender__rtp_timestamp"],
                                 p.down.rewriter.map_timestamp(sr_ssrc, sr_rtp))

                # subscriber PLI -> one rate-limited PLI to the publisher
                await asyncio.sleep(0.4)
                before = p.keyframe_requests
                sub_receiver = p.subscriber.getTransceivers()[0].receiver
                for _ in range(5):
                    await sub_receiver._send_rtcp_pli(s._ssrc)
                self.assertTrue(await wait_until(lambda: p.keyframe_requests > before, 3), "PLI not relayed")
                await asyncio.sleep(0.1)
                self.assertEqual(p.keyframe_requests, before + 1)

                # subscriber NACK -> retransmission from the sender history, as RTX
                sent = []
                transport = s.transport

                class SpySrtp:
                    def __init__(self, inner):
                        self.inner = inner

                    def protect(self, data):
                        sent.append(bytes(data))
                        return self.inner.protect(data)

                    def protect_rtcp(self, data):
                        return self.inner.protect_rtcp(data)

                transport._tx_srtp = SpySrtp(transport._tx_srtp)  # type: ignore[assignment]  # duck-typed spy
                seq = p.down.rewriter.last_seq
                assert seq is not None
                self.assertIn(seq % p.fwd.HISTORY, p.fwd._history)
                await sub_receiver._send_rtcp_nack(s._ssrc, [seq])
                self.assertTrue(await wait_until(
                    lambda: any(len(d) > 12 and not (192 <= d[1] <= 223) and struct.unpack("!I", d[8:12])[0] == s._rtx_ssrc
                                for d in sent), 3), "no RTX retransmission")
                self.assertEqual(p.fwd.retransmissions, 1)
            finally:
                await p.stop()

        run(scenario(), timeout=60)

    def test_ice_policy_only_for_sfu_connections(self):
        async def scenario():
            aiortc_internals.install()
            plain = RTCPeerConnection(pc_config())
            plain.addTransceiver("audio")
            await plain.setLocalDescription(await plain.createOffer())
            sdp = plain.localDescription.sdp
            await plain.close()
            ports = [int(m) for m in re.findall(r"a=candidate:\S+ 1 udp \d+ \S+ (\d+) typ host", sdp)]
            self.assertTrue(ports)
            self.assertFalse(all(PORT_MIN <= port <= PORT_MAX for port in ports))

            policy = IcePolicy(public_ip="198.51.100.7", bind_ip="127.0.0.1", port_min=PORT_MIN, port_max=PORT_MIN + 1)
            with policy_applied(policy):
                pc = RTCPeerConnection(pc_config())
                pc.addTransceiver("audio")
                await pc.setLocalDescription(await pc.createOffer())
            sdp = pc.localDescription.sdp
            await pc.close()
            self.assertRegex(sdp, r"a=candidate:\S+ 1 udp \d+ 198\.51\.100\.7 4200[01] typ host")
            self.assertNotIn("192.0.2", sdp.split("a=candidate", 1)[1])

        run(scenario())


class PinnedInternalsTests(unittest.TestCase):
    """The list in aiortc_internals.pinned is complete, true, and the only way in."""

    def test_listed_internals_have_expected_shape(self):
        async def scenario():
            pc = RTCPeerConnection(pc_config())
            try:
                video = pc.addTransceiver("video")
                audio = pc.addTransceiver("audio")
                self.assertEqual([], pinned.problems(video))
                self.assertEqual([], pinned.problems(audio))
            finally:
                await pc.close()
            # what the SFU runs at startup
            await aiortc_internals.verify()

        run(scenario())

    def test_changed_shape_is_reported_by_name(self):
        # the checker itself can fail, naming the internal, both shapes and the SFU's use
        moved = pinned.Func(RTCRtpReceiver, "_send_rtcp_pli", ("ssrc",), True, "keyframe requests")
        self.assertEqual(pinned._check_func(moved), "expected async def (ssrc), found async def (media_ssrc)")
        gone = pinned.Func(RTCRtpSender, "_gone", (), False, "nothing")
        self.assertEqual(pinned._check_func(gone), "missing")
        typed = pinned.Value(aiortc.codecs, "HEADER_EXTENSIONS", (list,), "rid")
        self.assertEqual(pinned._check_value(typed), "expected list, found dict")

        class Receiver:
            transport = None

        found = pinned.problems(receiver=Receiver())
        self.assertTrue(any("receiver (" in p and "._RTCRtpReceiver__codecs: missing (SFU use: " in p
                            for p in found), found)
        with self.assertRaises(pinned.AiortcInternalsChanged) as cm:
            pinned.check_internals(receiver=Receiver())
        self.assertIn("pinned: aiortc 1.16.0", str(cm.exception))

    def test_no_internals_outside_the_package(self):
        self.assertEqual([], boundary_violations(SFU_DIR))

    def test_boundary_check_catches_violations(self):
        # each line is one way the rule was broken before aiortc_internals existed
        bad = {
            "a.py": "from aiortc.rtp import RtpPacket\n",
            "b.py": "def f(t):\n    return t._codecs\n",
            "c.py": "from . import ice\n\ndef g():\n    ice.RECORD_ARRIVALS = True\n",
            "d.py": "import aiortc.rtcicetransport\n",
            "e.py": "def h(router):\n    setattr(router, 'flag', True)\n",
            "ok.py": "from aiortc import RTCPeerConnection\n\nclass A:\n    def f(self):\n        self._x = 1\n",
        }
        with tempfile.TemporaryDirectory() as tmp:
            for name, src in bad.items():
                Path(tmp, name).write_text(src)
            found = boundary_violations(Path(tmp))
        self.assertEqual(sorted({f.split(":")[0] for f in found}), ["a.py", "b.py", "c.py", "d.py", "e.py"], found)

    def test_every_private_name_used_is_listed(self):
        used = private_names_used(SFU_DIR / PACKAGE)
        listed = pinned.private_names()
        unlisted = {n: w for n, w in used.items() if n not in listed}
        self.assertEqual({}, unlisted, "private aiortc/aioice names used but not listed in pinned.py")
        direct = {f.name for f in pinned.FUNCS if not f.indirect} | {v.name for v in pinned.VALUES} | {
            a.name for a in pinned.ATTRS}
        stale = sorted(n for n in listed & direct if n not in used)
        self.assertEqual([], stale, "listed in pinned.py but no longer used")

    def test_install_is_idempotent_and_scoped(self):
        aiortc_internals.install()
        aiortc_internals.install()
        self.assertIs(aiortc.rtcicetransport.Connection, SFUIceConnection)
        uris = [e.uri for e in aiortc.codecs.HEADER_EXTENSIONS["video"]]
        self.assertEqual((uris.count(RID_URI), uris.count(REPAIRED_RID_URI)), (1, 1))
        self.assertNotIn(RID_URI, [e.uri for e in aiortc.codecs.HEADER_EXTENSIONS["audio"]])

    def test_tapping_again_replaces_the_hooks(self):
        # libwebrtc reuses an m-line for the next track: the receiver is tapped again, and
        # the old tap must be gone, not called in a chain
        async def scenario():
            pc = RTCPeerConnection(pc_config())
            receiver = pc.addTransceiver("video").receiver
            reports: list[tuple[str, int]] = []
            packets: list[str] = []

            def tap(name):
                async def on_packet(packet, codec):
                    packets.append(name)

                return ReceiverTap(receiver, on_packet, lambda ssrc, ntp, rtp: reports.append((name, rtp)))

            tap("old")
            tap("new")
            sr = RtcpSrPacket(ssrc=1, sender_info=RtcpSenderInfo(ntp_timestamp=1, rtp_timestamp=2,
                                                                  packet_count=0, octet_count=0))
            await receiver._handle_rtcp_packet(sr)
            await pc.close()
            self.assertEqual(reports, [("new", 2)])

        run(scenario())

    def test_unsignalled_ssrc_routed_by_mid_and_learnt(self):
        async def scenario():
            pc = RTCPeerConnection(pc_config())
            transceiver = pc.addTransceiver("video")
            router = transceiver.receiver.transport._rtp_router
            # two bundled video m-lines share payload type 96, so aiortc cannot route by it
            other = pc.addTransceiver("video").receiver
            router.register_receiver(transceiver.receiver, ssrcs=[], payload_types=[96], mid="1")
            router.register_receiver(other, ssrcs=[], payload_types=[96], mid="2")
            self.assertIsNone(router.route_rtp(RtpPacket(ssrc=1234, payload_type=96)))
            route_unsignalled_by_mid(transceiver)
            wrapped = router.route_rtp
            route_unsignalled_by_mid(transceiver)  # idempotent: wrapped once
            self.assertIs(router.route_rtp, wrapped)
            pkt = RtpPacket(ssrc=1234, payload_type=96)
            pkt.extensions.mid = "1"
            self.assertIs(router.route_rtp(pkt), transceiver.receiver)
            later = RtpPacket(ssrc=1234, payload_type=96)  # MID no longer sent
            self.assertIs(router.route_rtp(later), transceiver.receiver)
            self.assertIsNone(router.route_rtp(RtpPacket(ssrc=999, payload_type=96)))
            await pc.close()

        run(scenario())

    def test_replacements_keep_aiortc_signatures(self):
        async def scenario():
            pc = RTCPeerConnection(pc_config())
            t = pc.addTransceiver(SilentTrack("video", "TR_x"), direction="sendonly")

            async def on_packet(packet, codec):
                pass

            tap = ReceiverTap(t.receiver, on_packet)
            fwd = ForwardingSender(t.sender, lambda: None)
            route_unsignalled_by_mid(t)
            router = t.receiver.transport._rtp_router
            for obj, name, cls in ((t.receiver, "_handle_rtp_packet", RTCRtpReceiver),
                                   (t.receiver, "_handle_rtcp_packet", RTCRtpReceiver),
                                   (t.sender, "send", RTCRtpSender),
                                   (t.sender, "_retransmit", RTCRtpSender),
                                   (router, "route_rtp", type(router))):
                ours = list(inspect.signature(getattr(obj, name)).parameters)
                theirs = list(inspect.signature(getattr(cls, name)).parameters)[1:]
                self.assertEqual(ours, theirs, name)
            self.assertEqual(t.sender.track.id, "TR_x")
            self.assertIsNotNone(tap)
            self.assertIsNotNone(fwd)
            await pc.close()

        run(scenario())
