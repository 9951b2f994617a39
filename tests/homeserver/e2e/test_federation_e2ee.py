"""E2EE across two WSPR servers on loopback: remote /keys/query and /keys/claim through
federation, to-device messages as m.direct_to_device, and (once rooms federate)
device-list updates reaching the other server's users."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from twisted.internet import defer
from twisted.trial import unittest

from tests.homeserver.e2e._helpers import SIGS, Ed25519, cross_signing_key, device_keys
from tests.support.wspr import MatrixClient, MatrixRequestError

try:
    from tests.federation.helpers import start_federating, wait_for
except ImportError:  # pragma: no cover - federation layer not present
    start_federating = None  # type: ignore[assignment]


def _otks(prefix: str, n: int) -> dict[str, Any]:
    return {f"signed_curve25519:{prefix}{i:03d}": {"key": f"{prefix}{i}", "signatures": SIGS} for i in range(n)}


class TwoServersE2EETest(unittest.TestCase):
    timeout = 90

    async def _servers(self) -> tuple[Any, Any]:
        if start_federating is None:
            raise unittest.SkipTest("the federation layer is not available")
        return await start_federating(self), await start_federating(self)

    async def test_remote_query_claim_and_to_device(self) -> None:
        a, b = await self._servers()
        alice = await MatrixClient.register(a.base_url, "alice")
        bob = await MatrixClient.register(b.base_url, "bob")
        ed = Ed25519(bob.device_id)
        await bob.post(
            "/keys/upload",
            {
                "device_keys": device_keys(bob, ed),
                "one_time_keys": _otks("K", 2),
                "fallback_keys": {"signed_curve25519:FB": {"key": "fb", "fallback": True, "signatures": SIGS}},
            },
        )
        master, ssk = Ed25519(), Ed25519()
        await bob.post(
            "/keys/device_signing/upload",
            {
                "master_key": cross_signing_key(bob.user_id, master, "master"),
                "self_signing_key": master.sign(cross_signing_key(bob.user_id, ssk, "self_signing"), bob.user_id),
            },
        )

        # alice (server a) queries bob (server b): through federation user/keys/query.
        q = await alice.post("/keys/query", {"device_keys": {bob.user_id: []}})
        self.assertEqual(q["failures"], {})
        dev = q["device_keys"][bob.user_id][bob.device_id]
        self.assertEqual(dev["keys"][ed.key_id], ed.public)
        self.assertNotIn("device_display_name", dev.get("unsigned", {}))  # names stay home
        self.assertEqual(q["master_keys"][bob.user_id]["keys"], {master.key_id: master.public})
        self.assertIn(bob.user_id, q["self_signing_keys"])
        q = await alice.post("/keys/query", {"device_keys": {bob.user_id: ["NOPE"]}})
        self.assertEqual(q["device_keys"][bob.user_id], {})

        # Claims through federation user/keys/claim: two one-time keys, then the fallback.
        body = {"one_time_keys": {bob.user_id: {bob.device_id: "signed_curve25519"}}}
        got = []
        for _ in range(3):
            c = await alice.post("/keys/claim", body)
            self.assertEqual(c["failures"], {})
            got += list(c["one_time_keys"][bob.user_id][bob.device_id])
        self.assertEqual(got, ["signed_curve25519:K000", "signed_curve25519:K001", "signed_curve25519:FB"])

        # The federation /user/devices answer for bob.
        devices = await a.hs.federation.request(b.server_name, "GET", f"/_matrix/federation/v1/user/devices/{quote(bob.user_id)}")
        self.assertEqual([d["device_id"] for d in devices["devices"]], [bob.device_id])
        self.assertIn("master_key", devices)

        # To-device: alice -> bob's device over m.direct_to_device, in order, once each.
        since = (await bob.sync())["next_batch"]
        for i in range(3):
            await alice.put(f"/sendToDevice/m.test/t{i}", {"messages": {bob.user_id: {bob.device_id: {"n": i}}}})
        await alice.put("/sendToDevice/m.test/t2", {"messages": {bob.user_id: {bob.device_id: {"n": 2}}}})
        await alice.put("/sendToDevice/m.test/star", {"messages": {bob.user_id: {"*": {"n": "*"}}}})
        received: list[Any] = []

        async def all_arrived() -> bool:
            nonlocal since
            s = await bob.sync(since=since, timeout=500)
            since = s["next_batch"]
            received.extend(s["to_device"]["events"])
            return len(received) >= 4

        await wait_for(all_arrived, timeout=20)
        self.assertEqual([e["content"]["n"] for e in received], [0, 1, 2, "*"])
        self.assertEqual({e["sender"] for e in received}, {alice.user_id})
        s = await bob.sync(since=since, timeout=300)
        self.assertEqual(s["to_device"]["events"], [])

    async def test_device_list_updates_across_servers(self) -> None:
        a, b = await self._servers()
        alice = await MatrixClient.register(a.base_url, "alice")
        bob = await MatrixClient.register(b.base_url, "bob")
        room_id = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        try:
            await bob.post(f"/join/{quote(room_id)}?server_name={quote(a.server_name)}", {})
        except MatrixRequestError as e:
            raise unittest.SkipTest(f"joining a room over federation does not work yet: {e}") from e

        async def joined() -> bool:
            members = await alice.get(f"/rooms/{quote(room_id)}/joined_members")
            return bob.user_id in members["joined"]

        await wait_for(joined, timeout=20)
        ed = Ed25519(bob.device_id)
        await bob.post("/keys/upload", {"device_keys": device_keys(bob, ed)})
        a_since = (await alice.sync())["next_batch"]
        q = await alice.post("/keys/query", {"device_keys": {bob.user_id: []}})
        self.assertEqual(list(q["device_keys"][bob.user_id]), [bob.device_id])

        # Bob logs in a second device with keys: alice (on the other server) is told, and
        # her long-polling /sync wakes up for it (it does not wait for its timeout).
        waiting = defer.ensureDeferred(alice.sync(since=a_since, timeout=25_000))
        started = time.monotonic()
        bob2 = await MatrixClient.login(b.base_url, "bob")
        ed2 = Ed25519(bob2.device_id)
        await bob2.post("/keys/upload", {"device_keys": device_keys(bob2, ed2)})
        woken = await waiting
        self.assertLess(time.monotonic() - started, 15)
        self.assertIn(bob.user_id, woken["device_lists"]["changed"])
        a_since = woken["next_batch"]
        # Her server's cache was refreshed: the new device shows up.
        async def new_device_visible() -> bool:
            q = await alice.post("/keys/query", {"device_keys": {bob.user_id: []}})
            return bob2.device_id in q["device_keys"][bob.user_id]

        await wait_for(new_device_visible, timeout=20)

        # Deleting the device propagates too.
        code, uia = await bob.raw("DELETE", f"/_matrix/client/v3/devices/{bob2.device_id}", {})
        await bob.request(
            "DELETE",
            f"/_matrix/client/v3/devices/{bob2.device_id}",
            {"auth": {"type": "m.login.password", "session": uia["session"],
                      "identifier": {"type": "m.id.user", "user": "bob"}, "password": "correct horse"}},
        )

        async def device_gone() -> bool:
            q = await alice.post("/keys/query", {"device_keys": {bob.user_id: []}})
            return bob2.device_id not in q["device_keys"][bob.user_id]

        await wait_for(device_gone, timeout=20)

        # Bob leaves (so server b stops telling a about him), adds a device, and comes back:
        # a must not keep serving the keys it cached before.
        await alice.post("/keys/query", {"device_keys": {bob.user_id: []}})
        await bob.post(f"/rooms/{quote(room_id)}/leave", {})
        await wait_for(lambda: _not_joined(alice, room_id, bob.user_id), timeout=20)
        bob3 = await MatrixClient.login(b.base_url, "bob")
        await bob3.post("/keys/upload", {"device_keys": device_keys(bob3, Ed25519(bob3.device_id))})
        await bob.post(f"/join/{quote(room_id)}?server_name={quote(a.server_name)}", {})
        await wait_for(joined, timeout=20)
        q = await alice.post("/keys/query", {"device_keys": {bob.user_id: []}})
        self.assertIn(bob3.device_id, q["device_keys"][bob.user_id])

        # Cross-signing keys uploaded on b reach a as m.signing_key_update.
        master = Ed25519()
        await bob.post("/keys/device_signing/upload", {"master_key": cross_signing_key(bob.user_id, master, "master")})

        async def master_visible() -> bool:
            q = await alice.post("/keys/query", {"device_keys": {bob.user_id: []}})
            return q["master_keys"].get(bob.user_id, {}).get("keys") == {master.key_id: master.public}

        await wait_for(master_visible, timeout=20)


async def _not_joined(client: MatrixClient, room_id: str, user_id: str) -> bool:
    members = await client.get(f"/rooms/{quote(room_id)}/joined_members")
    return user_id not in members["joined"]
