"""Two WSPR servers on loopback share rooms: invites, joins, chat, typing, receipts,
leaves, joins by alias and history from before the join."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from twisted.internet import reactor, task
from twisted.trial import unittest

from homeserver.http.errors import MatrixError
from tests.support.wspr import MatrixClient


class SyncWatcher:
    """Incremental /sync for one client, accumulating what it has seen."""

    def __init__(self, client: MatrixClient) -> None:
        self.client = client
        self.since: str | None = None
        self.timeline: dict[str, list[dict[str, Any]]] = {}
        self.ephemeral: dict[str, list[dict[str, Any]]] = {}
        self.invites: dict[str, Any] = {}
        self.unread: dict[str, Any] = {}

    async def step(self, timeout: int = 500) -> None:
        # Servers cap the timeline (Synapse's filter_timeline_limit is 100): a busy room's
        # sync (or a first sync) can be "limited", and the gap is read back with /messages
        # as clients do, so the watcher sees every event.
        resp = await self.client.sync(self.since, timeout=timeout, filter={"room": {"timeline": {"limit": 2000}}})
        self.since = resp["next_batch"]
        rooms = resp.get("rooms", {})  # Synapse leaves empty sections out
        for room_id, room in rooms.get("join", {}).items():
            timeline = room.get("timeline", {})
            seen = self.timeline.setdefault(room_id, [])
            known = {e["event_id"] for e in seen}
            events = [e for e in timeline.get("events", []) if e["event_id"] not in known]
            if timeline.get("limited"):
                known |= {e["event_id"] for e in events}
                seen.extend(await self._unseen(room_id, known))
            seen.extend(events)
            self.ephemeral.setdefault(room_id, []).extend(room.get("ephemeral", {}).get("events", []))
            if room.get("unread_notifications"):
                self.unread[room_id] = room["unread_notifications"]
        self.invites.update(rooms.get("invite", {}))

    async def _unseen(self, room_id: str, seen: set[str]) -> list[dict[str, Any]]:
        """The room's events not seen yet, oldest first. /messages is in DAG order and
        sync in arrival order, so an unseen event can sit anywhere among seen ones: the
        whole room is read back, from its latest event (rooms in these tests are small;
        what is read past the sync's position is skipped when the next sync brings it)."""
        missed: list[dict[str, Any]] = []
        token = ""
        while True:
            since = f"&from={quote(token)}" if token else ""
            page = await self.client.get(f"/rooms/{quote(room_id)}/messages?dir=b&limit=100{since}")
            chunk = page.get("chunk", [])
            missed.extend(e for e in chunk if e["event_id"] not in seen)
            if not chunk or not page.get("end"):
                return list(reversed(missed))
            token = page["end"]

    async def until(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("sync condition not met in time")
            await self.step()

    def bodies(self, room_id: str) -> list[str]:
        return [e["content"].get("body") for e in self.timeline.get(room_id, []) if e["type"] == "m.room.message"]

    def has_member(self, room_id: str, user_id: str, membership: str) -> bool:
        return any(
            e["type"] == "m.room.member" and e.get("state_key") == user_id and e["content"].get("membership") == membership
            for e in self.timeline.get(room_id, [])
        )


async def sleep(seconds: float) -> None:
    await task.deferLater(reactor, seconds, lambda: None)


class ServersMixin:
    database = "sqlite"

    async def start_server(self) -> Any:
        from tests.federation.helpers import LOOPBACK_FEDERATION
        from tests.support.synapse import free_port
        from tests.support.wspr import start_homeserver

        port = free_port()
        return await start_homeserver(
            self,  # type: ignore[arg-type]
            server_name=f"127.0.0.1:{port}",
            federation_port=port,
            start_extras=True,
            federation=LOOPBACK_FEDERATION,
            database=self.database,
        )


class TwoWsprRoomsTest(ServersMixin, unittest.TestCase):
    timeout = 120

    async def test_invite_join_chat_typing_receipts_leave(self) -> None:
        a = await self.start_server()
        b = await self.start_server()
        alice = await MatrixClient.register(a.base_url, "alice")
        bob = await MatrixClient.register(b.base_url, "bob")
        room_id = (await alice.post("/createRoom", {"preset": "private_chat", "name": "fed room"}))["room_id"]
        await alice.post(f"/rooms/{quote(room_id)}/invite", {"user_id": bob.user_id})

        bob_sync = SyncWatcher(bob)
        await bob_sync.until(lambda: room_id in bob_sync.invites)
        invite_state = bob_sync.invites[room_id]["invite_state"]["events"]
        self.assertIn("m.room.name", {e["type"] for e in invite_state})

        t0 = time.monotonic()
        await bob.post(f"/join/{quote(room_id)}")
        join_ms = (time.monotonic() - t0) * 1000
        alice_sync = SyncWatcher(alice)
        await alice_sync.until(lambda: alice_sync.has_member(room_id, bob.user_id, "join"))

        for i in range(5):
            await alice.send_message(room_id, f"from alice {i}")
            await bob.send_message(room_id, f"from bob {i}")
        expected = {f"from alice {i}" for i in range(5)} | {f"from bob {i}" for i in range(5)}
        await alice_sync.until(lambda: expected <= set(alice_sync.bodies(room_id)))
        await bob_sync.until(lambda: expected <= set(bob_sync.bodies(room_id)))
        # push rules ran on the remote messages: they count as unread
        await alice_sync.until(lambda: alice_sync.unread.get(room_id, {}).get("notification_count", 0) > 0)

        # typing and receipts cross
        await alice.put(f"/rooms/{quote(room_id)}/typing/{quote(alice.user_id)}", {"typing": True, "timeout": 20000})
        await bob_sync.until(
            lambda: any(
                e["type"] == "m.typing" and alice.user_id in e["content"].get("user_ids", [])
                for e in bob_sync.ephemeral.get(room_id, [])
            )
        )
        last = bob_sync.timeline[room_id][-1]["event_id"]
        await bob.post(f"/rooms/{quote(room_id)}/receipt/m.read/{quote(last)}", {})
        await alice_sync.until(
            lambda: any(
                e["type"] == "m.receipt" and last in e["content"] for e in alice_sync.ephemeral.get(room_id, [])
            )
        )

        # typing stops on both servers (no timers left behind)
        await alice.put(f"/rooms/{quote(room_id)}/typing/{quote(alice.user_id)}", {"typing": False})
        await bob_sync.until(
            lambda: any(
                e["type"] == "m.typing" and e["content"].get("user_ids") == []
                for e in bob_sync.ephemeral.get(room_id, [])
            )
        )

        await bob.post(f"/rooms/{quote(room_id)}/leave")
        await alice_sync.until(lambda: alice_sync.has_member(room_id, bob.user_id, "leave"))
        # Both servers agree on the room's state.
        self.assertEqual(a.hs.rooms.cache._rooms[room_id].state, b.hs.rooms.cache._rooms[room_id].state)
        print(f"\n  join over federation: {join_ms:.0f} ms")

    async def test_join_by_alias_with_backfill(self) -> None:
        a = await self.start_server()
        b = await self.start_server()
        alice = await MatrixClient.register(a.base_url, "alice")
        bob = await MatrixClient.register(b.base_url, "bob")
        room_id = (await bob.post("/createRoom", {"preset": "public_chat", "room_alias_name": "lobby"}))["room_id"]
        for i in range(30):
            await bob.send_message(room_id, f"history {i}")
        alias = f"#lobby:{b.server_name}"
        joined = await alice.post(f"/join/{quote(alias)}")
        self.assertEqual(joined["room_id"], room_id)

        # The room is usable at once: state, sending, receiving.
        state = await alice.get(f"/rooms/{quote(room_id)}/state")
        self.assertIn("m.room.create", {e["type"] for e in state})
        await alice.send_message(room_id, "hello from A")
        bob_sync = SyncWatcher(bob)
        await bob_sync.until(lambda: "hello from A" in bob_sync.bodies(room_id))
        await bob.send_message(room_id, "hello from B")
        alice_sync = SyncWatcher(alice)
        await alice_sync.until(lambda: "hello from B" in alice_sync.bodies(room_id))

        # History from before the join comes with /messages (backfilled from B).
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
        types = set()
        # the create event is part of the backfilled timeline too
        page = await alice.get(f"/rooms/{quote(room_id)}/messages?dir=b&limit=200")
        types = {e["type"] for e in page["chunk"]}
        self.assertIn("m.room.create", types)
        # none of it showed up in /sync as new
        self.assertNotIn("history 0", alice_sync.bodies(room_id))

        # leave, miss some, come back: A has no user left in the room, so it joins again
        # through B and carries on from the state B sends
        await alice.post(f"/rooms/{quote(room_id)}/leave")
        await bob_sync.until(lambda: bob_sync.has_member(room_id, alice.user_id, "leave"))
        await bob.send_message(room_id, "while away")
        await alice.post(f"/join/{quote(room_id)}")
        await bob_sync.until(lambda: bob_sync.has_member(room_id, alice.user_id, "join") and len(
            [e for e in bob_sync.timeline[room_id] if e.get("state_key") == alice.user_id]) >= 3)
        await bob.send_message(room_id, "welcome back")
        await alice_sync.until(lambda: "welcome back" in alice_sync.bodies(room_id))
        await alice.send_message(room_id, "back again")
        await bob_sync.until(lambda: "back again" in bob_sync.bodies(room_id))
        self.assertEqual(a.hs.rooms.cache._rooms[room_id].state, b.hs.rooms.cache._rooms[room_id].state)

    async def test_v12_room_reject_invite_and_knock(self) -> None:
        a = await self.start_server()
        b = await self.start_server()
        alice = await MatrixClient.register(a.base_url, "alice")
        bob = await MatrixClient.register(b.base_url, "bob")
        carol = await MatrixClient.register(b.base_url, "carol")
        room_id = (await alice.post("/createRoom", {"preset": "private_chat", "room_version": "12"}))["room_id"]
        self.assertNotIn(":", room_id)  # v12: the room id names no server
        await alice.post(f"/rooms/{quote(room_id)}/invite", {"user_id": bob.user_id})
        await alice.post(f"/rooms/{quote(room_id)}/invite", {"user_id": carol.user_id})
        bob_sync, carol_sync = SyncWatcher(bob), SyncWatcher(carol)
        await bob_sync.until(lambda: room_id in bob_sync.invites)
        await carol_sync.until(lambda: room_id in carol_sync.invites)

        # carol rejects her invite (make_leave / send_leave through the inviting server)
        await carol.post(f"/rooms/{quote(room_id)}/leave")
        alice_sync = SyncWatcher(alice)
        await alice_sync.until(lambda: alice_sync.has_member(room_id, carol.user_id, "leave"))
        memberships = await carol.get("/joined_rooms")
        self.assertNotIn(room_id, memberships["joined_rooms"])
        # her /sync moves the room from "invite" to "leave", with her leave event
        resp = await carol.sync(carol_sync.since)
        left = resp["rooms"]["leave"][room_id]["timeline"]["events"]
        self.assertEqual([(e["type"], e["content"]["membership"]) for e in left], [("m.room.member", "leave")])
        self.assertNotIn(room_id, resp["rooms"]["invite"])

        # bob joins the v12 room (through the inviter's server) and chats
        await bob.post(f"/join/{quote(room_id)}")
        await bob.send_message(room_id, "v12 hello")
        await alice_sync.until(lambda: "v12 hello" in alice_sync.bodies(room_id))
        await alice.send_message(room_id, "v12 reply")
        await bob_sync.until(lambda: "v12 reply" in bob_sync.bodies(room_id))

        # knocking: a knockable room on A, dave on B knocks, alice lets him in
        dave = await MatrixClient.register(b.base_url, "dave")
        knock_room = (await alice.post("/createRoom", {"preset": "private_chat"}))["room_id"]
        await alice.put(f"/rooms/{quote(knock_room)}/state/m.room.join_rules/", {"join_rule": "knock"})
        await dave.post(f"/knock/{quote(knock_room)}?server_name={quote(a.server_name)}", {"reason": "let me in"})
        await alice_sync.until(lambda: alice_sync.has_member(knock_room, dave.user_id, "knock"))
        await alice.post(f"/rooms/{quote(knock_room)}/invite", {"user_id": dave.user_id})
        await dave.post(f"/join/{quote(knock_room)}")
        await alice_sync.until(lambda: alice_sync.has_member(knock_room, dave.user_id, "join"))

    async def test_server_acl_blocks_a_server(self) -> None:
        from tests.federation.helpers import LOOPBACK_FEDERATION
        from tests.support.synapse import free_port
        from tests.support.wspr import start_homeserver

        a = await self.start_server()
        port = free_port()
        # ACLs match host names without the port: B needs a host name of its own
        b = await start_homeserver(
            self, server_name=f"localhost:{port}", federation_port=port, start_extras=True, federation=LOOPBACK_FEDERATION
        )
        alice = await MatrixClient.register(a.base_url, "alice")
        bob = await MatrixClient.register(b.base_url, "bob")
        room_id = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        await bob.post(f"/join/{quote(room_id)}")
        await bob.send_message(room_id, "before acl")
        alice_sync = SyncWatcher(alice)
        await alice_sync.until(lambda: "before acl" in alice_sync.bodies(room_id))
        await alice.put(
            f"/rooms/{quote(room_id)}/state/m.room.server_acl/",
            {"allow": ["*"], "deny": ["localhost"], "allow_ip_literals": True},
        )
        await bob_sync_wait(b, room_id, ("m.room.server_acl", ""))
        state_before = dict(a.hs.rooms.cache._rooms[room_id].state)
        # B's events are refused by A from now on
        await bob.send_message(room_id, "after acl")
        carol = await MatrixClient.register(b.base_url, "carol")
        await carol.post(f"/join/{quote(room_id)}")  # B is in the room: a local join there
        await sleep(1.0)
        await alice_sync.step(timeout=0)
        self.assertNotIn("after acl", alice_sync.bodies(room_id))
        self.assertEqual(a.hs.rooms.cache._rooms[room_id].state, state_before)
        # and A refuses B's membership handshakes
        with self.assertRaises(MatrixError) as cm:
            await a.hs.federation.membership.on_make(b.server_name, "join", room_id, f"@dave:{b.server_name}", ["11"])
        self.assertEqual(cm.exception.code, 403)
        with self.assertRaises(MatrixError):
            await a.hs.federation.history.on_backfill(b.server_name, room_id, [], 10)

    async def test_join_room_with_many_state_events(self) -> None:
        a = await self.start_server()
        b = await self.start_server()
        alice = await MatrixClient.register(a.base_url, "alice")
        bob = await MatrixClient.register(b.base_url, "bob")
        room_id = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        n = 1000
        from twisted.internet import defer

        from homeserver.handlers.room_events import EventSpec

        await defer.gatherResults(
            [
                defer.ensureDeferred(
                    a.hs.rooms.send(room_id, EventSpec("org.example.item", alice.user_id, {"i": i}, state_key=f"k{i}"))
                )
                for i in range(n)
            ]
        )
        t0 = time.monotonic()
        await bob.post(f"/join/{quote(room_id)}")
        join_s = time.monotonic() - t0
        state = await bob.get(f"/rooms/{quote(room_id)}/state")
        self.assertGreaterEqual(len(state), n)
        await bob.send_message(room_id, "joined a big room")
        alice_sync = SyncWatcher(alice)
        await alice_sync.until(lambda: "joined a big room" in alice_sync.bodies(room_id))
        print(f"\n  join of a room with {len(state)} state events: {join_s * 1000:.0f} ms")


async def bob_sync_wait(server: Any, room_id: str, key: tuple[str, str], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while key not in server.hs.rooms.cache._rooms[room_id].state:
        if time.monotonic() > deadline:
            raise AssertionError(f"{key} never reached {server.server_name}")
        await sleep(0.05)


class ConvergenceTest(ServersMixin, unittest.TestCase):
    timeout = 180

    async def test_concurrent_sends_and_state_converge(self) -> None:
        from twisted.internet import defer

        a = await self.start_server()
        b = await self.start_server()
        alice = await MatrixClient.register(a.base_url, "alice")
        bob = await MatrixClient.register(b.base_url, "bob")
        room_id = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        await alice.put(
            f"/rooms/{quote(room_id)}/state/m.room.power_levels/",
            {"users": {alice.user_id: 100, bob.user_id: 100}, "state_default": 50, "events_default": 0},
        )
        await bob.post(f"/join/{quote(room_id)}")
        alice_sync, bob_sync = SyncWatcher(alice), SyncWatcher(bob)
        await bob_sync.until(lambda: room_id in bob_sync.timeline)
        n = 300
        t0 = time.monotonic()

        async def send_all(client: MatrixClient, tag: str) -> None:
            for start in range(0, n, 30):
                await defer.gatherResults(
                    [defer.ensureDeferred(client.send_message(room_id, f"{tag} {i}")) for i in range(start, start + 30)]
                )
                # state changes from both sides while messages fly: forks to resolve
                await client.put(f"/rooms/{quote(room_id)}/state/m.room.topic/", {"topic": f"{tag} {start}"})

        await defer.gatherResults([defer.ensureDeferred(send_all(alice, "a")), defer.ensureDeferred(send_all(bob, "b"))])
        expected = {f"a {i}" for i in range(n)} | {f"b {i}" for i in range(n)}
        await alice_sync.until(lambda: expected <= set(alice_sync.bodies(room_id)), timeout=60)
        await bob_sync.until(lambda: expected <= set(bob_sync.bodies(room_id)), timeout=60)
        elapsed = time.monotonic() - t0
        # one more event from each side merges the forks; then both agree on the state
        await alice.send_message(room_id, "final a")
        await bob.send_message(room_id, "final b")
        await alice_sync.until(lambda: "final b" in alice_sync.bodies(room_id))
        await bob_sync.until(lambda: "final a" in bob_sync.bodies(room_id))
        deadline = time.monotonic() + 10
        while a.hs.rooms.cache._rooms[room_id].state != b.hs.rooms.cache._rooms[room_id].state:
            self.assertLess(time.monotonic(), deadline, "the servers' states never converged")
            await sleep(0.1)
        print(f"\n  {2 * n} messages + {2 * n // 30} topic changes sent concurrently from both sides, all delivered in {elapsed:.1f}s")


class TwoWsprRoomsPostgresTest(TwoWsprRoomsTest):
    """The same flows with both servers on PostgreSQL."""

    database = "postgresql"

    def setUp(self) -> None:
        from tests.support.wspr import PostgresUnavailable, create_postgres_database, drop_postgres_database

        try:
            drop_postgres_database(create_postgres_database())
        except PostgresUnavailable as e:
            raise unittest.SkipTest(str(e)) from e


class RestrictedJoinTest(ServersMixin, unittest.TestCase):
    timeout = 120

    async def test_restricted_room_joined_through_membership_of_another(self) -> None:
        a = await self.start_server()
        b = await self.start_server()
        alice = await MatrixClient.register(a.base_url, "alice")
        bob = await MatrixClient.register(b.base_url, "bob")
        carol = await MatrixClient.register(b.base_url, "carol")
        space = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        room = (await alice.post("/createRoom", {"preset": "private_chat"}))["room_id"]
        await alice.put(
            f"/rooms/{quote(room)}/state/m.room.join_rules/",
            {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": space}]},
        )
        from tests.support.wspr import MatrixRequestError

        # carol is in no allowed room: refused
        with self.assertRaises(MatrixRequestError) as cm:
            await carol.post(f"/join/{quote(room)}")
        self.assertEqual(cm.exception.code, 403)
        # bob joins the allowed room first, then the restricted one (alice vouches)
        await bob.post(f"/join/{quote(space)}")
        await bob.post(f"/join/{quote(room)}")
        member = await bob.get(f"/rooms/{quote(room)}/state/m.room.member/{quote(bob.user_id)}")
        self.assertEqual(member["join_authorised_via_users_server"], alice.user_id)
        await bob.send_message(room, "in through the space")
        alice_sync = SyncWatcher(alice)
        await alice_sync.until(lambda: "in through the space" in alice_sync.bodies(room))
