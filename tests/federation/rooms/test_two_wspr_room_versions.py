"""Rooms of every room version, 1 to 12, between two WSPR servers: one creates, the
other's user joins (make_join/send_join; in v1/v2 the joining server chooses the event
id of a template the resident server also gave an id), messages both ways, a state
change, leave. SQLite and PostgreSQL."""

from __future__ import annotations

from urllib.parse import quote as _quote

from twisted.trial import unittest

from tests.federation.rooms.test_two_wspr import ServersMixin, SyncWatcher
from tests.support.wspr import MatrixClient

VERSIONS = [str(n) for n in range(1, 13)]


def quote(value: str) -> str:
    return _quote(value, safe="")


class TwoWsprRoomVersionsTest(ServersMixin, unittest.TestCase):
    timeout = 300

    async def test_every_version_between_two_servers(self) -> None:
        a = await self.start_server()
        b = await self.start_server()
        alice = await MatrixClient.register(a.base_url, "alice")
        bob = await MatrixClient.register(b.base_url, "bob")
        alice_sync, bob_sync = SyncWatcher(alice), SyncWatcher(bob)
        for version in VERSIONS:
            room_id = (await alice.post("/createRoom", {"room_version": version, "preset": "public_chat"}))["room_id"]
            await bob.post(f"/join/{quote(room_id)}?server_name={quote(a.server_name)}")
            await alice_sync.until(lambda: alice_sync.has_member(room_id, bob.user_id, "join"), timeout=30)
            await alice.send_message(room_id, f"v{version} a")
            await bob.send_message(room_id, f"v{version} b")
            await alice.put(f"/rooms/{quote(room_id)}/state/m.room.topic/", {"topic": f"v{version}"})
            await bob_sync.until(lambda: f"v{version} a" in bob_sync.bodies(room_id), timeout=30)
            await alice_sync.until(lambda: f"v{version} b" in alice_sync.bodies(room_id), timeout=30)

            await bob_sync.until(
                lambda: any(e["type"] == "m.room.topic" for e in bob_sync.timeline.get(room_id, [])), timeout=30
            )
            self.assertEqual((await bob.get(f"/rooms/{quote(room_id)}/state/m.room.topic/"))["topic"], f"v{version}")
            await bob.post(f"/rooms/{quote(room_id)}/leave")
            await alice_sync.until(lambda: alice_sync.has_member(room_id, bob.user_id, "leave"), timeout=30)


class TwoWsprRoomVersionsPostgresTest(TwoWsprRoomVersionsTest):
    database = "postgresql"
