"""Where each session is used from: the client IP and user agent of every authenticated
request, kept per (user, access token, IP) with when it was last seen (Synapse's
``user_ips``), and ``/admin/whois`` over it.

Writes are coalesced as Synapse coalesces them: a (user, token, IP) is written at most
once per ``LAST_SEEN_GRANULARITY``, and forgotten ``MAX_AGE`` after it was last seen. What
was recorded but may not be stored yet is kept in memory and laid over the stored rows
when read, so whois shows the request that asked.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from homeserver.util.ids import now_ms

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester

logger = logging.getLogger(__name__)

LAST_SEEN_GRANULARITY = 120_000  # ms, Synapse's
# Connections are forgotten after this long (Synapse's user_ips_max_age default), checked
# at most once per PRUNE_INTERVAL.
MAX_AGE = 28 * 24 * 3600 * 1000
PRUNE_INTERVAL = 3600 * 1000
# Past this many remembered keys, those whose write is long done are forgotten.
_MAX_REMEMBERED = 50_000


class ClientIpRecorder:
    def __init__(self, hs: HomeServer) -> None:
        self.store = hs.store
        # (user, token hash, ip) -> (user agent, last seen)
        self._recent: dict[tuple[str, str, str], tuple[str, int]] = {}
        self._pruned_at = 0

    def record(self, requester: Requester, user_agent: str) -> None:
        ip = requester.client_ip
        if not ip:
            return
        key = (requester.user_id, requester.token_hash, ip)
        ts = now_ms()
        previous = self._recent.get(key)
        if previous is not None and ts - previous[1] < LAST_SEEN_GRANULARITY:
            return
        self._recent[key] = (user_agent, ts)
        if len(self._recent) > _MAX_REMEMBERED:
            self._forget_written(ts)
        d = defer.ensureDeferred(
            self.store.record_client_ip(requester.user_id, requester.token_hash, requester.device_id, ip, user_agent, ts)
        )
        d.addErrback(lambda f: logger.warning("recording the client IP failed: %s", f.value))
        if ts - self._pruned_at >= PRUNE_INTERVAL:
            self._pruned_at = ts
            p = defer.ensureDeferred(self.store.prune_client_ips(ts - MAX_AGE))
            p.addErrback(lambda f: logger.warning("forgetting old client IPs failed: %s", f.value))

    def _forget_written(self, now: int) -> None:
        for key, (_, ts) in list(self._recent.items()):
            if now - ts >= LAST_SEEN_GRANULARITY:
                del self._recent[key]

    async def whois(self, user_id: str) -> dict[str, Any]:
        """Synapse's answer, which puts every connection of the user into one session of
        one device named "" (the spec has a device per key and a session per login; the
        admin tools that read this, e.g. synapse-admin, read ``devices[""]``)."""
        by_key: dict[tuple[str, str], dict[str, Any]] = {}
        for c in await self.store.get_user_connections(user_id):
            by_key[(c.token_hash, c.ip)] = {"ip": c.ip, "last_seen": c.last_seen, "user_agent": c.user_agent}
        for (uid, token_hash, ip), (user_agent, ts) in list(self._recent.items()):
            if uid == user_id:
                by_key[(token_hash, ip)] = {"ip": ip, "last_seen": ts, "user_agent": user_agent}
        return {"user_id": user_id, "devices": {"": {"sessions": [{"connections": list(by_key.values())}]}}}
