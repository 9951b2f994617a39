"""The global stream: one monotonically increasing position shared by every stream
(events, account data, receipts, to-device, presence, device lists).

Positions are handed out before a write and the visible position (what /sync may read
up to) only advances past a position once every earlier one has been persisted, so a
reader never skips a row that is still being written.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable


class StreamIdGenerator:
    def __init__(self, current: int) -> None:
        self._last_allocated = current
        self._visible = current
        self._in_flight: list[int] = []
        self._done: set[int] = set()
        # Called with the new visible position each time it moves (a reader that read up
        # to an older one while later positions were in flight looks again then).
        self.listeners: list[Callable[[int], None]] = []

    @property
    def current(self) -> int:
        """Every position up to here is persisted and safe to read."""
        return self._visible

    @property
    def last_allocated(self) -> int:
        """Beyond ``current`` while positions are still being written."""
        return self._last_allocated

    def allocate(self) -> int:
        self._last_allocated += 1
        heapq.heappush(self._in_flight, self._last_allocated)
        return self._last_allocated

    def complete(self, position: int) -> bool:
        """Marks a position persisted (or abandoned); True if the visible position moved."""
        self._done.add(position)
        before = self._visible
        while self._in_flight and self._in_flight[0] in self._done:
            done = heapq.heappop(self._in_flight)
            self._done.discard(done)
            self._visible = done
        if not self._in_flight:
            self._visible = self._last_allocated
        moved = self._visible != before
        if moved:
            for listener in self.listeners:
                listener(self._visible)
        return moved


class Counter:
    """A plain id counter for rows that are not part of the client-visible stream."""

    def __init__(self, current: int, step: int = 1) -> None:
        self._current = current
        self._step = step

    def next(self) -> int:
        self._current += self._step
        return self._current
