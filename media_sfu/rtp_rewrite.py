"""Per-subscriber RTP sequence number and timestamp rewriting.

Each subscriber sees every forwarded track as its own RTP stream: its own SSRC (the one the
subscriber PC's SDP announced), a sequence number space starting at a random point and a
random timestamp origin. Offsets are fixed at the first packet, so reordered and
retransmitted packets keep their relative positions (the subscriber's NACKs and jitter
buffer depend on that). When the source changes (the publisher restarts its stream with a
new SSRC), the output continues without a jump in sequence numbers and with a timestamp gap
matching wall-clock time, so the subscriber's decoder and jitter buffer do not reset.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

SEQ_MOD = 1 << 16
TS_MOD = 1 << 32


def seq_newer(a: int, b: int) -> bool:
    """True if sequence number ``a`` comes after ``b`` (RFC 3550 wrap-around arithmetic)."""
    return a != b and ((a - b) % SEQ_MOD) < (SEQ_MOD >> 1)


@dataclass
class RtpRewriter:
    """Maps (ssrc, seq, ts) of one incoming stream to one subscriber's outgoing stream."""

    clock_rate: int
    out_seq_start: int = field(default_factory=lambda: random.randrange(1 << 15))
    out_ts_start: int = field(default_factory=lambda: random.randrange(TS_MOD))
    clock: Callable[[], float] = time.monotonic

    _in_ssrc: int | None = None
    _seq_offset: int = 0
    _ts_offset: int = 0
    _max_out_seq: int | None = None  # highest sequence number sent so far
    _max_out_ts: int = 0
    _max_out_time: float = 0.0  # wall-clock time of the highest timestamp

    _first_in_seq: int = 0  # first sequence number forwarded from the current source

    def rewrite(self, ssrc: int, seq: int, ts: int) -> tuple[int, int] | None:
        """Output (seq, ts), or None for a packet of the current source older than the switch
        to it (a late or retransmitted one): its slot already went to the previous source."""
        if ssrc != self._in_ssrc:
            self._switch_source(ssrc, seq, ts)
            self._first_in_seq = seq
        elif seq != self._first_in_seq and not seq_newer(seq, self._first_in_seq):
            return None
        out_seq = (seq + self._seq_offset) % SEQ_MOD
        out_ts = (ts + self._ts_offset) % TS_MOD
        if self._max_out_seq is None or seq_newer(out_seq, self._max_out_seq):
            self._max_out_seq = out_seq
            self._max_out_ts = out_ts
            self._max_out_time = self.clock()
        return out_seq, out_ts

    def _switch_source(self, ssrc: int, seq: int, ts: int) -> None:
        if self._max_out_seq is None:
            next_seq, next_ts = self.out_seq_start, self.out_ts_start
        else:
            next_seq = (self._max_out_seq + 1) % SEQ_MOD
            elapsed = max(self.clock() - self._max_out_time, 1 / 90)
            next_ts = (self._max_out_ts + max(1, int(elapsed * self.clock_rate))) % TS_MOD
        self._in_ssrc = ssrc
        self._seq_offset = (next_seq - seq) % SEQ_MOD
        self._ts_offset = (next_ts - ts) % TS_MOD

    def map_timestamp(self, ssrc: int, ts: int) -> int | None:
        """Rewrite a timestamp of the current source (e.g. from its sender report)."""
        if ssrc != self._in_ssrc:
            return None
        return (ts + self._ts_offset) % TS_MOD

    @property
    def last_seq(self) -> int | None:
        return self._max_out_seq

    @property
    def last_ts(self) -> int:
        return self._max_out_ts
