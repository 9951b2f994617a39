"""Which entities changed after a stream position, known in memory so /sync can skip
queries that would find nothing (the idea of Synapse's StreamChangeCache).

Positions at or before ``floor`` (the stream position at start-up) are unknown: for
those the answer is always "maybe", and the caller queries the database.

The cache is bounded: past ``max_entries`` keys it forgets the older half and raises
``floor`` to the newest position it forgot, so what it no longer knows becomes a
"maybe" again (a database query) rather than a wrong "no".
"""

from __future__ import annotations

from collections.abc import Hashable

DEFAULT_MAX_ENTRIES = 50_000


class StreamChangeCache:
    def __init__(self, floor: int = 0, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.floor = floor
        self.max_entries = max_entries
        self._latest: dict[Hashable, int] = {}
        self.max = floor

    def mark(self, key: Hashable, position: int) -> None:
        if position > self._latest.get(key, 0):
            self._latest[key] = position
            if len(self._latest) > self.max_entries:
                self._forget_older_half()
        if position > self.max:
            self.max = position

    def _forget_older_half(self) -> None:
        by_position = sorted(self._latest.items(), key=lambda kv: kv[1])
        forget = by_position[: len(by_position) // 2]
        self.floor = max(self.floor, forget[-1][1])
        for key, _ in forget:
            del self._latest[key]

    def changed_since(self, key: Hashable, since: int) -> bool:
        if since < self.floor:
            return True
        return self._latest.get(key, 0) > since

    def any_changed_since(self, since: int) -> bool:
        return since < self.floor or self.max > since

    def __len__(self) -> int:
        return len(self._latest)
