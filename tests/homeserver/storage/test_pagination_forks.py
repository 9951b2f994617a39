"""/messages order on a forked room: two servers' events interleave by arrival (stream)
but are paginated by (depth, stream). A stream position (a sync token, or "now") must
bound by stream alone: turned into a (depth, stream) key, it cut off the events of greater
depth that arrived before the latest one (the local half of a fork, here), and a client
reading a room back from "now" never saw them (found by test_two_wspr's convergence test)."""

from __future__ import annotations

import tempfile
from typing import Any

from twisted.trial import unittest

from homeserver.events.event import Event
from homeserver.storage import Database, DataStore, prepare_database
from homeserver.storage.events import PersistBatch
from tests.support.wspr import PostgresUnavailable, create_postgres_database, drop_postgres_database

ROOM = "!r:x"


def ev(eid: str, stream: int, depth: int) -> Event:
    pdu: dict[str, Any] = {
        "type": "m.room.message",
        "room_id": ROOM,
        "sender": "@a:x",
        "content": {"body": eid},
        "depth": depth,
        "origin_server_ts": 1000 + stream,
        "prev_events": [],
        "auth_events": [],
    }
    return Event(eid, pdu, "11", stream_ordering=stream)


class _ForkTests:
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

    async def test_a_stream_position_bounds_by_stream(self) -> None:
        # Local events at depths 10-12 (streams 1-3), then the other server's fork from an
        # older point, depths 5-6 (streams 4-5): the latest by stream has the lowest depth.
        events = [ev("$l10", 1, 10), ev("$l11", 2, 11), ev("$l12", 3, 12), ev("$r5", 4, 5), ev("$r6", 5, 6)]
        await self.store.persist_batch(PersistBatch(events=events, new_rooms=[(ROOM, "11", "@a:x", 0)]))

        now = await self.store.paginate_room_events(ROOM, 5, "b", 10)
        self.assertEqual([e.event_id for e in now], ["$l12", "$l11", "$l10", "$r6", "$r5"])
        # A position before the fork arrived: only what had arrived by then.
        before_fork = await self.store.paginate_room_events(ROOM, 3, "b", 10)
        self.assertEqual([e.event_id for e in before_fork], ["$l12", "$l11", "$l10"])
        # Forwards from a stream position: what arrived after it, in (depth, stream) order.
        after = await self.store.paginate_room_events(ROOM, 3, "f", 10)
        self.assertEqual([e.event_id for e in after], ["$r5", "$r6"])
        # The (depth, stream) key of the latest event, as the first page used to read it,
        # leaves the local half out: what a stream position must not do.
        by_key = await self.store.paginate_room_events(ROOM, (6, 6), "b", 10)
        self.assertEqual([e.event_id for e in by_key], ["$r6", "$r5"])


class SQLiteForkTest(_ForkTests, unittest.TestCase):
    database = "sqlite"


class PostgresForkTest(_ForkTests, unittest.TestCase):
    database = "postgresql"
