"""/sync and the per-user streams: long-poll wake-ups, typing, receipts, read markers,
presence, account data, tags, filters, invites and leaves, lazy-loaded members."""

from __future__ import annotations

import time
from urllib.parse import quote

from twisted.internet import defer, task
from twisted.trial import unittest

from tests.support.wspr import MatrixClient, start_homeserver


class SyncTest(unittest.TestCase):
    async def _pair(self):  # type: ignore[no-untyped-def]
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        rid = (await alice.post("/createRoom", {"preset": "public_chat", "name": "R"}))["room_id"]
        await bob.post(f"/join/{rid}")
        return server, alice, bob, rid

    async def test_long_poll_wakes_on_message(self) -> None:
        server, alice, bob, rid = await self._pair()
        first = await bob.sync()
        start = time.monotonic()
        waiting = defer.ensureDeferred(bob.sync(since=first["next_batch"], timeout=20000))
        await task.deferLater(server.hs.reactor, 0.3, lambda: None)
        self.assertFalse(waiting.called, "sync must wait while nothing happens")
        await alice.send_message(rid, "wake up")
        result = await waiting
        elapsed = time.monotonic() - start
        self.assertLess(elapsed, 5)
        events = result["rooms"]["join"][rid]["timeline"]["events"]
        self.assertEqual([e["content"]["body"] for e in events], ["wake up"])
        self.assertFalse(result["rooms"]["join"][rid]["timeline"]["limited"])
        # A timeout with nothing new returns an empty response.
        empty = await bob.sync(since=result["next_batch"], timeout=200)
        self.assertEqual(empty["rooms"]["join"], {})

    async def test_limited_timeline_and_prev_batch(self) -> None:
        server, alice, bob, rid = await self._pair()
        first = await bob.sync()
        for i in range(15):
            await alice.send_message(rid, f"n{i}")
        await alice.put(f"/rooms/{rid}/state/m.room.topic/", {"topic": "changed in the gap"})
        for i in range(3):
            await alice.send_message(rid, f"tail{i}")
        result = await bob.sync(since=first["next_batch"], filter={"room": {"timeline": {"limit": 3}}})
        room = result["rooms"]["join"][rid]
        self.assertTrue(room["timeline"]["limited"])
        self.assertEqual([e["content"]["body"] for e in room["timeline"]["events"]], ["tail0", "tail1", "tail2"])
        # The state change in the gap is delivered as state.
        self.assertIn(("m.room.topic", "changed in the gap"), [(e["type"], e["content"].get("topic")) for e in room["state"]["events"]])
        # A stream position, as Synapse's prev_batch: a (depth, stream) point would hide, in a
        # forked room, events that arrived earlier but are deeper than the timeline's first
        # (tests/homeserver/storage/test_pagination_forks.py shows the two bounds apart).
        self.assertTrue(room["timeline"]["prev_batch"].startswith("s"), room["timeline"]["prev_batch"])
        back = await bob.get(f"/rooms/{rid}/messages?dir=b&limit=2&from={quote(room['timeline']['prev_batch'])}")
        self.assertEqual([e["type"] for e in back["chunk"]], ["m.room.topic", "m.room.message"])

    async def test_invite_and_leave_sections(self) -> None:
        server, alice, bob, rid = await self._pair()
        carol = await MatrixClient.register(server.base_url, "carol")
        first = await carol.sync()
        private = (await alice.post("/createRoom", {"name": "Invite only", "invite": [carol.user_id]}))["room_id"]
        result = await carol.sync(since=first["next_batch"])
        invite = result["rooms"]["invite"][private]["invite_state"]["events"]
        self.assertIn(("m.room.name", "Invite only"), [(e["type"], e["content"].get("name")) for e in invite])
        self.assertIn(("m.room.member", carol.user_id), [(e["type"], e.get("state_key")) for e in invite])
        await carol.post(f"/join/{private}")
        mid = await carol.sync(since=result["next_batch"])
        self.assertIn(private, mid["rooms"]["join"])
        state_types = {e["type"] for e in mid["rooms"]["join"][private]["state"]["events"]} | {
            e["type"] for e in mid["rooms"]["join"][private]["timeline"]["events"]
        }
        self.assertIn("m.room.create", state_types)
        await carol.post(f"/rooms/{private}/leave")
        last = await carol.sync(since=mid["next_batch"])
        self.assertIn(private, last["rooms"]["leave"])
        leave_events = last["rooms"]["leave"][private]["timeline"]["events"]
        self.assertEqual(leave_events[-1]["content"]["membership"], "leave")

    async def test_typing_receipts_markers(self) -> None:
        server, alice, bob, rid = await self._pair()
        event_id = await alice.send_message(rid, "read me")
        first = await bob.sync()
        await alice.put(f"/rooms/{rid}/typing/{alice.user_id}", {"typing": True, "timeout": 10000})
        result = await bob.sync(since=first["next_batch"], timeout=5000)
        ephemeral = result["rooms"]["join"][rid]["ephemeral"]["events"]
        self.assertIn({"type": "m.typing", "content": {"user_ids": [alice.user_id]}}, ephemeral)
        await alice.put(f"/rooms/{rid}/typing/{alice.user_id}", {"typing": False})
        result2 = await bob.sync(since=result["next_batch"], timeout=5000)
        self.assertIn({"type": "m.typing", "content": {"user_ids": []}}, result2["rooms"]["join"][rid]["ephemeral"]["events"])

        await bob.post(f"/rooms/{rid}/receipt/m.read/{quote(event_id)}", {})
        await bob.post(f"/rooms/{rid}/receipt/m.read.private/{quote(event_id)}", {})
        await bob.post(f"/rooms/{rid}/receipt/m.read/{quote(event_id)}", {"thread_id": "main"})
        got = await alice.sync(filter={"room": {"timeline": {"limit": 1}}})
        receipts = [e for e in got["rooms"]["join"][rid]["ephemeral"]["events"] if e["type"] == "m.receipt"]
        content = receipts[0]["content"][event_id]
        self.assertIn(bob.user_id, content["m.read"])
        self.assertNotIn("m.read.private", content)  # private receipts stay private
        mine = await bob.sync()
        my_receipts = [e for e in mine["rooms"]["join"][rid]["ephemeral"]["events"] if e["type"] == "m.receipt"][0]
        self.assertIn(bob.user_id, my_receipts["content"][event_id]["m.read.private"])

        await bob.post(f"/rooms/{rid}/read_markers", {"m.fully_read": event_id, "m.read": event_id})
        marker = await bob.get(f"/user/{quote(bob.user_id)}/rooms/{rid}/account_data/m.fully_read")
        self.assertEqual(marker["event_id"], event_id)
        code, body = await bob.raw("POST", f"/_matrix/client/v3/rooms/{rid}/receipt/m.read/$missing", {})
        self.assertEqual(code, 404)

    async def test_account_data_tags_presence_filters(self) -> None:
        server, alice, bob, rid = await self._pair()
        first = await bob.sync()
        await bob.put(f"/user/{quote(bob.user_id)}/account_data/org.example.settings", {"theme": "dark"})
        await bob.put(f"/user/{quote(bob.user_id)}/rooms/{rid}/tags/m.favourite", {"order": 0.5})
        result = await bob.sync(since=first["next_batch"])
        self.assertIn({"type": "org.example.settings", "content": {"theme": "dark"}}, result["account_data"]["events"])
        room_ad = result["rooms"]["join"][rid]["account_data"]["events"]
        self.assertIn({"type": "m.tag", "content": {"tags": {"m.favourite": {"order": 0.5}}}}, room_ad)
        self.assertEqual(await bob.get(f"/user/{quote(bob.user_id)}/account_data/org.example.settings"), {"theme": "dark"})
        self.assertEqual((await bob.get(f"/user/{quote(bob.user_id)}/rooms/{rid}/tags"))["tags"], {"m.favourite": {"order": 0.5}})
        await bob.request("DELETE", f"/_matrix/client/v3/user/{quote(bob.user_id)}/rooms/{rid}/tags/m.favourite")
        self.assertEqual((await bob.get(f"/user/{quote(bob.user_id)}/rooms/{rid}/tags"))["tags"], {})
        code, _ = await alice.raw("GET", f"/_matrix/client/v3/user/{quote(bob.user_id)}/account_data/org.example.settings")
        self.assertEqual(code, 403)

        await alice.put(f"/presence/{quote(alice.user_id)}/status", {"presence": "unavailable", "status_msg": "lunch"})
        status = await bob.get(f"/presence/{quote(alice.user_id)}/status")
        self.assertEqual((status["presence"], status["status_msg"]), ("unavailable", "lunch"))
        synced = await bob.sync(since=result["next_batch"])
        self.assertIn(alice.user_id, [p["sender"] for p in synced["presence"]["events"]])

        fid = (await bob.post(f"/user/{quote(bob.user_id)}/filter", {"room": {"timeline": {"limit": 1}}, "presence": {"types": []}}))["filter_id"]
        self.assertEqual((await bob.get(f"/user/{quote(bob.user_id)}/filter/{fid}"))["room"]["timeline"]["limit"], 1)
        filtered = await bob.sync(filter=fid)
        self.assertEqual(len(filtered["rooms"]["join"][rid]["timeline"]["events"]), 1)
        code, body = await bob.raw("POST", f"/_matrix/client/v3/user/{quote(bob.user_id)}/filter", {"room": {"timeline": {"limit": "ten"}}})
        # Synapse's schema errors are M_UNKNOWN (the spec names no code).
        self.assertEqual((code, body["errcode"]), (400, "M_UNKNOWN"))

    async def test_lazy_loading_members(self) -> None:
        server, alice, bob, rid = await self._pair()
        for name in ("c1", "c2", "c3"):
            c = await MatrixClient.register(server.base_url, name)
            await c.post(f"/join/{rid}")
        await alice.send_message(rid, "only alice talks")
        result = await bob.sync(filter={"room": {"timeline": {"limit": 1}, "state": {"lazy_load_members": True}}})
        room = result["rooms"]["join"][rid]
        members = {e["state_key"] for e in room["state"]["events"] if e["type"] == "m.room.member"}
        self.assertEqual(members, {alice.user_id, bob.user_id})
        self.assertEqual(room["summary"]["m.joined_member_count"], 5)


    async def test_own_new_device_in_device_lists(self) -> None:
        server, alice, bob, rid = await self._pair()
        first = await alice.sync()
        await MatrixClient.login(server.base_url, "alice", "correct horse")
        result = await alice.sync(since=first["next_batch"], timeout=5000)
        # Alice's first session must hear about her new device (to verify it).
        self.assertIn(alice.user_id, result["device_lists"]["changed"])
        bob_view = await bob.sync(since=first["next_batch"])
        self.assertIn(alice.user_id, bob_view["device_lists"]["changed"])

    async def test_v11_redaction_has_top_level_redacts(self) -> None:
        server, alice, bob, rid = await self._pair()
        first = await bob.sync()
        target = await alice.send_message(rid, "oops")
        await alice.put(f"/rooms/{rid}/redact/{target}/r1", {})
        result = await bob.sync(since=first["next_batch"])
        redaction = [e for e in result["rooms"]["join"][rid]["timeline"]["events"] if e["type"] == "m.room.redaction"][0]
        self.assertEqual(redaction["redacts"], target)
        self.assertEqual(redaction["content"]["redacts"], target)


# The same behaviour on PostgreSQL, the production store.


class SyncTestPostgres(SyncTest):
    database = "postgresql"
