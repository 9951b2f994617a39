"""The deprecated reads clients still use, answered as Synapse answers them, step by step
against a real Synapse: ``GET /initialSync``, ``GET /rooms/{roomId}/initialSync``
(joined, left, and peeking into a world-readable room), ``GET /events`` (``from``,
``timeout``, ``room_id``) and ``GET /events/{eventId}``, with their events in the
"client v1" form (Sytest's tests/10apidoc/35room-initial-sync.pl, 30rooms/20guest.pl,
Complement's peeking cases).

Synapse lists a room's state in no particular order: state lists are compared sorted
by (type, state_key). Presence depends on what each server saw of the users before
(compared only as lists); an /events chunk is compared by its room events."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from twisted.trial import unittest

from tests.support.differential import Side, server_pair
from tests.support.wspr import MatrixClient

V3 = "/_matrix/client/v3"
# Room version 12 (Synapse's default) lists no user ids in the power levels, which would
# differ between the servers.
V12 = {"room_version": "12"}
WORLD_READABLE = {"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "world_readable"}}


def _sorted_state(events: list[Any]) -> list[Any]:
    return sorted(events, key=lambda e: (e.get("type", ""), e.get("state_key", "")))


def _room_key(room: Any) -> tuple[str, list[str]]:
    state = room.get("state") if isinstance(room.get("state"), list) else []
    return room.get("membership", ""), sorted(str(e.get("type")) for e in state if isinstance(e, dict))


def normalise(body: Any) -> Any:
    """Orders what Synapse leaves unordered; keeps only room events of /events chunks."""
    if not isinstance(body, dict):
        return body
    out = dict(body)
    if isinstance(out.get("state"), list):
        out["state"] = _sorted_state(out["state"])
    if isinstance(out.get("rooms"), list):
        # Two rooms of one membership come in either order: told apart by their state's types.
        out["rooms"] = sorted((normalise(r) for r in out["rooms"]), key=_room_key)
    if isinstance(out.get("presence"), list):
        out["presence"] = []
    if "chunk" in out and "start" in out and "end" in out and "messages" not in out:
        out["chunk"] = [e for e in out["chunk"] if "event_id" in e]
    return out


async def call(side: Side, client: MatrixClient, name: str, path: str) -> tuple[int, Any]:
    code, body = await client.raw("GET", path)
    side.record(name, code, normalise(body))
    return code, body


class LegacyReadsConformanceTest(unittest.TestCase):
    timeout = 180

    async def test_initial_sync_and_events(self) -> None:
        pair = await server_pair(self)
        for side in pair:
            alice = await side.register("alice")
            bob = await side.register("bob")
            room = (await alice.post("/createRoom", {"preset": "public_chat", "name": "R", "topic": "T", **V12}))["room_id"]
            await bob.post(f"/rooms/{room}/join")
            await alice.send_message(room, "one")
            await alice.put(f"/user/{quote(alice.user_id)}/rooms/{room}/tags/u.work", {"order": 0.5})
            await alice.put(f"/user/{quote(alice.user_id)}/account_data/org.example.setting", {"on": True})
            invite_room = (await alice.post("/createRoom", {"preset": "private_chat", "invite": [bob.user_id], **V12}))["room_id"]
            self.assertTrue(invite_room)
            _, snapshot = await call(side, bob, "initialSync: a joined room and an invite", V3 + "/initialSync?limit=2")
            await call(side, alice, "initialSync: account data", V3 + "/initialSync?limit=0")
            await call(side, alice, "room initialSync", f"{V3}/rooms/{room}/initialSync?limit=2")
            await call(side, alice, "room initialSync, limit 0", f"{V3}/rooms/{room}/initialSync?limit=0")
            await alice.send_message(room, "two")
            await call(side, bob, "events after the snapshot", f"{V3}/events?timeout=0&from={quote(snapshot['end'])}")
            await call(side, bob, "events of one room", f"{V3}/events?timeout=0&room_id={quote(room)}&from={quote(snapshot['end'])}")
            await call(side, bob, "events with a limit", f"{V3}/events?timeout=0&limit=1&from={quote(snapshot['end'])}")
            await call(side, bob, "events from now", f"{V3}/events?timeout=0")
            await call(side, bob, "events from a bad token", f"{V3}/events?timeout=0&from=garbage")
            await call(side, bob, "events with a bad timeout", f"{V3}/events?timeout=soon")
            event_id = await alice.send_message(room, "three")
            await call(side, bob, "an event by id", f"{V3}/events/{quote(event_id)}")
            carol = await side.register("carol")
            await call(side, carol, "an event of a room one is not in", f"{V3}/events/{quote(event_id)}")
            await call(side, carol, "room initialSync of a room one is not in", f"{V3}/rooms/{room}/initialSync")
            await call(side, carol, "events of a room one is not in", f"{V3}/events?timeout=0&room_id={quote(room)}")
            code, _ = await bob.raw("GET", f"{V3}/events/{quote('$nosuchevent')}")
            side.record("an unknown event", code, {})  # Synapse's body is the bare string "Event not found."
            await bob.post(f"/rooms/{room}/leave")
            await alice.send_message(room, "after bob left")
            await call(side, bob, "room initialSync after leaving", f"{V3}/rooms/{room}/initialSync?limit=3")
            await call(side, bob, "initialSync with archived rooms", V3 + "/initialSync?limit=1&archived=true")
        pair.assert_same()
        steps = {s.name: s.body for s in pair.wspr.steps}
        snapshot = steps["initialSync: a joined room and an invite"]
        self.assertEqual([r["membership"] for r in snapshot["rooms"]], ["invite", "join"])
        joined = snapshot["rooms"][1]
        self.assertEqual([e["content"].get("body") for e in joined["messages"]["chunk"]][-1], "one")
        self.assertEqual([e["content"]["body"] for e in steps["events after the snapshot"]["chunk"]], ["two"])
        left = steps["room initialSync after leaving"]
        self.assertNotIn("after bob left", [e["content"].get("body") for e in left["messages"]["chunk"]])
        self.assertEqual(left["messages"]["chunk"][-1]["content"]["membership"], "leave")

    async def test_peeking_into_a_world_readable_room(self) -> None:
        pair = await server_pair(self, allow_guest_access=True)
        for side in pair:
            alice = await side.register("alice")
            room = (await alice.post("/createRoom", {"preset": "public_chat", "initial_state": [WORLD_READABLE], **V12}))["room_id"]
            closed = (await alice.post("/createRoom", {"preset": "public_chat", **V12}))["room_id"]
            await alice.send_message(room, "before")
            _, guest_body = await side.anonymous().raw("POST", V3 + "/register?kind=guest", {})
            guest = MatrixClient(side.base_url, guest_body["access_token"], guest_body["user_id"])
            bob = await side.register("bob")
            for label, peeker in (("a user", bob), ("a guest", guest)):
                _, peek = await call(side, peeker, f"{label}: room initialSync", f"{V3}/rooms/{room}/initialSync?limit=5")
                await alice.send_message(room, f"for {label}")
                await call(
                    side, peeker, f"{label}: events of the room",
                    f"{V3}/events?timeout=0&room_id={quote(room)}&from={quote(peek['messages']['end'])}",
                )
                await call(side, peeker, f"{label}: a room that is not world-readable", f"{V3}/rooms/{closed}/initialSync")
                await call(side, peeker, f"{label}: its events", f"{V3}/events?timeout=0&room_id={quote(closed)}")
            await call(side, guest, "a guest: events of every room", f"{V3}/events?timeout=0")
            await call(side, guest, "a guest: initialSync", V3 + "/initialSync")
            members = await alice.get(f"/rooms/{room}/joined_members")
            self.assertEqual(list(members["joined"]), [alice.user_id], side.label)
        pair.assert_same()
        steps = {s.name: s.body for s in pair.wspr.steps}
        self.assertNotIn("membership", steps["a guest: room initialSync"])
        self.assertEqual([e["content"]["body"] for e in steps["a guest: events of the room"]["chunk"]], ["for a guest"])

    async def test_events_long_poll_wakes_on_a_new_event(self) -> None:
        """A waiting /events (joined, and peeking) answers when something arrives."""
        pair = await server_pair(self)
        side = pair.wspr
        alice = await side.register("alice")
        bob = await side.register("bob")
        room = (await alice.post("/createRoom", {"preset": "public_chat", "initial_state": [WORLD_READABLE], **V12}))["room_id"]
        from twisted.internet import defer, reactor, task

        joined = defer.ensureDeferred(alice.raw("GET", f"{V3}/events?timeout=20000"))
        peeking = defer.ensureDeferred(bob.raw("GET", f"{V3}/events?timeout=20000&room_id={quote(room)}"))
        await task.deferLater(reactor, 0.5, lambda: None)
        self.assertFalse(joined.called or peeking.called)
        await alice.send_message(room, "wake up")
        for d in (joined, peeking):
            code, body = await d
            self.assertEqual(code, 200)
            self.assertIn("wake up", [e.get("content", {}).get("body") for e in body["chunk"]])
