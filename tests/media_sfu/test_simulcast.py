from twisted.trial import unittest

from media_sfu.simulcast import (
    accept_layers,
    accept_top_layer,
    offered_rids_by_mid,
    offered_simulcast,
)

OFFER_LINES = (
    "v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0 1",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=mid:0", "a=sendonly",
    "m=video 9 UDP/TLS/RTP/SAVPF 96", "a=mid:1", "a=sendonly",
    "a=rid:q send", "a=rid:h send", "a=rid:f send", "a=simulcast:send q;h;f", "",
)
ANSWER_LINES = (
    "v=0", "o=- 3 4 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0 1",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=mid:0", "a=recvonly",
    "m=video 9 UDP/TLS/RTP/SAVPF 96", "a=mid:1", "a=recvonly", "",
)
OFFER = "\r\n".join(OFFER_LINES)
ANSWER = "\r\n".join(ANSWER_LINES)


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


class LayerTests(unittest.TestCase):
    # MID routing of unsignalled SSRCs: test_aiortc_internals (it wraps aiortc's router)

    def test_offered_rids_by_mid(self):
        self.assertEqual(offered_rids_by_mid(OFFER), {"1": ["q", "h", "f"]})

    def test_accept_all_layers(self):
        out = accept_layers(OFFER, ANSWER, all_layers=True)
        self.assertIn("a=rid:q recv\r\na=rid:h recv\r\na=rid:f recv\r\na=simulcast:recv q;h;f", out)
