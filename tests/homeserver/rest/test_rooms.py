"""Rooms over HTTP: createRoom options, membership actions, state, aliases, directory, upgrades."""

from __future__ import annotations

from urllib.parse import quote

from twisted.trial import unittest

from tests.support.wspr import MatrixClient, start_homeserver


class CreateRoomTest(unittest.TestCase):
    async def test_presets_and_options(self) -> None:
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        room = await alice.post(
            "/createRoom",
            {
                "preset": "trusted_private_chat",
                "name": "Plans",
                "topic": "weekend",
                "room_alias_name": "plans",
                "invite": [bob.user_id],
                "is_direct": True,
                "initial_state": [{"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}],
                "power_level_content_override": {"events_default": 10},
            },
        )
        rid = room["room_id"]
        self.assertEqual(room["room_alias"], "#plans:localhost")
        state = {(e["type"], e["state_key"]): e["content"] for e in await alice.get(f"/rooms/{rid}/state")}
        self.assertEqual(state[("m.room.join_rules", "")]["join_rule"], "invite")
        self.assertEqual(state[("m.room.history_visibility", "")]["history_visibility"], "shared")
        self.assertEqual(state[("m.room.name", "")]["name"], "Plans")
        self.assertEqual(state[("m.room.topic", "")]["topic"], "weekend")
        self.assertEqual(state[("m.room.canonical_alias", "")]["alias"], "#plans:localhost")
        self.assertEqual(state[("m.room.encryption", "")]["algorithm"], "m.megolm.v1.aes-sha2")
        pl = state[("m.room.power_levels", "")]
        self.assertEqual(pl["events_default"], 10)
        self.assertEqual(pl["users"][bob.user_id], 100)  # trusted: invitees are admins
        self.assertEqual(state[("m.room.member", bob.user_id)]["membership"], "invite")
        self.assertTrue(state[("m.room.member", bob.user_id)]["is_direct"])
        self.assertEqual(state[("m.room.create", "")]["room_version"], "11")
        resolved = await bob.get("/directory/room/" + quote("#plans:localhost"))
        self.assertEqual(resolved["room_id"], rid)

    async def test_room_versions(self) -> None:
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        caps = await alice.get("/capabilities")
        self.assertEqual(caps["capabilities"]["m.room_versions"]["default"], "11")
        versions = [str(n) for n in range(1, 13)]
        self.assertEqual(caps["capabilities"]["m.room_versions"]["available"], {v: "stable" for v in versions})
        for version in versions:
            rid = (await alice.post("/createRoom", {"room_version": version, "name": f"v{version}"}))["room_id"]
            create = await alice.get(f"/rooms/{quote(rid)}/state/m.room.create/")
            self.assertEqual(create["room_version"], version)
            if int(version) <= 10:
                self.assertEqual(create["creator"], alice.user_id)
            else:
                self.assertNotIn("creator", create)
            await alice.send_message(rid, "hi")
        for unknown in ("13", "0", "9.1"):
            code, body = await alice.raw("POST", "/_matrix/client/v3/createRoom", {"room_version": unknown})
            self.assertEqual((code, body["errcode"]), (400, "M_UNSUPPORTED_ROOM_VERSION"))

    async def test_default_room_version_is_configurable(self) -> None:
        server = await start_homeserver(self, default_room_version="9")
        alice = await MatrixClient.register(server.base_url, "alice")
        caps = await alice.get("/capabilities")
        self.assertEqual(caps["capabilities"]["m.room_versions"]["default"], "9")
        rid = (await alice.post("/createRoom", {}))["room_id"]
        self.assertEqual((await alice.get(f"/rooms/{quote(rid)}/state/m.room.create/"))["room_version"], "9")

    async def test_v12_creator_has_infinite_power(self) -> None:
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        rid = (await alice.post("/createRoom", {"room_version": "12", "preset": "public_chat"}))["room_id"]
        self.assertNotIn(":", rid)
        pl = await alice.get(f"/rooms/{rid}/state/m.room.power_levels/")
        self.assertNotIn(alice.user_id, pl["users"])
        await bob.post(f"/join/{rid}")
        await alice.put(f"/rooms/{rid}/state/m.room.power_levels/", {**pl, "users": {bob.user_id: 50}})
        await alice.post(f"/rooms/{rid}/kick", {"user_id": bob.user_id})
        member = await alice.get(f"/rooms/{rid}/state/m.room.member/{bob.user_id}")
        self.assertEqual(member["membership"], "leave")


class MembershipTest(unittest.TestCase):
    async def test_invite_join_leave_forget_kick_ban(self) -> None:
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        carol = await MatrixClient.register(server.base_url, "carol")
        rid = (await alice.post("/createRoom", {}))["room_id"]
        code, body = await bob.raw("POST", f"/_matrix/client/v3/rooms/{rid}/join", {})
        self.assertEqual((code, body["errcode"]), (403, "M_FORBIDDEN"))
        await alice.post(f"/rooms/{rid}/invite", {"user_id": bob.user_id})
        await bob.post(f"/rooms/{rid}/join")
        self.assertIn(rid, (await bob.get("/joined_rooms"))["joined_rooms"])
        members = await bob.get(f"/rooms/{rid}/joined_members")
        self.assertEqual(set(members["joined"]), {alice.user_id, bob.user_id})
        code, _ = await bob.raw("POST", f"/_matrix/client/v3/rooms/{rid}/forget", {})
        self.assertEqual(code, 400)
        await bob.post(f"/rooms/{rid}/leave")
        self.assertNotIn(rid, (await bob.get("/joined_rooms"))["joined_rooms"])
        await bob.post(f"/rooms/{rid}/forget")
        await alice.post(f"/rooms/{rid}/invite", {"user_id": bob.user_id})
        await bob.post(f"/join/{rid}")
        await alice.post(f"/rooms/{rid}/invite", {"user_id": carol.user_id})
        await carol.post(f"/join/{rid}")
        code, body = await bob.raw("POST", f"/_matrix/client/v3/rooms/{rid}/kick", {"user_id": carol.user_id})
        self.assertEqual((code, body["errcode"]), (403, "M_FORBIDDEN"))
        await alice.post(f"/rooms/{rid}/kick", {"user_id": carol.user_id, "reason": "spam"})
        member = await alice.get(f"/rooms/{rid}/state/m.room.member/{carol.user_id}")
        self.assertEqual((member["membership"], member["reason"]), ("leave", "spam"))
        await alice.post(f"/rooms/{rid}/ban", {"user_id": carol.user_id})
        code, body = await alice.raw("POST", f"/_matrix/client/v3/rooms/{rid}/invite", {"user_id": carol.user_id})
        self.assertEqual(code, 403)
        await alice.post(f"/rooms/{rid}/unban", {"user_id": carol.user_id})
        member = await alice.get(f"/rooms/{rid}/state/m.room.member/{carol.user_id}")
        self.assertEqual(member["membership"], "leave")

    async def test_knock(self) -> None:
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        rid = (await alice.post("/createRoom", {"initial_state": [{"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}]}))["room_id"]
        await bob.post(f"/knock/{rid}", {"reason": "let me in"})
        sync = await bob.sync()
        self.assertIn(rid, sync["rooms"]["knock"])
        member = await alice.get(f"/rooms/{rid}/state/m.room.member/{bob.user_id}")
        self.assertEqual(member["membership"], "knock")
        await alice.post(f"/rooms/{rid}/invite", {"user_id": bob.user_id})
        await bob.post(f"/join/{rid}")

    async def test_join_by_alias_and_public_directory(self) -> None:
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        rid = (await alice.post("/createRoom", {"visibility": "public", "preset": "public_chat", "name": "Town square", "room_alias_name": "town"}))["room_id"]
        await alice.post("/createRoom", {"name": "Secret"})
        public = await bob.get("/publicRooms")
        self.assertEqual([r["room_id"] for r in public["chunk"]], [rid])
        self.assertEqual(public["chunk"][0]["name"], "Town square")
        self.assertEqual(public["chunk"][0]["canonical_alias"], "#town:localhost")
        searched = await bob.post("/publicRooms", {"filter": {"generic_search_term": "town"}})
        self.assertEqual(len(searched["chunk"]), 1)
        searched = await bob.post("/publicRooms", {"filter": {"generic_search_term": "zzz"}})
        self.assertEqual(searched["chunk"], [])
        joined = await bob.post("/join/" + quote("#town:localhost"))
        self.assertEqual(joined["room_id"], rid)
        await bob.put("/directory/room/" + quote("#square:localhost"), {"room_id": rid})
        self.assertEqual((await alice.get("/directory/room/" + quote("#square:localhost")))["room_id"], rid)
        aliases = await alice.get(f"/rooms/{rid}/aliases")
        self.assertEqual(set(aliases["aliases"]), {"#town:localhost", "#square:localhost"})
        code, body = await bob.raw("PUT", "/_matrix/client/v3/directory/room/" + quote("#square:localhost"), {"room_id": rid})
        self.assertEqual(code, 409)
        await bob.request("DELETE", "/_matrix/client/v3/directory/room/" + quote("#square:localhost"))
        code, body = await alice.raw("GET", "/_matrix/client/v3/directory/room/" + quote("#square:localhost"))
        self.assertEqual((code, body["errcode"]), (404, "M_NOT_FOUND"))
        vis = await alice.get(f"/directory/list/room/{rid}")
        self.assertEqual(vis["visibility"], "public")
        await alice.put(f"/directory/list/room/{rid}", {"visibility": "private"})
        self.assertEqual((await bob.get("/publicRooms"))["chunk"], [])


class StateTest(unittest.TestCase):
    async def test_state_power_levels_and_members(self) -> None:
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        rid = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        await bob.post(f"/join/{rid}")
        await alice.put(f"/rooms/{rid}/state/m.room.topic/", {"topic": "news"})
        self.assertEqual((await bob.get(f"/rooms/{rid}/state/m.room.topic"))["topic"], "news")
        code, body = await bob.raw("PUT", f"/_matrix/client/v3/rooms/{rid}/state/m.room.name/", {"name": "mine"})
        self.assertEqual((code, body["errcode"]), (403, "M_FORBIDDEN"))
        code, body = await bob.raw("GET", f"/_matrix/client/v3/rooms/{rid}/state/m.room.name/")
        self.assertEqual((code, body["errcode"]), (404, "M_NOT_FOUND"))
        await alice.put(f"/rooms/{rid}/state/org.example.thing/key1", {"v": 1})
        self.assertEqual(await bob.get(f"/rooms/{rid}/state/org.example.thing/key1"), {"v": 1})
        members = await bob.get(f"/rooms/{rid}/members")
        self.assertEqual({m["state_key"] for m in members["chunk"]}, {alice.user_id, bob.user_id})
        joined_only = await bob.get(f"/rooms/{rid}/members?membership=join")
        self.assertEqual(len(joined_only["chunk"]), 2)
        eve = await MatrixClient.register(server.base_url, "eve")
        code, body = await eve.raw("GET", f"/_matrix/client/v3/rooms/{rid}/state")
        self.assertEqual((code, body["errcode"]), (403, "M_FORBIDDEN"))
        await bob.post(f"/rooms/{rid}/leave")
        await alice.put(f"/rooms/{rid}/state/m.room.topic/", {"topic": "after bob left"})
        self.assertEqual((await bob.get(f"/rooms/{rid}/state/m.room.topic"))["topic"], "news")

    async def test_upgrade(self) -> None:
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        rid = (await alice.post("/createRoom", {"preset": "public_chat", "name": "Old", "room_alias_name": "hall", "room_version": "10"}))["room_id"]
        await bob.post(f"/join/{rid}")
        code, body = await bob.raw("POST", f"/_matrix/client/v3/rooms/{rid}/upgrade", {"new_version": "11"})
        self.assertEqual(code, 403)
        new = (await alice.post(f"/rooms/{rid}/upgrade", {"new_version": "11"}))["replacement_room"]
        tomb = await bob.get(f"/rooms/{rid}/state/m.room.tombstone/")
        self.assertEqual(tomb["replacement_room"], new)
        create = await alice.get(f"/rooms/{new}/state/m.room.create/")
        self.assertEqual(create["predecessor"]["room_id"], rid)
        self.assertEqual(create["room_version"], "11")
        self.assertEqual((await alice.get(f"/rooms/{new}/state/m.room.name/"))["name"], "Old")
        self.assertEqual((await bob.get("/directory/room/" + quote("#hall:localhost")))["room_id"], new)
        await bob.post(f"/join/{new}")


# The same behaviour on PostgreSQL, the production store.


class MembershipTestPostgres(MembershipTest):
    database = "postgresql"


class StateTestPostgres(StateTest):
    database = "postgresql"
