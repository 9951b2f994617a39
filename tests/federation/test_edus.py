"""EDUs between two WSPR servers sharing a room: typing, read receipts, presence; and
inbound EDUs from servers that have no business sending them are dropped."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from twisted.trial import unittest

from federation.edus.inbound import receive_edu
from tests.federation.helpers import start_federating, wait_for
from tests.support.wspr import MatrixClient


async def _ephemeral(client: MatrixClient, room_id: str, since: str | None = None) -> list[dict[str, Any]]:
    body = await client.sync(since=since)
    room = body.get("rooms", {}).get("join", {}).get(room_id, {})
    return room.get("ephemeral", {}).get("events", [])


class EduTest(unittest.TestCase):
    timeout = 90

    async def _shared_room(self):
        a = await start_federating(self)
        b = await start_federating(self)
        alice = await MatrixClient.register(a.base_url, "alice")
        bob = await MatrixClient.register(b.base_url, "bob")
        room_id = (await bob.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        await alice.post(f"/join/{quote(room_id)}?server_name={quote(b.server_name)}", {})
        await wait_for(lambda: _joined_on(b, room_id, alice.user_id), timeout=20)
        return a, b, alice, bob, room_id

    async def test_typing_receipts_presence(self) -> None:
        a, b, alice, bob, room_id = await self._shared_room()
        # typing: alice (server a) -> bob (server b)
        await alice.put(f"/rooms/{quote(room_id)}/typing/{quote(alice.user_id)}", {"typing": True, "timeout": 30000})
        await wait_for(lambda: _typing_users(bob, room_id, alice.user_id), timeout=10)
        # and back
        await bob.put(f"/rooms/{quote(room_id)}/typing/{quote(bob.user_id)}", {"typing": True, "timeout": 30000})
        await wait_for(lambda: _typing_users(alice, room_id, bob.user_id), timeout=10)
        # stopping propagates too
        await alice.put(f"/rooms/{quote(room_id)}/typing/{quote(alice.user_id)}", {"typing": False})
        await wait_for(lambda: _typing_users(bob, room_id, alice.user_id, present=False), timeout=10)

        # read receipt: bob sends a message, alice reads it
        event_id = await bob.send_message(room_id, "hello")
        await wait_for(lambda: a.hs.store.get_event(event_id), timeout=20)
        await alice.post(f"/rooms/{quote(room_id)}/receipt/m.read/{quote(event_id)}", {})
        await wait_for(lambda: _receipt_seen(bob, room_id, event_id, alice.user_id), timeout=10)

        # presence: alice goes unavailable with a status, bob sees it
        await alice.put(f"/presence/{quote(alice.user_id)}/status", {"presence": "unavailable", "status_msg": "brb"})

        async def presence_seen() -> bool:
            status = await bob.get(f"/presence/{quote(alice.user_id)}/status")
            return status.get("presence") == "unavailable" and status.get("status_msg") == "brb"

        await wait_for(presence_seen, timeout=10)

        # leave no typing timers behind on either server
        await bob.put(f"/rooms/{quote(room_id)}/typing/{quote(bob.user_id)}", {"typing": False})
        await wait_for(lambda: _typing_users(alice, room_id, bob.user_id, present=False), timeout=10)

    async def test_inbound_edus_are_checked(self) -> None:
        a, b, alice, bob, room_id = await self._shared_room()
        hs = b.hs
        # typing for a user of another server than the origin: ignored
        from federation.edus.inbound import EduRejected

        with self.assertRaises(EduRejected):
            await receive_edu(hs, "evil.example", "m.typing", {"room_id": room_id, "user_id": alice.user_id, "typing": True})
        # typing for a user of the origin who is not in the room: ignored
        with self.assertRaises(EduRejected):
            await receive_edu(hs, a.server_name, "m.typing",
                              {"room_id": room_id, "user_id": f"@mallory:{a.server_name}", "typing": True})
        self.assertEqual(hs.typing.typing_event(room_id)["content"]["user_ids"], [])
        # a receipt for someone else's user is dropped
        await receive_edu(hs, "evil.example", "m.receipt",
                          {room_id: {"m.read": {alice.user_id: {"event_ids": ["$x"], "data": {"ts": 1}}}}})
        # typing from a server banned by the room's ACL: refused
        await bob.put(f"/rooms/{quote(room_id)}/state/m.room.server_acl", {"allow": ["*"], "deny": ["127.0.0.1"]})
        with self.assertRaises(Exception):
            await receive_edu(hs, a.server_name, "m.typing", {"room_id": room_id, "user_id": alice.user_id, "typing": True})


async def _joined_on(server, room_id: str, user_id: str) -> bool:
    ev = await server.hs.rooms.get_current_state_event(room_id, "m.room.member", user_id)
    return ev is not None and ev.membership == "join"


async def _typing_users(client: MatrixClient, room_id: str, user_id: str, present: bool = True) -> bool:
    for ev in await _ephemeral(client, room_id):
        if ev["type"] == "m.typing":
            return (user_id in ev["content"]["user_ids"]) == present
    return not present


async def _receipt_seen(client: MatrixClient, room_id: str, event_id: str, user_id: str) -> bool:
    for ev in await _ephemeral(client, room_id):
        if ev["type"] == "m.receipt" and user_id in ev["content"].get(event_id, {}).get("m.read", {}):
            return True
    return False
