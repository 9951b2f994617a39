"""Token-bucket rate limiting per action and requester."""

from __future__ import annotations

import time

from homeserver.config import RateLimitsConfig
from homeserver.http.errors import LimitExceeded


class RateLimiter:
    def __init__(self, config: RateLimitsConfig, clock=time.monotonic) -> None:
        self._config = config
        self._clock = clock
        # (action, key) -> (tokens, last refill time)
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}

    def check(self, action: str, key: str) -> None:
        """Takes one token or raises M_LIMIT_EXCEEDED with the wait until the next one."""
        limit = self._config.get(action)
        if limit is None:
            return
        now = self._clock()
        tokens, last = self._buckets.get((action, key), (float(limit.burst), now))
        tokens = min(float(limit.burst), tokens + (now - last) * limit.per_second)
        if tokens < 1.0:
            retry_after_ms = int((1.0 - tokens) / limit.per_second * 1000) + 1
            self._buckets[(action, key)] = (tokens, now)
            raise LimitExceeded(retry_after_ms)
        self._buckets[(action, key)] = (tokens - 1.0, now)
        if len(self._buckets) > 100_000:
            self._buckets.clear()
