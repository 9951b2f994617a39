"""Federation with a server whose name is an IPv6 literal (``[::1]:PORT``): discovery, the
Host header, the X-Matrix destination, TLS without SNI with the certificate checked against
the IP, and a room shared both ways."""

from __future__ import annotations

import os
import socket
from typing import Any
from urllib.parse import quote

from twisted.trial import unittest

from federation.discovery import Candidate, ServerDiscovery
from federation.errors import FederationDenied, FederationUnreachable
from federation.transport.client import host_header
from tests.federation.helpers import LOOPBACK_FEDERATION, start_federating
from tests.federation.rooms.test_two_wspr import SyncWatcher
from tests.support.wspr import MatrixClient, RunningHomeServer, start_homeserver


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def _free_port_v6() -> int:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.bind(("::1", 0))
        return s.getsockname()[1]


async def start_ipv6_server(test: unittest.TestCase, **listener: Any) -> RunningHomeServer:
    port = _free_port_v6()
    return await start_homeserver(
        test,
        server_name=f"[::1]:{port}",
        federation_port=port,
        start_extras=True,
        federation=LOOPBACK_FEDERATION,
        listeners={"federation": {"enabled": True, "bind_address": "::1", "port": port, **listener}},
    )


class IPv6NamesTest(unittest.TestCase):
    async def test_discovery_and_host_header(self) -> None:
        discovery = ServerDiscovery(lambda: 0.0, _no_well_known, _no_srv)
        self.assertEqual(await discovery.resolve("[2001:db8::1]"), ("[2001:db8::1]", [Candidate("2001:db8::1", 8448)]))
        self.assertEqual(await discovery.resolve("[::1]:8448"), ("[::1]:8448", [Candidate("::1", 8448)]))
        self.assertEqual(host_header("[::1]:8448"), b"[::1]:8448")
        self.assertEqual(host_header("[2001:DB8::1]"), b"[2001:DB8::1]")
        self.assertEqual(host_header("127.0.0.1:80"), b"127.0.0.1:80")
        self.assertEqual(host_header("matrix.example.org"), b"matrix.example.org")


async def _no_well_known(host: str) -> Any:
    raise AssertionError("no well-known look-up for an IP literal")


async def _no_srv(name: str) -> Any:
    raise AssertionError("no SRV look-up for an IP literal")


class IPv6LiteralTest(unittest.TestCase):
    timeout = 90

    def setUp(self) -> None:
        if not _has_ipv6_loopback():
            raise unittest.SkipTest("no IPv6 loopback on this machine")

    async def test_room_shared_with_ipv6_literal_server(self) -> None:
        v6 = await start_ipv6_server(self)
        v6_cert = os.path.join(os.path.dirname(v6.config_path), "tls.crt")
        # The IPv4 server checks the IPv6 server's certificate (its SAN is the IP ::1).
        v4 = await start_federating(self, verify_certificates=True, ca_file=v6_cert)
        version = await v4.hs.federation.get_version(v6.server_name)
        self.assertEqual(version["server"]["name"], "WSPR")

        alice = await MatrixClient.register(v4.base_url, "alice")
        bob = await MatrixClient.register(v6.base_url, "bob")
        self.assertTrue(bob.user_id.endswith(":[::1]:" + v6.server_name.rsplit(":", 1)[1]))
        profile_set = await bob.put(f"/profile/{quote(bob.user_id)}/displayname", {"displayname": "Bob Six"})
        self.assertEqual(profile_set, {})
        self.assertEqual((await alice.get(f"/profile/{quote(bob.user_id)}")).get("displayname"), "Bob Six")

        room_id = (await alice.post("/createRoom", {"preset": "private_chat", "invite": [bob.user_id]}))["room_id"]
        bob_sync = SyncWatcher(bob)
        await bob_sync.until(lambda: room_id in bob_sync.invites)
        await bob.post(f"/join/{quote(room_id)}")
        alice_sync = SyncWatcher(alice)
        await alice_sync.until(lambda: alice_sync.has_member(room_id, bob.user_id, "join"))
        await alice.send_message(room_id, "to six")
        await bob.send_message(room_id, "from six")
        await alice_sync.until(lambda: "from six" in alice_sync.bodies(room_id))
        await bob_sync.until(lambda: "to six" in bob_sync.bodies(room_id))

    async def test_certificate_checked_against_the_ip(self) -> None:
        # An IPv6 server presenting a certificate for 127.0.0.1 (another server's) is refused
        # by a server that trusts that certificate: the name checked is the IP ::1.
        other = await start_federating(self)
        other_dir = os.path.dirname(other.config_path)
        cert, key = os.path.join(other_dir, "tls.crt"), os.path.join(other_dir, "tls.key")
        v6 = await start_ipv6_server(self, tls_certificate=cert, tls_private_key=key)
        trusting = await start_federating(self, verify_certificates=True, ca_file=cert)
        self.assertEqual((await trusting.hs.federation.get_version(other.server_name))["server"]["name"], "WSPR")
        with self.assertRaises(FederationUnreachable) as cm:
            await trusting.hs.federation.get_version(v6.server_name)
        self.assertIn("IPAddressMismatch", str(cm.exception))

    async def test_default_blocklist_refuses_ipv6_loopback(self) -> None:
        v6 = await start_ipv6_server(self)
        strict = await start_federating(self, ip_range_blocklist=None)
        with self.assertRaises(FederationDenied):
            await strict.hs.federation.get_version(v6.server_name)

