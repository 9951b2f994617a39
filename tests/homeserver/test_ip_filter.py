"""The outbound IP range filter shared by federation, the push gateway and other outbound
fetches: the default blocklist is Synapse's (with its always-blocked ``0.0.0.0`` and ``::``
and the IPv4 ranges' IPv6 embeddings) plus the NAT64 prefixes."""

from __future__ import annotations

from twisted.trial import unittest

from homeserver.util.ip_filter import DEFAULT_IP_RANGE_BLOCKLIST, IPFilter

# Addresses on both sides of every default range, in every IPv6 form of an IPv4 address.
PROBES = [
    "0.0.0.0", "0.1.2.3", "1.1.1.1", "8.8.8.8", "9.255.255.255", "10.0.0.1", "11.0.0.1", "100.64.0.1", "100.128.0.1",
    "127.0.0.1", "127.255.255.254", "169.254.1.1", "172.16.0.1", "172.31.255.255", "172.32.0.1", "192.0.0.1",
    "192.0.2.1", "192.88.99.1", "192.168.1.1", "198.18.0.1", "198.51.100.1", "203.0.113.9", "224.0.0.1",
    "239.255.255.255", "240.0.0.1", "255.255.255.255",
    "::", "::1", "::2", "fe80::1", "febf::1", "fec0::1", "fc00::1", "fdff::1", "ff02::1", "2001:db8::1",
    "2001:4860::8888", "2a00:1450::1", "2606:4700::1111",
]


def _ipv6_forms(ip: str) -> list[str]:
    if ":" in ip:
        return [ip]
    a, b, c, d = (int(x) for x in ip.split("."))
    return [ip, f"::ffff:{ip}", f"::{ip}", f"2002:{a:02x}{b:02x}:{c:02x}{d:02x}::1"]


class IPFilterTest(unittest.TestCase):
    def test_default_blocklist(self) -> None:
        f = IPFilter(DEFAULT_IP_RANGE_BLOCKLIST)
        for ip in ("127.0.0.1", "10.1.2.3", "192.168.0.1", "::1", "fe80::1", "::ffff:127.0.0.1", "169.254.1.1"):
            self.assertFalse(f.is_allowed(ip), ip)
        for ip in ("8.8.8.8", "2001:4860::8888", "[2a00:1450::1]"):
            self.assertTrue(f.is_allowed(ip), ip)

    def test_unspecified_and_nat64_blocked(self) -> None:
        f = IPFilter(DEFAULT_IP_RANGE_BLOCKLIST)
        # NAT64 (RFC 6052 well-known prefix, RFC 8215 local-use prefix) reaches IPv4 hosts,
        # loopback included, through the gateway.
        for ip in ("::", "[::]", "0.0.0.0", "64:ff9b::1", "64:ff9b::7f00:1", "64:ff9b::808:808", "64:ff9b:1::a00:1"):
            self.assertFalse(f.is_allowed(ip), ip)
        # 0.0.0.0 and :: stay blocked whatever the operator's list says, as in Synapse.
        self.assertFalse(IPFilter([]).is_allowed("::"))
        self.assertFalse(IPFilter([]).is_allowed("0.0.0.0"))
        self.assertTrue(IPFilter([]).is_allowed("127.0.0.1"))

    def test_ipv4_embedded_in_ipv6(self) -> None:
        f = IPFilter(DEFAULT_IP_RANGE_BLOCKLIST)
        for ip in _ipv6_forms("127.0.0.1") + _ipv6_forms("10.0.0.1"):
            self.assertFalse(f.is_allowed(ip), ip)
        for ip in _ipv6_forms("8.8.8.8"):
            self.assertTrue(f.is_allowed(ip), ip)

    def test_allowlist_overrides(self) -> None:
        f = IPFilter(DEFAULT_IP_RANGE_BLOCKLIST, ["127.0.0.0/8"])
        self.assertTrue(f.is_allowed("127.0.0.1"))
        self.assertTrue(f.is_allowed("::ffff:127.0.0.1"))
        self.assertFalse(f.is_allowed("10.0.0.1"))
        self.assertTrue(IPFilter([]).is_allowed("127.0.0.1"))

    def test_matches_synapse(self) -> None:
        """Everything Synapse's default blocks, WSPR blocks; WSPR blocks more only in its
        additions (0.0.0.0/8 and the NAT64 prefixes)."""
        from synapse.config.server import DEFAULT_IP_RANGE_BLOCKLIST as SYNAPSE_DEFAULT
        from synapse.config.server import generate_ip_set

        synapse_blocked = generate_ip_set(SYNAPSE_DEFAULT, ["0.0.0.0", "::"])
        f = IPFilter(DEFAULT_IP_RANGE_BLOCKLIST)
        extras = IPFilter(["0.0.0.0/8", "64:ff9b::/96", "64:ff9b:1::/48"])
        for probe in PROBES:
            for ip in _ipv6_forms(probe):
                theirs = ip in synapse_blocked
                self.assertEqual(not f.is_allowed(ip), theirs or not extras.is_allowed(ip), ip)
        for cidr in SYNAPSE_DEFAULT:
            self.assertIn(cidr, DEFAULT_IP_RANGE_BLOCKLIST)

    def test_garbage_is_not_allowed(self) -> None:
        f = IPFilter([])
        for bad in ("", "not-an-ip", "1.2.3", "[::1"):
            self.assertFalse(f.is_allowed(bad), bad)
