"""``GET /admin/whois/{userId}`` answered as Synapse answers it (status, errcode and the
shape of the body, which puts every connection in the one device ``""``), and the
connections it lists as Synapse lists them."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from tests.support.differential import Side, server_pair, shared_synapse
from tests.support.synapse import register_with_shared_secret
from tests.support.wspr import MatrixClient

SECRET = "whois-test-secret"
WHOIS = "/_matrix/client/v3/admin/whois/"
UA = {"User-Agent": "whois-test/1.0 (conformance)"}


async def admin(side: Side, secret: str) -> MatrixClient:
    body: dict[str, Any] = await deferToThread(
        register_with_shared_secret, side.base_url, secret, side.localpart("admin"), "correct horse", True
    )
    return MatrixClient(side.base_url, body["access_token"], body["user_id"], body["device_id"])


class WhoisConformanceTest(unittest.TestCase):
    timeout = 120

    async def test_whois_answers_like_synapse(self) -> None:
        pair = await server_pair(self, registration_shared_secret=SECRET)
        synapse_secret = (await shared_synapse()).registration_shared_secret
        bodies: dict[str, dict[str, Any]] = {}
        for side in pair:
            root = await admin(side, SECRET if side is pair.wspr else synapse_secret)
            alice = await side.register("alice")
            bob = await side.register("bob")
            await alice.raw("GET", "/_matrix/client/v3/account/whoami", headers=UA)
            await side.call(alice, "self", "GET", WHOIS + quote(alice.user_id), headers=UA)
            await side.call(bob, "someone else, not an admin", "GET", WHOIS + quote(alice.user_id))
            await side.call(root, "an admin", "GET", WHOIS + quote(alice.user_id), headers=UA)
            await side.call(root, "the admin API path", "GET", "/_synapse/admin/v1/whois/" + quote(alice.user_id))
            await side.call(root, "a local user who does not exist", "GET", WHOIS + quote(f"@ghost:{side.server_name}"))
            await side.call(root, "a remote user", "GET", WHOIS + quote("@someone:example.org"))
            await side.call(bob, "a remote user, not an admin", "GET", WHOIS + quote("@someone:example.org"))
            await side.call(root, "not a user id", "GET", WHOIS + "nobody")
            await side.call(side.anonymous(), "no token", "GET", WHOIS + quote(alice.user_id))
            await side.call(alice, "r0", "GET", "/_matrix/client/r0/admin/whois/" + quote(alice.user_id))
            bodies[side.label] = {s.name: s.body for s in side.steps}
            bodies[side.label]["alice"] = alice.user_id  # type: ignore[assignment]
        pair.assert_same()
        for label, steps in bodies.items():
            answer = steps["an admin"]
            self.assertEqual(answer["user_id"], steps["alice"], label)
            self.assertEqual(list(answer["devices"]), [""], label)
            connections = answer["devices"][""]["sessions"][0]["connections"]
            # alice's one access token, from one address, last seen with the test's agent
            self.assertEqual([(c["ip"], c["user_agent"]) for c in connections], [("127.0.0.1", UA["User-Agent"])], label)
            ghost = steps["a local user who does not exist"]
            self.assertEqual(ghost["devices"], {"": {"sessions": [{"connections": []}]}}, label)
