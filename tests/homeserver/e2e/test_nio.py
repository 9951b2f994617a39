"""A real E2EE client (matrix-nio with vodozemac) against WSPR: two users exchange
messages in an encrypted room and each decrypts what the other sent, while the server
only ever stores m.room.encrypted.

nio runs on asyncio/aiohttp, so the client scenario runs in a thread with its own event
loop while the server runs in the trial reactor.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from typing import Any
from urllib.parse import quote

from twisted.internet import threads
from twisted.trial import unittest

from tests.support.wspr import MatrixClient, start_homeserver

try:
    import nio
    from nio import AsyncClient, AsyncClientConfig
except ImportError:  # pragma: no cover - depends on the environment
    nio = None


async def _step(client: AsyncClient, timeout_ms: int = 0) -> Any:
    """One sync, then the key work nio leaves to the caller."""
    resp = await client.sync(timeout=timeout_ms)
    if not isinstance(resp, nio.SyncResponse):
        raise AssertionError(f"sync failed: {resp}")
    if client.should_upload_keys:
        await client.keys_upload()
    if client.should_query_keys:
        await client.keys_query()
    if client.should_claim_keys:
        await client.keys_claim(client.get_users_for_key_claiming())
    await client.send_to_device_messages()
    return resp


async def _wait_for_text(client: AsyncClient, room_id: str, body: str, other: AsyncClient) -> list[str]:
    """Syncs until the decrypted message shows up; returns decrypted bodies seen."""
    seen: list[str] = []
    # The message and its room key travel apart (a PDU and a to-device EDU, over federation
    # too): a message that came first is decrypted again once the key is there, as clients do.
    waiting: list[Any] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        resp = await _step(client, 500)
        await _step(other, 0)  # keeps the other side's key traffic flowing
        room = resp.rooms.join.get(room_id)
        for original in list(waiting) + list(room.timeline.events if room else []):
            event = original
            if isinstance(original, nio.MegolmEvent):
                try:
                    event = client.decrypt_event(original)
                except nio.EncryptionError:
                    if original not in waiting:
                        waiting.append(original)
                    continue
                if original in waiting:
                    waiting.remove(original)
            if isinstance(event, nio.RoomMessageText):
                seen.append(event.body)
        if body in seen:
            return seen + ["<undecryptable>"] * len(waiting)
    undecrypted = ["<undecryptable>"] * len(waiting)
    raise AssertionError(f"{client.user_id} never decrypted {body!r}; saw {seen + undecrypted}")


async def _scenario(
    base_url: str, alice_id: str, bob_id: str, bob_base_url: str | None = None, bob_password: str = "correct horse"
) -> dict[str, Any]:
    """alice creates an encrypted room and invites bob (who may live on another server);
    each sends one message and must decrypt the other's."""
    config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True)
    alice = AsyncClient(base_url, alice_id, store_path=tempfile.mkdtemp(prefix="nio-a-"), config=config)
    bob = AsyncClient(bob_base_url or base_url, bob_id, store_path=tempfile.mkdtemp(prefix="nio-b-"), config=config)
    try:
        for c, password in ((alice, "correct horse"), (bob, bob_password)):
            resp = await c.login(password, device_name="nio")
            assert isinstance(resp, nio.LoginResponse), resp
            await _step(c)
        created = await alice.room_create(
            invite=[bob_id],
            initial_state=[
                {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
            ],
        )
        assert isinstance(created, nio.RoomCreateResponse), created
        room_id = created.room_id
        deadline = time.monotonic() + 30
        while room_id not in bob.invited_rooms and time.monotonic() < deadline:
            await _step(bob, 500)
        joined = await bob.join(room_id)
        assert isinstance(joined, nio.JoinResponse), joined
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            await _step(alice, 200)
            await _step(bob, 200)
            if (
                room_id in alice.rooms
                and room_id in bob.rooms
                and alice.rooms[room_id].encrypted
                and bob.rooms[room_id].encrypted
                and bob_id in alice.rooms[room_id].users
                and alice_id in bob.rooms[room_id].users
            ):
                break
        assert alice.rooms[room_id].encrypted and bob.rooms[room_id].encrypted

        sent = await alice.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": "hello bob, secretly"}, ignore_unverified_devices=True
        )
        assert isinstance(sent, nio.RoomSendResponse), sent
        await _step(alice)
        bob_saw = await _wait_for_text(bob, room_id, "hello bob, secretly", alice)

        sent = await bob.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": "hi alice, also secret"}, ignore_unverified_devices=True
        )
        assert isinstance(sent, nio.RoomSendResponse), sent
        await _step(bob)
        alice_saw = await _wait_for_text(alice, room_id, "hi alice, also secret", bob)
        return {"room_id": room_id, "bob_saw": bob_saw, "alice_saw": alice_saw}
    finally:
        await alice.close()
        await bob.close()


class NioEncryptedChatTest(unittest.TestCase):
    timeout = 180

    async def test_two_nio_users_exchange_encrypted_messages(self) -> None:
        if nio is None:
            raise unittest.SkipTest("matrix-nio[e2e] is not installed")
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")

        result = await threads.deferToThread(asyncio.run, _scenario(server.base_url, alice.user_id, bob.user_id))
        self.assertIn("hello bob, secretly", result["bob_saw"])
        self.assertIn("hi alice, also secret", result["alice_saw"])
        self.assertNotIn("<undecryptable>", result["bob_saw"] + result["alice_saw"])

        # What the server stored: ciphertext only.
        room_id = result["room_id"]
        msgs = await alice.get(f"/rooms/{quote(room_id)}/messages?dir=b&limit=50")
        types = {e["type"] for e in msgs["chunk"]}
        self.assertIn("m.room.encrypted", types)
        self.assertNotIn("m.room.message", types)
        for e in msgs["chunk"]:
            if e["type"] == "m.room.encrypted":
                self.assertEqual(e["content"]["algorithm"], "m.megolm.v1.aes-sha2")
                self.assertNotIn("secret", str(e["content"]))
