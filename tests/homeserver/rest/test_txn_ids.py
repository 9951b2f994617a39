"""Send transaction ids as Synapse scopes them: per room, user and device (not per access
token), remembered across restarts; the in-memory part is bounded."""

from __future__ import annotations

from urllib.parse import quote

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.trial import unittest

from homeserver.app import HomeServer
from homeserver.config import load_config
from homeserver.handlers.room_events.sent_txns import TXN_ID_LIFETIME_MS, SentTransactions
from tests.support.wspr import MatrixClient, start_homeserver


async def send(client: MatrixClient, room_id: str, txn_id: str, body: str, event_type: str = "m.room.message") -> str:
    result = await client.put(f"/rooms/{quote(room_id)}/send/{event_type}/{txn_id}", {"msgtype": "m.text", "body": body})
    return str(result["event_id"])


class TxnIdsMixin:
    database = "sqlite"

    async def test_txn_ids_are_per_room_and_per_device(self) -> None:
        server = await start_homeserver(self)  # type: ignore[arg-type]
        alice = await MatrixClient.register(server.base_url, "alice")
        room1 = (await alice.post("/createRoom", {}))["room_id"]
        room2 = (await alice.post("/createRoom", {}))["room_id"]

        first = await send(alice, room1, "abc", "first")
        self.assertEqual(await send(alice, room1, "abc", "first"), first)  # type: ignore[attr-defined]
        # Another content, another event type: still the transaction already done.
        self.assertEqual(await send(alice, room1, "abc", "second"), first)  # type: ignore[attr-defined]
        self.assertEqual(await send(alice, room1, "abc", "x", "m.reaction"), first)  # type: ignore[attr-defined]
        # The same id in another room is a new event, in that room.
        other = await send(alice, room2, "abc", "in room 2")
        self.assertNotEqual(other, first)  # type: ignore[attr-defined]
        event = await alice.get(f"/rooms/{quote(room2)}/event/{quote(other)}")
        self.assertEqual((event["room_id"], event["content"]["body"]), (room2, "in room 2"))  # type: ignore[attr-defined]

        # A second login on the same device, and a refreshed token, are the same client.
        again = await MatrixClient.login(server.base_url, "alice", device_id=alice.device_id)
        self.assertEqual(again.device_id, alice.device_id)  # type: ignore[attr-defined]
        self.assertEqual(await send(again, room1, "abc", "first"), first)  # type: ignore[attr-defined]
        login = await MatrixClient(server.base_url).request(
            "POST",
            "/_matrix/client/v3/login",
            {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": "correct horse",
             "device_id": alice.device_id, "refresh_token": True},
        )
        refreshed = await MatrixClient(server.base_url).request(
            "POST", "/_matrix/client/v3/refresh", {"refresh_token": login["refresh_token"]}
        )
        after_refresh = MatrixClient(server.base_url, refreshed["access_token"], alice.user_id, alice.device_id)
        self.assertEqual(await send(after_refresh, room2, "abc", "in room 2"), other)  # type: ignore[attr-defined]
        # Another device of the same user is another client.
        laptop = await MatrixClient.login(server.base_url, "alice")
        self.assertNotEqual(await send(laptop, room1, "abc", "first"), first)  # type: ignore[attr-defined]

    async def test_txn_ids_survive_a_restart(self) -> None:
        server = await start_homeserver(self)  # type: ignore[arg-type]
        alice = await MatrixClient.register(server.base_url, "alice")
        room1 = (await alice.post("/createRoom", {}))["room_id"]
        room2 = (await alice.post("/createRoom", {}))["room_id"]
        first = await send(alice, room1, "t1", "first")

        await server.hs.stop()
        hs = HomeServer(load_config(server.config_path))
        await hs.start()
        self.addCleanup(lambda: defer.ensureDeferred(hs.stop()))  # type: ignore[attr-defined]
        alice = MatrixClient(f"http://127.0.0.1:{hs.client_port}", alice.access_token, alice.user_id, alice.device_id)
        # From the database now: the same room gives the same event, another room a new one.
        self.assertEqual(await send(alice, room1, "t1", "first"), first)  # type: ignore[attr-defined]
        other = await send(alice, room2, "t1", "in room 2")
        self.assertNotEqual(other, first)  # type: ignore[attr-defined]
        self.assertEqual(await send(alice, room2, "t1", "in room 2"), other)  # type: ignore[attr-defined]

    async def test_txn_ids_expire_after_a_day_and_are_pruned(self) -> None:
        # Synapse keeps a transaction id for 24 hours: a send with an older one is new.
        server = await start_homeserver(self, database=self.database)  # type: ignore[arg-type]
        alice = await MatrixClient.register(server.base_url, "alice")
        room = (await alice.post("/createRoom", {}))["room_id"]
        first = await send(alice, room, "t1", "first")
        recent = await send(alice, room, "t2", "second")
        day = 24 * 3600 * 1000
        await server.hs.db.write(
            lambda txn: txn.execute("UPDATE event_txn_ids SET inserted_ts = inserted_ts - ? WHERE event_id = ?", (day + 60_000, first)),
            name="t",
        )
        await server.hs.stop()
        hs = HomeServer(load_config(server.config_path))
        await hs.start()
        self.addCleanup(lambda: defer.ensureDeferred(hs.stop()))  # type: ignore[attr-defined]
        alice = MatrixClient(f"http://127.0.0.1:{hs.client_port}", alice.access_token, alice.user_id, alice.device_id)
        self.assertEqual(await send(alice, room, "t2", "second"), recent)  # type: ignore[attr-defined]
        again = await send(alice, room, "t1", "first, a day later")
        self.assertNotEqual(again, first)  # type: ignore[attr-defined]

        async def stored(event_id: str) -> int:
            return int(await hs.db.read(
                lambda txn: txn.select_value("SELECT COUNT(*) FROM event_txn_ids WHERE event_id = ?", (event_id,), 0), name="t"
            ))

        # The hourly prune ran with the first send after the start: the old row is gone.
        for _ in range(50):
            if await stored(first) == 0:
                break
            await deferLater(reactor, 0.1, lambda: None)
        self.assertEqual((await stored(first), await stored(recent), await stored(again)), (0, 1, 1))  # type: ignore[attr-defined]


class TxnIdsSQLiteTest(TxnIdsMixin, unittest.TestCase):
    database = "sqlite"


class TxnIdsPostgresTest(TxnIdsMixin, unittest.TestCase):
    database = "postgresql"


class SentTransactionsTest(unittest.TestCase):
    """The memory is an LRU: a device with an entry pushed out is looked up in the database."""

    def test_eviction_marks_the_device(self) -> None:
        sent = SentTransactions(max_entries=2)
        sent.load({("@old:hs", "OLD")})
        self.assertTrue(sent.needs_lookup("@old:hs", "OLD"))
        self.assertFalse(sent.needs_lookup("@a:hs", "A"))
        sent.remember(("!r:hs", "@a:hs", "A", "1"), "$1")
        sent.remember(("!r:hs", "@b:hs", "B", "1"), "$2")
        self.assertEqual(sent.recent(("!r:hs", "@a:hs", "A", "1")), "$1")  # now the most recent
        sent.remember(("!r:hs", "@c:hs", "C", "1"), "$3")  # pushes out B's, the least recent
        self.assertIsNone(sent.recent(("!r:hs", "@b:hs", "B", "1")))
        self.assertTrue(sent.needs_lookup("@b:hs", "B"))
        self.assertFalse(sent.needs_lookup("@a:hs", "A"))
        self.assertEqual(sent.recent(("!r:hs", "@c:hs", "C", "1")), "$3")

    def test_an_id_is_kept_for_a_day(self) -> None:
        now = [1_000_000_000]
        sent = SentTransactions(clock=lambda: now[0])
        key = ("!r:hs", "@a:hs", "A", "1")
        sent.remember(key, "$1")
        now[0] += TXN_ID_LIFETIME_MS
        self.assertEqual(sent.recent(key), "$1")
        now[0] += 1
        self.assertIsNone(sent.recent(key))
        self.assertEqual(sent.oldest_kept(), now[0] - TXN_ID_LIFETIME_MS)

    def test_prune_is_due_once_an_hour(self) -> None:
        now = [0]
        sent = SentTransactions(clock=lambda: now[0])
        self.assertTrue(sent.prune_due())
        self.assertFalse(sent.prune_due())
        now[0] += 3600 * 1000
        self.assertTrue(sent.prune_due())
