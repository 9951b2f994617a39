"""The migration that scopes send transaction ids per room keeps the ids stored before it,
each in the room of its event, on both engines."""

from __future__ import annotations

import tempfile
from typing import Any

from twisted.trial import unittest

from homeserver.storage import Database, DataStore, prepare_database
from homeserver.storage.events import PersistBatch
from tests.homeserver.storage.test_search_index import ROOM, ev
from tests.support.wspr import (
    PostgresUnavailable,
    create_postgres_database,
    drop_postgres_database,
)

MIGRATION = "057_event_txn_ids_per_room.sql"


class _MigrationTests:
    database = "sqlite"

    def setUp(self) -> None:
        if self.database == "postgresql":
            try:
                url = create_postgres_database()
            except PostgresUnavailable as e:
                raise unittest.SkipTest(str(e)) from e
            self.addCleanup(drop_postgres_database, url)  # type: ignore[attr-defined]
        else:
            url = "sqlite:///" + tempfile.mkdtemp() + "/test.db"
        self.db = Database(url)
        self.db.start()
        self.addCleanup(self.db.close)  # type: ignore[attr-defined]
        prepare_database(self.db)
        self.store = DataStore(self.db)

    async def test_stored_ids_move_to_their_room(self) -> None:
        await self.store.persist_batch(PersistBatch(events=[ev("$a", 1)], new_rooms=[(ROOM, "11", "@a:x", 0)]))

        def back_to_the_old_table(txn: Any) -> None:
            txn.execute("DROP TABLE event_txn_ids")
            txn.execute(
                "CREATE TABLE event_txn_ids (user_id TEXT NOT NULL, device_id TEXT NOT NULL, txn_id TEXT NOT NULL,"
                " event_id TEXT NOT NULL, inserted_ts BIGINT NOT NULL, PRIMARY KEY (user_id, device_id, txn_id))"
            )
            txn.execute("INSERT INTO event_txn_ids VALUES ('@a:x', 'DEV', 't1', '$a', 1)")
            # the event of this one was purged: nothing to scope it to, and nobody to retry it
            txn.execute("INSERT INTO event_txn_ids VALUES ('@a:x', 'DEV', 't2', '$purged', 1)")
            txn.execute("DELETE FROM applied_migrations WHERE name = ?", (MIGRATION,))

        self.db.run_sync(back_to_the_old_table)
        prepare_database(self.db)
        self.assertEqual(await self.store.get_event_id_for_txn(ROOM, "@a:x", "DEV", "t1"), "$a")  # type: ignore[attr-defined]
        self.assertIsNone(await self.store.get_event_id_for_txn("!other:x", "@a:x", "DEV", "t1"))  # type: ignore[attr-defined]
        self.assertEqual(await self.store.get_devices_with_txns(), {("@a:x", "DEV")})  # type: ignore[attr-defined]
        rows = self.db.run_sync(lambda txn: txn.select_all("SELECT room_id, txn_id FROM event_txn_ids"))
        self.assertEqual([tuple(r) for r in rows], [(ROOM, "t1")])  # type: ignore[attr-defined]


class SQLiteTxnIdsMigrationTest(_MigrationTests, unittest.TestCase):
    database = "sqlite"


class PostgresTxnIdsMigrationTest(_MigrationTests, unittest.TestCase):
    database = "postgresql"
