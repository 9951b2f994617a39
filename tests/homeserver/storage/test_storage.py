"""The storage layer on both engines: migrations in place, atomic transactions, state
snapshots as deltas."""

from __future__ import annotations

import tempfile

from twisted.trial import unittest

from homeserver.events.event import Event
from homeserver.storage import Database, DataStore, prepare_database
from homeserver.storage.events import MAX_STATE_CHAIN, NewStateGroup, PersistBatch
from homeserver.storage.migrations import migration_files
from tests.support.wspr import PostgresUnavailable, create_postgres_database, drop_postgres_database


class StorageMixin:
    database = "sqlite"

    def setUp(self) -> None:
        if self.database == "postgresql":
            try:
                self.url = create_postgres_database()
            except PostgresUnavailable as e:
                raise unittest.SkipTest(str(e)) from e
            self.addCleanup(drop_postgres_database, self.url)  # type: ignore[attr-defined]
        else:
            self.url = "sqlite:///" + tempfile.mkdtemp() + "/test.db"
        self.db = Database(self.url)
        self.db.start()
        self.addCleanup(self.db.close)  # type: ignore[attr-defined]
        prepare_database(self.db)
        self.store = DataStore(self.db)

    def test_migrations_are_recorded_and_rerun_safely(self) -> None:
        applied = self.db.run_sync(lambda txn: [r[0] for r in txn.select_all("SELECT name FROM applied_migrations ORDER BY name")])
        self.assertEqual(applied, migration_files(self.db.engine))  # type: ignore[attr-defined]
        prepare_database(self.db)  # an up-to-date database is left alone
        again = self.db.run_sync(lambda txn: txn.select_value("SELECT COUNT(*) FROM applied_migrations"))
        self.assertEqual(again, len(applied))  # type: ignore[attr-defined]

    async def test_failed_transaction_leaves_nothing(self) -> None:
        def txn_fn(txn) -> None:  # type: ignore[no-untyped-def]
            txn.execute("INSERT INTO users (user_id, created_ts) VALUES (?, ?)", ("@half:x", 1))
            raise RuntimeError("crash in the middle")

        with self.assertRaises(RuntimeError):  # type: ignore[attr-defined]
            await self.db.write(txn_fn)
        self.assertIsNone(await self.store.get_user("@half:x"))  # type: ignore[attr-defined]

    async def test_persist_batch_is_all_or_nothing(self) -> None:
        def ev(eid: str, pos: int) -> Event:
            return Event(eid, {"type": "m.room.message", "room_id": "!r:x", "sender": "@a:x", "content": {"body": "%_?"}, "depth": pos, "origin_server_ts": 0, "prev_events": [], "auth_events": []}, "11", stream_ordering=pos)

        ok = PersistBatch(events=[ev("$a", 1)], new_rooms=[("!r:x", "11", "@a:x", 0)])
        await self.store.persist_batch(ok)
        # The second event reuses a stream position: the whole batch must be refused.
        bad = PersistBatch(events=[ev("$b", 2), ev("$c", 1)])
        with self.assertRaises(Exception):  # type: ignore[attr-defined]
            await self.store.persist_batch(bad)
        self.store._event_cache.clear()  # type: ignore[attr-defined]
        self.assertEqual(set(await self.store.have_events(["$a", "$b", "$c"])), {"$a"})  # type: ignore[attr-defined]
        got = await self.store.get_event("$a")
        self.assertEqual(got.content["body"], "%_?")  # type: ignore[union-attr,attr-defined]

    async def test_state_snapshots_as_deltas(self) -> None:
        groups = []
        prev = None
        expected: dict[tuple[str, str], str] = {}
        batch = PersistBatch()
        for i in range(MAX_STATE_CHAIN * 2 + 5):
            key = ("m.room.member", f"@u{i % 7}:x")
            expected[key] = f"$e{i}"
            if prev is None or (i % MAX_STATE_CHAIN) == 0:
                entries = dict(expected)
                chain, parent = 0, None
            else:
                entries = {key: f"$e{i}"}
                chain, parent = i % MAX_STATE_CHAIN, prev
            batch.new_state_groups.append(NewStateGroup(i + 1, "!r:x", parent, chain, dict(entries)))
            groups.append((i + 1, dict(expected)))
            prev = i + 1
        # A removal relative to the parent.
        batch.new_state_groups.append(NewStateGroup(1000, "!r:x", prev, 1, {("m.room.member", "@u0:x"): None}))
        await self.store.persist_batch(batch)
        self.store._state_group_cache.clear()  # type: ignore[attr-defined]
        for gid, state in groups[:: 9]:
            self.assertEqual(await self.store.get_state_group(gid), state)  # type: ignore[attr-defined]
        final = dict(groups[-1][1])
        del final[("m.room.member", "@u0:x")]
        self.assertEqual(await self.store.get_state_group(1000), final)  # type: ignore[attr-defined]
        # Deltas keep the table small: far fewer rows than full copies would need.
        rows = self.db.run_sync(lambda txn: txn.select_value("SELECT COUNT(*) FROM state_group_entries"))
        full_copies = sum(len(s) for _, s in groups)
        self.assertLess(rows, full_copies / 2)  # type: ignore[attr-defined]


class SQLiteStorageTest(StorageMixin, unittest.TestCase):
    database = "sqlite"


class PostgresStorageTest(StorageMixin, unittest.TestCase):
    database = "postgresql"
