"""Token-bucket rate limiting per action and requester.

``check`` takes a token or raises 429 ``M_LIMIT_EXCEEDED``. Limits that count only some
outcomes (failed password attempts) peek first with ``check(..., update=False)`` and take
the token afterwards with ``record`` once the outcome is known, as Synapse's
``Ratelimiter.ratelimit(update=False)`` / ``can_do_action`` pair does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

from homeserver.config import RateLimit, RateLimitsConfig
from homeserver.http.errors import LimitExceeded

# Buckets kept at most; beyond it the full (idle) ones are dropped first.
MAX_BUCKETS = 100_000


class RateLimiter:
    def __init__(self, config: RateLimitsConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        # (action, key) -> (tokens, last refill time)
        self._buckets: dict[tuple[str, Hashable], tuple[float, float]] = {}

    def check(self, action: str, key: Hashable, update: bool = True) -> None:
        """Takes one token (none with ``update=False``) or raises M_LIMIT_EXCEEDED with the
        wait until the next one."""
        limit = self._config.get(action)
        if limit is None:
            return
        now = self._clock()
        tokens = self._tokens(action, key, limit, now)
        if tokens < 1.0:
            raise LimitExceeded(int((1.0 - tokens) / limit.per_second * 1000) + 1)
        if update:
            self._store(action, key, tokens - 1.0, now)

    def record(self, action: str, key: Hashable) -> None:
        """Takes one token if there is one, never raising: the outcome being counted (a
        wrong password) has already been answered."""
        limit = self._config.get(action)
        if limit is None:
            return
        now = self._clock()
        tokens = self._tokens(action, key, limit, now)
        if tokens >= 1.0:
            self._store(action, key, tokens - 1.0, now)

    def _tokens(self, action: str, key: Hashable, limit: RateLimit, now: float) -> float:
        tokens, last = self._buckets.get((action, key), (float(limit.burst), now))
        return min(float(limit.burst), tokens + (now - last) * limit.per_second)

    def _store(self, action: str, key: Hashable, tokens: float, now: float) -> None:
        self._buckets[(action, key)] = (tokens, now)
        if len(self._buckets) > MAX_BUCKETS:
            self._prune(now)

    def _prune(self, now: float) -> None:
        """Drops buckets that have refilled (forgetting them changes nothing), then, if
        still too many, the fullest, down to half the maximum. Clearing everything, or the
        oldest, would hand an attacker who creates many keys a fresh budget for the ones
        that matter: the emptiest buckets are kept longest."""
        fullness: dict[tuple[str, Hashable], float] = {}
        for bucket_key, (tokens, last) in self._buckets.items():
            limit = self._config.get(bucket_key[0])
            if limit is None:
                fullness[bucket_key] = 1.0
            else:
                fullness[bucket_key] = min(1.0, (tokens + (now - last) * limit.per_second) / limit.burst)
        for bucket_key, full in fullness.items():
            if full >= 1.0:
                del self._buckets[bucket_key]
        excess = len(self._buckets) - MAX_BUCKETS // 2
        if excess > 0:
            for bucket_key in sorted(self._buckets, key=lambda k: fullness[k], reverse=True)[:excess]:
                del self._buckets[bucket_key]
