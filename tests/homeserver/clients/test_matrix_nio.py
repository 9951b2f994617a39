"""matrix-nio, a real Matrix client library, drives WSPR over HTTP: two users register,
create a room, invite, join, exchange messages and see them through /sync."""

from __future__ import annotations

import asyncio
import tempfile

from nio import (
    AsyncClient,
    DevicesResponse,
    InviteMemberEvent,
    JoinResponse,
    RegisterResponse,
    RoomCreateResponse,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
)
from twisted.internet import threads
from twisted.trial import unittest

from tests.support.wspr import start_homeserver


async def _scenario(base_url: str) -> dict[str, list[str]]:
    store = tempfile.mkdtemp()
    alice = AsyncClient(base_url, "alice", store_path=store)
    bob = AsyncClient(base_url, "bob", store_path=store)
    try:
        r = await alice.register("alice", "alice-password", device_name="nio alice")
        assert isinstance(r, RegisterResponse), r
        r = await bob.register("bob", "bob-password", device_name="nio bob")
        assert isinstance(r, RegisterResponse), r
        created = await alice.room_create(name="nio room", invite=[bob.user_id])
        assert isinstance(created, RoomCreateResponse), created
        room_id = created.room_id

        sync = await bob.sync(timeout=0)
        assert isinstance(sync, SyncResponse), sync
        assert room_id in sync.rooms.invite, sync.rooms.invite
        invite_events = [e for e in sync.rooms.invite[room_id].invite_state if isinstance(e, InviteMemberEvent)]
        assert invite_events, "the invite shows up with its stripped state"
        joined = await bob.join(room_id)
        assert isinstance(joined, JoinResponse), joined

        await alice.sync(timeout=0)
        await bob.sync(timeout=0)
        for i in range(3):
            sent = await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": f"hi bob {i}"})
            assert isinstance(sent, RoomSendResponse), sent
        sent = await bob.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "hi alice"})
        assert isinstance(sent, RoomSendResponse), sent

        seen: dict[str, list[str]] = {"alice": [], "bob": []}
        for name, client in (("alice", alice), ("bob", bob)):
            for _ in range(5):
                resp = await client.sync(timeout=1000)
                assert isinstance(resp, SyncResponse), resp
                room = resp.rooms.join.get(room_id)
                if room:
                    seen[name] += [e.body for e in room.timeline.events if isinstance(e, RoomMessageText)]
                if len(seen[name]) >= 4 or "hi alice" in seen[name]:
                    break
        # nio's room model tracks membership from sync.
        seen["members"] = sorted(alice.rooms[room_id].users)
        # nio validates GET /devices against a schema that requires display_name,
        # last_seen_ip and last_seen_ts (null allowed) on every device: a second session
        # signed in through the API without a device name has no display name.
        second = AsyncClient(base_url, "alice", store_path=store)
        try:
            await second.login("alice-password")
        finally:
            await second.close()
        devices = await alice.devices()
        assert isinstance(devices, DevicesResponse), devices
        seen["devices"] = [d.display_name for d in devices.devices]
        return seen
    finally:
        await alice.close()
        await bob.close()


class MatrixNioTest(unittest.TestCase):
    timeout = 120

    async def test_nio_chat(self) -> None:
        server = await start_homeserver(self)
        seen = await threads.deferToThread(asyncio.run, _scenario(server.base_url))
        self.assertIn("hi alice", seen["bob"])
        self.assertEqual([b for b in seen["bob"] if b.startswith("hi bob")], ["hi bob 0", "hi bob 1", "hi bob 2"])
        self.assertIn("hi bob 2", seen["alice"])
        self.assertIn("hi alice", seen["alice"])
        self.assertEqual(seen["members"], ["@alice:localhost", "@bob:localhost"])
        self.assertEqual(sorted(seen["devices"], key=str), [None, "nio alice"])
