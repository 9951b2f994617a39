"""The full-text index on both engines: what goes in when events are stored, what
leaves with a redaction (in the same transaction), and the migration that indexes
events stored before it existed."""

from __future__ import annotations

import tempfile
from typing import Any

from twisted.trial import unittest

from homeserver.events.event import Event
from homeserver.storage import Database, DataStore, prepare_database
from homeserver.storage.events import PersistBatch
from homeserver.storage.search import SearchFilter, fts5_query, parse_search_terms
from tests.support.wspr import PostgresUnavailable, create_postgres_database, drop_postgres_database

ROOM = "!r:x"


def ev(eid: str, pos: int, event_type: str = "m.room.message", content: Any = None, **flags: Any) -> Event:
    pdu: dict[str, Any] = {
        "type": event_type,
        "room_id": ROOM,
        "sender": "@a:x",
        "content": content if content is not None else {"body": f"needle {eid}"},
        "depth": pos,
        "origin_server_ts": 1000 + pos,
        "prev_events": [],
        "auth_events": [],
    }
    if event_type in ("m.room.name", "m.room.topic"):
        pdu["state_key"] = ""
    if event_type == "m.room.redaction":
        pdu["redacts"] = content.pop("redacts")
    return Event(eid, pdu, "11", stream_ordering=pos, **flags)


def everything() -> list[Event]:
    return [
        ev("$msg", 1),
        ev("$name", 2, "m.room.name", {"name": "needle room"}),
        ev("$topic", 3, "m.room.topic", {"topic": "needle topic", "m.topic": {"m.text": [{"body": "needle plain topic"}]}}),
        ev("$encrypted", 4, "m.room.encrypted", {"ciphertext": "needle"}),
        ev("$rejected", 5, rejected_reason="auth"),
        ev("$outlier", 6, outlier=True),
        ev("$soft", 7, soft_failed=True),
        ev("$notext", 8, content={"body": {"not": "a string"}}),
        ev("$redacted", 9),
        ev("$redaction", 10, "m.room.redaction", {"redacts": "$redacted"}),
        ev("$nul", 11, content={"body": "needle\u0000with a NUL"}),
    ]


INDEXED = ["$msg", "$name", "$nul", "$topic"]


class _SearchIndexTests:
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

    def indexed(self) -> list[str]:
        return sorted(r[0] for r in self.db.run_sync(lambda txn: txn.select_all("SELECT event_id FROM event_search")))

    async def hits(self, term: str) -> list[str]:
        where = SearchFilter(rooms=[ROOM], keys=["content.body", "content.name", "content.topic"])
        return sorted(h.event_id for h in await self.store.search_events(term, where, order="rank", limit=50))  # type: ignore[attr-defined]

    async def test_what_is_indexed_when_stored(self) -> None:
        await self.store.persist_batch(PersistBatch(events=everything(), new_rooms=[(ROOM, "11", "@a:x", 0)]))
        self.assertEqual(self.indexed(), INDEXED)  # type: ignore[attr-defined]
        self.assertEqual(await self.hits("needle"), INDEXED)  # type: ignore[attr-defined]
        # a topic is indexed by its plain-text m.topic representation
        self.assertEqual(await self.hits("plain"), ["$topic"])  # type: ignore[attr-defined]

    async def test_a_redaction_before_its_event_and_one_not_applied(self) -> None:
        """A redaction may arrive before what it redacts (the event is then never
        indexed); one that a remote batch stores without applying leaves its target."""
        await self.store.persist_batch(PersistBatch(events=[ev("$early", 1, "m.room.redaction", {"redacts": "$late"})], new_rooms=[(ROOM, "11", "@a:x", 0)]))
        await self.store.persist_batch(PersistBatch(events=[ev("$late", 2), ev("$kept", 3)]))
        self.assertEqual(self.indexed(), ["$kept"])  # type: ignore[attr-defined]
        unapplied = ev("$powerless", 4, "m.room.redaction", {"redacts": "$kept"})
        await self.store.persist_remote_batch(PersistBatch(events=[unapplied]), [], ["$powerless"])  # type: ignore[attr-defined]
        self.assertEqual(self.indexed(), ["$kept"])  # type: ignore[attr-defined]
        applied = ev("$applied", 5, "m.room.redaction", {"redacts": "$kept"})
        await self.store.persist_remote_batch(PersistBatch(events=[applied]), [], [])  # type: ignore[attr-defined]
        self.assertEqual(self.indexed(), [])  # type: ignore[attr-defined]
        self.assertEqual(await self.hits("needle"), [])  # type: ignore[attr-defined]

    async def test_a_failed_transaction_indexes_nothing(self) -> None:
        await self.store.persist_batch(PersistBatch(events=[ev("$a", 1)], new_rooms=[(ROOM, "11", "@a:x", 0)]))
        with self.assertRaises(Exception):  # type: ignore[attr-defined]
            # reuses a stream position: the events insert fails after nothing else
            await self.store.persist_batch(PersistBatch(events=[ev("$b", 2), ev("$c", 1)]))
        self.assertEqual(self.indexed(), ["$a"])  # type: ignore[attr-defined]

    async def test_the_migration_indexes_events_stored_before_it(self) -> None:
        await self.store.persist_batch(PersistBatch(events=everything(), new_rooms=[(ROOM, "11", "@a:x", 0)]))
        name = next(n for n in self._applied() if "event_search" in n)

        def undo(txn: Any) -> None:
            if txn.dialect == "sqlite":
                txn.execute("DROP TABLE event_search_fts")
            txn.execute("DROP TABLE event_search")
            txn.execute("DELETE FROM applied_migrations WHERE name = ?", (name,))

        self.db.run_sync(undo)
        prepare_database(self.db)
        self.assertIn(name, self._applied())  # type: ignore[attr-defined]
        # PostgreSQL cannot take an escaped NUL out of JSON as text: the migration leaves
        # such an event out there (stored from now on, it is indexed with a space for it).
        # The topic is indexed by its `topic` (the migration's SQL does not read m.topic).
        backfilled = [e for e in INDEXED if not (e == "$nul" and self.db.engine == "postgres")]
        self.assertEqual(self.indexed(), backfilled)  # type: ignore[attr-defined]
        self.assertEqual(await self.hits("needle"), backfilled)  # type: ignore[attr-defined]
        self.assertEqual(await self.hits("room"), ["$name"])  # type: ignore[attr-defined]
        # and the index goes on from there
        await self.store.persist_batch(PersistBatch(events=[ev("$new", 20), ev("$red", 21, "m.room.redaction", {"redacts": "$msg"})]))
        self.assertEqual(self.indexed(), sorted(set(backfilled) - {"$msg"} | {"$new"}))  # type: ignore[attr-defined]
        self.assertEqual(await self.hits("needle"), sorted(set(backfilled) - {"$msg"} | {"$new"}))  # type: ignore[attr-defined]

    def _applied(self) -> list[str]:
        return [r[0] for r in self.db.run_sync(lambda txn: txn.select_all("SELECT name FROM applied_migrations"))]


class SQLiteSearchIndexTest(_SearchIndexTests, unittest.TestCase):
    database = "sqlite"


class PostgresSearchIndexTest(_SearchIndexTests, unittest.TestCase):
    database = "postgresql"


class QueryTranslationTest(unittest.TestCase):
    """What a user types, as FTS5 reads it: words quoted (never syntax), phrases kept,
    `or` between alternatives, `-word` subtracted, stop words dropped."""

    def test_fts5_queries(self) -> None:
        cases = {
            "hello": '("hello")',
            "hello world": '("hello" AND "world")',
            '"hello world"': '("hello world")',
            "hello or world": '("hello") OR ("world")',
            "hello OR world": '("hello") OR ("world")',
            "hello -world": '(("hello") NOT ("world"))',
            "the hello": '("hello")',
            'say "a" "b"': '("say" AND "b")',
            "NEAR(a b)": '("NEAR(a" AND "b)")',
            'x"y': '("x" AND "y")',
            'quote"d"': '("quote" AND "d")',
            "AND": None,
            "-hello": None,
            "the": None,
            "": None,
            "  ": None,
            "or": None,
            "hello or": '("hello")',
            "--": None,
        }
        for term, want in cases.items():
            self.assertEqual(fts5_query(term), want, term)

    def test_parse_keeps_negated_words_apart(self) -> None:
        alternatives = parse_search_terms("apple -pie or banana")
        self.assertEqual([[(t.text, t.negated) for t in alt] for alt in alternatives], [[("apple", False), ("pie", True)], [("banana", False)]])
