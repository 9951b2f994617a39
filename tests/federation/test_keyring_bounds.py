"""The keyring's per-server memory is bounded: every request naming a new origin (no
account needed) made it remember that server, without limit."""

from __future__ import annotations

from typing import Any

from twisted.trial import unittest

from federation.keyring import KeyLookupError, Keyring
from homeserver.http.errors import MatrixError
from tests.support.wspr import start_homeserver


class NoServer:
    """A transport to which every server is unreachable."""

    async def request(self, destination: str, method: str, path: str, **kw: Any) -> Any:
        raise MatrixError(502, "M_UNKNOWN", f"Failed to reach {destination}")


class KeyringBoundsTest(unittest.TestCase):
    async def test_servers_in_memory_stay_bounded(self) -> None:
        server = await start_homeserver(self)
        keyring = Keyring(server.hs, NoServer())
        keyring.max_servers_in_memory = 50
        for i in range(500):
            with self.assertRaises(KeyLookupError):
                await keyring.get_verify_key(f"origin{i}.example", "ed25519:a")
            self.assertLessEqual(len(keyring._loaded_from_db), 50)
            self.assertLessEqual(len(keyring._keys), 50)
            self.assertLessEqual(len(keyring._last_fetch), 50)
