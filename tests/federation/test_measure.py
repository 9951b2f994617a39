"""Rough numbers for the federation foundation on loopback (printed, loosely asserted):
signed request round trips, EDU latency, and transaction throughput."""

from __future__ import annotations

import time
from urllib.parse import quote

from twisted.internet import defer
from twisted.trial import unittest

from tests.federation.helpers import start_federating, wait_for
from tests.support.wspr import MatrixClient


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


class MeasureTest(unittest.TestCase):
    timeout = 120

    async def test_numbers(self) -> None:
        a = await start_federating(self)
        b = await start_federating(self)
        bob = await MatrixClient.register(b.base_url, "bob")
        await a.hs.federation.query_profile(b.server_name, bob.user_id)  # warm: keys, connection

        times = []
        for _ in range(200):
            t0 = time.perf_counter()
            await a.hs.federation.query_profile(b.server_name, bob.user_id)
            times.append((time.perf_counter() - t0) * 1000)
        print(f"\n  signed query round trip (WSPR->WSPR, keep-alive): p50 {_pct(times, 0.5):.2f} ms, "
              f"p95 {_pct(times, 0.95):.2f} ms")
        self.assertLess(_pct(times, 0.5), 100)

        t0 = time.perf_counter()
        await defer.gatherResults(
            [defer.ensureDeferred(a.hs.federation.query_profile(b.server_name, bob.user_id)) for _ in range(200)]
        )
        elapsed = time.perf_counter() - t0
        print(f"  200 concurrent signed queries: {elapsed * 1000:.0f} ms ({200 / elapsed:.0f}/s)")

        # EDU latency: local typing -> remote typing state
        alice = await MatrixClient.register(a.base_url, "alice")
        room_id = (await bob.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        await alice.post(f"/join/{quote(room_id)}?server_name={quote(b.server_name)}", {})
        await wait_for(lambda: alice.user_id in b.hs.rooms.local_users_in_room(room_id) or _joined(b, room_id, alice.user_id))
        lat = []
        for i in range(20):
            typing = i % 2 == 0
            t0 = time.perf_counter()
            await alice.put(f"/rooms/{quote(room_id)}/typing/{quote(alice.user_id)}", {"typing": typing, "timeout": 10000})
            await wait_for(lambda: (alice.user_id in b.hs.typing.typing_event(room_id)["content"]["user_ids"]) == typing,
                           interval=0.002)
            lat.append((time.perf_counter() - t0) * 1000)
        print(f"  typing EDU, client PUT on A -> state on B: p50 {_pct(lat, 0.5):.1f} ms, max {max(lat):.1f} ms")

        # PDU throughput: 300 messages sent concurrently on A, all persisted on B
        t0 = time.perf_counter()
        ids = await defer.gatherResults(
            [defer.ensureDeferred(alice.send_message(room_id, f"m{i}")) for i in range(300)]
        )

        async def all_there() -> bool:
            return await b.hs.store.get_event(ids[-1]) is not None and all(
                [await b.hs.store.get_event(e) is not None for e in ids[::25]]
            )

        await wait_for(all_there, timeout=60, interval=0.01)
        elapsed = time.perf_counter() - t0
        print(f"  300 messages A->B (send + federate + persist): {elapsed:.2f} s ({300 / elapsed:.0f} msg/s)")


async def _joined(server, room_id: str, user_id: str) -> bool:
    ev = await server.hs.rooms.get_current_state_event(room_id, "m.room.member", user_id)
    return ev is not None and ev.membership == "join"
