"""IP address ranges: which addresses outbound requests may go to (federation, push
gateways, remote media, URL previews), and which peers are trusted proxies.

The default blocklist is Synapse's ``DEFAULT_IP_RANGE_BLOCKLIST`` (``synapse/config/server.py``)
with Synapse's extras: ``0.0.0.0`` and ``::`` are always blocked, and an IPv4 range also
covers the IPv6 forms of its addresses (IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible
``::a.b.c.d``, 6to4 ``2002:AABB:CCDD::/48``). WSPR blocks more than Synapse in two places:
all of ``0.0.0.0/8`` ("this network") and the NAT64 prefixes, through which an IPv6-only
host reaches any IPv4 address (loopback and private ranges included) via the gateway.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_IP_RANGE_BLOCKLIST: tuple[str, ...] = (
    # Loopback.
    "127.0.0.0/8",
    # Private networks.
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    # Carrier-grade NAT.
    "100.64.0.0/10",
    # IETF protocol assignments.
    "192.0.0.0/24",
    # Link-local.
    "169.254.0.0/16",
    # Formerly the 6to4 relay anycast.
    "192.88.99.0/24",
    # Benchmarking and documentation.
    "198.18.0.0/15",
    "192.0.2.0/24",
    "198.51.100.0/24",
    "203.0.113.0/24",
    # Multicast.
    "224.0.0.0/4",
    # "This network" (Synapse blocks only 0.0.0.0 itself).
    "0.0.0.0/8",
    # IPv6 loopback, link-local, unique local, documentation, multicast, site-local.
    "::1/128",
    "fe80::/10",
    "fc00::/7",
    "2001:db8::/32",
    "ff00::/8",
    "fec0::/10",
    # NAT64: the well-known prefix (RFC 6052) and the local-use prefix (RFC 8215). Not in
    # Synapse's list.
    "64:ff9b::/96",
    "64:ff9b:1::/48",
)

# Blocked whatever the configured list says (as Synapse does): connecting to the
# unspecified address reaches the local host.
ALWAYS_BLOCKED: tuple[str, ...] = ("0.0.0.0/32", "::/128")

# Trusted proxies when a listener has `x_forwarded: true` and names none: a reverse proxy
# on the same machine.
DEFAULT_TRUSTED_PROXIES: tuple[str, ...] = ("127.0.0.0/8", "::1/128")

_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")


def parse_ip(text: str) -> Address | None:
    """An address from ``1.2.3.4``, ``::1``, ``[::1]`` or ``fe80::1%eth0``; None if it is none."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, in the forms Synapse's blocklist covers."""
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr in _SIX_TO_FOUR:
        return addr.sixtofour
    if int(addr) >> 32 == 0 and int(addr) > 1:  # IPv4-compatible ::a.b.c.d (not :: or ::1)
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


class IPRanges:
    """A set of CIDR ranges; an IPv6 address that embeds an IPv4 address is in the set
    when either form is."""

    def __init__(self, cidrs: Iterable[str]) -> None:
        self.networks: list[Network] = [ipaddress.ip_network(c, strict=False) for c in cidrs]

    def __contains__(self, addr: Address) -> bool:
        candidates: list[Address] = [addr]
        if isinstance(addr, ipaddress.IPv6Address):
            v4 = _embedded_ipv4(addr)
            if v4 is not None:
                candidates.append(v4)
        return any(a in net for a in candidates for net in self.networks if net.version == a.version)


class IPFilter:
    """``blocklist`` minus ``allowlist`` (plus ALWAYS_BLOCKED), so a remote name cannot point
    an outbound request at internal hosts."""

    def __init__(self, blocklist: Iterable[str], allowlist: Iterable[str] = ()) -> None:
        self.blocked = IPRanges([*blocklist, *ALWAYS_BLOCKED])
        self.allowed = IPRanges(allowlist)
        self._always = IPRanges(ALWAYS_BLOCKED)

    def is_allowed(self, ip: str) -> bool:
        addr = parse_ip(ip)
        if addr is None or addr in self._always:
            return False
        if addr in self.allowed:
            return True
        return addr not in self.blocked
