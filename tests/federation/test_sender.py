"""The outbound queue against a fake transport: limits, order, backoff, persistence
across a restart, catch-up after an outage, refusals."""

from __future__ import annotations

from typing import Any

from twisted.trial import unittest

from federation.errors import FederationError, FederationUnreachable
from federation.sender import FederationSender
from tests.federation.helpers import wait_for
from tests.support.wspr import start_homeserver


class FakeTransport:
    def __init__(self) -> None:
        self.mode = "ok"
        self.txns: list[tuple[str, dict[str, Any]]] = []
        self.attempts = 0

    async def request(self, destination: str, method: str, path: str, *, body: Any = None, **kw: Any) -> Any:
        self.attempts += 1
        if self.mode == "down":
            raise FederationUnreachable(destination, "connection refused")
        if self.mode == "refuse":
            raise FederationError(403, "M_FORBIDDEN", "go away", destination)
        self.txns.append((destination, body))
        return {"pdus": {}}

    def pdus(self, dest: str = "remote.example") -> list[dict[str, Any]]:
        return [p for d, t in self.txns if d == dest for p in t["pdus"]]

    def edus(self, dest: str = "remote.example") -> list[dict[str, Any]]:
        return [e for d, t in self.txns if d == dest for e in t["edus"]]


async def _check(coro: Any, predicate: Any) -> bool:
    return bool(predicate(await coro))


def pdu(n: int, room: str = "!r:x") -> dict[str, Any]:
    return {"type": "m.room.message", "room_id": room, "content": {"n": n}}


class SenderTest(unittest.TestCase):
    timeout = 60
    database = "sqlite"

    async def _sender(self, **fed: Any) -> tuple[Any, FederationSender, FakeTransport]:
        server = await start_homeserver(
            self, database=self.database, federation={"min_retry_interval": 0.1, "max_retry_interval": 0.4, **fed}
        )
        transport = FakeTransport()
        sender = FederationSender(server.hs, transport)
        await sender.start()
        self.addCleanup(sender.stop)
        return server, sender, transport

    async def test_limits_and_order(self) -> None:
        _, sender, t = await self._sender()
        for i in range(120):
            sender.send_pdu(["remote.example", "localhost"], pdu(i))
        for i in range(150):
            sender.send_edu("remote.example", "m.device_list_update", {"n": i})
        for i in range(3):
            sender.send_edu("remote.example", "m.typing", {"n": i})
        await wait_for(lambda: len(t.pdus()) == 120 and len(t.edus()) == 153)
        for _, txn in t.txns:
            self.assertLessEqual(len(txn["pdus"]), 50)
            self.assertLessEqual(len(txn["edus"]), 100)
            self.assertEqual(txn["origin"], "localhost")
        self.assertEqual([p["content"]["n"] for p in t.pdus()], list(range(120)))
        self.assertEqual([e["content"]["n"] for e in t.edus() if e["edu_type"] != "m.typing"], list(range(150)))
        # nothing is ever sent to ourselves; the outbox is empty afterwards
        self.assertEqual({d for d, _ in t.txns}, {"remote.example"})
        # The outbox rows go once each answer is in (a write after the response): wait for it.
        await wait_for(lambda: _check(sender.store.count_outbox("remote.example"), lambda c: c == (0, 0)))

    async def test_backoff_is_exponential_capped_and_reset(self) -> None:
        _, sender, t = await self._sender()
        t.mode = "down"
        intervals: list[int] = []
        sender.send_pdu(["remote.example"], pdu(1))
        for _ in range(5):
            await wait_for(lambda: sender.retry_state("remote.example")[1] not in ([0] + intervals[-1:]) or
                           (len(intervals) >= 3 and t.attempts > len(intervals)))
            intervals.append(sender.retry_state("remote.example")[1])
            await wait_for(lambda: t.attempts > len(intervals), timeout=5)
        self.assertEqual(intervals[:3], [100, 200, 400])
        self.assertTrue(all(i == 400 for i in intervals[3:]), intervals)
        # the retry state is persisted
        stored = await sender.store.get_destination_retries()
        self.assertEqual(stored["remote.example"][1], 400)
        t.mode = "ok"
        await wait_for(lambda: len(t.pdus()) == 1, timeout=5)
        self.assertEqual(sender.retry_state("remote.example"), (0, 0))
        await wait_for(lambda: _check(sender.store.get_destination_retries(), lambda r: "remote.example" not in r))

    async def test_restart_loses_nothing(self) -> None:
        server, sender, t = await self._sender()
        t.mode = "down"
        for i in range(5):
            sender.send_pdu(["remote.example"], pdu(i))
        sender.send_edu("remote.example", "m.direct_to_device", {"messages": {}})
        await wait_for(lambda: _check(sender.store.count_outbox("remote.example"), lambda c: c == (5, 1)))
        # The first attempt must have failed (and started the back-off) before the restart.
        await wait_for(lambda: sender.retry_state("remote.example")[1] > 0)
        await sender.stop()
        t2 = FakeTransport()
        restarted = FederationSender(server.hs, t2)
        self.addCleanup(restarted.stop)
        await restarted.start()
        # still backing off after the restart, then delivered
        self.assertGreater(restarted.retry_state("remote.example")[1], 0)
        await wait_for(lambda: len(t2.pdus()) == 5 and len(t2.edus()) == 1, timeout=5)
        self.assertEqual([p["content"]["n"] for p in t2.pdus()], list(range(5)))

    async def test_catch_up_sends_latest(self) -> None:
        # long backoff: no retry until the test says the destination is back
        _, sender, t = await self._sender(min_retry_interval=30, max_retry_interval=60)
        t.mode = "down"
        sender.send_pdu(["remote.example"], pdu(0, "!quiet:x"))
        for i in range(600):
            sender.send_pdu(["remote.example"], pdu(i, "!busy:x"))
        await wait_for(lambda: _check(sender.store.count_outbox("remote.example"), lambda c: c[0] == 601), timeout=30)
        t.mode = "ok"
        sender.on_remote_alive("remote.example")
        await wait_for(lambda: _check(sender.store.count_outbox("remote.example"), lambda c: c == (0, 0)))
        busy = [p["content"]["n"] for p in t.pdus() if p["room_id"] == "!busy:x"]
        self.assertEqual(busy, list(range(550, 600)))
        self.assertEqual([p["room_id"] for p in t.pdus()].count("!quiet:x"), 1)

    async def test_short_outage_replays_everything(self) -> None:
        _, sender, t = await self._sender()
        t.mode = "down"
        for i in range(120):
            sender.send_pdu(["remote.example"], pdu(i))
        await wait_for(lambda: _check(sender.store.count_outbox("remote.example"), lambda c: c[0] == 120))
        t.mode = "ok"
        await wait_for(lambda: len(t.pdus()) == 120, timeout=5)
        self.assertEqual([p["content"]["n"] for p in t.pdus()], list(range(120)))

    async def test_refusal_drops_without_backoff(self) -> None:
        _, sender, t = await self._sender()
        t.mode = "refuse"
        sender.send_pdu(["remote.example"], pdu(1))
        await wait_for(lambda: t.attempts == 1)
        await wait_for(lambda: _check(sender.store.count_outbox("remote.example"), lambda c: c == (0, 0)))
        self.assertEqual(sender.retry_state("remote.example")[1], 0)
        t.mode = "ok"
        sender.send_pdu(["remote.example"], pdu(2))
        await wait_for(lambda: [p["content"]["n"] for p in t.pdus()] == [2])


class SenderPostgresTest(SenderTest):
    database = "postgresql"
