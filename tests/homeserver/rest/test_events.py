"""Events over HTTP: /messages both ways with filters, /event, /context, redaction,
relations (edits, reactions, threads), history visibility on every read path."""

from __future__ import annotations

import json
from urllib.parse import quote

from twisted.trial import unittest

from tests.support.wspr import MatrixClient, start_homeserver


class MessagesTest(unittest.TestCase):
    async def test_pagination_both_directions_and_filters(self) -> None:
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        rid = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        await bob.post(f"/join/{rid}")
        for i in range(12):
            sender = alice if i % 2 == 0 else bob
            await sender.send_message(rid, f"m{i}")
        page1 = await bob.get(f"/rooms/{rid}/messages?dir=b&limit=5")
        self.assertEqual([e["content"]["body"] for e in page1["chunk"]], ["m11", "m10", "m9", "m8", "m7"])
        page2 = await bob.get(f"/rooms/{rid}/messages?dir=b&limit=5&from={quote(page1['end'])}")
        self.assertEqual([e["content"]["body"] for e in page2["chunk"]], ["m6", "m5", "m4", "m3", "m2"])
        # Forward from page2's end goes back toward the present, from page2's oldest event
        # (tokens are positions between events, as in Synapse).
        fwd = await bob.get(f"/rooms/{rid}/messages?dir=f&limit=3&from={quote(page2['end'])}")
        self.assertEqual([e["content"]["body"] for e in fwd["chunk"]], ["m2", "m3", "m4"])
        # Walking back to the beginning ends without an `end` token.
        token, seen = page2["end"], []
        while True:
            page = await bob.get(f"/rooms/{rid}/messages?dir=b&limit=10&from={quote(token)}")
            seen += page["chunk"]
            if "end" not in page:
                break
            token = page["end"]
        self.assertEqual(seen[-1]["type"], "m.room.create")
        # Filters: only alice's messages, only messages.
        flt = quote(json.dumps({"senders": [alice.user_id], "types": ["m.room.message"]}))
        only_alice = await bob.get(f"/rooms/{rid}/messages?dir=b&limit=20&filter={flt}")
        self.assertEqual({e["sender"] for e in only_alice["chunk"]}, {alice.user_id})
        self.assertEqual(len(only_alice["chunk"]), 6)
        flt = quote(json.dumps({"not_types": ["m.room.message"]}))
        no_msgs = await bob.get(f"/rooms/{rid}/messages?dir=b&limit=50&filter={flt}")
        self.assertNotIn("m.room.message", {e["type"] for e in no_msgs["chunk"]})
        flt = quote(json.dumps({"lazy_load_members": True}))
        lazy = await bob.get(f"/rooms/{rid}/messages?dir=b&limit=2&filter={flt}")
        self.assertEqual({e["state_key"] for e in lazy["state"]}, {e["sender"] for e in lazy["chunk"]})

    async def test_event_context_and_redaction(self) -> None:
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        rid = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        await bob.post(f"/join/{rid}")
        ids = [await alice.send_message(rid, f"c{i}") for i in range(5)]
        ev = await bob.get(f"/rooms/{rid}/event/{ids[2]}")
        self.assertEqual(ev["content"]["body"], "c2")
        ctx = await bob.get(f"/rooms/{rid}/context/{ids[2]}?limit=2")
        self.assertEqual(ctx["event"]["event_id"], ids[2])
        self.assertEqual([e["event_id"] for e in ctx["events_before"]], [ids[1]])
        self.assertEqual([e["event_id"] for e in ctx["events_after"]], [ids[3]])
        self.assertTrue(any(s["type"] == "m.room.create" for s in ctx["state"]))
        # Bob may not redact alice's message; alice may.
        code, body = await bob.raw("PUT", f"/_matrix/client/v3/rooms/{rid}/redact/{ids[1]}/r1", {})
        self.assertEqual((code, body["errcode"]), (403, "M_FORBIDDEN"))
        red = await alice.put(f"/rooms/{rid}/redact/{ids[1]}/r2", {"reason": "oops"})
        redacted = await bob.get(f"/rooms/{rid}/event/{ids[1]}")
        self.assertEqual(redacted["content"], {})
        self.assertEqual(redacted["unsigned"]["redacted_because"]["event_id"], red["event_id"])
        # The transaction id is echoed to the sending device only.
        mine = await alice.get(f"/rooms/{rid}/messages?dir=b&limit=1")
        self.assertIn("transaction_id", mine["chunk"][0]["unsigned"])
        theirs = await bob.get(f"/rooms/{rid}/messages?dir=b&limit=1")
        self.assertNotIn("transaction_id", theirs["chunk"][0]["unsigned"])
        code, body = await bob.raw("GET", f"/_matrix/client/v3/rooms/{rid}/event/$nope")
        self.assertEqual((code, body["errcode"]), (404, "M_NOT_FOUND"))

    async def test_relations_edits_reactions_threads(self) -> None:
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        rid = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        await bob.post(f"/join/{rid}")
        root = await alice.send_message(rid, "root")
        edit = await alice.send_message(rid, "* fixed", **{"m.new_content": {"msgtype": "m.text", "body": "fixed"}, "m.relates_to": {"rel_type": "m.replace", "event_id": root}})
        # Someone else's "edit" does not count.
        await bob.send_message(rid, "* evil", **{"m.new_content": {"msgtype": "m.text", "body": "evil"}, "m.relates_to": {"rel_type": "m.replace", "event_id": root}})
        await bob.put(f"/rooms/{rid}/send/m.reaction/x1", {"m.relates_to": {"rel_type": "m.annotation", "event_id": root, "key": "👍"}})
        t1 = await bob.send_message(rid, "in thread", **{"m.relates_to": {"rel_type": "m.thread", "event_id": root}})
        t2 = await alice.send_message(rid, "thread 2", **{"m.relates_to": {"rel_type": "m.thread", "event_id": root}})
        got = await bob.get(f"/rooms/{rid}/event/{root}")
        rel = got["unsigned"]["m.relations"]
        self.assertEqual(rel["m.replace"]["event_id"], edit)
        self.assertEqual(rel["m.thread"]["count"], 2)
        self.assertEqual(rel["m.thread"]["latest_event"]["event_id"], t2)
        self.assertTrue(rel["m.thread"]["current_user_participated"])
        all_rel = await bob.request("GET", f"/_matrix/client/v1/rooms/{rid}/relations/{root}")
        self.assertEqual(len(all_rel["chunk"]), 5)
        reactions = await bob.request("GET", f"/_matrix/client/v1/rooms/{rid}/relations/{root}/m.annotation/m.reaction")
        self.assertEqual([e["content"]["m.relates_to"]["key"] for e in reactions["chunk"]], ["👍"])
        threads = await bob.request("GET", f"/_matrix/client/v1/rooms/{rid}/relations/{root}/m.thread?limit=1")
        self.assertEqual([e["event_id"] for e in threads["chunk"]], [t2])
        more = await bob.request("GET", f"/_matrix/client/v1/rooms/{rid}/relations/{root}/m.thread?limit=1&from={threads['next_batch']}")
        self.assertEqual([e["event_id"] for e in more["chunk"]], [t1])
        listing = await bob.request("GET", f"/_matrix/client/v1/rooms/{rid}/threads")
        self.assertEqual([e["event_id"] for e in listing["chunk"]], [root])


class HistoryVisibilityTest(unittest.TestCase):
    async def _room(self, visibility: str):  # type: ignore[no-untyped-def]
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        rid = (await alice.post("/createRoom", {"preset": "public_chat", "initial_state": [{"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": visibility}}]}))["room_id"]
        before = await alice.send_message(rid, "before bob")
        return server, alice, bob, rid, before

    async def test_joined_visibility_hides_earlier_history(self) -> None:
        server, alice, bob, rid, before = await self._room("joined")
        await bob.post(f"/join/{rid}")
        after = await alice.send_message(rid, "after bob")
        msgs = await bob.get(f"/rooms/{rid}/messages?dir=b&limit=50")
        bodies = [e["content"].get("body") for e in msgs["chunk"] if e["type"] == "m.room.message"]
        self.assertEqual(bodies, ["after bob"])
        code, _ = await bob.raw("GET", f"/_matrix/client/v3/rooms/{rid}/event/{before}")
        self.assertEqual(code, 404)
        await bob.get(f"/rooms/{rid}/event/{after}")
        code, _ = await bob.raw("GET", f"/_matrix/client/v3/rooms/{rid}/context/{before}")
        self.assertEqual(code, 403)  # Synapse: the event exists, the user may not see it
        sync = await bob.sync(filter={"room": {"timeline": {"limit": 50}}})
        timeline = sync["rooms"]["join"][rid]["timeline"]["events"]
        self.assertNotIn("before bob", [e["content"].get("body") for e in timeline])

    async def test_shared_visibility_shows_history_to_members(self) -> None:
        server, alice, bob, rid, before = await self._room("shared")
        await bob.post(f"/join/{rid}")
        await bob.get(f"/rooms/{rid}/event/{before}")
        # ...but after leaving, nothing sent later.
        await bob.post(f"/rooms/{rid}/leave")
        later = await alice.send_message(rid, "after bob left")
        code, _ = await bob.raw("GET", f"/_matrix/client/v3/rooms/{rid}/event/{later}")
        self.assertEqual(code, 404)
        msgs = await bob.get(f"/rooms/{rid}/messages?dir=b&limit=50")
        self.assertNotIn("after bob left", [e["content"].get("body") for e in msgs["chunk"]])

    async def test_world_readable_needs_no_membership(self) -> None:
        server, alice, bob, rid, before = await self._room("world_readable")
        msgs = await bob.get(f"/rooms/{rid}/messages?dir=b&limit=50")
        self.assertIn("before bob", [e["content"].get("body") for e in msgs["chunk"]])


# The same behaviour on PostgreSQL, the production store.


class MessagesTestPostgres(MessagesTest):
    database = "postgresql"


class HistoryVisibilityTestPostgres(HistoryVisibilityTest):
    database = "postgresql"
