"""Complement ``tests/federation_device_list_update_test.go`` (TestDeviceListsUpdateOverFederation)
and ``tests/federation_to_device_test.go`` (TestToDeviceMessagesOverFederation): device list
changes and to-device messages reach the other server with good connectivity, across an
interruption of the receiving server's federation port, and when the receiving server is
stopped while the sending one restarts (the sender must remember to send)."""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from signedjson.key import generate_signing_key, get_verify_key
from signedjson.sign import sign_json
from twisted.trial import unittest

from tests.conformance.complement import CaseFn, invited_to, q, sleep, sync_until
from tests.federation.conformance.harness import cut_federation, restore_federation, run_cases, start_again, stop_server
from tests.federation.helpers import start_federating
from tests.support.wspr import MatrixClient, RunningHomeServer


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def generate_keys(user_id: str, device_id: str, otk_count: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Device keys and signed one-time keys as a client uploads them (the server does not
    check the cryptography: an ed25519 key signs, the curve25519 ones are random bytes)."""
    sk = generate_signing_key(device_id)
    ed_id = f"ed25519:{device_id}"
    device_keys: dict[str, Any] = {
        "user_id": user_id,
        "device_id": device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {ed_id: _b64(get_verify_key(sk).encode()), f"curve25519:{device_id}": _b64(os.urandom(32))},
    }
    device_keys = sign_json(device_keys, user_id, sk)
    otks = {}
    for i in range(otk_count):
        otks[f"signed_curve25519:AAAAA{i}"] = sign_json({"key": _b64(os.urandom(32))}, user_id, sk)
    return device_keys, otks


def device_list_change(changed: list[str], left: list[str]) -> Callable[[dict[str, Any]], bool]:
    def check(body: dict[str, Any]) -> bool:
        dl = body.get("device_lists", {})
        return sorted(dl.get("changed", [])) == sorted(changed) and sorted(dl.get("left", [])) == sorted(left)

    return check


class Servers:
    """hs1 and hs2 of one test, and the three ways Complement breaks the link."""

    def __init__(self, test: unittest.TestCase, hs1: RunningHomeServer, hs2: RunningHomeServer) -> None:
        self.test, self.hs1, self.hs2 = test, hs1, hs2

    def modes(self) -> list[tuple[str, Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]]:
        async def nothing() -> None:
            pass

        async def cut() -> None:
            await cut_federation(self.hs2)
            await self.hs1.hs.federation.transport.pool.closeCachedConnections()

        async def restore() -> None:
            restore_federation(self.hs2)

        async def stop() -> None:
            await stop_server(self.hs2)

        async def restart_both() -> None:
            # the sender restarts first: it must remember what it still has to send
            await stop_server(self.hs1)
            self.hs1 = await start_again(self.test, self.hs1)
            self.hs2 = await start_again(self.test, self.hs2)

        return [
            ("good connectivity", nothing, nothing),
            ("interrupted connectivity", cut, restore),
            ("stopped server", stop, restart_both),
        ]


def moved(client: MatrixClient, rs: RunningHomeServer) -> MatrixClient:
    """The same session on a restarted server (whose client port changed)."""
    return MatrixClient(rs.base_url, client.access_token, client.user_id, client.device_id)


class DeviceListsOverFederationTest(unittest.TestCase):
    timeout = 300

    async def test_device_lists_update_over_federation(self) -> None:
        servers = Servers(self, await start_federating(self), await start_federating(self))

        async def cases(case: CaseFn) -> None:
            for name, make_unreachable, make_reachable in servers.modes():
                with case(name):
                    suffix = secrets.token_hex(2)
                    alice = await MatrixClient.register(servers.hs1.base_url, f"alice{suffix}", "this is alices password")
                    bob = await MatrixClient.register(servers.hs2.base_url, f"bob{suffix}")
                    room_id = (await alice.post("/createRoom", {
                        "preset": "private_chat",
                        "invite": [bob.user_id],
                        "initial_state": [{"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}],
                    }))["room_id"]
                    alice_since = (await alice.get("/sync?timeout=0"))["next_batch"]
                    _, bob_since = await sync_until(bob, invited_to(room_id))
                    await bob.post(f"/join/{q(room_id)}?server_name={q(servers.hs1.server_name)}", {})
                    _, alice_since = await sync_until(alice, device_list_change([bob.user_id], []), since=alice_since)
                    _, bob_since = await sync_until(bob, device_list_change([alice.user_id, bob.user_id], []), since=bob_since)
                    await make_unreachable()
                    alice2 = await MatrixClient.login(servers.hs1.base_url, alice.user_id, "this is alices password",
                                                      device_id="NEW_DEVICE")
                    device_keys, otks = generate_keys(alice.user_id, "NEW_DEVICE", 1)
                    await alice2.post("/keys/upload", {"device_keys": device_keys, "one_time_keys": otks})
                    await sleep(1)
                    await make_reachable()
                    alice, bob = moved(alice, servers.hs1), moved(bob, servers.hs2)
                    await sync_until(alice, device_list_change([alice.user_id], []), since=alice_since)
                    await sync_until(bob, device_list_change([alice.user_id], []), since=bob_since, wait=20)

        await run_cases("WSPR+WSPR", cases)


class ToDeviceOverFederationTest(unittest.TestCase):
    timeout = 300

    async def test_to_device_messages_over_federation(self) -> None:
        servers = Servers(self, await start_federating(self), await start_federating(self))

        async def cases(case: CaseFn) -> None:
            for name, make_unreachable, make_reachable in servers.modes():
                with case(name):
                    suffix = secrets.token_hex(2)
                    alice = await MatrixClient.register(servers.hs1.base_url, f"alice{suffix}")
                    bob = await MatrixClient.register(servers.hs2.base_url, f"bob{suffix}")
                    bob_since = (await bob.get("/sync?timeout=0"))["next_batch"]
                    content = {"my_key": "my_value"}
                    await make_unreachable()
                    await alice.put(f"/sendToDevice/my.test.type/{secrets.token_hex(4)}",
                                    {"messages": {bob.user_id: {bob.device_id: content}}})
                    await sleep(1)
                    await make_reachable()
                    bob = moved(bob, servers.hs2)
                    await sync_until(bob, lambda body: any(
                        e.get("type") == "my.test.type" and e.get("sender") == alice.user_id and e.get("content") == content
                        for e in body.get("to_device", {}).get("events", [])
                    ), since=bob_since, wait=30)

        await run_cases("WSPR+WSPR", cases)
