"""/metrics on its own listener, and the PWA served at / with cache headers a service
worker needs, precompressed (brotli, gzip) for clients that accept it."""

from __future__ import annotations

import gzip
import os
import tempfile

import treq
from twisted.internet import reactor
from twisted.trial import unittest
from twisted.web.client import Agent, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers

from tests.support.wspr import MatrixClient, start_homeserver


async def _get(url: str) -> tuple[int, dict[str, list[str]], bytes]:
    resp = await treq.get(url.encode(), pool=HTTPConnectionPool(reactor, persistent=False))
    body = await resp.content()
    return resp.code, {k.decode().lower(): [v.decode() for v in vs] for k, vs in resp.headers.getAllRawHeaders()}, body


async def _raw(method: bytes, url: str, accept_encoding: str | None) -> tuple[int, dict[str, list[str]], bytes]:
    """A request with exactly the Accept-Encoding given (treq would add and decode gzip itself)."""
    headers = Headers({b"Accept-Encoding": [accept_encoding.encode()]} if accept_encoding is not None else {})
    agent = Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))
    resp = await agent.request(method, url.encode(), headers)
    body = await readBody(resp)
    got = {k.decode().lower(): [v.decode() for v in vs] for k, vs in resp.headers.getAllRawHeaders()}
    if isinstance(resp.length, int) and "content-length" not in got:
        got["content-length"] = [str(resp.length)]  # Twisted's client moves it out of a GET's headers
    return resp.code, got, body


class MetricsTest(unittest.TestCase):
    async def test_metrics_listener(self) -> None:
        server = await start_homeserver(self, listeners={"metrics": {"enabled": True, "port": 0, "bind_address": "127.0.0.1"}})
        alice = await MatrixClient.register(server.base_url, "alice")
        rid = (await alice.post("/createRoom", {}))["room_id"]
        await alice.send_message(rid, "counted")
        await alice.sync()
        port = server.hs.listening_ports[-1].getHost().port
        code, _, body = await _get(f"http://127.0.0.1:{port}/metrics")
        self.assertEqual(code, 200)
        text = body.decode()
        for name in ("wspr_http_requests_total", "wspr_http_request_seconds_bucket", "wspr_db_transaction_seconds", "wspr_events_persisted_total", "wspr_sync_wakeups_total"):
            self.assertIn(name, text)
        self.assertIn('endpoint="/_matrix/client/v3/createRoom"', text)
        # Metrics are not on the client port.
        code, _, _ = await _get(server.base_url + "/metrics")
        self.assertNotEqual(code, 200)


def _write(path: str, data: bytes, mtime: float | None = None) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


class WebClientTest(unittest.TestCase):
    async def test_serves_pwa_with_cache_headers(self) -> None:
        dist = tempfile.mkdtemp()
        _write(os.path.join(dist, "index.html"), b"<!doctype html><title>WSPR</title>")
        _write(os.path.join(dist, "sw.js"), b"self.addEventListener('fetch', () => {})")
        _write(os.path.join(dist, "assets", "app-3f9a1c.js"), b"console.log('hi')")
        server = await start_homeserver(self, web_client={"enabled": True, "path": dist})
        code, headers, body = await _get(server.base_url + "/")
        self.assertEqual(code, 200)
        self.assertIn(b"WSPR", body)
        self.assertEqual(headers["cache-control"], ["no-cache"])
        code, headers, _ = await _get(server.base_url + "/assets/app-3f9a1c.js")
        self.assertEqual(code, 200)
        self.assertIn("immutable", headers["cache-control"][0])
        self.assertIn("javascript", headers["content-type"][0])
        code, headers, _ = await _get(server.base_url + "/sw.js")
        self.assertEqual(headers["cache-control"], ["no-cache"])
        # Client-side routes get the shell; API paths never do.
        code, _, body = await _get(server.base_url + "/rooms/some-room")
        self.assertIn(b"WSPR", body)
        code, _, body = await _get(server.base_url + "/_matrix/client/v3/nope")
        self.assertEqual(code, 404)
        self.assertIn(b"M_UNRECOGNIZED", body)
        code, _, body = await _get(server.base_url + "/../../etc/passwd")
        self.assertNotIn(b"root:", body)
        # The API still works alongside.
        code, _, _ = await _get(server.base_url + "/_matrix/client/versions")
        self.assertEqual(code, 200)


class PrecompressedWebClientTest(unittest.TestCase):
    """The build's .br/.gz copies are served by Accept-Encoding, with the original's type and caching."""

    def _dist(self) -> str:
        dist = tempfile.mkdtemp()
        self.app_js = b"console.log('hello from the app');\n" * 200
        self.index = b"<!doctype html><title>WSPR</title><div id=root></div>" + b" " * 2000
        # The .br copies hold marker bytes (no brotli module here): the server never decodes them.
        self.app_br = b"BROTLI:" + gzip.compress(self.app_js)[:40]
        _write(os.path.join(dist, "assets", "app-3f9a1c.js"), self.app_js, mtime=1_000_000)
        _write(os.path.join(dist, "assets", "app-3f9a1c.js.br"), self.app_br, mtime=1_000_001)
        _write(os.path.join(dist, "assets", "app-3f9a1c.js.gz"), gzip.compress(self.app_js), mtime=1_000_001)
        _write(os.path.join(dist, "index.html"), self.index, mtime=1_000_000)
        _write(os.path.join(dist, "index.html.br"), b"BROTLI-INDEX", mtime=1_000_001)
        _write(os.path.join(dist, "index.html.gz"), gzip.compress(self.index), mtime=1_000_001)
        _write(os.path.join(dist, "icons", "icon.png"), b"\x89PNG" + b"\0" * 3000)
        # left over from an older build: older than the file, so never served
        _write(os.path.join(dist, "sw.js"), b"self.addEventListener('fetch', () => {});" * 40, mtime=2_000_000)
        _write(os.path.join(dist, "sw.js.br"), b"STALE", mtime=1_000_000)
        return dist

    async def test_serves_the_encoding_the_client_prefers(self) -> None:
        dist = self._dist()
        server = await start_homeserver(self, web_client={"enabled": True, "path": dist})
        url = server.base_url + "/assets/app-3f9a1c.js"

        code, headers, body = await _raw(b"GET", url, "gzip, deflate, br, zstd")
        self.assertEqual(code, 200)
        self.assertEqual(headers["content-encoding"], ["br"])
        self.assertEqual(body, self.app_br)
        self.assertEqual(headers["content-length"], [str(len(self.app_br))])
        self.assertIn("javascript", headers["content-type"][0])
        self.assertEqual(headers["vary"], ["Accept-Encoding"])
        self.assertIn("immutable", headers["cache-control"][0])

        code, headers, body = await _raw(b"GET", url, "gzip")
        self.assertEqual(headers["content-encoding"], ["gzip"])
        self.assertEqual(gzip.decompress(body), self.app_js)
        self.assertEqual(headers["content-length"], [str(len(body))])

        # q-values decide, whatever the order; x-gzip is gzip; * stands for the rest
        for accept, expected in [
            ("br;q=0.5, gzip;q=1.0", "gzip"),
            ("gzip;q=0.2, br", "br"),
            ("x-gzip", "gzip"),
            ("*;q=0.3", "br"),
            ("br;q=0, *", "gzip"),
            ("GZIP;Q=0.9", "gzip"),
        ]:
            _, headers, _ = await _raw(b"GET", url, accept)
            self.assertEqual(headers.get("content-encoding"), [expected], accept)

        # nothing acceptable, nothing asked for, or only identity: the file as it is, still Vary
        for accept in ("br;q=0, gzip;q=0", None, "identity", "deflate", "*;q=0", "gzip;q=nonsense-but-ok;q=0"):
            _, headers, body = await _raw(b"GET", url, accept)
            self.assertNotIn("content-encoding", headers, accept)
            self.assertEqual(body, self.app_js, accept)
            self.assertEqual(headers["content-length"], [str(len(self.app_js))])
            self.assertEqual(headers["vary"], ["Accept-Encoding"])

        # HEAD: the headers of the GET, no body
        code, headers, body = await _raw(b"HEAD", url, "br")
        self.assertEqual((code, body), (200, b""))
        self.assertEqual(headers["content-encoding"], ["br"])
        self.assertEqual(headers["content-length"], [str(len(self.app_br))])

    async def test_shell_and_worker_stay_revalidated(self) -> None:
        dist = self._dist()
        server = await start_homeserver(self, web_client={"enabled": True, "path": dist})
        for path in ("/", "/index.html", "/rooms/some-room"):
            code, headers, body = await _raw(b"GET", server.base_url + path, "gzip, br")
            self.assertEqual(code, 200, path)
            self.assertEqual(body, b"BROTLI-INDEX", path)
            self.assertEqual(headers["content-encoding"], ["br"], path)
            self.assertEqual(headers["cache-control"], ["no-cache"], path)
            self.assertEqual(headers["vary"], ["Accept-Encoding"], path)
            self.assertIn("text/html", headers["content-type"][0], path)
        # a compressed copy older than its file is not served
        code, headers, body = await _raw(b"GET", server.base_url + "/sw.js", "br, gzip")
        self.assertNotIn("content-encoding", headers)
        self.assertIn(b"addEventListener", body)
        self.assertEqual(headers["cache-control"], ["no-cache"])
        # files the build didn't compress: as they are, no Vary
        code, headers, body = await _raw(b"GET", server.base_url + "/icons/icon.png", "br, gzip")
        self.assertEqual(code, 200)
        self.assertNotIn("content-encoding", headers)
        self.assertNotIn("vary", headers)
        self.assertEqual(headers["content-type"], ["image/png"])
        # the copies are not addressable on their own
        code, headers, body = await _raw(b"GET", server.base_url + "/assets/app-3f9a1c.js.br", None)
        self.assertEqual(body, self.index)
        # API paths are still never the shell
        code, _, body = await _raw(b"GET", server.base_url + "/_matrix/client/v3/nope", "br")
        self.assertEqual(code, 404)
        self.assertIn(b"M_UNRECOGNIZED", body)
