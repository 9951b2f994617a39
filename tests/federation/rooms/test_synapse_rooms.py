"""Rooms shared between WSPR and a real Synapse on loopback, created on each side in turn.

Synapse drops staged events past ~100 per room, so sends towards it are paced."""

from __future__ import annotations

import time
from urllib.parse import quote

from twisted.internet import reactor, task
from twisted.trial import unittest

from tests.federation.helpers import start_federating
from tests.federation.rooms.test_two_wspr import SyncWatcher
from tests.support.synapse import SynapseServer, start_synapse_peer, synapse_client
from tests.support.wspr import MatrixClient

try:
    import synapse  # noqa: F401
except ImportError:  # matrix-synapse is a test extra
    synapse = None


async def sleep(seconds: float) -> None:
    await task.deferLater(reactor, seconds, lambda: None)


class SynapseRoomsTest(unittest.TestCase):
    timeout = 180
    if synapse is None:
        skip = "matrix-synapse is not installed"

    async def _servers(self) -> tuple[object, SynapseServer]:
        syn = await start_synapse_peer(self, "wspr-synapse-rooms-")
        wspr = await start_federating(self)
        return wspr, syn

    async def _synapse_user(self, syn: SynapseServer, name: str) -> MatrixClient:
        return await synapse_client(syn, name)

    async def test_room_on_wspr_joined_from_synapse(self) -> None:
        wspr, syn = await self._servers()
        alice = await MatrixClient.register(wspr.base_url, "alice")
        bob = await self._synapse_user(syn, "bob")
        room_id = (await alice.post("/createRoom", {"preset": "private_chat", "name": "wspr room"}))["room_id"]
        for i in range(5):
            await alice.send_message(room_id, f"before join {i}")
        await alice.post(f"/rooms/{quote(room_id)}/invite", {"user_id": bob.user_id})
        bob_sync = SyncWatcher(bob)
        await bob_sync.until(lambda: room_id in bob_sync.invites, timeout=30)

        t0 = time.monotonic()
        await bob.post(f"/join/{quote(room_id)}")
        join_ms = (time.monotonic() - t0) * 1000
        alice_sync = SyncWatcher(alice)
        await alice_sync.until(lambda: alice_sync.has_member(room_id, bob.user_id, "join"), timeout=30)

        for i in range(5):
            await alice.send_message(room_id, f"wspr {i}")
            await bob.send_message(room_id, f"synapse {i}")
            await sleep(0.05)
        expected = {f"wspr {i}" for i in range(5)} | {f"synapse {i}" for i in range(5)}
        await alice_sync.until(lambda: expected <= set(alice_sync.bodies(room_id)), timeout=30)
        await bob_sync.until(lambda: expected <= set(bob_sync.bodies(room_id)), timeout=30)

        # Synapse back-paginates into the history from before its join (our /backfill).
        page = await bob.get(f"/rooms/{quote(room_id)}/messages?dir=b&limit=100")
        bodies = {e["content"].get("body") for e in page["chunk"] if e["type"] == "m.room.message"}
        self.assertIn("before join 0", bodies)

        # A burst from Synapse: WSPR keeps every event (no staging cap).
        from twisted.internet import defer

        n = 150
        for start in range(0, n, 15):
            await defer.gatherResults(
                [defer.ensureDeferred(bob.send_message(room_id, f"burst {i}")) for i in range(start, start + 15)]
            )
        burst = {f"burst {i}" for i in range(n)}
        await alice_sync.until(lambda: burst <= set(alice_sync.bodies(room_id)), timeout=60)
        # and one towards Synapse, paced and under 100 in all: Synapse prunes its staging
        # queue past ~100 events per room (seen here: "Pruning 100 events ... from
        # federation queue" when it processed ~25 PDUs/s on a busy machine)
        m = 80
        for start in range(0, m, 10):
            await defer.gatherResults(
                [defer.ensureDeferred(alice.send_message(room_id, f"paced {i}")) for i in range(start, start + 10)]
            )
            await sleep(0.2)
        paced = {f"paced {i}" for i in range(m)}
        await bob_sync.until(lambda: paced <= set(bob_sync.bodies(room_id)), timeout=60)

        # typing and receipts cross
        await bob.put(f"/rooms/{quote(room_id)}/typing/{quote(bob.user_id)}", {"typing": True, "timeout": 5000})
        await alice_sync.until(
            lambda: any(
                e["type"] == "m.typing" and bob.user_id in e["content"].get("user_ids", [])
                for e in alice_sync.ephemeral.get(room_id, [])
            ),
            timeout=30,
        )
        await bob.put(f"/rooms/{quote(room_id)}/typing/{quote(bob.user_id)}", {"typing": False})
        last = alice_sync.timeline[room_id][-1]["event_id"]
        await alice.post(f"/rooms/{quote(room_id)}/receipt/m.read/{quote(last)}", {})
        await bob_sync.until(
            lambda: any(e["type"] == "m.receipt" and last in e["content"] for e in bob_sync.ephemeral.get(room_id, [])),
            timeout=30,
        )
        await alice_sync.until(
            lambda: any(
                e["type"] == "m.typing" and e["content"].get("user_ids") == [] for e in alice_sync.ephemeral.get(room_id, [])
            ),
            timeout=30,
        )

        await bob.post(f"/rooms/{quote(room_id)}/leave")
        await alice_sync.until(lambda: alice_sync.has_member(room_id, bob.user_id, "leave"), timeout=30)
        print(f"\n  Synapse joined a WSPR room in {join_ms:.0f} ms")

    async def test_room_on_synapse_joined_from_wspr(self) -> None:
        wspr, syn = await self._servers()
        alice = await MatrixClient.register(wspr.base_url, "alice")
        bob = await self._synapse_user(syn, "bob")
        room_id = (await bob.post("/createRoom", {"preset": "public_chat", "room_alias_name": "lobby", "name": "syn"}))[
            "room_id"
        ]
        for i in range(30):
            await bob.send_message(room_id, f"history {i}")
        # an invite from Synapse reaches alice's /sync
        await bob.post(f"/rooms/{quote(room_id)}/invite", {"user_id": alice.user_id})
        alice_sync = SyncWatcher(alice)
        await alice_sync.until(lambda: room_id in alice_sync.invites, timeout=30)
        invite_state = alice_sync.invites[room_id]["invite_state"]["events"]
        self.assertIn("m.room.name", {e["type"] for e in invite_state})

        t0 = time.monotonic()
        joined = await alice.post(f"/join/{quote('#lobby:' + syn.server_name)}")
        join_ms = (time.monotonic() - t0) * 1000
        self.assertEqual(joined["room_id"], room_id)
        bob_sync = SyncWatcher(bob)
        await bob_sync.until(lambda: bob_sync.has_member(room_id, alice.user_id, "join"), timeout=30)

        for i in range(5):
            await alice.send_message(room_id, f"wspr {i}")
            await bob.send_message(room_id, f"synapse {i}")
            await sleep(0.05)
        expected = {f"wspr {i}" for i in range(5)} | {f"synapse {i}" for i in range(5)}
        await alice_sync.until(lambda: expected <= set(alice_sync.bodies(room_id)), timeout=30)
        await bob_sync.until(lambda: expected <= set(bob_sync.bodies(room_id)), timeout=30)

        # history from before the join, backfilled from Synapse
        seen: list[str] = []
        token = None
        for _ in range(10):
            path = f"/rooms/{quote(room_id)}/messages?dir=b&limit=20" + (f"&from={quote(token)}" if token else "")
            page = await alice.get(path)
            seen += [e["content"].get("body") for e in page["chunk"] if e["type"] == "m.room.message"]
            if "end" not in page:
                break
            token = page["end"]
        for i in range(30):
            self.assertIn(f"history {i}", seen)

        # a state change on Synapse's side reaches our current state
        await bob.put(f"/rooms/{quote(room_id)}/state/m.room.topic/", {"topic": "from synapse"})

        async def topic_is_set() -> bool:
            ev = await wspr.hs.rooms.get_current_state_event(room_id, "m.room.topic")
            return ev is not None and ev.content.get("topic") == "from synapse"

        deadline = time.monotonic() + 30
        while not await topic_is_set():
            self.assertLess(time.monotonic(), deadline)
            await sleep(0.1)

        await alice.post(f"/rooms/{quote(room_id)}/leave")
        await bob_sync.until(lambda: bob_sync.has_member(room_id, alice.user_id, "leave"), timeout=30)
        print(f"\n  WSPR joined a Synapse room in {join_ms:.0f} ms")

    async def test_knocks_and_restricted_joins_both_ways(self) -> None:
        wspr, syn = await self._servers()
        alice = await MatrixClient.register(wspr.base_url, "alice")
        bob = await self._synapse_user(syn, "bob")
        alice_sync, bob_sync = SyncWatcher(alice), SyncWatcher(bob)

        # alice (WSPR) knocks on a Synapse room; bob lets her in
        syn_room = (await bob.post("/createRoom", {"preset": "private_chat"}))["room_id"]
        await bob.put(f"/rooms/{quote(syn_room)}/state/m.room.join_rules/", {"join_rule": "knock"})
        await alice.post(f"/knock/{quote(syn_room)}?server_name={quote(syn.server_name)}", {"reason": "hi"})
        await bob_sync.until(lambda: bob_sync.has_member(syn_room, alice.user_id, "knock"), timeout=30)
        await bob.post(f"/rooms/{quote(syn_room)}/invite", {"user_id": alice.user_id})
        await alice_sync.until(lambda: syn_room in alice_sync.invites, timeout=30)
        await alice.post(f"/join/{quote(syn_room)}")
        await bob_sync.until(lambda: bob_sync.has_member(syn_room, alice.user_id, "join"), timeout=30)

        # bob (Synapse) knocks on a WSPR room; alice lets him in
        w_room = (await alice.post("/createRoom", {"preset": "private_chat"}))["room_id"]
        await alice.put(f"/rooms/{quote(w_room)}/state/m.room.join_rules/", {"join_rule": "knock"})
        await bob.post(f"/knock/{quote(w_room)}?server_name={quote(wspr.server_name)}", {"reason": "hello"})
        await alice_sync.until(lambda: alice_sync.has_member(w_room, bob.user_id, "knock"), timeout=30)
        await alice.post(f"/rooms/{quote(w_room)}/invite", {"user_id": bob.user_id})
        await bob_sync.until(lambda: w_room in bob_sync.invites, timeout=30)
        await bob.post(f"/join/{quote(w_room)}")
        await alice_sync.until(lambda: alice_sync.has_member(w_room, bob.user_id, "join"), timeout=30)

        # restricted rooms: joining through membership of an allowed room, each side resident
        syn_restricted = (await bob.post("/createRoom", {"preset": "private_chat"}))["room_id"]
        await bob.put(
            f"/rooms/{quote(syn_restricted)}/state/m.room.join_rules/",
            {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": syn_room}]},
        )
        await alice.post(f"/join/{quote(syn_restricted)}?server_name={quote(syn.server_name)}")
        await bob_sync.until(lambda: bob_sync.has_member(syn_restricted, alice.user_id, "join"), timeout=30)

        w_restricted = (await alice.post("/createRoom", {"preset": "private_chat"}))["room_id"]
        await alice.put(
            f"/rooms/{quote(w_restricted)}/state/m.room.join_rules/",
            {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": w_room}]},
        )
        await bob.post(f"/join/{quote(w_restricted)}?server_name={quote(wspr.server_name)}")
        await alice_sync.until(lambda: alice_sync.has_member(w_restricted, bob.user_id, "join"), timeout=30)
        await bob.send_message(w_restricted, "restricted ok")
        await alice_sync.until(lambda: "restricted ok" in alice_sync.bodies(w_restricted), timeout=30)
