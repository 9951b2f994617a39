"""Which IP addresses outbound federation may connect to (``federation.ip_range_blocklist``
minus ``ip_range_allowlist``), so a remote server name cannot point us at internal hosts."""

from __future__ import annotations

import ipaddress
from typing import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class IPFilter:
    def __init__(self, blocklist: Iterable[str], allowlist: Iterable[str] = ()) -> None:
        self.blocked: list[Network] = [ipaddress.ip_network(c, strict=False) for c in blocklist]
        self.allowed: list[Network] = [ipaddress.ip_network(c, strict=False) for c in allowlist]

    def is_allowed(self, ip: str) -> bool:
        addr = ipaddress.ip_address(ip.strip("[]").split("%", 1)[0])
        # An IPv4-mapped IPv6 address is checked as the IPv4 address it is.
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if any(addr in net for net in self.allowed if net.version == addr.version):
            return True
        return not any(addr in net for net in self.blocked if net.version == addr.version)
