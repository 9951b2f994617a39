"""Two WSPR servers on loopback exchange signed federation requests."""

from __future__ import annotations

from urllib.parse import quote

from twisted.trial import unittest

from tests.federation.helpers import start_federating
from tests.support.wspr import MatrixClient, MatrixRequestError


class TwoServersTest(unittest.TestCase):
    timeout = 60

    async def _servers(self):
        a = await start_federating(self)
        b = await start_federating(self)
        return a, b

    async def test_key_fetch_and_profile(self) -> None:
        a, b = await self._servers()
        bob = await MatrixClient.register(b.base_url, "bob")
        await bob.put(f"/profile/{quote(bob.user_id)}/displayname", {"displayname": "Bob B"})
        alice = await MatrixClient.register(a.base_url, "alice")
        profile = await alice.get(f"/profile/{quote(bob.user_id)}")
        self.assertEqual(profile.get("displayname"), "Bob B")
        # b fetched a's key to check the request's signature, and cached it in its database
        keys = await b.hs.store.get_server_keys(a.server_name)
        self.assertEqual([k.key_id for k in keys], [f"ed25519:{a.hs.signing_key.version}"])
        # unknown remote user: the remote's 404 comes through
        with self.assertRaises(MatrixRequestError) as cm:
            await alice.get(f"/profile/{quote('@nobody:' + b.server_name)}")
        self.assertEqual(cm.exception.code, 404)
