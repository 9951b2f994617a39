"""Pure pieces of federation: X-Matrix headers, server ACLs, discovery (the IP filter is in
tests/homeserver/test_ip_filter.py)."""

from __future__ import annotations

import json

from twisted.trial import unittest

from federation.discovery import Candidate, ServerDiscovery, parse_cache_control, split_server_name
from federation.server_acl import server_acl_allows
from federation.transport.xmatrix import parse_auth_header, request_json, sign_request
from homeserver.protocol.signing import SignatureError, generate_signing_key, get_verify_key, verify_json


class XMatrixTest(unittest.TestCase):
    def test_round_trip(self) -> None:
        key = generate_signing_key("k1")
        header = sign_request(key, "a.example", "b.example", "PUT", "/_matrix/federation/v1/send/1?x=%20y", {"pdus": []})
        self.assertTrue(header.startswith('X-Matrix origin="a.example",key="ed25519:k1",sig="'))
        auth = parse_auth_header(header)
        self.assertEqual((auth.origin, auth.key, auth.destination), ("a.example", "ed25519:k1", "b.example"))
        signed = request_json("PUT", "/_matrix/federation/v1/send/1?x=%20y", "a.example", "b.example", {"pdus": []})
        signed["signatures"] = {"a.example": {auth.key: auth.sig}}
        verify_json(signed, "a.example", get_verify_key(key))
        # any change of method, uri, destination or body breaks it
        for field, value in (("method", "GET"), ("uri", "/other"), ("destination", "c.example"), ("content", {})):
            tampered = dict(signed, **{field: value})
            with self.assertRaises(SignatureError):
                verify_json(tampered, "a.example", get_verify_key(key))

    def test_synapse_parses_our_header(self) -> None:
        from synapse.federation.transport.server._base import _parse_auth_header

        header = sign_request(generate_signing_key("k1"), "127.0.0.1:8448", "[::1]:8448", "GET", "/x")
        origin, key, sig, destination = _parse_auth_header(header.encode())
        self.assertEqual((origin, key, destination), ("127.0.0.1:8448", "ed25519:k1", "[::1]:8448"))
        self.assertEqual(sig, parse_auth_header(header).sig)

    def test_parse_variants(self) -> None:
        auth = parse_auth_header('x-matrix origin=a.org ,key="ed25519:1", sig="abc",destination="b:1"')
        self.assertEqual((auth.origin, auth.key, auth.sig, auth.destination), ("a.org", "ed25519:1", "abc", "b:1"))
        self.assertIsNone(parse_auth_header('X-Matrix origin="a",key="ed25519:1",sig="s"').destination)
        for bad in ("Bearer abc", "X-Matrix", 'X-Matrix origin="a",key="k"', 'X-Matrix origin="a" key="k" sig="s"'):
            with self.assertRaises(ValueError, msg=bad):
                parse_auth_header(bad)


class ServerAclTest(unittest.TestCase):
    def test_rules(self) -> None:
        acl = {"allow": ["*"], "deny": ["evil.com", "*.evil.com", "1.2.3.4"], "allow_ip_literals": True}
        self.assertTrue(server_acl_allows(acl, "good.org"))
        self.assertTrue(server_acl_allows(acl, "good.org:8448"))
        self.assertFalse(server_acl_allows(acl, "evil.com"))
        self.assertFalse(server_acl_allows(acl, "EVIL.com:443"))
        self.assertFalse(server_acl_allows(acl, "sub.evil.com"))
        self.assertTrue(server_acl_allows(acl, "notevil.com"))
        self.assertFalse(server_acl_allows(acl, "1.2.3.4:8448"))

    def test_ip_literals_and_defaults(self) -> None:
        acl = {"allow": ["*"], "allow_ip_literals": False}
        self.assertFalse(server_acl_allows(acl, "127.0.0.1:8448"))
        self.assertFalse(server_acl_allows(acl, "[::1]:8448"))
        self.assertTrue(server_acl_allows(acl, "example.org"))
        # no allow list: nobody; no ACL: everybody
        self.assertFalse(server_acl_allows({"deny": []}, "example.org"))
        self.assertTrue(server_acl_allows(None, "example.org"))
        # ? matches one character; non-string entries are ignored
        self.assertTrue(server_acl_allows({"allow": ["h?st.org", 5]}, "host.org"))
        self.assertFalse(server_acl_allows({"allow": ["h?st.org"]}, "hoost.org"))
        # a bad allow_ip_literals value means the default (allowed)
        self.assertTrue(server_acl_allows({"allow": ["*"], "allow_ip_literals": "no"}, "10.0.0.1"))

    def test_matches_synapse(self) -> None:
        from synapse.events import make_event_from_dict
        from synapse.storage.controllers.state import server_acl_evaluator_from_event
        from synapse.util.stringutils import parse_server_name

        cases = [
            {"allow": ["*"], "deny": ["*.bad.org"]},
            {"allow": ["good.org", "*.good.org"], "allow_ip_literals": False},
            {"allow": ["*"], "deny": ["bad?.org", 7], "allow_ip_literals": True},
            {"allow": "*", "deny": ["*"]},
            {"allow": ["*"], "allow_ip_literals": "false"},
            {"allow": ["GOOD.org"]},
        ]
        names = ["good.org", "a.good.org:8448", "x.bad.org", "bad1.org", "bad12.org", "10.0.0.1:80", "[::1]:8448", "Good.Org"]
        for content in cases:
            ev = make_event_from_dict(
                {"type": "m.room.server_acl", "state_key": "", "content": content, "room_id": "!r:x", "sender": "@u:x",
                 "event_id": "$e", "auth_events": [], "prev_events": [], "depth": 1, "origin_server_ts": 0,
                 "hashes": {}, "signatures": {}}
            )
            evaluator = server_acl_evaluator_from_event(ev)
            for name in names:
                expected = evaluator.server_matches_acl_event(parse_server_name(name)[0])
                self.assertEqual(server_acl_allows(content, name), expected, (content, name))


class FakeDNS:
    def __init__(self) -> None:
        self.well_known: dict[str, tuple[int | None, bytes, int | None]] = {}
        self.srv: dict[str, list[tuple[int, int, str, int]]] = {}
        self.calls: list[str] = []
        self.now = 1000.0

    async def fetch(self, host: str) -> tuple[int | None, bytes, int | None]:
        self.calls.append("wk:" + host)
        if host not in self.well_known:
            raise ConnectionRefusedError("no https")
        return self.well_known[host]

    async def lookup(self, name: str) -> tuple[list[tuple[int, int, str, int]], int]:
        self.calls.append("srv:" + name)
        return list(self.srv.get(name, [])), 300

    def discovery(self) -> ServerDiscovery:
        return ServerDiscovery(lambda: self.now, self.fetch, self.lookup)


class DiscoveryTest(unittest.TestCase):
    async def test_ip_literals_and_explicit_ports(self) -> None:
        dns = FakeDNS()
        d = dns.discovery()
        self.assertEqual(await d.resolve("1.2.3.4"), ("1.2.3.4", [Candidate("1.2.3.4", 8448)]))
        self.assertEqual(await d.resolve("[::1]:9000"), ("[::1]:9000", [Candidate("::1", 9000)]))
        self.assertEqual(await d.resolve("example.org:1234"), ("example.org:1234", [Candidate("example.org", 1234)]))
        self.assertEqual(dns.calls, [])  # no well-known, no SRV

    async def test_well_known_delegation(self) -> None:
        dns = FakeDNS()
        dns.well_known["example.org"] = (200, json.dumps({"m.server": "matrix.example.org"}).encode(), None)
        dns.srv["_matrix-fed._tcp.matrix.example.org"] = [(10, 0, "b.example.net", 8449), (5, 0, "a.example.net", 443)]
        d = dns.discovery()
        name, cands = await d.resolve("example.org")
        self.assertEqual(name, "matrix.example.org")
        self.assertEqual(cands, [Candidate("a.example.net", 443), Candidate("b.example.net", 8449)])
        # delegated with a port: direct, no SRV
        dns.well_known["other.org"] = (200, b'{"m.server": "m.other.org:8008"}', 600)
        self.assertEqual(await d.resolve("other.org"), ("m.other.org:8008", [Candidate("m.other.org", 8008)]))
        self.assertNotIn("srv:_matrix-fed._tcp.m.other.org", dns.calls)

    async def test_srv_fallbacks(self) -> None:
        dns = FakeDNS()
        d = dns.discovery()
        dns.srv["_matrix._tcp.legacy.org"] = [(0, 0, "old.legacy.org", 8443)]
        self.assertEqual(await d.resolve("legacy.org"), ("legacy.org", [Candidate("old.legacy.org", 8443)]))
        self.assertEqual(
            dns.calls, ["wk:legacy.org", "srv:_matrix-fed._tcp.legacy.org", "srv:_matrix._tcp.legacy.org"]
        )
        self.assertEqual(await d.resolve("plain.org"), ("plain.org", [Candidate("plain.org", 8448)]))
        # "." target means no service
        dns.srv["_matrix-fed._tcp.none.org"] = [(0, 0, ".", 0)]
        self.assertEqual(await d.resolve("none.org"), ("none.org", [Candidate("none.org", 8448)]))

    async def test_invalid_well_known_is_ignored(self) -> None:
        dns = FakeDNS()
        d = dns.discovery()
        for host, answer in {
            "a.org": (404, b"", None),
            "b.org": (200, b"not json", None),
            "c.org": (200, b'{"m.server": 5}', None),
            "d.org": (200, b'{"m.server": "bad name!"}', None),
        }.items():
            dns.well_known[host] = answer
            self.assertEqual(await d.resolve(host), (host, [Candidate(host, 8448)]))

    async def test_caching_with_lifetimes(self) -> None:
        dns = FakeDNS()
        dns.well_known["example.org"] = (200, b'{"m.server": "m.example.org:443"}', 3600)
        d = dns.discovery()
        await d.resolve("example.org")
        await d.resolve("example.org")
        self.assertEqual(dns.calls.count("wk:example.org"), 1)
        dns.now += 3601
        dns.well_known["example.org"] = (200, b'{"m.server": "new.example.org:443"}', 3600)
        self.assertEqual((await d.resolve("example.org"))[0], "new.example.org:443")
        self.assertEqual(dns.calls.count("wk:example.org"), 2)
        # failures are cached for an hour
        await d.resolve("down.org")
        await d.resolve("down.org")
        self.assertEqual(dns.calls.count("wk:down.org"), 1)
        dns.now += 3601
        await d.resolve("down.org")
        self.assertEqual(dns.calls.count("wk:down.org"), 2)
        # SRV answers are cached for their TTL
        self.assertEqual(dns.calls.count("srv:_matrix-fed._tcp.down.org"), 2)

    def test_helpers(self) -> None:
        self.assertEqual(split_server_name("[::1]:80"), ("[::1]", 80))
        for bad in ("a b", "host:99999", "[zz]:1", ""):
            with self.assertRaises(ValueError):
                split_server_name(bad)
        self.assertEqual(parse_cache_control("public, max-age=600"), 600)
        self.assertEqual(parse_cache_control("no-store"), 0)
        self.assertIsNone(parse_cache_control(None))


class OriginLimiterTest(unittest.TestCase):
    async def test_concurrency_and_overflow(self) -> None:
        from twisted.internet import defer

        from federation.transport.server import OriginLimiter
        from homeserver.http.errors import MatrixError

        limiter = OriginLimiter()
        limiter.MAX_CONCURRENT, limiter.MAX_WAITING = 2, 1
        gates = [defer.Deferred() for _ in range(3)]
        running: list[int] = []

        def job(i: int):
            async def fn() -> int:
                running.append(i)
                await gates[i]
                return i

            return fn

        calls = [defer.ensureDeferred(limiter.run("a.example", job(i))) for i in range(3)]
        self.assertEqual(running, [0, 1])  # the third waits
        with self.assertRaises(MatrixError) as cm:
            await limiter.run("a.example", job(0))
        self.assertEqual(cm.exception.errcode, "M_LIMIT_EXCEEDED")
        # another origin is not affected
        other = defer.Deferred()
        d = defer.ensureDeferred(limiter.run("b.example", lambda: other))
        other.callback("ok")
        self.assertEqual(await d, "ok")
        for g in gates:
            g.callback(None)
        self.assertEqual(await defer.gatherResults(calls), [0, 1, 2])
        self.assertEqual(limiter._sems, {})
