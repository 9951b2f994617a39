"""The token buckets: peeking without charging, charging only outcomes, and a bounded
number of buckets that never hands an attacker a fresh budget."""

from __future__ import annotations

from twisted.trial import unittest

from homeserver import ratelimit
from homeserver.config import RateLimit, RateLimitsConfig
from homeserver.http.errors import MatrixError
from homeserver.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class RateLimiterTest(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        config = RateLimitsConfig(login_failed_attempts=RateLimit(per_second=0.5, burst=3))
        self.limiter = RateLimiter(config, self.clock)

    def test_peek_and_record(self) -> None:
        key = ("@bob:x", "203.0.113.1")
        for _ in range(10):
            self.limiter.check("login_failed_attempts", key, update=False)  # peeking is free
        for _ in range(3):
            self.limiter.record("login_failed_attempts", key)
        with self.assertRaises(MatrixError) as cm:
            self.limiter.check("login_failed_attempts", key, update=False)
        self.assertEqual(cm.exception.code, 429)
        self.assertEqual(cm.exception.extra["retry_after_ms"], 2001)
        self.assertEqual(cm.exception.headers["Retry-After"], "3")
        # Another address, or another account, is untouched.
        self.limiter.check("login_failed_attempts", ("@bob:x", "198.51.100.1"), update=False)
        self.limiter.check("login_failed_attempts", ("@alice:x", "203.0.113.1"), update=False)
        # Recording past the limit never raises, and the bucket refills with time.
        self.limiter.record("login_failed_attempts", key)
        self.clock.now += 2.0
        self.limiter.check("login_failed_attempts", key, update=False)

    def test_pruning_keeps_the_buckets_that_matter(self) -> None:
        self.patch(ratelimit, "MAX_BUCKETS", 20)
        target = ("@bob:x", "203.0.113.1")
        for _ in range(3):
            self.limiter.record("login_failed_attempts", target)
        # Many other keys, most refilled by the time the table overflows.
        for i in range(30):
            self.limiter.record("login_failed_attempts", ("@bob:x", f"10.0.0.{i}"))
            self.clock.now += 0.01
        with self.assertRaises(MatrixError):
            self.limiter.check("login_failed_attempts", target, update=False)
        self.assertLessEqual(len(self.limiter._buckets), 20)
