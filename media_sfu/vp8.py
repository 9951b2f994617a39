"""Just enough VP8 RTP payload parsing (RFC 7741) to find keyframes.

An SFU switching a subscriber between simulcast layers may only do so at a keyframe of the
new layer. LiveKit's E2EE frame cryptor leaves the VP8 payload header unencrypted for
exactly this purpose, so this works on encrypted calls too.
"""

from __future__ import annotations


def is_keyframe_start(payload: bytes) -> bool:
    """True if this RTP payload starts a VP8 keyframe (first packet of the frame)."""
    n = len(payload)
    if n < 1:
        return False
    b0 = payload[0]
    # S (start of partition) set and partition index 0: the frame's first packet
    if not (b0 & 0x10) or (b0 & 0x07) != 0:
        return False
    i = 1
    if b0 & 0x80:  # X: extension byte follows
        if n < 2:
            return False
        x = payload[1]
        i = 2
        if x & 0x80:  # I: picture id, 7 or 15 bits
            if n <= i:
                return False
            i += 2 if payload[i] & 0x80 else 1
        if x & 0x40:  # L: TL0PICIDX
            i += 1
        if x & 0x30:  # T or K: TID/Y/KEYIDX
            i += 1
    if n <= i:
        return False
    # VP8 payload header: P bit (inverse key frame flag) is bit 0 of the first byte
    return (payload[i] & 0x01) == 0


def descriptor_ids(payload: bytes) -> tuple[int | None, int, int | None, int]:
    """(picture id, its bit width 7/15, TL0PICIDX, offset of TL0PICIDX) from the descriptor;
    None where absent."""
    if len(payload) < 2 or not (payload[0] & 0x80):
        return None, 0, None, 0
    x = payload[1]
    i = 2
    pid = None
    bits = 0
    if x & 0x80:
        if len(payload) <= i:
            return None, 0, None, 0
        if payload[i] & 0x80:
            if len(payload) <= i + 1:
                return None, 0, None, 0
            pid = ((payload[i] & 0x7F) << 8) | payload[i + 1]
            bits = 15
            i += 2
        else:
            pid = payload[i] & 0x7F
            bits = 7
            i += 1
    tl0 = None
    tl0_at = 0
    if x & 0x40 and len(payload) > i:
        tl0 = payload[i]
        tl0_at = i
    return pid, bits, tl0, tl0_at


def rewrite_ids(payload: bytes, pid: int | None, tl0: int | None) -> bytes:
    """Copy of ``payload`` with its picture id and/or TL0PICIDX replaced (same widths)."""
    b = bytearray(payload)
    if pid is not None and b[0] & 0x80 and b[1] & 0x80:
        if b[2] & 0x80:
            b[2] = 0x80 | ((pid >> 8) & 0x7F)
            b[3] = pid & 0xFF
        else:
            b[2] = pid & 0x7F
    if tl0 is not None:
        _, _, old, at = descriptor_ids(payload)
        if old is not None:
            b[at] = tl0 & 0xFF
    return bytes(b)


class PictureIdRewriter:
    """Keep VP8 picture ids (and TL0PICIDX) continuous across simulcast layer switches.

    Each layer numbers its pictures independently; libwebrtc's VP8 reference finder drops
    frames whose picture id looks older than what it has seen, so after a switch to a layer
    with lower ids the subscriber would freeze. SFUs (LiveKit included) re-base them.
    """

    def __init__(self) -> None:
        self._pid_offset = 0
        self._tl0_offset = 0
        self._last_pid: int | None = None
        self._last_tl0: int | None = None
        self._rebase = True

    def switch(self) -> None:
        """The next packet starts a new source: continue numbering after the last output."""
        self._rebase = True

    def rewrite(self, payload: bytes) -> bytes:
        pid, bits, tl0, _ = descriptor_ids(payload)
        if pid is None and tl0 is None:
            return payload
        mod = 1 << bits if bits else 1
        if self._rebase:
            self._rebase = False
            if pid is not None:
                self._pid_offset = ((self._last_pid + 1) - pid) % mod if self._last_pid is not None else 0
            if tl0 is not None:
                self._tl0_offset = ((self._last_tl0 + 1) - tl0) % 256 if self._last_tl0 is not None else 0
        out_pid = (pid + self._pid_offset) % mod if pid is not None else None
        out_tl0 = (tl0 + self._tl0_offset) % 256 if tl0 is not None else None
        if out_pid is not None:
            self._last_pid = out_pid
        if out_tl0 is not None:
            self._last_tl0 = out_tl0
        if not self._pid_offset and not self._tl0_offset:
            return payload
        return rewrite_ids(payload, out_pid, out_tl0)
