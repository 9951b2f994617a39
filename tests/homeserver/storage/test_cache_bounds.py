"""Every in-memory cache of the storage layer stays within its bounds after many
inserts, and what a bounded cache forgot is looked up rather than answered wrongly."""

from __future__ import annotations

import tempfile

from twisted.trial import unittest

from homeserver.events.event import Event
from homeserver.storage import Database, DataStore, prepare_database
from homeserver.storage.change_cache import StreamChangeCache
from homeserver.storage.database import SQLITE_CACHE_KIB
from homeserver.storage.events import PersistBatch, event_size, state_map_size


def _message(event_id: str, room_id: str, pos: int, body: str = "hi") -> Event:
    pdu = {
        "type": "m.room.message", "room_id": room_id, "sender": "@a:x", "content": {"msgtype": "m.text", "body": body},
        "depth": pos, "origin_server_ts": 0, "prev_events": [], "auth_events": [],
    }
    return Event(event_id, pdu, "11", stream_ordering=pos)


class StreamChangeCacheTest(unittest.TestCase):
    def test_entries_stay_bounded(self) -> None:
        cache = StreamChangeCache(floor=0, max_entries=1000)
        for pos in range(1, 20_001):
            cache.mark(f"@u{pos}:x", pos)
            self.assertLessEqual(len(cache), 1000)

    def test_forgotten_keys_answer_maybe_never_a_wrong_no(self) -> None:
        cache = StreamChangeCache(floor=0, max_entries=10)
        for pos in range(1, 101):
            cache.mark(f"k{pos}", pos)
        for pos in range(1, 101):
            # Each key changed at `pos`: asked from just before it, the answer must be yes.
            self.assertTrue(cache.changed_since(f"k{pos}", pos - 1), pos)
            self.assertFalse(cache.changed_since(f"k{pos}", 100))
        self.assertFalse(cache.changed_since("never", 100))


class StoreCacheBoundsTest(unittest.TestCase):
    def setUp(self) -> None:
        self.db = Database("sqlite:///" + tempfile.mkdtemp() + "/test.db")
        self.db.start()
        self.addCleanup(self.db.close)
        prepare_database(self.db)
        self.store = DataStore(self.db)

    async def test_event_cache_is_bounded_by_bytes(self) -> None:
        cache = self.store._event_cache
        big = "x" * 50_000
        events = [_message(f"$e{i}", "!r:x", i, big) for i in range(1, 3001)]
        for i in range(0, len(events), 100):
            await self.store.persist_batch(PersistBatch(events=events[i : i + 100], new_rooms=[("!r:x", "11", "@a:x", 0)] if i == 0 else []))
            self.assertLessEqual(cache.total_bytes, cache.max_bytes)
        # 3000 events of 50 KB would be 150 MB: the byte bound held it far below its entry bound.
        self.assertLess(len(cache), 3000)
        self.assertGreater(event_size(events[0]), 50_000)
        # What the cache forgot is read back from the database.
        got = await self.store.get_events([e.event_id for e in events[:5]])
        self.assertEqual(len(got), 5)
        self.assertLessEqual(cache.total_bytes, cache.max_bytes)

    def test_state_group_cache_is_bounded_by_bytes(self) -> None:
        cache = self.store._state_group_cache
        state = {("m.room.member", f"@u{i}:x"): f"$m{i}" for i in range(20_000)}
        for group in range(100):
            self.store.cache_state_group(group, dict(state))
            self.assertLessEqual(cache.total_bytes, cache.max_bytes)
        self.assertLess(len(cache), 100)
        self.assertGreaterEqual(state_map_size(state), 20_000 * 250)

    async def test_recent_windows_are_bounded_and_forgotten_rooms_read_the_database(self) -> None:
        self.store.set_change_floor(0)
        self.store.max_recent_events = 50
        rooms = [f"!r{i}:x" for i in range(20)]
        pos = 0
        sent: dict[str, list[str]] = {r: [] for r in rooms}
        for round_ in range(10):
            events = []
            for r in rooms:
                pos += 1
                events.append(_message(f"$e{pos}", r, pos))
                sent[r].append(f"$e{pos}")
            new_rooms = [(r, "11", "@a:x", 0) for r in rooms] if round_ == 0 else []
            await self.store.persist_batch(PersistBatch(events=events, new_rooms=new_rooms))
            self.assertLessEqual(self.store._recent_events, 50)
        self.assertLessEqual(sum(len(w.positions) for w in self.store._recent.values()), 50)
        # Every room's timeline is complete, whether its window was kept or dropped, and
        # whether the window was made again after being dropped.
        pos += 1
        await self.store.persist_batch(PersistBatch(events=[_message(f"$e{pos}", rooms[0], pos)]))
        sent[rooms[0]].append(f"$e{pos}")
        for r in rooms:
            got = await self.store.get_room_events(r, after=0, up_to=None, limit=100, newest_first=False)
            self.assertEqual([e.event_id for e in got], sent[r], r)

    def test_sqlite_page_cache_is_bounded(self) -> None:
        size = self.db.run_sync(lambda txn: txn.select_value("PRAGMA cache_size"))
        self.assertEqual(size, -SQLITE_CACHE_KIB)
