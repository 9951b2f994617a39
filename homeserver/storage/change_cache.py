"""Which entities changed after a stream position, known in memory so /sync can skip
queries that would find nothing (the idea of Synapse's StreamChangeCache).

Positions at or before ``floor`` (the stream position at start-up) are unknown: for
those the answer is always "maybe", and the caller queries the database.
"""

from __future__ import annotations

from typing import Hashable


class StreamChangeCache:
    def __init__(self, floor: int = 0) -> None:
        self.floor = floor
        self._latest: dict[Hashable, int] = {}
        self.max = floor

    def mark(self, key: Hashable, position: int) -> None:
        if position > self._latest.get(key, 0):
            self._latest[key] = position
        if position > self.max:
            self.max = position

    def changed_since(self, key: Hashable, since: int) -> bool:
        if since < self.floor:
            return True
        return self._latest.get(key, 0) > since

    def any_changed_since(self, since: int) -> bool:
        return since < self.floor or self.max > since
