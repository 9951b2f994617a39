"""The client's IP address behind a reverse proxy (a listener's ``x_forwarded`` and
``trusted_proxies``).

Each proxy appends the address it received the request from to ``X-Forwarded-For``, so
the list is only as trustworthy as the proxy that wrote each entry. Starting from the TCP
peer, every address that is a trusted proxy hands over to the entry it appended; the first
address that is not a trusted proxy is the client (the right-most untrusted entry). A peer
that is not a trusted proxy is the client whatever headers it sends. Synapse trusts the
left-most entry from any peer of an ``x_forwarded`` listener; this is stricter, since the
left-most entry is whatever the client chose to write.
"""

from __future__ import annotations

from collections.abc import Iterable

from homeserver.config import ListenerConfig
from homeserver.util.ip_filter import Address, IPRanges, parse_ip


def _parse_hop(text: str) -> Address | None:
    """An X-Forwarded-For entry: ``1.2.3.4``, ``1.2.3.4:5678``, ``::1``, ``[::1]:5678``."""
    text = text.strip().strip('"')
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    return parse_ip(text)


class ClientAddress:
    """Finds the client's address on one listener."""

    def __init__(self, trusted_proxies: Iterable[str]) -> None:
        self._trusted = IPRanges(trusted_proxies)

    def client_ip(self, peer: str, forwarded_for: Iterable[bytes]) -> str:
        peer_addr = parse_ip(peer)
        if peer_addr is None or peer_addr not in self._trusted:
            return peer
        hops = [hop for header in forwarded_for for hop in header.decode("latin-1").split(",")]
        client = peer
        for hop in reversed(hops):
            addr = _parse_hop(hop)
            if addr is None:
                break  # not an address: the proxy before it is as far as the chain can be trusted
            client = str(addr)
            if addr not in self._trusted:
                break
        return client


def listener_client_address(listener: ListenerConfig) -> ClientAddress | None:
    """The policy of an ``x_forwarded`` listener; None (the TCP peer) otherwise."""
    return ClientAddress(listener.trusted_proxies) if listener.x_forwarded else None
