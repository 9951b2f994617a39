"""Lazy-loaded members in /sync, as Synapse sends them: the members the timeline needs
(its senders, and in a full entry the user's own), each sent once per device unless
``include_redundant_members``, every membership change of a gap, and the heroes of an
unnamed room in the summary. On SQLite and PostgreSQL."""

from __future__ import annotations

from urllib.parse import quote

from twisted.trial import unittest

from tests.support.wspr import MatrixClient, start_homeserver

LAZY = {"room": {"timeline": {"limit": 2}, "state": {"lazy_load_members": True}}}
REDUNDANT = {"room": {"timeline": {"limit": 2}, "state": {"lazy_load_members": True, "include_redundant_members": True}}}


def members_in(room: dict) -> set[str]:
    return {e["state_key"] for e in room["state"]["events"] if e["type"] == "m.room.member"}


class LazyMembersTest(unittest.TestCase):
    async def _room(self):  # type: ignore[no-untyped-def]
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        rid = (await alice.post("/createRoom", {"preset": "public_chat", "name": "Named"}))["room_id"]
        await bob.post(f"/join/{rid}")
        others = []
        for name in ("c1", "c2", "c3"):
            c = await MatrixClient.register(server.base_url, name)
            await c.post(f"/join/{rid}")
            others.append(c)
        return server, alice, bob, others, rid

    async def test_initial_then_incremental_members(self) -> None:
        server, alice, bob, (c1, c2, c3), rid = await self._room()
        await alice.send_message(rid, "one")
        await alice.send_message(rid, "two")
        first = await bob.sync(filter=LAZY)
        room = first["rooms"]["join"][rid]
        # The timeline's sender and the user themselves, not the other members.
        self.assertEqual(members_in(room), {alice.user_id, bob.user_id})
        self.assertNotIn("m.heroes", room["summary"])  # the room has a name
        self.assertEqual(room["summary"]["m.joined_member_count"], 5)
        self.assertEqual(room["summary"]["m.invited_member_count"], 0)
        # A new sender: their membership comes with their message.
        await c1.send_message(rid, "c1 speaks")
        second = await bob.sync(since=first["next_batch"], filter=LAZY)
        self.assertEqual(members_in(second["rooms"]["join"][rid]), {c1.user_id})
        # Senders the device was sent already are not repeated...
        await alice.send_message(rid, "alice again")
        await c1.send_message(rid, "c1 again")
        third = await bob.sync(since=second["next_batch"], filter=LAZY)
        self.assertEqual(members_in(third["rooms"]["join"][rid]), set())
        # ...unless the client asks for redundant members.
        await alice.send_message(rid, "once more")
        fourth = await bob.sync(since=third["next_batch"], filter=REDUNDANT)
        self.assertEqual(members_in(fourth["rooms"]["join"][rid]), {alice.user_id})
        # A client that retries from an older token gets the members of the lost response.
        retry = await bob.sync(since=first["next_batch"], filter=LAZY)
        self.assertIn(c1.user_id, members_in(retry["rooms"]["join"][rid]))
        # Another device of the same user starts afresh.
        other_device = await MatrixClient.login(server.base_url, "bob")
        again = await other_device.sync(filter=LAZY)
        self.assertIn(alice.user_id, members_in(again["rooms"]["join"][rid]))

    async def test_gap_carries_every_membership_change(self) -> None:
        server, alice, bob, (c1, c2, c3), rid = await self._room()
        token = (await bob.sync(filter=LAZY))["next_batch"]
        await c2.post(f"/rooms/{rid}/leave")
        await c3.put(f"/profile/{quote(c3.user_id)}/displayname", {"displayname": "Carol Three"})
        for i in range(4):
            await alice.send_message(rid, f"gap {i}")
        room = (await bob.sync(since=token, filter=LAZY))["rooms"]["join"][rid]
        self.assertTrue(room["timeline"]["limited"])
        state = {e["state_key"]: e["content"] for e in room["state"]["events"] if e["type"] == "m.room.member"}
        self.assertEqual(state[c2.user_id]["membership"], "leave")
        self.assertEqual(state[c3.user_id]["displayname"], "Carol Three")
        self.assertIn(alice.user_id, state)  # the timeline's sender
        self.assertNotIn(c1.user_id, state)  # unchanged, silent

    async def test_heroes_of_an_unnamed_room_come_with_their_members(self) -> None:
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        carol = await MatrixClient.register(server.base_url, "carol")
        dave = await MatrixClient.register(server.base_url, "dave")
        rid = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        await bob.post(f"/join/{rid}")
        await dave.post(f"/join/{rid}")
        await alice.post(f"/rooms/{rid}/invite", {"user_id": carol.user_id})
        await bob.send_message(rid, "hi")
        room = (await alice.sync(filter=LAZY))["rooms"]["join"][rid]
        summary = room["summary"]
        # Joined members first, then invited, in the order they came, without the user.
        self.assertEqual(summary["m.heroes"], [bob.user_id, dave.user_id, carol.user_id])
        self.assertEqual((summary["m.joined_member_count"], summary["m.invited_member_count"]), (3, 1))
        # Every hero's membership reaches the client, in the state or in the timeline
        # (carol's invite is one of the last two events), and only once.
        in_timeline = [e["state_key"] for e in room["timeline"]["events"] if e["type"] == "m.room.member"]
        self.assertEqual(in_timeline, [carol.user_id])
        # dave neither spoke nor is in the timeline: a hero, so his membership is sent.
        self.assertEqual(members_in(room), {alice.user_id, bob.user_id, dave.user_id})
        # Without lazy loading there is no summary (Synapse sends it only to lazy loaders).
        plain = (await alice.sync())["rooms"]["join"][rid]
        self.assertEqual(plain["summary"], {})


# The same behaviour on PostgreSQL, the production store.


class LazyMembersTestPostgres(LazyMembersTest):
    database = "postgresql"
