"""Simplified sliding sync (MSC4186) over HTTP: lists, ranges, ordering and bump stamps,
required_state and its deltas across requests, lazy-loaded members, filters, room
subscriptions, per-connection state (rooms not resent, M_UNKNOWN_POS), long-poll
wake-ups and the extensions. SQLite and PostgreSQL."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from tests.homeserver.e2e._helpers import SIGS, Ed25519, device_keys
from tests.support.wspr import MatrixClient, start_homeserver

SS_PATH = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
NAME_STATE = [["m.room.name", ""]]


async def ss(client: MatrixClient, body: dict[str, Any], pos: str | None = None, timeout: int = 0) -> Any:
    q = [f"timeout={timeout}"]
    if pos is not None:
        q.append(f"pos={quote(pos)}")
    return await client.request("POST", SS_PATH + "?" + "&".join(q), body)


async def ss_error(client: MatrixClient, body: Any, pos: str | None = None) -> tuple[int, str | None]:
    path = SS_PATH + (f"?pos={quote(pos)}" if pos is not None else "")
    code, resp = await client.raw("POST", path, body)
    return code, resp.get("errcode") if isinstance(resp, dict) else None


def one_list(
    ranges: list[list[int]] | None = None,
    timeline_limit: int = 1,
    required_state: list[list[str]] | None = None,
    filters: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "ranges": ranges if ranges is not None else [[0, 20]],
        "timeline_limit": timeline_limit,
        "required_state": required_state if required_state is not None else [],
    }
    if filters is not None:
        config["filters"] = filters
    return {"lists": {"all": config}, **extra}


def list_ids(resp: dict[str, Any], name: str = "all") -> list[str]:
    return [r for op in resp["lists"][name]["ops"] for r in op["room_ids"]]


def bodies(room: dict[str, Any]) -> list[str]:
    return [e["content"].get("body") for e in room.get("timeline", []) if e["type"] == "m.room.message"]


def state_keys(room: dict[str, Any]) -> set[tuple[str, str]]:
    return {(e["type"], e["state_key"]) for e in room.get("required_state", [])}


async def sleep(seconds: float) -> None:
    await task.deferLater(reactor, seconds, lambda: None)


# What Element X (matrix-rust-sdk's room list service) asks for.
ELEMENT_X_STATE = [
    ["m.room.name", ""], ["m.room.encryption", ""], ["m.room.member", "$LAZY"], ["m.room.member", "$ME"],
    ["m.room.topic", ""], ["m.room.avatar", ""], ["m.room.canonical_alias", ""], ["m.room.power_levels", ""],
    ["org.matrix.msc3401.call.member", "*"], ["m.room.join_rules", ""], ["m.room.tombstone", ""],
    ["m.room.create", ""], ["m.room.history_visibility", ""], ["io.element.functional_members", ""],
    ["m.space.parent", "*"], ["m.space.child", "*"], ["m.beacon_info", "*"],
]
ELEMENT_X_EXTENSIONS = {
    "account_data": {"enabled": True},
    "receipts": {"enabled": True, "rooms": ["*"]},
    "typing": {"enabled": True},
}


class SlidingSyncMixin:
    database = "sqlite"
    timeout = 120

    async def _server(self):  # type: ignore[no-untyped-def]
        server = await start_homeserver(self, database=self.database)  # type: ignore[arg-type]
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        return server, alice, bob

    async def test_ranges_order_and_bump_stamps(self) -> None:
        _server, alice, _bob = await self._server()
        rooms = [(await alice.post("/createRoom", {"name": f"R{i}"}))["room_id"] for i in range(5)]
        # Activity order: R2 most recent, then R4, then the rest newest first.
        await alice.send_message(rooms[4], "four")
        await alice.send_message(rooms[2], "two")
        first = await ss(alice, one_list([[0, 2]], required_state=NAME_STATE))
        self.assertEqual(first["lists"]["all"]["count"], 5)
        self.assertEqual(first["lists"]["all"]["ops"], [{"op": "SYNC", "range": [0, 2], "room_ids": [rooms[2], rooms[4], rooms[3]]}])
        self.assertEqual(list(first["rooms"]), [rooms[2], rooms[4], rooms[3]])
        r2 = first["rooms"][rooms[2]]
        self.assertTrue(r2["initial"])
        self.assertEqual(r2["name"], "R2")
        self.assertEqual(bodies(r2), ["two"])
        self.assertTrue(r2["limited"])
        self.assertEqual(r2["num_live"], 0)
        self.assertEqual([(e["type"], e["content"]["name"]) for e in r2["required_state"]], [("m.room.name", "R2")])
        self.assertEqual((r2["joined_count"], r2["invited_count"]), (1, 0))
        self.assertGreater(r2["bump_stamp"], first["rooms"][rooms[4]]["bump_stamp"])
        self.assertGreater(first["rooms"][rooms[4]]["bump_stamp"], first["rooms"][rooms[3]]["bump_stamp"])
        # Nothing new: no rooms, the same list.
        again = await ss(alice, one_list([[0, 2]], required_state=NAME_STATE), first["pos"])
        self.assertEqual(again["rooms"], {})
        self.assertEqual(list_ids(again), list_ids(first))
        # A topic change is activity (R4 moves up) but not a bump: its bump stamp stays.
        await alice.put(f"/rooms/{quote(rooms[4])}/state/m.room.topic/", {"topic": "t"})
        third = await ss(alice, one_list([[0, 2]], required_state=NAME_STATE), again["pos"])
        self.assertEqual(list_ids(third), [rooms[4], rooms[2], rooms[3]])
        self.assertEqual(set(third["rooms"]), {rooms[4]})
        self.assertNotIn("bump_stamp", third["rooms"][rooms[4]])  # unchanged: omitted
        self.assertNotIn("initial", third["rooms"][rooms[4]])
        # A message in R0 brings it into range: sent from scratch, its event live.
        await alice.send_message(rooms[0], "zero")
        fourth = await ss(alice, one_list([[0, 2]], required_state=NAME_STATE), third["pos"])
        self.assertEqual(list_ids(fourth), [rooms[0], rooms[4], rooms[2]])
        self.assertEqual(set(fourth["rooms"]), {rooms[0]})
        r0 = fourth["rooms"][rooms[0]]
        self.assertTrue(r0["initial"])
        self.assertEqual(r0["num_live"], 1)
        self.assertGreater(r0["bump_stamp"], r2["bump_stamp"])
        # Widening the range sends only the rooms not sent yet.
        wide = await ss(alice, one_list([[0, 10]], required_state=NAME_STATE), fourth["pos"])
        self.assertEqual(set(wide["rooms"]), {rooms[1]})
        # Two ranges.
        split = await ss(alice, one_list([[0, 0], [3, 4]]), wide["pos"])
        self.assertEqual([op["room_ids"] for op in split["lists"]["all"]["ops"]], [[rooms[0]], [rooms[3], rooms[1]]])

    async def test_room_missed_while_out_of_range_is_caught_up(self) -> None:
        _server, alice, _bob = await self._server()
        old = (await alice.post("/createRoom", {"name": "old"}))["room_id"]
        new = (await alice.post("/createRoom", {"name": "new"}))["room_id"]
        body = one_list([[0, 0]], timeline_limit=5)
        first = await ss(alice, body)
        self.assertEqual(list(first["rooms"]), [new])
        await alice.send_message(old, "old-1")
        second = await ss(alice, body, first["pos"])
        self.assertEqual(list(second["rooms"]), [old])
        self.assertTrue(second["rooms"][old]["initial"])
        # "new" goes out of range and gets two messages; when it is back, both arrive
        # (not from scratch: it was sent before).
        await alice.send_message(old, "old-2")
        third = await ss(alice, body, second["pos"])
        self.assertEqual(bodies(third["rooms"][old]), ["old-2"])
        await alice.send_message(new, "missed-1")
        await alice.send_message(old, "old-3")
        fourth = await ss(alice, body, third["pos"])
        self.assertEqual(list_ids(fourth), [old])
        await alice.send_message(new, "missed-2")
        fifth = await ss(alice, body, fourth["pos"])
        room = fifth["rooms"][new]
        self.assertNotIn("initial", room)
        self.assertEqual(bodies(room), ["missed-1", "missed-2"])
        self.assertFalse(room["limited"])

    async def test_required_state_deltas_across_requests(self) -> None:
        _server, alice, _bob = await self._server()
        rid = (await alice.post("/createRoom", {"name": "N1", "topic": "T1"}))["room_id"]
        body = one_list(required_state=[["m.room.name", ""], ["m.room.member", "$ME"]])
        first = await ss(alice, body)
        self.assertEqual(state_keys(first["rooms"][rid]), {("m.room.name", ""), ("m.room.member", alice.user_id)})
        # A name change: the new name event, and the name field, nothing else.
        await alice.put(f"/rooms/{quote(rid)}/state/m.room.name/", {"name": "N2"})
        second = await ss(alice, body, first["pos"])
        room = second["rooms"][rid]
        self.assertEqual(room["name"], "N2")
        self.assertEqual([(e["type"], e["content"]) for e in room["required_state"]], [("m.room.name", {"name": "N2"})])
        # A topic change is not asked for: the room comes with its timeline only.
        await alice.put(f"/rooms/{quote(rid)}/state/m.room.topic/", {"topic": "T2"})
        third = await ss(alice, body, second["pos"])
        self.assertNotIn("required_state", third["rooms"][rid])
        self.assertNotIn("name", third["rooms"][rid])
        # Asking for the topic now sends the current topic event at once (a config that
        # asks for more is an update).
        with_topic = one_list(required_state=[["m.room.name", ""], ["m.room.member", "$ME"], ["m.room.topic", ""]])
        fourth = await ss(alice, with_topic, third["pos"])
        self.assertEqual(
            [(e["type"], e["content"]) for e in fourth["rooms"][rid]["required_state"]], [("m.room.topic", {"topic": "T2"})]
        )
        # Dropping the topic and asking again while it did not change sends nothing.
        fifth = await ss(alice, body, fourth["pos"])
        sixth = await ss(alice, with_topic, fifth["pos"])
        self.assertEqual(sixth["rooms"], {})
        # All state with the wildcard.
        seventh = await ss(alice, one_list(required_state=[["*", "*"]]), sixth["pos"])
        keys = state_keys(seventh["rooms"][rid])
        self.assertTrue({("m.room.create", ""), ("m.room.power_levels", ""), ("m.room.topic", "")} <= keys)

    async def test_lazy_members(self) -> None:
        server, alice, bob = await self._server()
        carol = await MatrixClient.register(server.base_url, "carol")
        rid = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        for user in (bob, carol):
            await user.post(f"/join/{quote(rid)}")
        await bob.send_message(rid, "from bob")
        body = one_list(timeline_limit=1, required_state=[["m.room.member", "$LAZY"]])
        first = await ss(alice, body)
        # Only the sender of the one timeline event.
        self.assertEqual(state_keys(first["rooms"][rid]), {("m.room.member", bob.user_id)})
        # Bob again: his membership was sent already. Carol: sent now, once.
        await bob.send_message(rid, "bob again")
        second = await ss(alice, body, first["pos"])
        self.assertNotIn("required_state", second["rooms"][rid])
        await carol.send_message(rid, "from carol")
        third = await ss(alice, body, second["pos"])
        self.assertEqual(state_keys(third["rooms"][rid]), {("m.room.member", carol.user_id)})
        # A membership change in a gapless timeline is sent (the client keeps its list).
        await carol.put(f"/rooms/{quote(rid)}/state/m.room.member/{quote(carol.user_id)}", {"membership": "join", "displayname": "Carol"})
        fourth = await ss(alice, body, third["pos"])
        self.assertEqual([e["content"].get("displayname") for e in fourth["rooms"][rid]["required_state"]], ["Carol"])
        self.assertEqual((fourth["rooms"][rid]["joined_count"], fourth["rooms"][rid]["invited_count"]), (3, 0))

    async def test_filters(self) -> None:
        _server, alice, bob = await self._server()
        plain = (await alice.post("/createRoom", {"name": "plain"}))["room_id"]
        enc = (await alice.post("/createRoom", {"name": "enc", "initial_state": [
            {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}]}))["room_id"]
        space = (await alice.post("/createRoom", {"name": "space", "creation_content": {"type": "m.space"}}))["room_id"]
        dm = (await alice.post("/createRoom", {"is_direct": True, "invite": [bob.user_id]}))["room_id"]
        await alice.put(f"/user/{quote(alice.user_id)}/account_data/m.direct", {bob.user_id: [dm]})
        await alice.put(f"/rooms/{quote(space)}/state/m.space.child/{quote(enc)}", {"via": ["localhost"]})
        await alice.put(f"/user/{quote(alice.user_id)}/rooms/{quote(plain)}/tags/m.favourite", {})
        invited = (await bob.post("/createRoom", {"name": "invite", "invite": [alice.user_id]}))["room_id"]

        async def matching(filters: dict[str, Any]) -> set[str]:
            resp = await ss(alice, one_list(filters=filters, timeline_limit=0))
            self.assertEqual(resp["lists"]["all"]["count"], len(list_ids(resp)))
            return set(list_ids(resp))

        everything = {plain, enc, space, dm, invited}
        self.assertEqual(await matching({}), everything)
        self.assertEqual(await matching({"is_dm": True}), {dm})
        self.assertEqual(await matching({"is_dm": False}), everything - {dm})
        self.assertEqual(await matching({"is_encrypted": True}), {enc})
        self.assertEqual(await matching({"is_invite": True}), {invited})
        self.assertEqual(await matching({"is_invite": False}), everything - {invited})
        self.assertEqual(await matching({"room_types": ["m.space"]}), {space})
        self.assertEqual(await matching({"not_room_types": ["m.space"]}), everything - {space})
        self.assertEqual(await matching({"room_types": [None]}), everything - {space})
        self.assertEqual(await matching({"spaces": [space]}), {enc})
        self.assertEqual(await matching({"tags": ["m.favourite"]}), {plain})
        self.assertEqual(await matching({"not_tags": ["m.favourite"]}), everything - {plain})
        self.assertEqual(await matching({"is_encrypted": False, "is_invite": False, "is_dm": False}), {plain, space})
        # The DM flag and an invite's stripped state.
        resp = await ss(alice, one_list(timeline_limit=0, required_state=NAME_STATE))
        self.assertTrue(resp["rooms"][dm]["is_dm"])
        self.assertNotIn("is_dm", resp["rooms"][plain])
        inv = resp["rooms"][invited]
        self.assertEqual(inv["name"], "invite")
        self.assertIn(("m.room.member", alice.user_id), {(e["type"], e["state_key"]) for e in inv["invite_state"]})
        self.assertNotIn("timeline", inv)
        self.assertNotIn("required_state", inv)

    async def test_invite_join_leave_and_kick(self) -> None:
        _server, alice, bob = await self._server()
        rid = (await alice.post("/createRoom", {"name": "R", "invite": [bob.user_id]}))["room_id"]
        kick_room = (await alice.post("/createRoom", {"name": "K", "preset": "public_chat"}))["room_id"]
        await bob.post(f"/join/{quote(kick_room)}")
        body = one_list(timeline_limit=3, required_state=NAME_STATE)
        first = await ss(bob, body)
        self.assertIn("invite_state", first["rooms"][rid])
        # Joining sends the room from scratch.
        await bob.post(f"/join/{quote(rid)}")
        second = await ss(bob, body, first["pos"])
        joined = second["rooms"][rid]
        self.assertTrue(joined["initial"])
        self.assertEqual(joined["name"], "R")
        self.assertEqual(joined["timeline"][-1]["content"]["membership"], "join")
        # Bob's own leave: the room comes once with the leave, then leaves the list.
        await bob.post(f"/rooms/{quote(rid)}/leave")
        third = await ss(bob, body, second["pos"])
        self.assertIn(rid, list_ids(third))
        self.assertEqual(third["rooms"][rid]["timeline"][-1]["content"]["membership"], "leave")
        fourth = await ss(bob, body, third["pos"])
        self.assertNotIn(rid, list_ids(fourth))
        # Nothing of the room after the leave reaches bob.
        await alice.send_message(rid, "after bob left")
        # A kick stays listed.
        await alice.post(f"/rooms/{quote(kick_room)}/kick", {"user_id": bob.user_id})
        fifth = await ss(bob, body, fourth["pos"])
        self.assertEqual(list_ids(fifth), [kick_room])
        self.assertEqual(fifth["rooms"][kick_room]["timeline"][-1]["content"]["membership"], "leave")
        sixth = await ss(bob, body, fifth["pos"])
        self.assertEqual(list_ids(sixth), [kick_room])
        self.assertEqual(sixth["rooms"], {})
        # Until forgotten.
        await bob.post(f"/rooms/{quote(kick_room)}/forget")
        seventh = await ss(bob, body, sixth["pos"])
        self.assertEqual(list_ids(seventh), [])

    async def test_room_subscriptions_and_expanded_timeline(self) -> None:
        _server, alice, bob = await self._server()
        quiet = (await alice.post("/createRoom", {"name": "quiet"}))["room_id"]
        for i in range(4):
            await alice.send_message(quiet, f"q{i}")
        busy = (await alice.post("/createRoom", {"name": "busy"}))["room_id"]
        outsider = (await bob.post("/createRoom", {}))["room_id"]
        body = one_list([[0, 0]], timeline_limit=1)
        first = await ss(alice, body)
        self.assertEqual(set(first["rooms"]), {busy})
        # A subscription brings the quiet room (out of range), with its own config; a
        # room alice is not in is ignored.
        sub = {**body, "room_subscriptions": {quiet: {"timeline_limit": 2, "required_state": [["m.room.name", ""]]},
                                              outsider: {"timeline_limit": 1, "required_state": []}}}
        second = await ss(alice, sub, first["pos"])
        self.assertEqual(set(second["rooms"]), {quiet})
        self.assertEqual(bodies(second["rooms"][quiet]), ["q2", "q3"])
        self.assertEqual(second["rooms"][quiet]["name"], "quiet")
        # A larger timeline_limit resends the latest events, flagged as expanded.
        bigger = {**body, "room_subscriptions": {quiet: {"timeline_limit": 4, "required_state": [["m.room.name", ""]]}}}
        third = await ss(alice, bigger, second["pos"])
        room = third["rooms"][quiet]
        self.assertTrue(room["unstable_expanded_timeline"])
        self.assertEqual(bodies(room), ["q0", "q1", "q2", "q3"])
        self.assertNotIn("initial", room)

    async def test_positions_and_unknown_pos(self) -> None:
        server, alice, _bob = await self._server()
        first_room = (await alice.post("/createRoom", {"name": "R"}))["room_id"]
        body = one_list(timeline_limit=2, conn_id="main")
        first = await ss(alice, body)
        rid = (await alice.post("/createRoom", {"name": "new"}))["room_id"]
        await alice.send_message(rid, "one")
        await alice.send_message(first_room, "two")
        second = await ss(alice, body, first["pos"])
        self.assertTrue(second["rooms"][rid]["initial"])
        self.assertEqual(bodies(second["rooms"][first_room]), ["two"])
        # A retry with the same pos (the client never processed the answer) gets the
        # same rooms again, the new one still from scratch.
        retry = await ss(alice, body, first["pos"])
        self.assertTrue(retry["rooms"][rid]["initial"])
        self.assertEqual(bodies(retry["rooms"][first_room]), ["two"])
        # Continuing from the retry's position drops the others: the first is unknown now.
        third = await ss(alice, body, retry["pos"])
        self.assertEqual(third["rooms"], {})
        self.assertEqual(await ss_error(alice, body, first["pos"]), (400, "M_UNKNOWN_POS"))
        self.assertEqual(await ss_error(alice, body, second["pos"]), (400, "M_UNKNOWN_POS"))
        # Another connection of the device, and another device, do not share positions.
        self.assertEqual(await ss_error(alice, {**body, "conn_id": "other"}, third["pos"]), (400, "M_UNKNOWN_POS"))
        alice2 = await MatrixClient.login(server.base_url, "alice")
        self.assertEqual(await ss_error(alice2, body, third["pos"]), (400, "M_UNKNOWN_POS"))
        # Unknown positions, and unreadable ones.
        self.assertEqual(await ss_error(alice, body, "99999/s1_0_0"), (400, "M_UNKNOWN_POS"))
        self.assertEqual(await ss_error(alice, body, "garbage"), (400, "M_UNKNOWN"))
        # A connection that starts again (no pos) gets everything from scratch.
        fresh = await ss(alice, body)
        self.assertTrue(fresh["rooms"][rid]["initial"])

    async def test_bad_requests(self) -> None:
        server, alice, _bob = await self._server()
        cases: list[tuple[Any, str]] = [
            ({"lists": {"a": {"ranges": [[0, 1]]}}}, "M_BAD_JSON"),  # two fields missing
            ({"lists": {"a": {"ranges": [[0, 1]], "timeline_limit": 1}}}, "M_MISSING_PARAM"),
            ({"lists": {"a": {"ranges": [[0, 1]], "timeline_limit": "1", "required_state": []}}}, "M_BAD_JSON"),
            ({"lists": {"a": {"ranges": [[0, 1]], "timeline_limit": 1001, "required_state": []}}}, "M_BAD_JSON"),
            ({"lists": {"a": {"ranges": [[-1, 1]], "timeline_limit": 1, "required_state": []}}}, "M_BAD_JSON"),
            ({"lists": {"a": {"ranges": [[0, 1]], "timeline_limit": 1, "required_state": [["a"]]}}}, "M_BAD_JSON"),
            ({"lists": {"a": {"timeline_limit": 1, "required_state": [], "filters": {"is_dm": "yes"}}}}, "M_BAD_JSON"),
            ({"lists": {"x" * 65: {"timeline_limit": 1, "required_state": []}}}, "M_BAD_JSON"),
            ({"extensions": {"to_device": {"enabled": True, "since": "abc"}}}, "M_INVALID_PARAM"),
            ({"lists": []}, "M_BAD_JSON"),
            ([], "M_BAD_JSON"),
        ]
        for body, errcode in cases:
            self.assertEqual(await ss_error(alice, body), (400, errcode), body)
        code, resp = await alice.raw("POST", SS_PATH, data=b"not json")
        self.assertEqual((code, resp["errcode"]), (400, "M_NOT_JSON"))
        code, resp = await MatrixClient(server.base_url).raw("POST", SS_PATH, {})
        self.assertEqual((code, resp["errcode"]), (401, "M_MISSING_TOKEN"))
        # Unknown keys and extensions are ignored (clients send unsubscribe_rooms, txn_id...).
        ok = await ss(alice, {"txn_id": "x", "unsubscribe_rooms": [], "extensions": {"future": {"enabled": True}}})
        self.assertEqual(ok["rooms"], {})
        self.assertNotIn("lists", ok)

    async def test_long_poll_wakes_on_message_and_times_out(self) -> None:
        _server, alice, bob = await self._server()
        rid = (await alice.post("/createRoom", {"preset": "public_chat", "name": "R"}))["room_id"]
        await bob.post(f"/join/{quote(rid)}")
        body = one_list(timeline_limit=5)
        first = await ss(bob, body)
        start = time.monotonic()
        waiting = defer.ensureDeferred(ss(bob, body, first["pos"], timeout=20000))
        await sleep(0.3)
        self.assertFalse(waiting.called, "the request must wait while nothing happens")
        await alice.send_message(rid, "wake up")
        result = await waiting
        self.assertLess(time.monotonic() - start, 5)
        self.assertEqual(bodies(result["rooms"][rid]), ["wake up"])
        # A timeout with nothing new: an empty answer, after the timeout.
        start = time.monotonic()
        empty = await ss(bob, body, result["pos"], timeout=300)
        self.assertGreaterEqual(time.monotonic() - start, 0.25)
        self.assertEqual(empty["rooms"], {})
        # A config that asks for more answers at once.
        start = time.monotonic()
        changed = await ss(bob, one_list(timeline_limit=5, required_state=NAME_STATE), empty["pos"], timeout=20000)
        self.assertEqual(changed["rooms"][rid]["required_state"][0]["content"], {"name": "R"})
        self.assertLess(time.monotonic() - start, 5)

    async def test_extensions_account_data_receipts_typing(self) -> None:
        _server, alice, bob = await self._server()
        rid = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        await bob.post(f"/join/{quote(rid)}")
        eid = await alice.send_message(rid, "read me")
        await bob.post(f"/rooms/{quote(rid)}/receipt/m.read/{quote(eid)}", {})
        await alice.put(f"/user/{quote(alice.user_id)}/account_data/org.example.global", {"g": 1})
        await alice.put(f"/user/{quote(alice.user_id)}/rooms/{quote(rid)}/account_data/org.example.room", {"r": 1})
        exts = {"account_data": {"enabled": True}, "receipts": {"enabled": True}, "typing": {"enabled": True}}
        body = one_list(timeline_limit=1, extensions=exts)
        first = await ss(alice, body)
        ext = first["extensions"]
        global_types = {e["type"] for e in ext["account_data"]["global"]}
        self.assertTrue({"org.example.global", "m.push_rules"} <= global_types)
        self.assertEqual(ext["account_data"]["rooms"][rid], [{"type": "org.example.room", "content": {"r": 1}}])
        self.assertEqual(ext["receipts"]["rooms"][rid]["content"][eid]["m.read"][bob.user_id].keys(), {"ts"})
        self.assertEqual(ext["typing"]["rooms"], {})
        # Each wakes a waiting request and comes once.
        waiting = defer.ensureDeferred(ss(alice, body, first["pos"], timeout=20000))
        await sleep(0.2)
        await bob.put(f"/rooms/{quote(rid)}/typing/{quote(bob.user_id)}", {"typing": True, "timeout": 30000})
        typed = await waiting
        self.assertEqual(typed["extensions"]["typing"]["rooms"][rid]["content"]["user_ids"], [bob.user_id])
        self.assertEqual(typed["rooms"], {})
        await alice.put(f"/user/{quote(alice.user_id)}/rooms/{quote(rid)}/account_data/org.example.room", {"r": 2})
        second = await ss(alice, body, typed["pos"], timeout=20000)
        self.assertEqual(second["extensions"]["account_data"]["rooms"][rid], [{"type": "org.example.room", "content": {"r": 2}}])
        self.assertEqual(second["extensions"]["account_data"]["global"], [])
        self.assertEqual(second["extensions"]["typing"]["rooms"], {})
        eid2 = await alice.send_message(rid, "again")
        await bob.post(f"/rooms/{quote(rid)}/receipt/m.read/{quote(eid2)}", {})
        third = await ss(alice, body, second["pos"])
        self.assertEqual(list(third["extensions"]["receipts"]["rooms"][rid]["content"]), [eid2])
        # Private receipts go to their owner only.
        await bob.post(f"/rooms/{quote(rid)}/receipt/m.read.private/{quote(eid2)}", {})
        fourth = await ss(alice, body, third["pos"], timeout=500)
        self.assertEqual(fourth["extensions"]["receipts"]["rooms"], {})
        bob_view = await ss(bob, body)
        self.assertIn("m.read.private", bob_view["extensions"]["receipts"]["rooms"][rid]["content"][eid2])

    async def test_to_device_and_e2ee_extensions(self) -> None:
        _server, alice, bob = await self._server()
        rid = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        exts = {"to_device": {"enabled": True}, "e2ee": {"enabled": True}}
        # An encryption-only connection (as Element X runs one): no lists at all.
        body = {"conn_id": "encryption", "extensions": exts}
        first = await ss(alice, body)
        self.assertEqual(first["extensions"]["e2ee"], {"device_one_time_keys_count": {"signed_curve25519": 0},
                                                      "device_unused_fallback_key_types": []})
        await alice.post("/keys/upload", {
            "one_time_keys": {f"signed_curve25519:K{i}": {"key": f"k{i}", "signatures": SIGS} for i in range(3)},
            "fallback_keys": {"signed_curve25519:FB": {"key": "fb", "fallback": True, "signatures": SIGS}},
        })
        # A to-device message wakes the request; the message stays until acknowledged.
        waiting = defer.ensureDeferred(ss(alice, {**body, "extensions": {**exts, "to_device": {
            "enabled": True, "since": first["extensions"]["to_device"]["next_batch"]}}}, first["pos"], timeout=20000))
        await sleep(0.2)
        await bob.put("/sendToDevice/m.test/t1", {"messages": {alice.user_id: {alice.device_id: {"n": 1}}}})
        got = await waiting
        td = got["extensions"]["to_device"]
        self.assertEqual([(m["type"], m["content"], m["sender"]) for m in td["events"]], [("m.test", {"n": 1}, bob.user_id)])
        e2ee = got["extensions"]["e2ee"]
        self.assertEqual(e2ee["device_one_time_keys_count"], {"signed_curve25519": 3})
        self.assertEqual(e2ee["device_unused_fallback_key_types"], ["signed_curve25519"])
        self.assertEqual(e2ee["device_lists"], {"changed": [], "left": []})
        # Not acknowledged (since unchanged): delivered again.
        again = await ss(alice, {**body, "extensions": {**exts, "to_device": {
            "enabled": True, "since": first["extensions"]["to_device"]["next_batch"]}}}, got["pos"])
        self.assertEqual(len(again["extensions"]["to_device"]["events"]), 1)
        # Acknowledged: gone.
        acked = await ss(alice, {**body, "extensions": {**exts, "to_device": {"enabled": True, "since": td["next_batch"]}}}, got["pos"])
        self.assertEqual(acked["extensions"]["to_device"]["events"], [])
        # Bob joins alice's room and uploads device keys: alice's device list changes.
        await bob.post(f"/join/{quote(rid)}")
        await bob.post("/keys/upload", {"device_keys": device_keys(bob, Ed25519(bob.device_id))})
        changed = await ss(alice, {**body, "extensions": {**exts, "to_device": {"enabled": True, "since": td["next_batch"]}}}, acked["pos"])
        self.assertIn(bob.user_id, changed["extensions"]["e2ee"]["device_lists"]["changed"])
        # Bob leaves: he is in no room with alice any more.
        await bob.post(f"/rooms/{quote(rid)}/leave")
        left = await ss(alice, {**body, "extensions": {**exts, "to_device": {"enabled": True, "since": td["next_batch"]}}}, changed["pos"])
        self.assertEqual(left["extensions"]["e2ee"]["device_lists"]["left"], [bob.user_id])


    async def test_element_x_like_session(self) -> None:
        """The requests Element X makes: a room list connection whose range grows (no
        long-poll until it is complete), a subscription with a longer timeline for the
        room on screen, then long-polling."""
        _server, alice, bob = await self._server()
        rooms = []
        for i in range(25):
            rooms.append((await alice.post("/createRoom", {"name": f"room {i}", "invite": [bob.user_id] if i % 5 == 0 else []}))["room_id"])
            if i % 5 == 0:
                await bob.post(f"/join/{quote(rooms[-1])}")
            await alice.send_message(rooms[-1], f"message {i}")

        def room_list(ranges: list[list[int]], subscriptions: dict[str, Any] | None = None) -> dict[str, Any]:
            return {
                "conn_id": "room-list",
                "lists": {"all_rooms": {"ranges": ranges, "timeline_limit": 1, "required_state": ELEMENT_X_STATE, "filters": {}}},
                "room_subscriptions": subscriptions or {},
                "extensions": ELEMENT_X_EXTENSIONS,
            }

        first = await ss(bob, room_list([[0, 19]]))
        self.assertEqual(first["lists"]["all_rooms"]["count"], 5)
        first = await ss(alice, room_list([[0, 19]]))
        self.assertEqual(first["lists"]["all_rooms"]["count"], 25)
        self.assertEqual(len(first["rooms"]), 20)
        self.assertTrue(all(r["initial"] and r["bump_stamp"] > 0 for r in first["rooms"].values()))
        newest = first["rooms"][rooms[-1]]
        self.assertEqual(newest["name"], "room 24")
        self.assertEqual(bodies(newest), ["message 24"])
        self.assertIn(("m.room.create", ""), state_keys(newest))
        # The range grows: only the five rooms not sent yet come.
        grown = await ss(alice, room_list([[0, 24]]), first["pos"])
        self.assertEqual(set(grown["rooms"]), set(rooms[:5]))
        # The room on screen: subscribed with a 20-event timeline, sent again expanded.
        on_screen = {rooms[0]: {"timeline_limit": 20, "required_state": ELEMENT_X_STATE + [["m.room.pinned_events", ""]]}}
        opened = await ss(alice, room_list([[0, 24]], on_screen), grown["pos"])
        room = opened["rooms"][rooms[0]]
        self.assertTrue(room["unstable_expanded_timeline"])
        self.assertEqual(room["timeline"][0]["type"], "m.room.create")
        # Complete: long-polling. Bob's message moves his room to the top.
        waiting = defer.ensureDeferred(ss(alice, room_list([[0, 24]], on_screen), opened["pos"], timeout=30000))
        await sleep(0.2)
        self.assertFalse(waiting.called)
        await bob.send_message(rooms[5], "hello alice")
        update = await waiting
        self.assertEqual(list_ids(update, "all_rooms")[0], rooms[5])
        self.assertEqual(set(update["rooms"]), {rooms[5]})
        room = update["rooms"][rooms[5]]
        self.assertEqual((bodies(room), room["num_live"]), (["hello alice"], 1))
        self.assertGreater(room["bump_stamp"], newest["bump_stamp"])
        self.assertEqual(state_keys(room), {("m.room.member", bob.user_id)})  # lazy: bob, once


class SlidingSyncTest(SlidingSyncMixin, unittest.TestCase):
    pass


class SlidingSyncTestPostgres(SlidingSyncMixin, unittest.TestCase):
    database = "postgresql"
