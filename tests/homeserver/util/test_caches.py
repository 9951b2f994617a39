"""The one LRU cache: bounded by entries and by estimated bytes, whatever is put in."""

from __future__ import annotations

from twisted.trial import unittest

from homeserver.util.caches import LruCache


class LruCacheTest(unittest.TestCase):
    def test_entries_stay_at_the_limit(self) -> None:
        cache: LruCache[int, str] = LruCache(100)
        for i in range(10_000):
            cache.put(i, "v")
            self.assertLessEqual(len(cache), 100)
        self.assertEqual(len(cache), 100)
        self.assertEqual(sorted(cache), list(range(9_900, 10_000)))

    def test_bytes_stay_at_the_limit(self) -> None:
        cache: LruCache[int, bytes] = LruCache(1_000_000, max_bytes=10_000, sizeof=len)
        for i in range(5_000):
            cache.put(i, b"x" * (i % 700))
            self.assertLessEqual(cache.total_bytes, 10_000)
        self.assertEqual(cache.total_bytes, sum(len(cache.get(k) or b"") for k in cache))

    def test_a_value_larger_than_the_whole_cache_is_not_kept(self) -> None:
        cache: LruCache[str, bytes] = LruCache(10, max_bytes=100, sizeof=len)
        cache.put("small", b"x" * 10)
        cache.put("huge", b"x" * 1000)
        self.assertNotIn("huge", cache)
        self.assertIn("small", cache)
        self.assertEqual(cache.total_bytes, 10)

    def test_least_recently_used_goes_first(self) -> None:
        cache: LruCache[str, int] = LruCache(2)
        cache.put("a", 1)
        cache.put("b", 2)
        self.assertEqual(cache.fetch("a"), 1)  # a is now the most recent
        cache.put("c", 3)
        self.assertEqual(sorted(cache), ["a", "c"])
        self.assertIsNone(cache.get("b"))

    def test_replacing_and_removing_keep_the_byte_count(self) -> None:
        cache: LruCache[str, bytes] = LruCache(10, max_bytes=1000, sizeof=len)
        cache.put("a", b"x" * 100)
        cache.put("a", b"x" * 300)
        self.assertEqual(cache.total_bytes, 300)
        self.assertEqual(cache.pop("a"), b"x" * 300)
        self.assertEqual(cache.total_bytes, 0)
        cache.put("b", b"xx")
        cache.clear()
        self.assertEqual((len(cache), cache.total_bytes), (0, 0))
