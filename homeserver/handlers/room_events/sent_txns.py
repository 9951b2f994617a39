"""Which event a client's send transaction id made, to answer a retried send with it.

A transaction id is scoped as Synapse scopes it (its ``event_txn_id_device_id`` table and
``get_event_id_from_transaction_id_and_device_id``): per room, user and device. The same
id in another room is a new event; the same device sending with another access token
(a second login with the device's id, a refreshed token) is the same client.

Ids sent since start-up are remembered in memory (they are stored too), up to
``MAX_REMEMBERED_TXNS``: a retried send is answered without a database read. Devices
whose ids may be missing from memory (those that sent before start-up, and those with an
entry pushed out of the memory) are looked up in the database.

An id is kept for 24 hours, as Synapse keeps it (``_cleanup_transaction_ids``): a send
with an id older than that is a new event, and the stored ids are pruned hourly, so the
table does not grow with every message ever sent.
"""

from __future__ import annotations

from collections.abc import Callable

from homeserver.util.caches import LruCache
from homeserver.util.ids import now_ms

# (room_id, user_id, device_id, txn_id)
TxnKey = tuple[str, str, str, str]

# ~100 bytes of key and value each: about 10 MB when full.
MAX_REMEMBERED_TXNS = 100_000
TXN_ID_LIFETIME_MS = 24 * 3600 * 1000
PRUNE_INTERVAL_MS = 3600 * 1000


class SentTransactions:
    def __init__(self, max_entries: int = MAX_REMEMBERED_TXNS, clock: Callable[[], int] = now_ms) -> None:
        self._clock = clock
        # key -> (event id, when it was sent, in ms)
        self._recent: LruCache[TxnKey, tuple[str, int]] = LruCache(max_entries, on_evict=self._evicted)
        self._next_prune = 0
        # (user_id, device_id) whose transaction ids are not all in memory.
        self._devices_to_look_up: set[tuple[str, str]] = set()

    def load(self, devices_with_stored_txns: set[tuple[str, str]]) -> None:
        """At start-up: the devices with transaction ids stored by an earlier run."""
        self._devices_to_look_up = set(devices_with_stored_txns)

    def remember(self, key: TxnKey, event_id: str) -> None:
        self._recent.put(key, (event_id, self._clock()))

    def recent(self, key: TxnKey) -> str | None:
        """The event id if it is in memory and less than a day old."""
        found = self._recent.fetch(key)
        if found is None or found[1] < self.oldest_kept():
            return None
        return found[0]

    def oldest_kept(self) -> int:
        """The send time (ms) of the oldest transaction id still in force."""
        return self._clock() - TXN_ID_LIFETIME_MS

    def prune_due(self) -> bool:
        """Whether the stored ids are due for pruning (true at most once an hour)."""
        now = self._clock()
        if now < self._next_prune:
            return False
        self._next_prune = now + PRUNE_INTERVAL_MS
        return True

    def needs_lookup(self, user_id: str, device_id: str) -> bool:
        """Whether a miss in memory must be checked in the database."""
        return (user_id, device_id) in self._devices_to_look_up

    def _evicted(self, key: TxnKey, value: tuple[str, int]) -> None:
        self._devices_to_look_up.add((key[1], key[2]))
