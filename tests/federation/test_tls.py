"""Certificate checking on outbound federation: with ``verify_certificates`` a peer's
self-signed certificate is refused unless ``ca_file`` trusts it."""

from __future__ import annotations

import os

from twisted.trial import unittest

from federation.errors import FederationUnreachable
from tests.federation.helpers import start_federating


class TLSTest(unittest.TestCase):
    timeout = 60

    async def test_verification(self) -> None:
        b = await start_federating(self)
        cert = os.path.join(os.path.dirname(b.config_path), "tls.crt")
        trusting = await start_federating(self, verify_certificates=True, ca_file=cert)
        version = await trusting.hs.federation.get_version(b.server_name)
        self.assertEqual(version["server"]["name"], "WSPR")
        strict = await start_federating(self, verify_certificates=True)
        with self.assertRaises(FederationUnreachable):
            await strict.hs.federation.get_version(b.server_name)
        # ca_file trusts only what it holds: another self-signed server is refused
        other = await start_federating(self)
        with self.assertRaises(FederationUnreachable):
            await trusting.hs.federation.get_version(other.server_name)
