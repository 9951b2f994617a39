"""Who and what a /sync shows, as Synapse decides it: presence of users who newly share a
room, users ignored through m.ignored_user_list (on /sync, /messages and /context),
history visibility from each m.room.history_visibility event on, and the requester's
membership on served events (MSC4115). On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from urllib.parse import quote

from twisted.trial import unittest

from tests.support.wspr import MatrixClient, start_homeserver


def senders(result: dict, user_id: str) -> list[str]:
    return [p["sender"] for p in result["presence"]["events"] if p["sender"] == user_id]


def bodies(events: list[dict]) -> list[str]:
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message"]


class PresenceOfNewlySharedUsersTest(unittest.TestCase):
    async def test_joining_a_room_brings_its_members_presence(self) -> None:
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        await alice.put(f"/presence/{quote(alice.user_id)}/status", {"presence": "online", "status_msg": "here"})
        rid = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        bob_token = (await bob.sync())["next_batch"]
        alice_token = (await alice.sync())["next_batch"]
        await bob.post(f"/join/{rid}")
        # Bob, who joined, gets alice's current presence although it did not change...
        result = await bob.sync(since=bob_token)
        alice_presence = [p for p in result["presence"]["events"] if p["sender"] == alice.user_id]
        self.assertEqual(len(alice_presence), 1)
        self.assertEqual(alice_presence[0]["type"], "m.presence")
        self.assertEqual(alice_presence[0]["content"]["status_msg"], "here")
        # ...and only once.
        again = await bob.sync(since=result["next_batch"])
        self.assertEqual(senders(again, alice.user_id), [])
        # Alice, whose room bob joined, gets bob's.
        result = await alice.sync(since=alice_token)
        self.assertEqual(senders(result, bob.user_id), [bob.user_id])
        self.assertEqual(senders(await alice.sync(since=result["next_batch"]), bob.user_id), [])

    async def test_presence_format_and_offline_users_in_initial_sync(self) -> None:
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        rid = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        await bob.post(f"/join/{rid}")
        await bob.put(f"/presence/{quote(bob.user_id)}/status", {"presence": "offline"})
        # An initial sync leaves offline users out; the syncing user is online.
        initial = await alice.get("/sync?timeout=0")
        by_sender = {p["sender"]: p["content"] for p in initial["presence"]["events"]}
        self.assertNotIn(bob.user_id, by_sender)
        self.assertEqual(by_sender[alice.user_id]["presence"], "online")
        self.assertIs(by_sender[alice.user_id]["currently_active"], True)
        self.assertIsInstance(by_sender[alice.user_id]["last_active_ago"], int)
        # currently_active belongs to online users only (Synapse's form).
        status = await alice.get(f"/presence/{quote(bob.user_id)}/status")
        self.assertEqual(status["presence"], "offline")
        self.assertNotIn("currently_active", status)
        # A user who never set a presence is plain offline when newly shared.
        carol = await MatrixClient.register(server.base_url, "carol")
        token = (await alice.sync())["next_batch"]
        await carol.post(f"/join/{rid}")
        got = [p for p in (await alice.sync(since=token))["presence"]["events"] if p["sender"] == carol.user_id]
        self.assertEqual(got, [{"type": "m.presence", "sender": carol.user_id, "content": {"presence": "offline"}}])


class IgnoredUsersTest(unittest.TestCase):
    async def _room(self):  # type: ignore[no-untyped-def]
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        rid = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        await bob.post(f"/join/{rid}")
        return server, alice, bob, rid

    async def _ignore(self, client: MatrixClient, users: list[str]) -> None:
        await client.put(
            f"/user/{quote(client.user_id)}/account_data/m.ignored_user_list",
            {"ignored_users": {u: {} for u in users}},
        )

    async def test_cannot_ignore_yourself(self) -> None:
        server, alice, bob, rid = await self._room()
        code, body = await alice.raw(
            "PUT",
            f"/_matrix/client/v3/user/{quote(alice.user_id)}/account_data/m.ignored_user_list",
            {"ignored_users": {alice.user_id: {}}},
        )
        self.assertEqual((code, body["errcode"]), (400, "M_INVALID_PARAM"))
        # Content of another shape is stored and ignores no one, as Synapse does.
        await alice.put(f"/user/{quote(alice.user_id)}/account_data/m.ignored_user_list", {"ignored_users": []})

    async def test_invites_from_ignored_users_do_not_appear(self) -> None:
        server, alice, bob, rid = await self._room()
        chris = await MatrixClient.register(server.base_url, "chris")
        await self._ignore(alice, [bob.user_id])
        token = (await alice.sync())["next_batch"]
        from_bob = (await bob.post("/createRoom", {"preset": "private_chat", "invite": [alice.user_id]}))["room_id"]
        from_chris = (await chris.post("/createRoom", {"preset": "private_chat", "invite": [alice.user_id]}))["room_id"]
        for result in (await alice.sync(since=token), await alice.sync()):
            self.assertNotIn(from_bob, result["rooms"]["invite"])
            self.assertIn(from_chris, result["rooms"]["invite"])

    async def test_ignored_messages_are_dropped_and_come_back(self) -> None:
        server, alice, bob, rid = await self._room()
        before = await bob.send_message(rid, "bob before")
        await alice.send_message(rid, "alice before")
        await self._ignore(alice, [bob.user_id])
        token = (await alice.sync())["next_batch"]
        # Takes effect at once: the initial sync, the next incremental sync, /messages.
        self.assertNotIn("bob before", bodies((await alice.sync())["rooms"]["join"][rid]["timeline"]["events"]))
        await bob.send_message(rid, "bob after")
        await bob.put(f"/profile/{quote(bob.user_id)}/displayname", {"displayname": "Bobby"})
        mine = await alice.send_message(rid, "alice after")
        room = (await alice.sync(since=token))["rooms"]["join"][rid]
        timeline = room["timeline"]["events"]
        self.assertEqual(bodies(timeline), ["alice after"])
        # Ignored users' state events still arrive: the room needs them.
        self.assertIn(("m.room.member", bob.user_id), [(e["type"], e["sender"]) for e in timeline])
        page = await alice.get(f"/rooms/{rid}/messages?dir=b&limit=50")
        self.assertEqual(bodies(page["chunk"]), ["alice after", "alice before"])
        context = await alice.get(f"/rooms/{rid}/context/{quote(mine)}?limit=10")
        self.assertNotIn("bob before", bodies(context["events_before"]))
        self.assertIn("alice before", bodies(context["events_before"]))
        # Bob himself is unaffected.
        self.assertIn("bob after", bodies((await bob.get(f"/rooms/{rid}/messages?dir=b&limit=50"))["chunk"]))
        # Un-ignoring: from the next read on, bob's messages are served again.
        await self._ignore(alice, [])
        page = await alice.get(f"/rooms/{rid}/messages?dir=b&limit=50")
        self.assertEqual(bodies(page["chunk"])[:3], ["alice after", "bob after", "alice before"])
        initial = await alice.sync(filter={"room": {"timeline": {"limit": 50}}})
        self.assertIn(before, [e["event_id"] for e in initial["rooms"]["join"][rid]["timeline"]["events"]])

    async def test_thread_summaries_leave_ignored_users_out(self) -> None:
        server, alice, bob, rid = await self._room()
        carol = await MatrixClient.register(server.base_url, "carol")
        await carol.post(f"/join/{rid}")
        root = await alice.send_message(rid, "root")
        thread = {"m.relates_to": {"rel_type": "m.thread", "event_id": root}}
        await carol.send_message(rid, "carol replies", **thread)
        await bob.send_message(rid, "bob replies", **thread)
        await bob.send_message(rid, "bob again", **thread)
        summary = (await alice.get(f"/rooms/{rid}/event/{quote(root)}"))["unsigned"]["m.relations"]["m.thread"]
        self.assertEqual((summary["count"], summary["latest_event"]["content"]["body"]), (3, "bob again"))
        await self._ignore(alice, [bob.user_id])
        summary = (await alice.get(f"/rooms/{rid}/event/{quote(root)}"))["unsigned"]["m.relations"]["m.thread"]
        self.assertEqual((summary["count"], summary["latest_event"]["content"]["body"]), (1, "carol replies"))
        relations = await alice.request("GET", f"/_matrix/client/v1/rooms/{rid}/relations/{quote(root)}")
        self.assertEqual(bodies(relations["chunk"]), ["carol replies"])

    async def test_a_timeline_of_ignored_messages_reaches_further_back(self) -> None:
        server, alice, bob, rid = await self._room()
        await alice.send_message(rid, "alice first")
        for i in range(6):
            await bob.send_message(rid, f"noise {i}")
        await self._ignore(alice, [bob.user_id])
        room = (await alice.sync(filter={"room": {"timeline": {"limit": 3}}}))["rooms"]["join"][rid]
        self.assertIn("alice first", bodies(room["timeline"]["events"]))


class HistoryVisibilityInSyncTest(unittest.TestCase):
    async def _room(self, visibility: str):  # type: ignore[no-untyped-def]
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        hv = [{"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": visibility}}]
        rid = (await alice.post("/createRoom", {"preset": "public_chat", "initial_state": hv}))["room_id"]
        return server, alice, bob, rid

    async def _timeline(self, client: MatrixClient, rid: str) -> list[str]:
        result = await client.sync(filter={"room": {"timeline": {"limit": 50}}})
        return bodies(result["rooms"]["join"][rid]["timeline"]["events"])

    async def test_joined(self) -> None:
        server, alice, bob, rid = await self._room("joined")
        await alice.send_message(rid, "before join")
        await bob.post(f"/join/{rid}")
        await alice.send_message(rid, "after join")
        self.assertEqual(await self._timeline(bob, rid), ["after join"])

    async def test_invited(self) -> None:
        server, alice, bob, rid = await self._room("invited")
        await alice.send_message(rid, "before invite")
        await alice.post(f"/rooms/{rid}/invite", {"user_id": bob.user_id})
        await alice.send_message(rid, "after invite")
        await bob.post(f"/join/{rid}")
        self.assertEqual(await self._timeline(bob, rid), ["after invite"])

    async def test_shared_and_a_change_applies_from_its_event_on(self) -> None:
        server, alice, bob, rid = await self._room("shared")
        await alice.send_message(rid, "while shared")
        await alice.put(f"/rooms/{rid}/state/m.room.history_visibility/", {"history_visibility": "joined"})
        await alice.send_message(rid, "while joined-only")
        await bob.post(f"/join/{rid}")
        await alice.send_message(rid, "after join")
        result = await bob.sync(filter={"room": {"timeline": {"limit": 50}}})
        events = result["rooms"]["join"][rid]["timeline"]["events"]
        self.assertEqual(bodies(events), ["while shared", "after join"])
        # The change itself is judged by the more permissive of old and new visibility.
        self.assertIn("m.room.history_visibility", [e["type"] for e in events if e["content"].get("history_visibility") == "joined"])
        page = await bob.get(f"/rooms/{rid}/messages?dir=b&limit=50")
        self.assertEqual(bodies(page["chunk"]), ["after join", "while shared"])

    async def test_world_readable_for_non_members(self) -> None:
        server, alice, bob, rid = await self._room("world_readable")
        await alice.send_message(rid, "for everyone")
        page = await bob.get(f"/rooms/{rid}/messages?dir=b&limit=10")
        self.assertEqual(bodies(page["chunk"]), ["for everyone"])


class MembershipOnEventsTest(unittest.TestCase):
    async def test_unsigned_membership(self) -> None:
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        rid = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        pre = await alice.send_message(rid, "prejoin")
        await bob.post(f"/join/{rid}")
        post = await alice.send_message(rid, "postjoin")
        result = await bob.sync(filter={"room": {"timeline": {"limit": 50}}})
        room = result["rooms"]["join"][rid]
        seen_join = False
        for ev in room["timeline"]["events"]:
            if ev["type"] == "m.room.member" and ev["state_key"] == bob.user_id:
                seen_join = True
            self.assertEqual(ev["unsigned"]["membership"], "join" if seen_join else "leave", ev["type"])
        self.assertEqual({e["event_id"] for e in room["timeline"]["events"]} >= {pre, post}, True)
        # Not on state blocks (Synapse annotates events, not state).
        for ev in (await bob.sync(filter={"room": {"timeline": {"limit": 1}}}))["rooms"]["join"][rid]["state"]["events"]:
            self.assertNotIn("membership", ev["unsigned"])
        # /messages, /context and /event too.
        page = await bob.get(f"/rooms/{rid}/messages?dir=b&limit=50")
        by_id = {e["event_id"]: e for e in page["chunk"]}
        self.assertEqual((by_id[pre]["unsigned"]["membership"], by_id[post]["unsigned"]["membership"]), ("leave", "join"))
        self.assertEqual((await bob.get(f"/rooms/{rid}/event/{quote(post)}"))["unsigned"]["membership"], "join")
        context = await bob.get(f"/rooms/{rid}/context/{quote(pre)}?limit=2")
        self.assertEqual(context["event"]["unsigned"]["membership"], "leave")
        flt = quote(json.dumps({"types": ["m.room.message"]}))
        self.assertTrue((await bob.get(f"/rooms/{rid}/messages?dir=b&limit=1&filter={flt}"))["chunk"])


# The same behaviour on PostgreSQL, the production store.


class PresenceOfNewlySharedUsersTestPostgres(PresenceOfNewlySharedUsersTest):
    database = "postgresql"


class IgnoredUsersTestPostgres(IgnoredUsersTest):
    database = "postgresql"


class HistoryVisibilityInSyncTestPostgres(HistoryVisibilityInSyncTest):
    database = "postgresql"


class MembershipOnEventsTestPostgres(MembershipOnEventsTest):
    database = "postgresql"
