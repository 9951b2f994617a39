"""Client actions answered as Synapse answers them (issue 11): /join keeps the content
the client sent, /members at a sync point, /redact through another room, typing only
from and to members, /createRoom invites, oversized events, /relations?recurse=true and
the /devices listing. On SQLite and PostgreSQL."""

from __future__ import annotations

from urllib.parse import quote

from twisted.trial import unittest

from tests.support.wspr import MatrixClient, start_homeserver

V1 = "/_matrix/client/v1"
V3 = "/_matrix/client/v3"


class ClientActionsTest(unittest.TestCase):
    async def _pair(self):  # type: ignore[no-untyped-def]
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        rid = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        return server, alice, bob, rid

    async def test_join_keeps_the_content_sent(self) -> None:
        server, alice, bob, rid = await self._pair()
        await bob.post(f"/join/{quote(rid)}", {"reason": "hello", "displayname": "Bobby", "org.example": 1})
        member = await alice.get(f"/rooms/{quote(rid)}/state/m.room.member/{quote(bob.user_id)}")
        self.assertEqual(member, {"membership": "join", "reason": "hello", "displayname": "Bobby", "org.example": 1})
        # /rooms/{roomId}/join keeps the reason only (Synapse's membership endpoint).
        carol = await MatrixClient.register(server.base_url, "carol")
        await carol.post(f"/rooms/{quote(rid)}/join", {"reason": "hi", "org.example": 1})
        member = await alice.get(f"/rooms/{quote(rid)}/state/m.room.member/{quote(carol.user_id)}")
        self.assertEqual(member, {"membership": "join", "reason": "hi", "displayname": "carol"})
        # A client cannot name a restricted join's authoriser itself.
        dave = await MatrixClient.register(server.base_url, "dave")
        await dave.post(f"/join/{quote(rid)}", {"join_authorised_via_users_server": alice.user_id})
        member = await alice.get(f"/rooms/{quote(rid)}/state/m.room.member/{quote(dave.user_id)}")
        self.assertNotIn("join_authorised_via_users_server", member)

    async def test_members_at_a_sync_point(self) -> None:
        server, alice, bob, rid = await self._pair()
        await alice.send_message(rid, "hello")
        result = await alice.sync()
        prev_batch = result["rooms"]["join"][rid]["timeline"]["prev_batch"]
        await bob.post(f"/join/{quote(rid)}")
        await bob.send_message(rid, "hello back")
        for at in (prev_batch, result["next_batch"]):
            members = await alice.get(f"/rooms/{quote(rid)}/members?at={quote(at)}")
            self.assertEqual([e["state_key"] for e in members["chunk"]], [alice.user_id])
        members = await alice.get(f"/rooms/{quote(rid)}/members")
        self.assertEqual({e["state_key"] for e in members["chunk"]}, {alice.user_id, bob.user_id})
        # A limited timeline's prev_batch: the members as of just before its first event.
        flt = quote('{"room":{"timeline":{"limit":1}}}')
        prev_batch = (await alice.get(f"/sync?timeout=0&filter={flt}"))["rooms"]["join"][rid]["timeline"]["prev_batch"]
        members = await alice.get(f"/rooms/{quote(rid)}/members?at={quote(prev_batch)}")
        self.assertEqual({e["state_key"] for e in members["chunk"]}, {alice.user_id, bob.user_id})

    async def test_redacting_through_another_room_is_refused(self) -> None:
        server, alice, bob, rid = await self._pair()
        other = (await alice.post("/createRoom", {}))["room_id"]
        msg = await alice.send_message(rid, "stays")
        code, body = await alice.raw("PUT", f"{V3}/rooms/{quote(other)}/redact/{quote(msg)}/r1", {})
        self.assertEqual((code, body["errcode"]), (400, "M_UNKNOWN"))
        event = await alice.get(f"/rooms/{quote(rid)}/event/{quote(msg)}")
        self.assertEqual(event["content"]["body"], "stays")

    async def test_typing_is_for_members_only(self) -> None:
        server, alice, bob, rid = await self._pair()
        await bob.post(f"/join/{quote(rid)}")
        carol = await MatrixClient.register(server.base_url, "carol")
        code, body = await carol.raw("PUT", f"{V3}/rooms/{quote(rid)}/typing/{quote(carol.user_id)}", {"typing": True, "timeout": 5000})
        self.assertEqual((code, body["errcode"]), (403, "M_FORBIDDEN"))
        await bob.post(f"/rooms/{quote(rid)}/leave")
        bob_token = (await bob.sync())["next_batch"]
        alice_token = (await alice.sync())["next_batch"]
        await alice.put(f"/rooms/{quote(rid)}/typing/{quote(alice.user_id)}", {"typing": True, "timeout": 5000})
        mine = await alice.sync(since=alice_token, timeout=2000)
        self.assertIn({"type": "m.typing", "content": {"user_ids": [alice.user_id]}}, mine["rooms"]["join"][rid]["ephemeral"]["events"])
        # Bob, who left, hears nothing of it.
        after = await bob.sync(since=bob_token, timeout=300)
        self.assertNotIn(rid, after["rooms"]["join"])

    async def test_create_room_invites_everyone_listed(self) -> None:
        server, alice, bob, rid = await self._pair()
        carol = await MatrixClient.register(server.base_url, "carol")
        invited = (await alice.post("/createRoom", {"invite": [bob.user_id, carol.user_id]}))["room_id"]
        for client in (bob, carol):
            self.assertIn(invited, (await client.sync())["rooms"]["invite"])

    async def test_an_event_over_64_kib_is_refused(self) -> None:
        server, alice, bob, rid = await self._pair()
        code, body = await alice.raw(
            "PUT", f"{V3}/rooms/{quote(rid)}/send/m.room.message/big", {"msgtype": "m.text", "body": "x" * 65_000}
        )
        self.assertEqual((code, body["errcode"]), (413, "M_TOO_LARGE"))

    async def test_relations_recurse(self) -> None:
        server, alice, bob, rid = await self._pair()
        root = await alice.send_message(rid, "root")
        parent = root
        for i in range(7):
            parent = await alice.send_message(rid, f"level {i + 1}", **{"m.relates_to": {"rel_type": "org.example.rel", "event_id": parent}})
        await alice.send_message(rid, "a thread reply", **{"m.relates_to": {"rel_type": "m.thread", "event_id": root}})
        base = f"{V1}/rooms/{quote(rid)}/relations/{quote(root)}"

        async def bodies(query: str) -> tuple[list[str], object]:
            page = await alice.request("GET", base + query)
            return [e["content"]["body"] for e in page["chunk"]], page.get("recursion_depth")

        self.assertEqual(await bodies(""), (["a thread reply", "level 1"], None))
        # Five levels down, as Synapse's query goes, though it answers recursion_depth 3.
        recursed = ["a thread reply", "level 5", "level 4", "level 3", "level 2", "level 1"]
        self.assertEqual(await bodies("?recurse=true"), (recursed, 3))
        self.assertEqual(await bodies("?org.matrix.msc3981.recurse=true&dir=f"), (list(reversed(recursed)), 3))
        # A relation type filters every level.
        self.assertEqual(await bodies("/org.example.rel?recurse=true"), (recursed[1:], 3))
        self.assertEqual(await bodies("/m.thread?recurse=true"), (["a thread reply"], 3))
        page = await alice.request("GET", base + "?recurse=true&limit=2")
        more = await alice.request("GET", base + f"?recurse=true&limit=2&from={quote(page['next_batch'])}")
        self.assertEqual([e["content"]["body"] for e in more["chunk"]], ["level 4", "level 3"])
        versions = await alice.request("GET", "/_matrix/client/versions")
        self.assertIs(versions["unstable_features"]["org.matrix.msc3981"], True)

    async def test_devices_carry_every_field(self) -> None:
        server, alice, bob, rid = await self._pair()
        await MatrixClient.login(server.base_url, "alice")
        listing = (await alice.get("/devices"))["devices"]
        self.assertEqual(len(listing), 2)
        for device in listing:
            self.assertEqual(set(device), {"user_id", "device_id", "display_name", "last_seen_ip", "last_seen_ts"})
        one = await alice.get(f"/devices/{quote(alice.device_id)}")
        self.assertEqual(set(one), {"user_id", "device_id", "display_name", "last_seen_ip", "last_seen_ts"})


# The same behaviour on PostgreSQL, the production store.


class ClientActionsTestPostgres(ClientActionsTest):
    database = "postgresql"
