"""The one in-memory LRU cache of the server.

Every cache is bounded by its number of entries and, when it holds values of very
different sizes (events, state maps), also by an estimate of the bytes they hold:
a bound on entries alone lets 50 000 cached events of 60 KB each take 3 GB.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """A mapping that forgets the least recently used entries beyond ``max_entries``
    and, with ``sizeof`` (an estimate of a value's bytes), beyond ``max_bytes``.

    Only the reactor thread writes; ``get`` and ``in`` are safe from database threads
    (single dict look-ups). ``sizeof`` is taken when a value is put: a value that grows
    afterwards is not re-measured.
    """

    def __init__(
        self,
        max_entries: int,
        *,
        max_bytes: int | None = None,
        sizeof: Callable[[V], int] | None = None,
        on_evict: Callable[[K, V], None] | None = None,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        if (max_bytes is None) != (sizeof is None):
            raise ValueError("max_bytes and sizeof go together")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._sizeof = sizeof
        # Told of each entry pushed out by the bounds (not of pop or clear).
        self._on_evict = on_evict
        self._data: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self.total_bytes = 0

    def put(self, key: K, value: V) -> None:
        size = self._sizeof(value) if self._sizeof is not None else 0
        old = self._data.pop(key, None)
        if old is not None:
            self.total_bytes -= old[1]
        if self.max_bytes is not None and size > self.max_bytes:
            return  # would evict everything else and still not fit
        self._data[key] = (value, size)
        self.total_bytes += size
        while len(self._data) > self.max_entries or (self.max_bytes is not None and self.total_bytes > self.max_bytes):
            old_key, (old_value, evicted) = self._data.popitem(last=False)
            self.total_bytes -= evicted
            if self._on_evict is not None:
                self._on_evict(old_key, old_value)

    def fetch(self, key: K) -> V | None:
        """The value, marked as just used; None if absent."""
        item = self._data.get(key)
        if item is None:
            return None
        self._data.move_to_end(key)
        return item[0]

    def get(self, key: K, default: V | None = None) -> V | None:
        """The value without touching its recency."""
        item = self._data.get(key)
        return item[0] if item is not None else default

    def pop(self, key: K, default: V | None = None) -> V | None:
        item = self._data.pop(key, None)
        if item is None:
            return default
        self.total_bytes -= item[1]
        return item[0]

    def clear(self) -> None:
        self._data.clear()
        self.total_bytes = 0

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._data))
