"""The revocation list: sessions whose JWT access tokens must be refused although their
signature is good and they have not expired yet.

One process: the in-memory set is authoritative. Every revocation is written to the
``revoked_sessions`` table first (in the same transaction that ends the session), then
added here, before the request that revoked it is answered: from that moment no request
to this process gets through with those tokens.

Several processes on one database: each loads the table at start; a revocation made in
one process reaches the others through Redis pub/sub when ``redis`` is configured (each
process re-reads the table when its Redis connection is (re)established, so nothing
published while it was disconnected is missed). Without Redis, other processes would only
see it at their next start: run one process, or configure Redis.

An entry is kept until every access token of the session has expired (``keep_until``),
so the list stays small: it holds the sessions ended in the last access-token lifetime.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer

if TYPE_CHECKING:
    from homeserver.storage import DataStore

logger = logging.getLogger(__name__)

CHANNEL = "wspr.revoked_sessions"


class RevocationList:
    def __init__(self, store: DataStore, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        # session_id -> keep_until (ms)
        self._revoked: dict[str, int] = {}
        self._next_prune = 0.0
        # Called with the session ids whenever sessions are revoked (locally or elsewhere):
        # caches keyed by session drop them.
        self.listeners: list[Callable[[list[str]], None]] = []
        self._redis: Any = None

    def __contains__(self, session_id: str) -> bool:
        keep_until = self._revoked.get(session_id)
        if keep_until is None:
            return False
        if keep_until <= self._clock() * 1000:
            del self._revoked[session_id]
            return False
        return True

    def __len__(self) -> int:
        return len(self._revoked)

    async def load(self) -> None:
        """Reads every entry still kept from the database."""
        for sid, _revoked_ts, keep_until in await self._store.get_revoked_sessions(0):
            self._revoked[sid] = keep_until

    def add(self, session_ids: list[str] | tuple[str, ...], keep_until_ms: int, publish: bool = True) -> None:
        """Records sessions the database already marks as revoked."""
        if not session_ids:
            return
        for sid in session_ids:
            self._revoked[sid] = max(keep_until_ms, self._revoked.get(sid, 0))
        for listener in self.listeners:
            listener(list(session_ids))
        if publish and self._redis is not None:
            message = json.dumps({"sessions": list(session_ids), "keep_until": keep_until_ms})
            d = defer.maybeDeferred(self._redis.publish, CHANNEL, message)
            d.addErrback(lambda f: logger.warning("publishing a revocation to Redis failed: %s", f.value))
        self._maybe_prune()

    def _maybe_prune(self) -> None:
        now = self._clock()
        if now < self._next_prune:
            return
        self._next_prune = now + 60
        cutoff = now * 1000
        for sid in [s for s, until in self._revoked.items() if until <= cutoff]:
            del self._revoked[sid]
        d = defer.ensureDeferred(self._store.prune_revoked_sessions(int(cutoff)))
        d.addErrback(lambda f: logger.warning("pruning the revocation list failed: %s", f.value))

    # -- Redis fan-out ---------------------------------------------------------

    def attach_redis(self, publisher: Any) -> None:
        """``publisher.publish(channel, message)`` sends to the other processes."""
        self._redis = publisher

    def on_redis_message(self, message: str) -> None:
        try:
            data = json.loads(message)
            sessions = [str(s) for s in data["sessions"]]
            keep_until = int(data["keep_until"])
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring a malformed revocation message")
            return
        self.add(sessions, keep_until, publish=False)
