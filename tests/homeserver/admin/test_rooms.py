"""The admin API for rooms over HTTP, on SQLite and PostgreSQL: the listing with each
room's statistics, search, order and paging; details, members, state and messages;
blocking (a blocked room takes no joins or invites); deletion, at once (v1) and in the
background (v2), with and without purge and a room for the evicted users."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial import unittest

from tests.homeserver.admin.support import V1, V2, admin_server, q
from tests.support.wspr import MatrixClient

ROOM_FIELDS = {
    "room_id", "name", "canonical_alias", "joined_members", "joined_local_members", "version", "creator",
    "encryption", "federatable", "public", "join_rules", "guest_access", "history_visibility", "state_events",
    "room_type",
}


async def wait_for_task(root: MatrixClient, delete_id: str) -> dict[str, Any]:
    for _ in range(200):
        status = await root.request("GET", f"{V2}/rooms/delete_status/{q(delete_id)}")
        if status["status"] in ("complete", "failed"):
            return status
        await deferLater(reactor, 0.05, lambda: None)
    raise AssertionError("the deletion did not finish")


class AdminRoomsTest(unittest.TestCase):
    timeout = 180
    database = "sqlite"

    async def _rooms(self) -> tuple[Any, MatrixClient, MatrixClient, MatrixClient, dict[str, str]]:
        server, root = await admin_server(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        rooms = {
            "public": (await alice.post("/createRoom", {"preset": "public_chat", "name": "Apple pie", "room_alias_name": "pies",
                                                          "visibility": "public"}))["room_id"],
            "private": (await alice.post("/createRoom", {"name": "banana split", "topic": "desserts",
                                                           "initial_state": [{"type": "m.room.encryption", "state_key": "",
                                                                              "content": {"algorithm": "m.megolm.v1.aes-sha2"}}]}))["room_id"],
            "space": (await bob.post("/createRoom", {"creation_content": {"type": "m.space", "m.federate": False}}))["room_id"],
        }
        await bob.post(f"/rooms/{q(rooms['public'])}/join")
        return server, root, alice, bob, rooms

    async def test_list_search_order_paging(self) -> None:
        server, root, alice, bob, rooms = await self._rooms()
        answer = await root.request("GET", f"{V1}/rooms")
        self.assertEqual((answer["total_rooms"], answer["offset"]), (3, 0))
        self.assertNotIn("next_batch", answer)
        by_id = {r["room_id"]: r for r in answer["rooms"]}
        self.assertEqual(set(by_id), set(rooms.values()))
        for r in answer["rooms"]:
            self.assertEqual(set(r), ROOM_FIELDS)
        public = by_id[rooms["public"]]
        self.assertEqual(
            (public["name"], public["canonical_alias"], public["joined_members"], public["joined_local_members"],
             public["public"], public["join_rules"], public["history_visibility"], public["creator"], public["encryption"]),
            ("Apple pie", "#pies:localhost", 2, 2, True, "public", "shared", alice.user_id, None),
        )
        private = by_id[rooms["private"]]
        self.assertEqual((private["encryption"], private["public"], private["join_rules"]), ("m.megolm.v1.aes-sha2", False, "invite"))
        space = by_id[rooms["space"]]
        self.assertEqual((space["room_type"], space["federatable"], space["name"]), ("m.space", False, None))
        self.assertIsInstance(public["state_events"], int)
        self.assertIsInstance(public["version"], str)
        # by name: rooms without a name first (SQLite's NULL order, as Synapse's tests see it)
        names = [r["name"] for r in answer["rooms"]]
        self.assertEqual(names, [None, "Apple pie", "banana split"])
        ordered = await root.request("GET", f"{V1}/rooms?order_by=joined_members")
        self.assertEqual(ordered["rooms"][0]["room_id"], rooms["public"])
        reverse = await root.request("GET", f"{V1}/rooms?order_by=joined_members&dir=b")
        self.assertEqual(reverse["rooms"][-1]["room_id"], rooms["public"])
        page = await root.request("GET", f"{V1}/rooms?limit=1&from=1")
        self.assertEqual((len(page["rooms"]), page["next_batch"], page["prev_batch"], page["offset"]), (1, 2, 0, 1))
        found = lambda a: [r["room_id"] for r in a["rooms"]]  # noqa: E731
        self.assertEqual(found(await root.request("GET", f"{V1}/rooms?search_term=BANANA")), [rooms["private"]])
        self.assertEqual(found(await root.request("GET", f"{V1}/rooms?search_term=pie")), [rooms["public"]])
        self.assertEqual(found(await root.request("GET", f"{V1}/rooms?search_term={q(rooms['space'])}")), [rooms["space"]])
        self.assertEqual(found(await root.request("GET", f"{V1}/rooms?public_rooms=true")), [rooms["public"]])
        self.assertEqual(len(found(await root.request("GET", f"{V1}/rooms?empty_rooms=false"))), 3)
        for bad in ("search_term=", "order_by=colour", "dir=up", "from=-1"):
            code, body = await root.raw("GET", f"{V1}/rooms?{bad}")
            self.assertEqual((code, body["errcode"]), (400, "M_INVALID_PARAM"), bad)

    async def test_details_members_state_messages(self) -> None:
        server, root, alice, bob, rooms = await self._rooms()
        rid = rooms["private"]
        details = await root.request("GET", f"{V1}/rooms/{q(rid)}")
        self.assertEqual(
            set(details),
            ROOM_FIELDS | {"avatar", "topic", "joined_local_devices", "forgotten", "tombstoned", "replacement_room"},
        )
        self.assertEqual(
            (details["topic"], details["joined_local_devices"], details["forgotten"], details["tombstoned"]),
            ("desserts", 1, False, False),
        )
        code, body = await root.raw("GET", f"{V1}/rooms/{q('!nope:localhost')}")
        self.assertEqual((code, body["errcode"]), (404, "M_NOT_FOUND"))
        members = await root.request("GET", f"{V1}/rooms/{q(rooms['public'])}/members")
        self.assertEqual(members, {"members": sorted([alice.user_id, bob.user_id]), "total": 2})
        state = (await root.request("GET", f"{V1}/rooms/{q(rid)}/state"))["state"]
        self.assertIn("m.room.create", {e["type"] for e in state})
        self.assertTrue(all("event_id" in e and e["room_id"] == rid for e in state))
        only = (await root.request("GET", f"{V1}/rooms/{q(rid)}/state?type=m.room.topic"))["state"]
        self.assertEqual([e["content"]["topic"] for e in only], ["desserts"])
        for path in ("members", "state", "messages"):
            code, body = await root.raw("GET", f"{V1}/rooms/{q('!nope:localhost')}/{path}")
            self.assertEqual((code, body["errcode"]), (404, "M_NOT_FOUND"), path)
        # messages: the admin is in none of these rooms and sees them all the same
        await alice.send_message(rid, "first")
        await alice.send_message(rid, "second")
        page = await root.request("GET", f"{V1}/rooms/{q(rid)}/messages?limit=1&dir=b")
        self.assertEqual([e["content"]["body"] for e in page["chunk"]], ["second"])
        more = await root.request("GET", f"{V1}/rooms/{q(rid)}/messages?limit=1&dir=b&from={q(page['end'])}")
        self.assertEqual([e["content"]["body"] for e in more["chunk"]], ["first"])
        forward = await root.request("GET", f"{V1}/rooms/{q(rid)}/messages?dir=f&limit=2")
        self.assertEqual([e["type"] for e in forward["chunk"]], ["m.room.create", "m.room.member"])

    async def test_block(self) -> None:
        server, root, alice, bob, rooms = await self._rooms()
        rid = rooms["public"]
        carol = await MatrixClient.register(server.base_url, "carol")
        self.assertEqual(await root.request("GET", f"{V1}/rooms/{q(rid)}/block"), {"block": False})
        self.assertEqual(await root.request("PUT", f"{V1}/rooms/{q(rid)}/block", {"block": True}), {"block": True})
        self.assertEqual(await root.request("GET", f"{V1}/rooms/{q(rid)}/block"), {"block": True, "user_id": root.user_id})
        code, body = await carol.raw("POST", f"/_matrix/client/v3/join/{q(rid)}", {})
        self.assertEqual((code, body["error"]), (403, "This room has been blocked on this server"))
        code, body = await carol.raw("POST", f"/_matrix/client/v3/join/{q('#pies:localhost')}", {})
        self.assertEqual(code, 403)
        code, body = await alice.raw("POST", f"/_matrix/client/v3/rooms/{q(rid)}/invite", {"user_id": carol.user_id})
        self.assertEqual(code, 403)
        # members may still leave
        self.assertEqual((await bob.raw("POST", f"/_matrix/client/v3/rooms/{q(rid)}/leave", {}))[0], 200)
        self.assertEqual(await root.request("PUT", f"{V1}/rooms/{q(rid)}/block", {"block": False}), {"block": False})
        self.assertEqual((await carol.raw("POST", f"/_matrix/client/v3/join/{q(rid)}", {}))[0], 200)
        # an unknown room can be blocked ahead
        unknown = "!future:elsewhere.example"
        await root.request("PUT", f"{V1}/rooms/{q(unknown)}/block", {"block": True})
        self.assertTrue((await root.request("GET", f"{V1}/rooms/{q(unknown)}/block"))["block"])
        for body, errcode in (({}, "M_MISSING_PARAM"), ({"block": "yes"}, "M_BAD_JSON")):
            code, answer = await root.raw("PUT", f"{V1}/rooms/{q(rid)}/block", body)
            self.assertEqual((code, answer["errcode"]), (400, errcode))
        code, answer = await root.raw("GET", f"{V1}/rooms/not-a-room/block")
        self.assertEqual(code, 400)

    async def test_delete_v1_with_purge_and_new_room(self) -> None:
        server, root, alice, bob, rooms = await self._rooms()
        rid = rooms["public"]
        await alice.send_message(rid, "something bad")
        answer = await root.request(
            "DELETE", f"{V1}/rooms/{q(rid)}",
            {"new_room_user_id": root.user_id, "room_name": "Moved", "message": "This room was closed", "block": True},
        )
        self.assertEqual(sorted(answer["kicked_users"]), sorted([alice.user_id, bob.user_id]))
        self.assertEqual((answer["failed_to_kick_users"], answer["local_aliases"]), ([], ["#pies:localhost"]))
        new_room = answer["new_room_id"]
        # the users are in the new room, where the admin told them why; the alias moved
        for user in (alice, bob):
            joined = (await user.get("/joined_rooms"))["joined_rooms"]
            self.assertIn(new_room, joined)
            self.assertNotIn(rid, joined)
        self.assertEqual((await alice.get(f"/directory/room/{q('#pies:localhost')}"))["room_id"], new_room)
        messages = await alice.get(f"/rooms/{q(new_room)}/messages?dir=b&limit=5")
        self.assertIn("This room was closed", [e["content"].get("body") for e in messages["chunk"]])
        code, body = await alice.raw("PUT", f"/_matrix/client/v3/rooms/{q(new_room)}/send/m.room.message/t1", {"msgtype": "m.text", "body": "hi"})
        self.assertEqual(code, 403)
        # purged: gone from the admin API and the database; blocked
        code, _ = await root.raw("GET", f"{V1}/rooms/{q(rid)}")
        self.assertEqual(code, 404)
        self.assertNotIn(rid, [r["room_id"] for r in (await root.request("GET", f"{V1}/rooms"))["rooms"]])
        self.assertIsNone(await server.hs.store.get_room_version(rid))
        self.assertEqual(await server.hs.store.get_room_events(rid, limit=10), [])
        self.assertEqual((await root.request("GET", f"{V1}/rooms/{q(rid)}/block"))["block"], True)
        code, _ = await bob.raw("POST", f"/_matrix/client/v3/join/{q(rid)}", {})
        self.assertEqual(code, 403)
        # the users' /sync no longer lists it
        sync = await alice.sync()
        self.assertNotIn(rid, sync["rooms"].get("join", {}))

    async def test_delete_without_purge_and_errors(self) -> None:
        server, root, alice, bob, rooms = await self._rooms()
        rid = rooms["private"]
        answer = await root.request("DELETE", f"{V1}/rooms/{q(rid)}", {"purge": False})
        self.assertEqual((answer["kicked_users"], answer["new_room_id"], answer["local_aliases"]), ([alice.user_id], None, []))
        # not purged: still listed, nobody in it, forgotten by its former members
        details = await root.request("GET", f"{V1}/rooms/{q(rid)}")
        self.assertEqual((details["joined_members"], details["forgotten"]), (0, True))
        for body, errcode in (({"block": "x"}, "M_BAD_JSON"), ({"purge": 1}, "M_BAD_JSON")):
            code, answer = await root.raw("DELETE", f"{V1}/rooms/{q(rid)}", body)
            self.assertEqual((code, answer["errcode"]), (400, errcode))
        code, answer = await root.raw("DELETE", f"{V1}/rooms/{q(rid)}")
        self.assertEqual((code, answer["errcode"]), (400, "M_NOT_JSON"))
        code, answer = await root.raw("DELETE", f"{V1}/rooms/{q(rid)}", {"new_room_user_id": "@x:elsewhere.example"})
        self.assertEqual(code, 400)
        code, answer = await root.raw("DELETE", f"{V1}/rooms/bad", {})
        self.assertEqual(code, 400)

    async def test_delete_v2_in_the_background(self) -> None:
        server, root, alice, bob, rooms = await self._rooms()
        rid = rooms["public"]
        delete_id = (await root.request("DELETE", f"{V2}/rooms/{q(rid)}", {"block": False}))["delete_id"]
        status = await wait_for_task(root, delete_id)
        self.assertEqual(
            (status["delete_id"], status["room_id"], status["status"]), (delete_id, rid, "complete")
        )
        self.assertEqual(sorted(status["shutdown_room"]["kicked_users"]), sorted([alice.user_id, bob.user_id]))
        by_room = await root.request("GET", f"{V2}/rooms/{q(rid)}/delete_status")
        self.assertEqual([r["delete_id"] for r in by_room["results"]], [delete_id])
        self.assertIsNone(await server.hs.store.get_room_version(rid))
        code, body = await root.raw("GET", f"{V2}/rooms/delete_status/nope")
        self.assertEqual((code, body["errcode"]), (404, "M_NOT_FOUND"))
        code, body = await root.raw("GET", f"{V2}/rooms/{q(rooms['space'])}/delete_status")
        self.assertEqual((code, body["errcode"]), (404, "M_NOT_FOUND"))
        code, body = await root.raw("DELETE", f"{V2}/rooms/{q(rid)}", {"new_room_user_id": "@x:elsewhere.example"})
        self.assertEqual(code, 400)


class AdminRoomsTestPostgres(AdminRoomsTest):
    database = "postgresql"
