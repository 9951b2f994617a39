"""Pin the aiortc 1.16 private internals the SFU relies on, through a real packet path.

publisher (aiortc, real VP8 encoder) -> SFU ingress PC (ReceiverTap) -> PublishedTrack ->
DownTrack -> SFU egress PC (ForwardingSender) -> subscriber (aiortc, real VP8 decoder).

If an aiortc upgrade renames or changes what aiortc_tap touches, these tests fail.
"""

from __future__ import annotations

import asyncio
import re
import struct

import av
import numpy as np
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, VideoStreamTrack
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender
from livekit.protocol import models
from twisted.trial import unittest

from media_sfu import aiortc_tap, ice
from media_sfu.aiortc_tap import ForwardingSender, ReceiverTap, SilentTrack, check_internals
from media_sfu.forwarding import DownTrack, PublishedTrack
from media_sfu.ice import IcePolicy, policy_applied

from .asyncio_helper import run

PORT_MIN, PORT_MAX = 42000, 42099


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
        ice.install()
        self.policy = IcePolicy(public_ip="127.0.0.1", bind_ip="127.0.0.1", port_min=PORT_MIN, port_max=PORT_MAX)
        self.publisher = RTCPeerConnection(pc_config())
        self.pub_sender = self.publisher.addTrack(SmallVideo())
        self.keyframe_requests = 0
        orig = self.pub_sender._send_keyframe

        def spy():
            self.keyframe_requests += 1
            orig()

        self.pub_sender._send_keyframe = spy

        with policy_applied(self.policy):
            self.ingress = RTCPeerConnection(pc_config())
        tracks = []
        self.ingress.on("track", tracks.append)
        await connect(self.publisher, self.ingress, self.policy)
        transceiver = self.ingress.getTransceivers()[0]
        codec = transceiver._codecs[0]
        info = models.TrackInfo(sid="TR_test", type=models.TrackType.VIDEO)
        self.track = PublishedTrack(info, "PA_pub", codec, pli_interval=0.3)
        self.track.attach_receiver(ReceiverTap, transceiver.receiver)
        self.remote_track = tracks[0]

        with policy_applied(self.policy):
            self.egress = RTCPeerConnection(pc_config())
            t = self.egress.addTransceiver(SilentTrack("video", "TR_test"), direction="sendonly")
        t.sender._stream_id = "PA_pub|TR_test"
        self.fwd = ForwardingSender(t.sender, self.track.request_keyframe)
        self.down = DownTrack(self.track, "PA_sub", self.fwd)
        self.track.add_downtrack(self.down)

        self.subscriber = RTCPeerConnection(pc_config())
        self.frames = []
        self.sub_tracks = []

        def on_sub_track(track):
            self.sub_tracks.append(track)
            asyncio.ensure_future(self._consume(track))

        self.subscriber.on("track", on_sub_track)
        await connect(self.egress, self.subscriber, self.policy)

    async def _consume(self, track) -> None:
        try:
            while True:
                self.frames.append(await track.recv())
        except Exception:
            pass

    async def stop(self) -> None:
        for pc in (self.publisher, self.ingress, self.egress, self.subscriber):
            await pc.close()


class InternalsTests(unittest.TestCase):
    def test_private_names_exist(self):
        check_internals()
        for cls, name in aiortc_tap.PRIVATE_METHODS:
            self.assertTrue(callable(getattr(cls, name)), name)

        async def make():
            pc = RTCPeerConnection(pc_config())
            t = pc.addTransceiver("video")
            check_internals(receiver=t.receiver, sender=t.sender)
            self.assertIsInstance(t.receiver, RTCRtpReceiver)
            self.assertIsInstance(t.sender, RTCRtpSender)
            # aiortc keeps the negotiated codecs here; the SFU trims them and reads them
            self.assertIsInstance(t._codecs, list)
            # publisher m-line state read by participant.handle_offer
            self.assertTrue(hasattr(t, "_offerDirection"))
            # simulcast.patch_router_mid_fallback wraps the DTLS transport's RTP router
            router = t.receiver.transport._rtp_router
            self.assertIsInstance(router.mid_table, dict)
            self.assertIsInstance(router.ssrc_table, dict)
            self.assertTrue(callable(router.route_rtp))
            # ice.SFUIceConnection relies on these aioice hooks
            import aioice.ice

            for name in ("get_component_candidates", "data_received", "recvfrom", "gather_candidates"):
                self.assertTrue(callable(getattr(aioice.ice.Connection, name)), name)
            self.assertTrue(callable(aioice.ice.get_host_addresses))
            await pc.close()

        run(make())

    def test_forwarding_path(self):
        async def scenario():
            p = Pipeline()
            await p.start()
            try:
                # media crosses the SFU untouched and decodes at the subscriber
                self.assertTrue(await wait_until(lambda: len(p.frames) >= 10, 15), "no frames decoded")
                self.assertEqual(p.frames[-1].width, 160)
                self.assertGreater(p.track.tap.packets, 10)
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
                self.assertGreater(getattr(s, "_RTCRtpSender__packet_count"), 10)

                # the publisher's sender report is re-based into ours (aiortc sends one every ~1 s)
                self.assertTrue(await wait_until(lambda: p.fwd._sr_from_publisher, 5), "publisher SR not used")
                _, _, sr_rtp = p.track.sender_report
                self.assertEqual(getattr(s, "_RTCRtpSender__rtp_timestamp"),
                                 p.down.rewriter.map_timestamp(p.track.sender_report[0], sr_rtp))

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

                transport._tx_srtp = SpySrtp(transport._tx_srtp)
                seq = p.down.rewriter.last_seq
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
            ice.install()
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
