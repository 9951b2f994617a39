"""The client address behind trusted proxies: X-Forwarded-For is read only from a trusted
peer, and the client is the right-most entry that is not a trusted proxy."""

from __future__ import annotations

from twisted.trial import unittest

from homeserver.http.forwarded import ClientAddress
from homeserver.util.ip_filter import DEFAULT_TRUSTED_PROXIES


class ClientAddressTest(unittest.TestCase):
    def test_untrusted_peer_is_the_client(self) -> None:
        policy = ClientAddress(["10.0.0.0/8"])
        self.assertEqual(policy.client_ip("127.0.0.1", [b"203.0.113.5"]), "127.0.0.1")
        self.assertEqual(policy.client_ip("198.51.100.1", [b"10.0.0.1"]), "198.51.100.1")

    def test_right_most_untrusted_entry(self) -> None:
        policy = ClientAddress(DEFAULT_TRUSTED_PROXIES)
        self.assertEqual(policy.client_ip("127.0.0.1", [b"203.0.113.5"]), "203.0.113.5")
        # The left-most entries are whatever the client wrote.
        self.assertEqual(policy.client_ip("127.0.0.1", [b"1.1.1.1, 203.0.113.5"]), "203.0.113.5")
        # Several trusted proxies in a row, and the entries of two headers in order.
        self.assertEqual(policy.client_ip("127.0.0.1", [b"1.1.1.1, 203.0.113.5", b"127.0.0.2, ::1"]), "203.0.113.5")
        # Nothing forwarded: the peer itself.
        self.assertEqual(policy.client_ip("127.0.0.1", []), "127.0.0.1")
        # Every entry a trusted proxy: the left-most.
        self.assertEqual(policy.client_ip("127.0.0.1", [b"127.0.0.3, 127.0.0.2"]), "127.0.0.3")
        # A dual-stack listener sees IPv4 peers as IPv4-mapped addresses.
        self.assertEqual(policy.client_ip("::ffff:127.0.0.1", [b"203.0.113.5"]), "203.0.113.5")

    def test_entry_forms(self) -> None:
        policy = ClientAddress(DEFAULT_TRUSTED_PROXIES)
        for header, expected in (
            (b"203.0.113.5:4711", "203.0.113.5"),
            (b"[2001:db8::5]:4711", "2001:db8::5"),
            (b"2001:db8::5", "2001:db8::5"),
            (b' "[2001:db8::5]" ', "2001:db8::5"),
        ):
            self.assertEqual(policy.client_ip("127.0.0.1", [header]), expected, header)

    def test_garbage_stops_the_chain(self) -> None:
        policy = ClientAddress(DEFAULT_TRUSTED_PROXIES)
        self.assertEqual(policy.client_ip("127.0.0.1", [b"unknown"]), "127.0.0.1")
        self.assertEqual(policy.client_ip("127.0.0.1", [b"203.0.113.5, nonsense, 127.0.0.2"]), "127.0.0.2")
