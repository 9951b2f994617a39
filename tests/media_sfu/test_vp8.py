from twisted.trial import unittest

from media_sfu.vp8 import (
    PictureIdRewriter,
    descriptor_ids,
    is_keyframe_start,
    rewrite_ids,
)


def payload(pid: int | None = None, tl0: int | None = None, start=True, key=True, pid15=True) -> bytes:
    """VP8 RTP payload: descriptor (+ extensions) then one byte of VP8 payload header."""
    b0 = (0x10 if start else 0)
    ext = 0
    tail = b""
    if pid is not None:
        ext |= 0x80
        tail += bytes([0x80 | (pid >> 8), pid & 0xFF]) if pid15 else bytes([pid & 0x7F])
    if tl0 is not None:
        ext |= 0x40
        tail += bytes([tl0])
    head = bytes([b0 | (0x80 if ext else 0)]) + (bytes([ext]) + tail if ext else b"")
    return head + bytes([0x00 if key else 0x01, 0x9D, 0x01, 0x2A])


class Vp8Tests(unittest.TestCase):
    def test_keyframe_detection(self):
        self.assertTrue(is_keyframe_start(payload()))
        self.assertTrue(is_keyframe_start(payload(pid=300, tl0=5)))
        self.assertTrue(is_keyframe_start(payload(pid=5, pid15=False)))
        self.assertFalse(is_keyframe_start(payload(pid=300, key=False)))
        self.assertFalse(is_keyframe_start(payload(pid=300, start=False)))
        self.assertFalse(is_keyframe_start(b""))
        self.assertFalse(is_keyframe_start(bytes([0x90, 0x80])))  # truncated

    def test_ids(self):
        self.assertEqual(descriptor_ids(payload(pid=0x1234, tl0=7))[:3], (0x1234, 15, 7))
        self.assertEqual(descriptor_ids(payload(pid=9, pid15=False))[:3], (9, 7, None))
        self.assertEqual(descriptor_ids(payload())[:3], (None, 0, None))
        p = rewrite_ids(payload(pid=0x1234, tl0=7), 0x0042, 200)
        self.assertEqual(descriptor_ids(p)[:3], (0x42, 15, 200))
        self.assertTrue(is_keyframe_start(p))

    def test_continuity_across_switch(self):
        r = PictureIdRewriter()
        out = [descriptor_ids(r.rewrite(payload(pid=1000 + i, tl0=50 + i)))[0] for i in range(3)]
        self.assertEqual(out, [1000, 1001, 1002])  # first source untouched
        r.switch()
        p = r.rewrite(payload(pid=7, tl0=3))  # new layer with lower ids
        self.assertEqual(descriptor_ids(p)[:3], (1003, 15, 53))
        p = r.rewrite(payload(pid=8, tl0=4, key=False))
        self.assertEqual(descriptor_ids(p)[:3], (1004, 15, 54))

    def test_wraps(self):
        r = PictureIdRewriter()
        r.rewrite(payload(pid=0x7FFF))
        r.switch()
        self.assertEqual(descriptor_ids(r.rewrite(payload(pid=10)))[0], 0)
