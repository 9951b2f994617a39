"""Complement ``tests/federation_encryption_test.go`` (TestEncryption): two real E2EE clients
(matrix-nio with vodozemac, where Complement uses mautrix) on two servers exchange megolm
messages in a room of the first; each decrypts the other's. The client scenario is the one
of ``tests/homeserver/e2e/test_nio.py``, with bob on the second server."""

from __future__ import annotations

import asyncio

from twisted.internet import threads
from twisted.trial import unittest

from tests.federation.helpers import start_federating
from tests.homeserver.e2e.test_nio import _scenario, nio
from tests.support.wspr import MatrixClient


class FederationEncryptionTest(unittest.TestCase):
    timeout = 240

    async def test_encryption(self) -> None:
        if nio is None:
            raise unittest.SkipTest("matrix-nio[e2e] is not installed")
        hs1 = await start_federating(self)
        hs2 = await start_federating(self)
        alice = await MatrixClient.register(hs1.base_url, "alice")
        bob = await MatrixClient.register(hs2.base_url, "bob")
        result = await threads.deferToThread(
            asyncio.run, _scenario(hs1.base_url, alice.user_id, bob.user_id, bob_base_url=hs2.base_url)
        )
        self.assertIn("hello bob, secretly", result["bob_saw"])
        self.assertIn("hi alice, also secret", result["alice_saw"])
        self.assertNotIn("<undecryptable>", result["bob_saw"] + result["alice_saw"])
