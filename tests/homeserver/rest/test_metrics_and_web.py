"""/metrics on its own listener, and the PWA served at / with cache headers a service
worker needs."""

from __future__ import annotations

import os
import tempfile

import treq
from twisted.internet import reactor
from twisted.trial import unittest
from twisted.web.client import HTTPConnectionPool

from tests.support.wspr import MatrixClient, start_homeserver


async def _get(url: str) -> tuple[int, dict[str, list[str]], bytes]:
    resp = await treq.get(url.encode(), pool=HTTPConnectionPool(reactor, persistent=False))
    body = await resp.content()
    return resp.code, {k.decode().lower(): [v.decode() for v in vs] for k, vs in resp.headers.getAllRawHeaders()}, body


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


class WebClientTest(unittest.TestCase):
    async def test_serves_pwa_with_cache_headers(self) -> None:
        dist = tempfile.mkdtemp()
        os.makedirs(os.path.join(dist, "assets"))
        with open(os.path.join(dist, "index.html"), "w") as f:
            f.write("<!doctype html><title>WSPR</title>")
        with open(os.path.join(dist, "sw.js"), "w") as f:
            f.write("self.addEventListener('fetch', () => {})")
        with open(os.path.join(dist, "assets", "app-3f9a1c.js"), "w") as f:
            f.write("console.log('hi')")
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
