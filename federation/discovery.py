"""Server discovery (spec "Resolving server names"), with cached results.

``delegated_name`` does the ``/.well-known/matrix/server`` step; ``resolve_delegated``
turns the resulting name into addresses to try. Split like Synapse's agent so the
``Host`` header and TLS name are the delegated name while the TCP address may come from
SRV:

1. IP literal (with or without port) → that IP, port or 8448.
2. hostname:port → that host and port.
3. ``https://hostname/.well-known/matrix/server`` → ``m.server`` (a delegated name, which
   goes through steps 1, 2, 4 and 5 itself, never another well-known).
4. SRV ``_matrix-fed._tcp.<host>``, then the deprecated ``_matrix._tcp.<host>``.
5. hostname:8448.

Well-known answers are cached for their Cache-Control max-age (default 24 h, at most
48 h); failures for 1 h. SRV answers for their TTL. The DNS and HTTP look-ups are
injected so tests drive the logic with fakes.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8448
WELL_KNOWN_DEFAULT_CACHE_S = 24 * 3600
WELL_KNOWN_MAX_CACHE_S = 48 * 3600
WELL_KNOWN_MIN_CACHE_S = 60
WELL_KNOWN_FAILURE_CACHE_S = 3600
SRV_DEFAULT_CACHE_S = 3600
MAX_WELL_KNOWN_BYTES = 50 * 1024

# (priority, weight, target, port) records and their TTL in seconds.
SrvLookup = Callable[[str], Awaitable[tuple[list[tuple[int, int, str, int]], int]]]
# (HTTP status or None when unreachable, body, Cache-Control max-age or None)
WellKnownFetch = Callable[[str], Awaitable[tuple[int | None, bytes, int | None]]]


@dataclass(frozen=True)
class Candidate:
    host: str
    port: int


def split_server_name(name: str) -> tuple[str, int | None]:
    """("host", port) of a server name; raises ValueError when it is not valid."""
    m = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)(?::(\d{1,5}))?", name)
    if not m:
        raise ValueError(f"invalid server name {name!r}")
    host, port = m.group(1), m.group(2)
    if host.startswith("["):
        ipaddress.IPv6Address(host[1:-1])  # raises ValueError
    p = int(port) if port is not None else None
    if p is not None and not 0 < p < 65536:
        raise ValueError(f"invalid port in server name {name!r}")
    return host, p


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def parse_cache_control(value: str | None) -> int | None:
    if not value:
        return None
    directives = [d.strip().lower() for d in value.split(",")]
    if "no-store" in directives or "no-cache" in directives:
        return 0
    for d in directives:
        if d.startswith("max-age="):
            try:
                return max(0, int(d[8:]))
            except ValueError:
                return None
    return None


class ServerDiscovery:
    def __init__(self, clock: Callable[[], float], well_known_fetch: WellKnownFetch, srv_lookup: SrvLookup) -> None:
        self._clock = clock
        self._fetch = well_known_fetch
        self._srv = srv_lookup
        self._well_known: dict[str, tuple[str | None, float]] = {}  # host -> (delegated, expires)
        self._srv_cache: dict[str, tuple[list[tuple[int, int, str, int]], float]] = {}

    async def delegated_name(self, server_name: str) -> str:
        host, port = split_server_name(server_name)
        if port is not None or is_ip_literal(host):
            return server_name
        cached = self._well_known.get(host)
        now = self._clock()
        if cached is not None and cached[1] > now:
            return cached[0] or server_name
        delegated, ttl = await self._lookup_well_known(host)
        self._well_known[host] = (delegated, now + ttl)
        return delegated or server_name

    async def _lookup_well_known(self, host: str) -> tuple[str | None, float]:
        try:
            status, body, max_age = await self._fetch(host)
        except Exception as e:  # any failure means "no delegation", like Synapse
            logger.info("well-known lookup for %s failed: %s", host, e)
            return None, WELL_KNOWN_FAILURE_CACHE_S
        if status != 200:
            return None, WELL_KNOWN_FAILURE_CACHE_S
        try:
            parsed: Any = json.loads(body[:MAX_WELL_KNOWN_BYTES])
            delegated = parsed["m.server"]
            if not isinstance(delegated, str):
                raise ValueError("m.server is not a string")
            split_server_name(delegated)
        except (ValueError, KeyError, TypeError) as e:
            logger.info("invalid well-known from %s: %s", host, e)
            return None, WELL_KNOWN_FAILURE_CACHE_S
        ttl: float = WELL_KNOWN_DEFAULT_CACHE_S if max_age is None else max_age
        ttl = min(max(ttl, WELL_KNOWN_MIN_CACHE_S), WELL_KNOWN_MAX_CACHE_S)
        # Spread refreshes so many cached entries do not all expire at once.
        ttl *= random.uniform(0.9, 1.0)
        return delegated, ttl

    async def resolve_delegated(self, name: str) -> list[Candidate]:
        """Addresses to try, in order, for a (possibly delegated) server name."""
        host, port = split_server_name(name)
        if is_ip_literal(host):
            return [Candidate(host.strip("[]"), port or DEFAULT_PORT)]
        if port is not None:
            return [Candidate(host, port)]
        for prefix in ("_matrix-fed._tcp.", "_matrix._tcp."):
            records = await self._cached_srv(prefix + host)
            if records:
                return [Candidate(target, p) for _, _, target, p in records]
        return [Candidate(host, DEFAULT_PORT)]

    async def _cached_srv(self, name: str) -> list[tuple[int, int, str, int]]:
        now = self._clock()
        cached = self._srv_cache.get(name)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            records, ttl = await self._srv(name)
        except Exception as e:
            logger.debug("SRV lookup for %s failed: %s", name, e)
            records, ttl = [], SRV_DEFAULT_CACHE_S // 6
        # "." as target means "no service here" (RFC 2782).
        records = [r for r in records if r[2] and r[2] != "."]
        records.sort(key=lambda r: (r[0], -r[1]))
        self._srv_cache[name] = (records, now + max(ttl, 30))
        return records

    async def resolve(self, server_name: str) -> tuple[str, list[Candidate]]:
        """(name for Host/TLS, candidates): the whole algorithm in one call."""
        delegated = await self.delegated_name(server_name)
        return delegated, await self.resolve_delegated(delegated)


async def twisted_srv_lookup(name: str) -> tuple[list[tuple[int, int, str, int]], int]:
    """SRV records via twisted.names (system resolver configuration)."""
    from twisted.names import client, dns, error

    try:
        # Short timeouts: a missing SRV record must not hold a request for a minute.
        answers, _, _ = await client.lookupService(name, timeout=(2, 5))
    except (error.DNSNameError, error.DomainError):
        return [], SRV_DEFAULT_CACHE_S
    records = []
    ttl = SRV_DEFAULT_CACHE_S
    for rr in answers:
        if rr.type == dns.SRV and rr.payload:
            p = rr.payload
            records.append((p.priority, p.weight, str(p.target).rstrip("."), p.port))
            ttl = min(ttl, rr.ttl)
    return records, ttl
