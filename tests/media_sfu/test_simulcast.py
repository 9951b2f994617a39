from twisted.trial import unittest

from media_sfu.simulcast import accept_top_layer, offered_simulcast

OFFER = "\r\n".join([
    "v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0 1",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=mid:0", "a=sendonly",
    "m=video 9 UDP/TLS/RTP/SAVPF 96", "a=mid:1", "a=sendonly",
    "a=rid:q send", "a=rid:h send", "a=rid:f send", "a=simulcast:send q;h;f", "",
])
ANSWER = "\r\n".join([
    "v=0", "o=- 3 4 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0 1",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=mid:0", "a=recvonly",
    "m=video 9 UDP/TLS/RTP/SAVPF 96", "a=mid:1", "a=recvonly", "",
])


class SimulcastTests(unittest.TestCase):
    def test_offered_rids(self):
        self.assertEqual(offered_simulcast("a=simulcast:send q;~h;f,g\r\n"), ["q", "h", "f"])
        self.assertEqual(offered_simulcast("a=mid:0\r\n"), [])

    def test_answer_accepts_only_top_layer(self):
        out = accept_top_layer(OFFER, ANSWER)
        audio, video = out.split("m=audio")[1].split("m=video")
        self.assertNotIn("simulcast", audio)
        self.assertIn("a=rid:f recv\r\na=simulcast:recv f", video)
        self.assertNotIn("a=rid:q", out)
        self.assertTrue(out.endswith("\r\n"))

    def test_no_simulcast_unchanged(self):
        offer = OFFER.replace("a=simulcast:send q;h;f\r\n", "")
        self.assertEqual(accept_top_layer(offer, ANSWER).replace("\r\n", "\n").strip(),
                         ANSWER.replace("\r\n", "\n").strip())


class RouterFallbackTests(unittest.TestCase):
    def test_unsignalled_ssrc_routed_by_mid_and_learnt(self):
        from aiortc.rtp import RtpPacket

        from media_sfu.simulcast import patch_router_mid_fallback

        class Router:
            def __init__(self):
                self.mid_table = {"1": "video-receiver"}
                self.ssrc_table = {}

            def route_rtp(self, packet):
                return self.ssrc_table.get(packet.ssrc)

        router = Router()
        patch_router_mid_fallback(router)
        patch_router_mid_fallback(router)  # idempotent
        pkt = RtpPacket(ssrc=1234)
        pkt.extensions.mid = "1"
        self.assertEqual(router.route_rtp(pkt), "video-receiver")
        later = RtpPacket(ssrc=1234)  # MID no longer sent
        self.assertEqual(router.route_rtp(later), "video-receiver")
        self.assertIsNone(router.route_rtp(RtpPacket(ssrc=999)))

    def test_offered_rids_by_mid(self):
        from media_sfu.simulcast import offered_rids_by_mid

        self.assertEqual(offered_rids_by_mid(OFFER), {"1": ["q", "h", "f"]})

    def test_accept_all_layers(self):
        from media_sfu.simulcast import accept_layers

        out = accept_layers(OFFER, ANSWER, all_layers=True)
        self.assertIn("a=rid:q recv\r\na=rid:h recv\r\na=rid:f recv\r\na=simulcast:recv q;h;f", out)
