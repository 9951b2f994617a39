"""The everyday path over real HTTP: register, create a room, invite, join, chat, sync."""

from __future__ import annotations

from twisted.trial import unittest

from tests.support.wspr import MatrixClient, MatrixRequestError, start_homeserver


class BasicChatMixin:
    database = "sqlite"

    async def test_two_users_chat(self) -> None:
        server = await start_homeserver(self)  # type: ignore[arg-type]
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        room_id = (await alice.post("/createRoom", {"name": "Lunch", "invite": [bob.user_id]}))["room_id"]

        first = await bob.sync()
        self.assertIn(room_id, first["rooms"]["invite"])  # type: ignore[attr-defined]
        await bob.post(f"/join/{room_id}")
        event_id = await alice.send_message(room_id, "hello bob")

        sync = await bob.sync(since=first["next_batch"])
        timeline = sync["rooms"]["join"][room_id]["timeline"]["events"]
        bodies = [e["content"].get("body") for e in timeline if e["type"] == "m.room.message"]
        self.assertEqual(bodies, ["hello bob"])  # type: ignore[attr-defined]
        self.assertEqual(timeline[-1]["event_id"], event_id)  # type: ignore[attr-defined]

        # Sending is idempotent per transaction id.
        a = await alice.put(f"/rooms/{room_id}/send/m.room.message/same", {"msgtype": "m.text", "body": "once"})
        b = await alice.put(f"/rooms/{room_id}/send/m.room.message/same", {"msgtype": "m.text", "body": "once"})
        self.assertEqual(a["event_id"], b["event_id"])  # type: ignore[attr-defined]

        # A stranger can't read the room.
        eve = await MatrixClient.register(server.base_url, "eve")
        with self.assertRaises(MatrixRequestError) as cm:  # type: ignore[attr-defined]
            await eve.get(f"/rooms/{room_id}/messages?dir=b")
        self.assertEqual(cm.exception.code, 403)  # type: ignore[attr-defined]

        # History is there for bob, newest first.
        msgs = await bob.get(f"/rooms/{room_id}/messages?dir=b&limit=3")
        self.assertEqual(msgs["chunk"][0]["content"]["body"], "once")  # type: ignore[attr-defined]


class BasicChatSQLiteTest(BasicChatMixin, unittest.TestCase):
    database = "sqlite"


class BasicChatPostgresTest(BasicChatMixin, unittest.TestCase):
    database = "postgresql"
