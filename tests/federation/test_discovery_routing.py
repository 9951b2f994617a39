"""Discovery drives real connections: a well-known delegation plus an SRV record (from a
fake resolver) lead the transport to another server's TLS port; the IP blocklist applies
to where discovery points, not just to literal names."""

from __future__ import annotations

from typing import Any

from twisted.trial import unittest

from federation.discovery import ServerDiscovery
from federation.errors import FederationDenied
from federation.transport.client import FederationTransport
from tests.federation.helpers import start_federating
from tests.federation.test_units import FakeDNS


class DiscoveryRoutingTest(unittest.TestCase):
    timeout = 60

    async def _transport(self, server: Any, dns: FakeDNS) -> FederationTransport:
        transport = FederationTransport(server.hs, discovery=ServerDiscovery(lambda: dns.now, dns.fetch, dns.lookup))
        self.addCleanup(transport.close)
        return transport

    async def test_well_known_and_srv_lead_to_the_server(self) -> None:
        a = await start_federating(self)
        b = await start_federating(self)
        dns = FakeDNS()
        dns.well_known["friendly.test"] = (200, b'{"m.server": "matrix.friendly.test"}', 600)
        dns.srv["_matrix-fed._tcp.matrix.friendly.test"] = [(0, 0, "127.0.0.1", b.hs.federation.listening_port)]
        transport = await self._transport(a, dns)
        version = await transport.request("friendly.test", "GET", "/_matrix/federation/v1/version")
        self.assertEqual(version["server"]["name"], "WSPR")
        self.assertEqual(
            dns.calls, ["wk:friendly.test", "srv:_matrix-fed._tcp.matrix.friendly.test"]
        )
        # cached: the second request does no look-ups
        await transport.request("friendly.test", "GET", "/_matrix/federation/v1/version")
        self.assertEqual(len(dns.calls), 2)

    async def test_blocklist_applies_to_discovered_addresses(self) -> None:
        a = await start_federating(self, ip_range_blocklist=["127.0.0.0/8"])
        b = await start_federating(self)
        dns = FakeDNS()
        dns.srv["_matrix-fed._tcp.sneaky.test"] = [(0, 0, "127.0.0.1", b.hs.federation.listening_port)]
        transport = await self._transport(a, dns)
        with self.assertRaises(FederationDenied):
            await transport.request("sneaky.test", "GET", "/_matrix/federation/v1/version")
