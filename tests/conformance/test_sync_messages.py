"""/sync, filters, /messages, /context, /members, /relations and /devices answered as
Synapse 1.163 answers them: the same requests to WSPR and to a real Synapse, status,
errcode and JSON shape of every step compared (tests/support/differential.py)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from twisted.trial import unittest

from tests.support.differential import Side, server_pair

V1 = "/_matrix/client/v1"
V3 = "/_matrix/client/v3"

# WSPR always sends every section of a /sync response; Synapse leaves out the empty ones
# (the spec makes them optional, clients accept both).
SYNC_SECTIONS = ("presence", "to_device", "device_lists", "account_data", "rooms.invite", "rooms.knock", "rooms.leave")
# Differences in what /createRoom writes, not in how it is served: Synapse's power levels
# carry "historical" (MSC2716) and no "notifications"; user ids differ by server.
CREATE_ROOM = ("*.content.historical", "*.content.notifications", "*.content.users.*")
# prev_content/replaces_state: WSPR serves them on state events as Synapse does, but the
# events compared differ in which of them replaced something.
REPLACED = ("*.unsigned.replaces_state", "*.unsigned.prev_content", "*.unsigned.prev_sender")


def sync_path(since: str | None = None, flt: Any = None, full_state: bool = False, timeout: int = 0) -> str:
    q = [f"timeout={timeout}"]
    if since:
        q.append(f"since={quote(since)}")
    if flt is not None:
        q.append("filter=" + quote(flt if isinstance(flt, str) else json.dumps(flt)))
    if full_state:
        q.append("full_state=true")
    return f"{V3}/sync?" + "&".join(q)


class SyncMessagesConformanceTest(unittest.TestCase):
    timeout = 300

    async def test_filters_answer_like_synapse(self) -> None:
        pair = await server_pair(self)
        for side in pair:
            alice = await side.register("alice")
            path = f"{V3}/user/{quote(alice.user_id)}/filter"
            code, body = await side.call(alice, "create", "POST", path, {"room": {"timeline": {"limit": 1000}}})
            await side.call(alice, "read back, limit capped", "GET", f"{path}/{body['filter_id']}")
            bad = [
                ("senders not user ids", {"room": {"timeline": {"senders": ["notauser"]}}}),
                ("rooms not room ids", {"room": {"rooms": ["notaroom"]}}),
                ("unknown event_format", {"event_format": "xml"}),
                ("event_fields not a list", {"event_fields": "content"}),
                ("include_leave not a boolean", {"room": {"include_leave": "yes"}}),
                ("lazy_load_members not a boolean", {"room": {"state": {"lazy_load_members": 1}}}),
                ("types not strings", {"room": {"timeline": {"types": [1]}}}),
            ]
            for name, flt in bad:
                await side.call(alice, f"create: {name}", "POST", path, flt)
                await side.call(alice, f"inline: {name}", "GET", sync_path(flt=flt))
            await side.call(alice, "limit as a float", "POST", path, {"room": {"timeline": {"limit": 1.5}}})
            await side.call(alice, "unknown keys are allowed", "POST", path, {"org.example": 1, "room": {"x": []}})
            await side.call(alice, "not an object", "POST", path, [])
            await side.call(alice, "read, not a number", "GET", f"{path}/abc")
            await side.call(alice, "read, unknown", "GET", f"{path}/987654")
            await side.call(alice, "sync, bad inline JSON", "GET", sync_path(flt="{bad"))
            await side.call(alice, "sync, unknown filter id", "GET", sync_path(flt="987654"))
            await side.call(alice, "sync, filter id not a number", "GET", sync_path(flt="abc"))
            await side.call(alice, "sync, unreadable since", "GET", sync_path(since="garbage"))
            await side.call(alice, "sync, from instead of since", "GET", f"{V3}/sync?from=x")
        pair.assert_same()
        for w, s in zip(pair.wspr.steps, pair.synapse.steps, strict=True):
            if w.code == 200 and w.name.startswith("read back"):
                self.assertEqual(w.body, s.body)

    async def test_sync_shapes_like_synapse(self) -> None:
        pair = await server_pair(self)
        for side in pair:
            await self._sync_steps(side)
        pair.assert_same(*SYNC_SECTIONS, *(f"{s}.*" for s in SYNC_SECTIONS), "*.signatures.*", *CREATE_ROOM, *REPLACED)
        for w, s in zip(pair.wspr.steps, pair.synapse.steps, strict=True):
            if w.name.startswith("check:"):
                self.assertEqual(w.body, s.body, w.name)

    async def _sync_steps(self, side: Side) -> None:
        alice = await side.register("alice")
        bob = await side.register("bob")
        # Room version 11 on both sides (Synapse's default is 12, WSPR's 11); a private room
        # (Synapse's public_chat preset has no m.room.guest_access event, WSPR's has).
        room = {"preset": "private_chat", "name": "Shapes", "room_version": "11", "invite": [bob.user_id]}
        rid = (await alice.post("/createRoom", room))["room_id"]
        pre = await alice.send_message(rid, "before bob")
        token = (await bob.sync())["next_batch"]
        await bob.post(f"/join/{quote(rid)}")
        post = await alice.send_message(rid, "after bob")

        def room_of(body: dict) -> dict:
            return body["rooms"]["join"][rid]

        flt = {"room": {"timeline": {"limit": 2}, "state": {"types": ["m.room.name"]}}, "presence": {"types": []}}
        code, body = await bob.raw("GET", sync_path(since=token, flt=flt))
        room = room_of(body)
        side.record("newly joined room", code, room)
        side.record("check: newly joined, limited", 200, room["timeline"]["limited"])
        side.record(
            "check: unsigned.membership on the timeline",
            200,
            [(e["event_id"] in (pre, post), e["unsigned"].get("membership")) for e in room["timeline"]["events"]],
        )
        code, body = await bob.raw("GET", sync_path(flt={"room": {"timeline": {"limit": 1}}, "event_fields": ["type", "content.body"]}))
        side.record("check: event_fields", code, room_of(body)["timeline"]["events"])
        code, body = await bob.raw("GET", sync_path(flt={"room": {"timeline": {"limit": 1}}, "event_format": "federation"}))
        side.record("event_format federation", code, room_of(body)["timeline"]["events"])
        lazy = {"room": {"timeline": {"limit": 1}, "state": {"lazy_load_members": True}}}
        code, body = await bob.raw("GET", sync_path(flt=lazy))
        lazy_room = dict(room_of(body))
        lazy_room["state"] = sorted(lazy_room["state"]["events"], key=lambda e: (e["type"], e["state_key"]))
        side.record("lazy loading", code, lazy_room)
        side.record("check: lazy members", 200, sorted(
            [e["state_key"] == alice.user_id, e["state_key"] == bob.user_id]
            for e in room_of(body)["state"]["events"] if e["type"] == "m.room.member"
        ))
        side.record("check: lazy summary", 200, room_of(body)["summary"])
        since = body["next_batch"]
        await bob.put(f"/profile/{quote(bob.user_id)}/displayname", {"displayname": "Robert"})
        # Synapse updates the member events of a profile change in the background.
        code, body = await bob.raw("GET", sync_path(since=since, flt={"presence": {"types": []}}, timeout=10_000))
        side.record("display name change", code, room_of(body))
        side.record("check: display name change has no state", 200, room_of(body)["state"]["events"])

    async def test_messages_and_context_like_synapse(self) -> None:
        pair = await server_pair(self)
        for side in pair:
            alice = await side.register("alice")
            rid = (await alice.post("/createRoom", {"preset": "private_chat", "room_version": "11"}))["room_id"]
            ids = [await alice.send_message(rid, f"m{i}") for i in range(5)]
            base = f"{V3}/rooms/{quote(rid)}/messages"
            code, page1 = await side.call(alice, "backwards", "GET", f"{base}?dir=b&limit=2")
            code, page2 = await side.call(alice, "backwards on", "GET", f"{base}?dir=b&limit=2&from={quote(page1['end'])}")
            code, fwd = await side.call(alice, "forwards from a backward end", "GET", f"{base}?dir=f&limit=3&from={quote(page2['end'])}")
            side.record("check: switching direction", 200, [ids.index(e["event_id"]) for e in fwd["chunk"]])
            token = (await alice.sync())["next_batch"]
            code, done = await side.call(alice, "forwards past the end", "GET", f"{base}?dir=f&limit=3&from={quote(token)}")
            side.record("check: no end past the end", 200, "end" in done)
            await side.call(alice, "no dir", "GET", f"{base}?limit=1")
            await side.call(alice, "limit 0", "GET", f"{base}?dir=b&limit=0")
            await side.call(alice, "negative limit", "GET", f"{base}?dir=b&limit=-1")
            await side.call(alice, "unreadable from", "GET", f"{base}?dir=b&from=garbage")
            await side.call(alice, "bad filter JSON", "GET", f"{base}?dir=b&filter={quote('{bad')}")
            lazy = quote(json.dumps({"lazy_load_members": True}))
            await side.call(alice, "lazy members", "GET", f"{base}?dir=b&limit=2&filter={lazy}")
            code, context = await alice.raw("GET", f"{V3}/rooms/{quote(rid)}/context/{quote(ids[2])}?limit=2")
            # The state comes in no particular order.
            context["state"] = sorted(context["state"], key=lambda e: (e["type"], e["state_key"]))
            side.record("context", code, context)
            await side.call(alice, "event", "GET", f"{V3}/rooms/{quote(rid)}/event/{quote(ids[2])}")
        pair.assert_same(*CREATE_ROOM, *REPLACED)
        for w, s in zip(pair.wspr.steps, pair.synapse.steps, strict=True):
            if w.name.startswith("check:"):
                self.assertEqual(w.body, s.body, w.name)

    async def test_members_at_a_point_like_synapse(self) -> None:
        pair = await server_pair(self)
        for side in pair:
            alice = await side.register("alice")
            bob = await side.register("bob")
            rid = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
            await alice.send_message(rid, "hello")
            body = await alice.sync()
            prev_batch = body["rooms"]["join"][rid]["timeline"]["prev_batch"]
            next_batch = body["next_batch"]
            await bob.post(f"/join/{quote(rid)}")
            await bob.send_message(rid, "hello back")
            for name, at in (("at prev_batch", prev_batch), ("at next_batch", next_batch)):
                code, members = await alice.raw("GET", f"{V3}/rooms/{quote(rid)}/members?at={quote(at)}")
                self.assertEqual(code, 200, (side.label, name, members))
                side.record(f"check: members {name}", code, sorted(e["state_key"] == alice.user_id for e in members["chunk"]))
            code, members = await alice.raw("GET", f"{V3}/rooms/{quote(rid)}/members")
            side.record("check: members now", code, sorted(e["state_key"] == alice.user_id for e in members["chunk"]))
        pair.assert_same()
        for w, s in zip(pair.wspr.steps, pair.synapse.steps, strict=True):
            self.assertEqual(w.body, s.body, w.name)

    async def test_relations_recurse_like_synapse(self) -> None:
        pair = await server_pair(self)
        for side in pair:
            alice = await side.register("alice")
            rid = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
            root = await alice.send_message(rid, "root")
            parent = root
            for i in range(7):
                rel = {"rel_type": "org.example.rel", "event_id": parent}
                parent = await alice.send_message(rid, f"level {i + 1}", **{"m.relates_to": rel})
            base = f"{V1}/rooms/{quote(rid)}/relations/{quote(root)}"
            for name, query in (
                ("direct", ""),
                ("recurse", "?recurse=true"),
                ("recurse forwards", "?recurse=true&dir=f"),
                ("recurse, a relation type", "/org.example.rel?recurse=true"),
                ("recurse, unstable name", "?org.matrix.msc3981.recurse=true"),
            ):
                code, body = await side.call(alice, name, "GET", base + query)
                side.record(f"check: {name}", code, ([e["content"]["body"] for e in body["chunk"]], body.get("recursion_depth")))
        pair.assert_same("*.unsigned.m.relations", "*.unsigned.m.relations.*")
        for w, s in zip(pair.wspr.steps, pair.synapse.steps, strict=True):
            if w.name.startswith("check:"):
                self.assertEqual(w.body, s.body, w.name)

    async def test_client_actions_like_synapse(self) -> None:
        pair = await server_pair(self)
        for side in pair:
            alice = await side.register("alice")
            bob = await side.register("bob")
            carol = await side.register("carol")
            rid = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
            other = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
            msg = await alice.send_message(rid, "hi")
            await side.call(alice, "devices", "GET", f"{V3}/devices")
            await side.call(alice, "device", "GET", f"{V3}/devices/{quote(alice.device_id)}")
            await side.call(alice, "redact through another room", "PUT", f"{V3}/rooms/{quote(other)}/redact/{quote(msg)}/r1", {})
            await side.call(alice, "redact an unknown event", "PUT", f"{V3}/rooms/{quote(rid)}/redact/{quote('$nope')}/r2", {})
            typing = {"typing": True, "timeout": 1000}
            await side.call(carol, "typing, not a member", "PUT", f"{V3}/rooms/{quote(rid)}/typing/{quote(carol.user_id)}", typing)
            big = {"msgtype": "m.text", "body": "x" * 65_000}
            await side.call(alice, "event over 64 KiB", "PUT", f"{V3}/rooms/{quote(rid)}/send/m.room.message/big", big)
            join = {"reason": "hello", "displayname": "Bobby", "org.example.field": 1}
            await side.call(bob, "join with content", "POST", f"{V3}/join/{quote(rid)}", join)
            code, member = await side.call(alice, "joined member", "GET", f"{V3}/rooms/{quote(rid)}/state/m.room.member/{quote(bob.user_id)}")
            side.record("check: join content kept", code, member)
            invited = (await alice.post("/createRoom", {"invite": [bob.user_id, carol.user_id]}))["room_id"]
            code, body = await bob.raw("GET", sync_path())
            side.record("check: createRoom invites everyone", code, invited in body["rooms"]["invite"])
            code, body = await carol.raw("GET", sync_path())
            side.record("check: createRoom invites everyone, second", code, invited in body["rooms"]["invite"])
            await side.call(alice, "ignore yourself", "PUT", f"{V3}/user/{quote(alice.user_id)}/account_data/m.ignored_user_list",
                            {"ignored_users": {alice.user_id: {}}})
            await side.call(alice, "ignore list of another shape", "PUT", f"{V3}/user/{quote(alice.user_id)}/account_data/m.ignored_user_list",
                            {"ignored_users": ["x"]})
        pair.assert_same("*.last_seen_ip", "*.last_seen_ts", "devices.*.last_seen_ip", "devices.*.last_seen_ts")
        for w, s in zip(pair.wspr.steps, pair.synapse.steps, strict=True):
            if w.name.startswith("check:"):
                self.assertEqual(w.body, s.body, w.name)
