from twisted.trial import unittest

from media_sfu.rtp_rewrite import RtpRewriter, seq_newer
from media_sfu.speakers import AudioLevelMeter


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


class RewriterTests(unittest.TestCase):
    def make(self, seq0=1000, ts0=5000, rate=90000):
        self.clock = FakeClock()
        return RtpRewriter(clock_rate=rate, out_seq_start=seq0, out_ts_start=ts0, clock=self.clock)

    def test_first_packet_maps_to_start(self):
        r = self.make()
        self.assertEqual(r.rewrite(0xAAAA, 40000, 123456), (1000, 5000))
        self.assertEqual(r.rewrite(0xAAAA, 40001, 126456), (1001, 8000))

    def test_reordered_and_retransmitted_keep_positions(self):
        r = self.make()
        r.rewrite(1, 10, 0)
        self.assertEqual(r.rewrite(1, 12, 6000)[0], 1002)
        self.assertEqual(r.rewrite(1, 11, 3000), (1001, 8000))  # late packet: its own slot
        self.assertEqual(r.last_seq, 1002)

    def test_wraparound(self):
        r = self.make(seq0=65534, ts0=0xFFFFFFF0)
        self.assertEqual(r.rewrite(1, 100, 0), (65534, 0xFFFFFFF0))
        self.assertEqual(r.rewrite(1, 101, 0x20), (65535, 0x10))
        self.assertEqual(r.rewrite(1, 102, 0x40), (0, 0x30))
        self.assertEqual(r.rewrite(1, 103, 0x60), (1, 0x50))

    def test_input_wraparound(self):
        r = self.make(seq0=10)
        r.rewrite(1, 65535, 0)
        self.assertEqual(r.rewrite(1, 0, 0)[0], 11)
        self.assertEqual(r.rewrite(1, 1, 0)[0], 12)

    def test_source_switch_continues_sequence_and_time(self):
        r = self.make(rate=90000)
        r.rewrite(1, 500, 90000)
        r.rewrite(1, 501, 93000)
        self.clock.t += 0.5
        seq, ts = r.rewrite(2, 7, 42)  # new SSRC with unrelated numbering
        self.assertEqual(seq, 1002)
        self.assertEqual(ts, 5000 + 3000 + 45000)
        self.assertEqual(r.rewrite(2, 8, 3042), (1003, 5000 + 3000 + 45000 + 3000))

    def test_packets_older_than_a_source_switch_are_dropped(self):
        r = self.make()
        r.rewrite(1, 500, 0)
        r.rewrite(1, 501, 3000)
        self.assertEqual(r.rewrite(2, 100, 0)[0], 1002)  # switch at seq 100
        self.assertIsNone(r.rewrite(2, 98, 0))  # late packet of the new source
        self.assertEqual(r.rewrite(2, 101, 3000)[0], 1003)
        self.assertEqual(r.rewrite(2, 100, 0)[0], 1002)  # retransmission of the switch packet

    def test_map_timestamp_for_sender_reports(self):
        r = self.make(ts0=5000)
        r.rewrite(7, 1, 100)
        self.assertEqual(r.map_timestamp(7, 400), 5300)
        self.assertIsNone(r.map_timestamp(8, 400))

    def test_random_starts_differ(self):
        a, b = RtpRewriter(clock_rate=48000), RtpRewriter(clock_rate=48000)
        self.assertNotEqual((a.out_seq_start, a.out_ts_start), (b.out_seq_start, b.out_ts_start))
        self.assertLess(a.out_seq_start, 1 << 15)  # lower half: SRTP rollover safety

    def test_seq_newer(self):
        self.assertTrue(seq_newer(1, 0))
        self.assertTrue(seq_newer(0, 65535))
        self.assertFalse(seq_newer(65535, 0))
        self.assertFalse(seq_newer(5, 5))


class SpeakerTests(unittest.TestCase):
    def test_loud_majority_is_speaking(self):
        m = AudioLevelMeter()
        for _ in range(50):
            m.add(10)
        speaking, level = m.sample()
        self.assertTrue(speaking)
        self.assertAlmostEqual(level, 10 ** (-0.5), places=3)
        self.assertEqual(m.sample(), (False, 0.0))  # window reset

    def test_silence_and_blips(self):
        m = AudioLevelMeter()
        for i in range(50):
            m.add(127 if i % 10 else 5)
        self.assertFalse(m.sample()[0])
