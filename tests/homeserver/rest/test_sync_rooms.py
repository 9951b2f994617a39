"""/sync room entries as Synapse builds them: rooms joined since the token, gaps, left
rooms and their history, full_state, membership changes that are not joins.

The reference conformance suite's sync tests (sync, sync_archive, sync_timeline) in our
words; each behaviour is checked on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from twisted.trial import unittest

from tests.support.wspr import MatrixClient, start_homeserver


def bodies(events: list[dict]) -> list[str]:
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message"]


class SyncRoomsTest(unittest.TestCase):
    async def _server(self):  # type: ignore[no-untyped-def]
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        return server, alice, bob

    async def test_newly_joined_room_has_full_state_and_limited_timeline(self) -> None:
        server, alice, bob = await self._server()
        rid = (await alice.post("/createRoom", {"preset": "public_chat", "name": "Lobby"}))["room_id"]
        for i in range(4):
            await alice.send_message(rid, f"before token {i}")
        token = (await bob.sync())["next_batch"]
        for i in range(4):
            await alice.send_message(rid, f"after token {i}")
        await bob.post(f"/join/{rid}")
        flt = {"room": {"timeline": {"limit": 10, "types": ["m.room.message"]}, "state": {"types": []}}}
        room = (await bob.sync(since=token, filter=flt))["rooms"]["join"][rid]
        timeline = room["timeline"]
        self.assertEqual({e["type"] for e in timeline["events"]}, {"m.room.message"})
        # Shared history: the room's messages from before the join too, and the timeline is
        # limited however many there are (the client has none of the room yet).
        self.assertEqual(len(timeline["events"]), 8)
        self.assertTrue(timeline["limited"])
        for key in ("events", "limited", "prev_batch"):
            self.assertIn(key, timeline)
        for key in ("state", "ephemeral", "account_data", "unread_notifications", "summary"):
            self.assertIn(key, room)
        # Without a state filter the whole state comes with it.
        room = (await bob.sync(since=token))["rooms"]["join"][rid]
        state_types = {e["type"] for e in room["state"]["events"] + room["timeline"]["events"]}
        self.assertTrue({"m.room.create", "m.room.power_levels", "m.room.name", "m.room.join_rules"} <= state_types)
        self.assertTrue(room["timeline"]["limited"])
        # The next incremental sync leaves the unchanged room out.
        again = await bob.sync(since=(await bob.sync(since=token))["next_batch"])
        self.assertNotIn(rid, again["rooms"]["join"])

    async def test_display_name_change_is_an_incremental_change(self) -> None:
        server, alice, bob = await self._server()
        rid = (await alice.post("/createRoom", {"preset": "public_chat", "name": "R"}))["room_id"]
        await bob.post(f"/join/{rid}")
        token = (await bob.sync())["next_batch"]
        await bob.put(f"/profile/{quote(bob.user_id)}/displayname", {"displayname": "Robert"})
        room = (await bob.sync(since=token))["rooms"]["join"][rid]
        # Only the new member event, in the timeline; no state block (not a new join).
        self.assertEqual(room["state"]["events"], [])
        self.assertFalse(room["timeline"]["limited"])
        members = [e for e in room["timeline"]["events"] if e["type"] == "m.room.member"]
        self.assertEqual([(m["state_key"], m["content"]["displayname"]) for m in members], [(bob.user_id, "Robert")])
        self.assertNotIn("m.room.create", {e["type"] for e in room["timeline"]["events"]})
        # Alice sees it the same way.
        alice_room = (await alice.sync(since=token))["rooms"]["join"][rid]
        self.assertEqual(alice_room["state"]["events"], [])

    async def test_rejoin_since_token_is_a_new_join(self) -> None:
        server, alice, bob = await self._server()
        rid = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        await bob.post(f"/join/{rid}")
        token = (await bob.sync())["next_batch"]
        await bob.post(f"/rooms/{rid}/leave")
        await alice.put(f"/rooms/{rid}/state/m.room.topic/", {"topic": "while bob was away"})
        await bob.post(f"/join/{rid}")
        result = await bob.sync(since=token, filter={"room": {"timeline": {"limit": 1}}})
        self.assertNotIn(rid, result["rooms"]["leave"])
        room = result["rooms"]["join"][rid]
        self.assertTrue(room["timeline"]["limited"])
        self.assertIn("m.room.create", {e["type"] for e in room["state"]["events"]})

    async def test_join_leave_join_since_old_token_is_not_in_leave(self) -> None:
        server, alice, bob = await self._server()
        rid = (await bob.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        token = (await alice.sync())["next_batch"]
        await alice.post(f"/join/{rid}")
        await alice.post(f"/rooms/{rid}/leave")
        await alice.post(f"/join/{rid}")
        result = await alice.sync(since=token)
        self.assertNotIn(rid, result["rooms"]["leave"])
        self.assertIn(rid, result["rooms"]["join"])

    async def test_gapped_sync_carries_every_state_change_of_the_gap(self) -> None:
        server, alice, bob = await self._server()
        rid = (await alice.post("/createRoom", {"preset": "public_chat", "name": "first name"}))["room_id"]
        await bob.post(f"/join/{rid}")
        token = (await bob.sync())["next_batch"]
        carol = await MatrixClient.register(server.base_url, "carol")
        await alice.put(f"/rooms/{rid}/state/m.room.name/", {"name": "second name"})
        await carol.post(f"/join/{rid}")
        for i in range(5):
            await alice.send_message(rid, f"gap {i}")
        await alice.put(f"/rooms/{rid}/state/m.room.topic/", {"topic": "in the gap"})
        await alice.put(f"/rooms/{rid}/state/m.room.name/", {"name": "final name"})
        for i in range(3):
            await alice.send_message(rid, f"tail {i}")
        room = (await bob.sync(since=token, filter={"room": {"timeline": {"limit": 3}}}))["rooms"]["join"][rid]
        self.assertTrue(room["timeline"]["limited"])
        self.assertEqual(bodies(room["timeline"]["events"]), ["tail 0", "tail 1", "tail 2"])
        state = {(e["type"], e["state_key"]): e["content"] for e in room["state"]["events"]}
        self.assertEqual(state[("m.room.name", "")], {"name": "final name"})
        self.assertEqual(state[("m.room.topic", "")], {"topic": "in the gap"})
        self.assertEqual(state[("m.room.member", carol.user_id)]["membership"], "join")
        # Unchanged state is not repeated.
        self.assertNotIn(("m.room.create", ""), state)
        self.assertNotIn(("m.room.member", bob.user_id), state)
        # prev_batch continues backwards right before the timeline.
        back = await bob.get(f"/rooms/{rid}/messages?dir=b&limit=3&from={quote(room['timeline']['prev_batch'])}")
        self.assertEqual([e["type"] for e in back["chunk"]], ["m.room.name", "m.room.topic", "m.room.message"])

    async def test_ungapped_incremental_sync_has_no_state(self) -> None:
        server, alice, bob = await self._server()
        rid = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        await bob.post(f"/join/{rid}")
        token = (await bob.sync())["next_batch"]
        await alice.put(f"/rooms/{rid}/state/m.room.topic/", {"topic": "t"})
        msg = await alice.send_message(rid, "hello")
        room = (await bob.sync(since=token))["rooms"]["join"][rid]
        self.assertFalse(room["timeline"]["limited"])
        self.assertEqual(room["state"]["events"], [])
        self.assertEqual([e["type"] for e in room["timeline"]["events"]], ["m.room.topic", "m.room.message"])
        self.assertEqual(room["timeline"]["events"][-1]["event_id"], msg)

    async def test_full_state_sync(self) -> None:
        server, alice, bob = await self._server()
        rid = (await alice.post("/createRoom", {"preset": "public_chat", "name": "Full"}))["room_id"]
        quiet = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        token = (await alice.sync())["next_batch"]
        for i in range(11):
            await alice.send_message(rid, f"filler {i}")
        await alice.put(f"/rooms/{rid}/send/org.example.last/txn1", {"body": "last"})
        flt = quote(json.dumps({"room": {"timeline": {"limit": 1}}}))
        result = await alice.get(f"/sync?since={quote(token)}&full_state=true&filter={flt}")
        room = result["rooms"]["join"][rid]
        # Only the recent timeline, but all of the state.
        self.assertEqual([e["type"] for e in room["timeline"]["events"]], ["org.example.last"])
        self.assertTrue(room["timeline"]["limited"])
        self.assertTrue({"m.room.create", "m.room.name", "m.room.member"} <= {e["type"] for e in room["state"]["events"]})
        # A room with nothing new is there too, with its state.
        self.assertIn("m.room.create", {e["type"] for e in result["rooms"]["join"][quiet]["state"]["events"]})

    async def test_timeline_limits_and_filters(self) -> None:
        server, alice, bob = await self._server()
        rid = (await alice.post("/createRoom", {}))["room_id"]
        first = await alice.send_message(rid, "one")
        second = await alice.send_message(rid, "two")
        room = (await alice.sync(filter={"room": {"timeline": {"limit": 2}}}))["rooms"]["join"][rid]
        self.assertEqual([e["event_id"] for e in room["timeline"]["events"]], [first, second])
        self.assertTrue(room["timeline"]["limited"])
        # A filtered timeline that holds every matching event is not limited.
        for i in range(12):
            await alice.put(f"/rooms/{rid}/send/org.example.filler/f{i}", {"n": i})
        flt = {"room": {"timeline": {"limit": 2, "types": ["m.room.message"]}}}
        room = (await alice.sync(filter=flt))["rooms"]["join"][rid]
        self.assertEqual([e["event_id"] for e in room["timeline"]["events"]], [first, second])
        self.assertFalse(room["timeline"]["limited"])
        # A large limit on a small room is not limited either.
        small = (await alice.post("/createRoom", {}))["room_id"]
        room = (await alice.sync(filter={"room": {"timeline": {"limit": 100}}}))["rooms"]["join"][small]
        self.assertFalse(room["timeline"]["limited"])
        # Sender filters and room filters.
        public = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        await bob.post(f"/join/{public}")
        await bob.send_message(public, "from bob")
        await alice.send_message(public, "from alice")
        flt = {"room": {"rooms": [public], "timeline": {"not_senders": [bob.user_id], "types": ["m.room.message"]}}}
        result = await alice.sync(filter=flt)
        self.assertEqual(set(result["rooms"]["join"]), {public})
        self.assertEqual(bodies(result["rooms"]["join"][public]["timeline"]["events"]), ["from alice"])

    async def test_ephemeral_account_data_and_presence_filters(self) -> None:
        server, alice, bob = await self._server()
        rid = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        await bob.post(f"/join/{rid}")
        await bob.put(f"/rooms/{rid}/typing/{quote(bob.user_id)}", {"typing": True, "timeout": 30000})
        await alice.put(f"/user/{quote(alice.user_id)}/rooms/{rid}/tags/m.favourite", {})
        await alice.put(f"/user/{quote(alice.user_id)}/rooms/{rid}/account_data/org.example.room", {"a": 1})
        await alice.put(f"/user/{quote(alice.user_id)}/account_data/org.example.global", {"b": 2})
        everything = await alice.sync()
        room = everything["rooms"]["join"][rid]
        self.assertIn("m.typing", [e["type"] for e in room["ephemeral"]["events"]])
        self.assertEqual({e["type"] for e in room["account_data"]["events"]}, {"m.tag", "org.example.room"})
        self.assertIn("org.example.global", [e["type"] for e in everything["account_data"]["events"]])
        self.assertIn(alice.user_id, [p["sender"] for p in everything["presence"]["events"]])
        flt = {
            "room": {"ephemeral": {"types": []}, "account_data": {"not_types": ["m.tag"]}},
            "account_data": {"types": ["m.push_rules"]},
            "presence": {"not_senders": [alice.user_id]},
        }
        filtered = await alice.sync(filter=flt)
        room = filtered["rooms"]["join"][rid]
        self.assertEqual(room["ephemeral"]["events"], [])
        self.assertEqual([e["type"] for e in room["account_data"]["events"]], ["org.example.room"])
        self.assertEqual([e["type"] for e in filtered["account_data"]["events"]], ["m.push_rules"])
        self.assertNotIn(alice.user_id, [p["sender"] for p in filtered["presence"]["events"]])
        # A room filter on the ephemeral events only leaves that room's typing out.
        filtered = await alice.sync(filter={"room": {"ephemeral": {"not_rooms": [rid]}}})
        self.assertEqual(filtered["rooms"]["join"][rid]["ephemeral"]["events"], [])

    async def test_prev_batch_and_next_batch_work_with_messages(self) -> None:
        server, alice, bob = await self._server()
        rid = (await alice.post("/createRoom", {}))["room_id"]
        m0 = await alice.send_message(rid, "m0")
        m1 = await alice.send_message(rid, "m1")
        room = (await alice.sync(filter={"room": {"timeline": {"limit": 1}}}))["rooms"]["join"][rid]
        self.assertEqual([e["event_id"] for e in room["timeline"]["events"]], [m1])
        back = await alice.get(f"/rooms/{rid}/messages?dir=b&limit=1&from={quote(room['timeline']['prev_batch'])}")
        self.assertEqual([e["event_id"] for e in back["chunk"]], [m0])
        token = (await alice.sync())["next_batch"]
        m2 = await alice.send_message(rid, "m2")
        fwd = await alice.get(f"/rooms/{rid}/messages?dir=f&limit=5&from={quote(token)}")
        self.assertEqual([e["event_id"] for e in fwd["chunk"]], [m2])
        room = (await alice.sync(since=token, filter={"room": {"timeline": {"limit": 1}}}))["rooms"]["join"][rid]
        back = await alice.get(f"/rooms/{rid}/messages?dir=b&limit=1&from={quote(room['timeline']['prev_batch'])}")
        self.assertEqual([e["event_id"] for e in back["chunk"]], [m1])


class LeftRoomsTest(unittest.TestCase):
    async def _server(self):  # type: ignore[no-untyped-def]
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        return server, alice, bob

    async def test_leave_section_initial_full_state_and_incremental(self) -> None:
        server, alice, bob = await self._server()
        include_leave = {"room": {"include_leave": True}}
        rid = (await alice.post("/createRoom", {}))["room_id"]
        full_token = (await alice.sync(filter=include_leave))["next_batch"]
        incremental_token = (await alice.sync())["next_batch"]
        await alice.post(f"/rooms/{rid}/leave")
        self.assertIn(rid, (await alice.sync(filter=include_leave))["rooms"]["leave"])
        # An initial sync without include_leave leaves out rooms the user left themselves.
        self.assertNotIn(rid, (await alice.sync())["rooms"]["leave"])
        flt = quote(json.dumps(include_leave))
        self.assertIn(rid, (await alice.get(f"/sync?since={quote(full_token)}&full_state=true&filter={flt}"))["rooms"]["leave"])
        # Incremental syncs always carry a room left since the token.
        self.assertIn(rid, (await alice.sync(since=incremental_token))["rooms"]["leave"])

    async def test_kicked_and_banned_rooms_are_in_an_initial_sync(self) -> None:
        server, alice, bob = await self._server()
        kick = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        ban = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        for rid in (kick, ban):
            await bob.post(f"/join/{rid}")
        await alice.post(f"/rooms/{kick}/kick", {"user_id": bob.user_id})
        await alice.post(f"/rooms/{ban}/ban", {"user_id": bob.user_id})
        left = (await bob.sync())["rooms"]["leave"]
        self.assertEqual({kick, ban} & set(left), {kick, ban})

    async def test_gapped_sync_still_shows_the_leave(self) -> None:
        server, alice, bob = await self._server()
        flt = {"room": {"timeline": {"limit": 1}, "include_leave": True}}
        to_leave = (await alice.post("/createRoom", {}))["room_id"]
        spam = (await alice.post("/createRoom", {}))["room_id"]
        token = (await alice.sync(filter=flt))["next_batch"]
        await alice.post(f"/rooms/{to_leave}/leave")
        for i in range(20):
            await alice.send_message(spam, f"spam {i}")
        left = (await alice.sync(since=token, filter=flt))["rooms"]["leave"]
        self.assertEqual(left[to_leave]["timeline"]["events"][-1]["content"]["membership"], "leave")

    async def test_archived_history_ends_at_the_leave(self) -> None:
        server, alice, bob = await self._server()
        flt = {
            "room": {
                "timeline": {"types": ["m.room.message", "org.example.state"]},
                "state": {"types": ["org.example.state"]},
                "include_leave": True,
            }
        }
        rid = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        await bob.post(f"/join/{rid}")
        token = (await bob.sync(filter=flt))["next_batch"]
        await alice.send_message(rid, "before")
        await alice.put(f"/rooms/{rid}/state/org.example.state/", {"when": "before"})
        await bob.post(f"/rooms/{rid}/leave")
        await alice.send_message(rid, "after")
        await alice.put(f"/rooms/{rid}/state/org.example.state/", {"when": "after"})
        for result in (await bob.sync(filter=flt), await bob.sync(since=token, filter=flt)):
            room = result["rooms"]["leave"][rid]
            self.assertEqual(room["state"]["events"], [])
            events = room["timeline"]["events"]
            self.assertEqual([(e["type"], e["content"].get("body") or e["content"].get("when")) for e in events],
                             [("m.room.message", "before"), ("org.example.state", "before")])
        # /messages of a left room stops at the leave as well.
        back = await bob.get(f"/rooms/{rid}/messages?dir=b&limit=10")
        self.assertEqual(back["chunk"][0]["type"], "m.room.member")
        self.assertNotIn("after", bodies(back["chunk"]))

    async def test_older_left_rooms_are_not_repeated(self) -> None:
        server, alice, bob = await self._server()
        flt = {"room": {"timeline": {"limit": 1}, "include_leave": True}}
        to_leave = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        spam = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        await bob.post(f"/join/{to_leave}")
        await bob.post(f"/join/{spam}")
        token = (await alice.sync(filter=flt))["next_batch"]
        await alice.post(f"/rooms/{to_leave}/leave")
        token = (await alice.sync(since=token, filter=flt))["next_batch"]
        await bob.put(f"/rooms/{to_leave}/state/m.room.member/{quote(bob.user_id)}", {"membership": "join", "filler": "x"})
        for i in range(20):
            await bob.send_message(spam, f"spam {i}")
        self.assertEqual((await alice.sync(since=token, filter=flt))["rooms"]["leave"], {})

    async def test_own_leave_is_visible_under_joined_history(self) -> None:
        server, alice, bob = await self._server()
        flt = {"room": {"include_leave": True}}
        hv = [{"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "joined"}}]
        rid = (await alice.post("/createRoom", {"preset": "public_chat", "initial_state": hv}))["room_id"]
        await bob.post(f"/join/{rid}")
        token = (await alice.sync(filter=flt))["next_batch"]
        await alice.post(f"/rooms/{rid}/leave")
        room = (await alice.sync(since=token, filter=flt))["rooms"]["leave"][rid]
        self.assertEqual(room["state"]["events"], [])
        self.assertEqual(
            [(e["type"], e["sender"], e["content"]["membership"]) for e in room["timeline"]["events"]],
            [("m.room.member", alice.user_id, "leave")],
        )

    async def test_rejected_invite_shows_in_leave_then_join_clears_it(self) -> None:
        server, alice, bob = await self._server()
        rid = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        token = (await bob.sync())["next_batch"]
        await alice.post(f"/rooms/{rid}/invite", {"user_id": bob.user_id})
        await bob.post(f"/rooms/{rid}/leave")
        q = f"/sync?since={quote(token)}&full_state=true&timeout=0"
        result = await bob.get(q)
        self.assertIn(rid, result["rooms"]["leave"])
        await bob.post(f"/join/{rid}")
        result = await bob.get(f"/sync?since={quote(result['next_batch'])}&full_state=true&timeout=0")
        self.assertNotIn(rid, result["rooms"]["leave"])
        self.assertIn(rid, result["rooms"]["join"])


# The same behaviour on PostgreSQL, the production store.


class SyncRoomsTestPostgres(SyncRoomsTest):
    database = "postgresql"


class LeftRoomsTestPostgres(LeftRoomsTest):
    database = "postgresql"
