"""The room activity index of sliding sync (storage/sliding_sync.py) on both engines: kept
in the persist transaction as events arrive, equal to what the migration computes from
the events table for an existing database, and the same in memory after a restart."""

from __future__ import annotations

import os
from urllib.parse import quote

from twisted.trial import unittest

from homeserver.storage.migrations import SCHEMA_DIR, _split_statements
from tests.support.wspr import MatrixClient, start_homeserver


def _migration_backfill() -> str:
    with open(os.path.join(SCHEMA_DIR, "051_room_activity.sql"), encoding="utf-8") as f:
        statements = _split_statements(f.read())
    return next(s for s in statements if s.startswith("INSERT INTO room_activity"))


class RoomActivityMixin:
    database = "sqlite"
    timeout = 60

    async def test_index_matches_the_migration_backfill(self) -> None:
        server = await start_homeserver(self, database=self.database)  # type: ignore[arg-type]
        hs = server.hs
        alice = await MatrixClient.register(server.base_url, "alice")
        quiet = (await alice.post("/createRoom", {"name": "quiet"}))["room_id"]
        busy = (await alice.post("/createRoom", {"name": "busy"}))["room_id"]
        await alice.send_message(busy, "a bump")
        await alice.put(f"/rooms/{quote(busy)}/state/m.room.topic/", {"topic": "not a bump"})

        def read(txn):  # type: ignore[no-untyped-def]
            return {r[0]: (r[1], r[2]) for r in txn.select_all("SELECT room_id, last_event_stream, last_bump_stream FROM room_activity")}

        kept = await hs.db.read(read)
        # The create event bumps; the rest of a new room's state does not.
        self.assertGreater(kept[quiet][0], kept[quiet][1])
        self.assertGreater(kept[quiet][1], 0)
        # The message bumps; the topic after it is activity only.
        self.assertGreater(kept[busy][1], kept[quiet][0])
        self.assertGreater(kept[busy][0], kept[busy][1])
        # Memory and table agree.
        activity = await hs.store.get_room_activity([quiet, busy])
        self.assertEqual({r: (a.last_event, a.last_bump) for r, a in activity.items()}, kept)

        def backfill(txn):  # type: ignore[no-untyped-def]
            txn.execute("DELETE FROM room_activity")
            txn.execute(_migration_backfill())

        await hs.db.write(backfill)
        self.assertEqual(await hs.db.read(read), kept)
        # Read back into memory (as after a restart): the same positions.
        hs.store._room_activity.clear()
        activity = await hs.store.get_room_activity([quiet, busy, "!unknown:localhost"])
        self.assertEqual({r: (a.last_event, a.last_bump) for r, a in activity.items()},
                         {**kept, "!unknown:localhost": (0, 0)})


class RoomActivityTest(RoomActivityMixin, unittest.TestCase):
    pass


class RoomActivityTestPostgres(RoomActivityMixin, unittest.TestCase):
    database = "postgresql"
