"""Media of other servers through the client endpoints: fetched over federation
(``/_matrix/federation/v1/media/download|thumbnail``, or the deprecated
``/_matrix/media/v3/download`` from a server without them), cached, fetched once however
many ask, bounded in size and time, redirects checked against the IP blocklist.

The other server is a second WSPR, or a real HTTPS server on loopback answering the way
a test needs (``origin_server.py``); the Synapse side is in
``tests/federation/test_synapse_media.py``."""

from __future__ import annotations

import io
import os
import time
from typing import Any

from PIL import Image
from twisted.internet import defer, reactor, task
from twisted.trial import unittest
from twisted.web import server

from tests.federation.helpers import start_federating
from tests.homeserver.media.origin_server import LoopbackSite, json_error, multipart
from tests.homeserver.media.test_media_http import fetch, peak_rss_mib, png, reset_peak_rss, rss_mib, upload
from tests.support.wspr import MatrixClient, RunningHomeServer

V1 = "/_matrix/client/v1/media"
FED = "/_matrix/federation/v1/media"
LEGACY = "/_matrix/media/v3"


def size_of(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


async def client_of(hs: RunningHomeServer, name: str = "bob") -> MatrixClient:
    return await MatrixClient.register(hs.base_url, name)


def files_under(path: str) -> list[str]:
    return [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs]


class TwoWsprMediaTest(unittest.TestCase):
    timeout = 120

    async def test_download_and_thumbnails_between_two_wspr(self) -> None:
        a = await start_federating(self)
        b = await start_federating(self)
        alice = await MatrixClient.register(a.base_url, "alice")
        bob = await client_of(b)
        image = png(1000, 800)
        _, body = await upload(alice, image, "image/png", "big picture.png")
        media_id = body["content_uri"].rsplit("/", 1)[1]
        _, body = await upload(alice, b"hello remote", "text/plain", "note.txt")
        text_id = body["content_uri"].rsplit("/", 1)[1]

        # A thumbnail first: b holds nothing, so it asks a for a's thumbnail of the size
        # b would make (96x96 crop), without fetching the original.
        code, hdrs, data = await fetch(b.base_url, f"{V1}/thumbnail/{a.server_name}/{media_id}?width=90&height=90&method=crop", bob.access_token)
        self.assertEqual((code, hdrs["content-type"], size_of(data)), (200, "image/png", (96, 96)))
        record = await b.hs.store.get_remote_media(a.server_name, media_id)
        assert record is not None
        self.assertFalse(os.path.exists(b.hs.media.remote.stored(record).path))  # no original fetched
        self.assertIsNotNone(await b.hs.store.get_remote_thumbnail(a.server_name, media_id, 96, 96, "crop"))

        # The original, with its type and name.
        code, hdrs, data = await fetch(b.base_url, f"{V1}/download/{a.server_name}/{media_id}", bob.access_token)
        self.assertEqual((code, data), (200, image))
        self.assertEqual(hdrs["content-type"], "image/png")
        self.assertEqual(hdrs["content-disposition"], "inline; filename*=utf-8''big%20picture.png")
        self.assertIn("private", hdrs["cache-control"])
        code, hdrs, data = await fetch(b.base_url, f"{V1}/download/{a.server_name}/{text_id}/other.txt", bob.access_token)
        self.assertEqual((code, data, hdrs["content-disposition"]), (200, b"hello remote", "inline; filename=other.txt"))
        # Cached: served while a is gone.
        await a.hs.federation.stop()
        code, _, data = await fetch(b.base_url, f"{V1}/download/{a.server_name}/{media_id}", bob.access_token)
        self.assertEqual((code, data), (200, image))
        code, _, data = await fetch(b.base_url, f"{V1}/thumbnail/{a.server_name}/{media_id}?width=90&height=90&method=crop", bob.access_token)
        self.assertEqual(size_of(data), (96, 96))
        # Now that b holds the original, other sizes are made here.
        code, _, data = await fetch(b.base_url, f"{V1}/thumbnail/{a.server_name}/{media_id}?width=320&height=240&method=scale", bob.access_token)
        self.assertEqual((code, size_of(data)), (200, (300, 240)))

        # Authenticated media: the legacy endpoints neither fetch remote media nor serve it.
        for path in (f"{LEGACY}/download/{a.server_name}/{media_id}", f"{LEGACY}/thumbnail/{a.server_name}/{media_id}?width=32&height=32"):
            code, _, _ = await fetch(b.base_url, path)
            self.assertEqual(code, 404, path)
        code, _, _ = await fetch(b.base_url, f"{V1}/download/{a.server_name}/{media_id}")
        self.assertEqual(code, 401)

    async def test_errors_as_synapse(self) -> None:
        a = await start_federating(self)
        b = await start_federating(self)
        bob = await client_of(b)
        # The origin has no such media: its 404 is passed on.
        code, _, body = await fetch(b.base_url, f"{V1}/download/{a.server_name}/nosuchmedia", bob.access_token)
        self.assertEqual(code, 404)
        self.assertIn(b'"errcode":"M_NOT_FOUND"', body)
        code, _, _ = await fetch(b.base_url, f"{V1}/thumbnail/{a.server_name}/nosuchmedia?width=32&height=32", bob.access_token)
        self.assertEqual(code, 404)
        # allow_remote=false: never fetched.
        code, _, _ = await fetch(b.base_url, f"{V1}/download/{a.server_name}/abc?allow_remote=false", bob.access_token)
        self.assertEqual(code, 404)
        # Nobody there: 502 M_UNKNOWN.
        closed = LoopbackSite(tls=True).start(self)
        name = closed.server_name
        await closed.stop()
        code, _, body = await fetch(b.base_url, f"{V1}/download/{name}/abcdef", bob.access_token)
        self.assertEqual(code, 502)
        self.assertIn(b'"errcode":"M_UNKNOWN"', body)


def _serve_png(site: LoopbackSite, data: bytes, delay: float = 0.0) -> None:
    """A federation media origin with one image (after ``delay`` seconds)."""

    def download(request: server.Request) -> bytes | None:
        body, ctype = multipart(data, {"Content-Type": "image/png", "Content-Disposition": "inline; filename=cat.png"})

        def send() -> None:
            request.setHeader(b"Content-Type", ctype)
            request.write(body)
            request.finish()

        reactor.callLater(delay, send)
        return None

    site.route(f"{FED}/download/", download)


class FakeOriginTest(unittest.TestCase):
    """Against a real HTTPS server on loopback that plays the origin."""

    timeout = 120

    async def _wspr(self) -> tuple[RunningHomeServer, MatrixClient]:
        hs = await start_federating(self)
        return hs, await client_of(hs)

    async def test_concurrent_requests_fetch_once(self) -> None:
        origin = LoopbackSite(tls=True).start(self)
        image = png(400, 300)
        _serve_png(origin, image, delay=0.5)
        thumbs = []

        def thumbnail(request: server.Request) -> bytes | None:
            thumbs.append(request.args)
            body, ctype = multipart(png(96, 96, (0, 255, 0, 255)), {"Content-Type": "image/png"})

            def send() -> None:
                request.setHeader(b"Content-Type", ctype)
                request.write(body)
                request.finish()

            reactor.callLater(0.5, send)
            return None

        origin.route(f"{FED}/thumbnail/", thumbnail)
        hs, bob = await self._wspr()
        path = f"{V1}/download/{origin.server_name}/catpicture"
        results = await defer.gatherResults([defer.ensureDeferred(fetch(hs.base_url, path, bob.access_token)) for _ in range(20)])
        self.assertEqual({(code, data) for code, _, data in results}, {(200, image)})
        self.assertEqual(len(origin.hits_on(f"{FED}/download/")), 1)

        tpath = f"{V1}/thumbnail/{origin.server_name}/othercat?width=80&height=80&method=crop"
        results = await defer.gatherResults([defer.ensureDeferred(fetch(hs.base_url, tpath, bob.access_token)) for _ in range(20)])
        self.assertEqual({(code, size_of(data)) for code, _, data in results}, {(200, (96, 96))})
        self.assertEqual(len(thumbs), 1)
        # We asked for our configured size, not the client's.
        self.assertEqual((thumbs[0][b"width"], thumbs[0][b"height"], thumbs[0][b"method"]), ([b"96"], [b"96"], [b"crop"]))
        # Another client size mapping to the same configured size: from the cache.
        code, _, data = await fetch(hs.base_url, f"{V1}/thumbnail/{origin.server_name}/othercat?width=50&height=60&method=crop", bob.access_token)
        self.assertEqual((code, len(thumbs)), (200, 1))

    async def test_legacy_fallback_and_local_thumbnails(self) -> None:
        """A server without the federation media endpoints (404 M_UNRECOGNIZED): the
        deprecated download endpoint with allow_remote=false, and thumbnails made here."""
        origin = LoopbackSite(tls=True).start(self)
        image = png(640, 480)

        def legacy(request: server.Request) -> bytes:
            request.setHeader(b"Content-Type", b"image/png")
            request.setHeader(b"Content-Disposition", b"inline; filename=old.png")
            return image

        origin.route(f"{LEGACY}/download/", legacy)
        hs, bob = await self._wspr()
        code, hdrs, data = await fetch(hs.base_url, f"{V1}/thumbnail/{origin.server_name}/oldmedia?width=32&height=32&method=crop", bob.access_token)
        self.assertEqual((code, size_of(data)), (200, (32, 32)))
        self.assertEqual(len(origin.hits_on(f"{FED}/thumbnail/oldmedia")), 1)
        self.assertEqual(len(origin.hits_on(f"{FED}/download/oldmedia")), 1)
        [hit] = origin.hits_on(f"{LEGACY}/download/")
        self.assertEqual(hit.path, f"{LEGACY}/download/{origin.server_name}/oldmedia")
        self.assertEqual((hit.query["allow_remote"], hit.query["allow_redirect"]), (["false"], ["true"]))
        self.assertTrue(hit.headers["authorization"].startswith("X-Matrix origin="))
        code, hdrs, data = await fetch(hs.base_url, f"{V1}/download/{origin.server_name}/oldmedia", bob.access_token)
        self.assertEqual((code, data, hdrs["content-disposition"]), (200, image, "inline; filename=old.png"))
        self.assertEqual(len(origin.hits_on(f"{LEGACY}/download/")), 1)  # the thumbnail's fetch is the cache

        # A real 404 (M_NOT_FOUND) of the federation endpoint is no reason to fall back.
        origin.routes.insert(0, (f"{FED}/download/gone", lambda r: json_error(r, 404, "M_NOT_FOUND", "Not found")))
        code, _, _ = await fetch(hs.base_url, f"{V1}/download/{origin.server_name}/gone", bob.access_token)
        self.assertEqual(code, 404)
        self.assertEqual(origin.hits_on(f"{LEGACY}/download/{origin.server_name}/gone"), [])

    async def test_oversized_media_refused_without_buffering(self) -> None:
        origin = LoopbackSite(tls=True).start(self)
        total = 200 * 1024 * 1024
        boundary = "bbbbbbbbbbbbbbbb"
        head = (
            f"--{boundary}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n--{boundary}\r\nContent-Type: video/mp4\r\n\r\n"
        ).encode()
        origin.route(
            f"{FED}/download/endless",
            lambda r: origin.stream(r, head, os.urandom(256 * 1024), total, f"multipart/mixed; boundary={boundary}".encode()),
        )
        # The deprecated endpoint announcing a Content-Length over the limit: refused
        # before a byte of the body is read.
        origin.route(f"{FED}/download/announced", lambda r: json_error(r, 404, "M_UNRECOGNIZED"))
        origin.route(f"{LEGACY}/download/", lambda r: origin.stream(r, b"", os.urandom(256 * 1024), total, b"video/mp4", length=total))
        hs, bob = await _start_with_media(self, {"max_upload_size": "4M"})
        base_rss = rss_mib()
        reset_peak_rss()
        code, _, body = await fetch(hs.base_url, f"{V1}/download/{origin.server_name}/endless", bob.access_token)
        grown = peak_rss_mib() - base_rss
        self.assertEqual(code, 502)
        self.assertIn(b'"errcode":"M_TOO_LARGE"', body)
        # The connection was dropped at the limit: the origin got to send little more than
        # 4 MiB (plus what the socket buffers hold), not 200.
        print(f"\n  oversized remote media: origin sent {origin.sent / 1048576:.1f} MiB of 200 before the drop; peak RSS +{grown} MiB")
        self.assertLess(origin.sent, 24 * 1024 * 1024, origin.sent)
        self.assertLess(grown, 24, f"peak RSS grew by {grown} MiB")
        sent = origin.sent
        code, _, body = await fetch(hs.base_url, f"{V1}/download/{origin.server_name}/announced", bob.access_token)
        self.assertEqual(code, 502)
        self.assertIn(b'"errcode":"M_TOO_LARGE"', body)
        self.assertLess(origin.sent - sent, 8 * 1024 * 1024)
        # Nothing is left in the store, not even a partial file.
        self.assertEqual([f for f in files_under(hs.hs.config.media.store_path) if "remote" in f], [])
        self.assertIsNone(await hs.hs.store.get_remote_media(origin.server_name, "endless"))

    async def test_redirects_must_pass_the_ip_blocklist(self) -> None:
        """A Location pointing at an address the federation blocklist refuses is not
        fetched (127.0.0.1 is allowed for these servers, 127.0.0.2 is not)."""
        origin = LoopbackSite(tls=True).start(self)
        cdn = LoopbackSite().start(self)
        secret = LoopbackSite(host="127.0.0.2").start(self)
        image = png(50, 40)
        cdn.route("/files/", lambda r: (r.setHeader(b"Content-Type", b"image/png"), image)[1])
        secret.route("/", lambda r: b"internal secret")

        def redirect_to(url: str) -> Any:
            def handler(request: server.Request) -> bytes:
                body, ctype = multipart(b"", {"Location": url})
                request.setHeader(b"Content-Type", ctype)
                return body

            return handler

        origin.route(f"{FED}/download/tocdn", redirect_to(cdn.url("/files/cat.png")))
        origin.route(f"{FED}/download/tosecret", redirect_to(secret.url("/metadata")))
        origin.route(f"{FED}/download/legacysecret", lambda r: json_error(r, 404, "M_UNRECOGNIZED"))

        def legacy(request: server.Request) -> bytes:
            request.setResponseCode(307)
            request.setHeader(b"Location", secret.url("/legacy").encode())
            return b""

        origin.route(f"{LEGACY}/download/", legacy)
        hs = await start_federating(self, ip_range_blocklist=["127.0.0.0/8"], ip_range_allowlist=["127.0.0.1/32"])
        bob = await client_of(hs)
        code, hdrs, data = await fetch(hs.base_url, f"{V1}/download/{origin.server_name}/tocdn", bob.access_token)
        self.assertEqual((code, data, hdrs["content-type"]), (200, image, "image/png"))
        code, _, body = await fetch(hs.base_url, f"{V1}/download/{origin.server_name}/tosecret", bob.access_token)
        self.assertEqual(code, 403, body)  # Synapse: 403 "IP address blocked" for an IP literal
        code, _, body = await fetch(hs.base_url, f"{V1}/download/{origin.server_name}/legacysecret", bob.access_token)
        self.assertEqual(code, 403, body)
        self.assertEqual(secret.hits, [])

    async def test_legacy_endpoints_fetch_without_authenticated_media(self) -> None:
        """With enable_authenticated_media off, the deprecated unauthenticated endpoints
        fetch remote media too (as Synapse), publicly cacheable."""
        origin = LoopbackSite(tls=True).start(self)
        image = png(300, 200)
        _serve_png(origin, image)
        hs, _ = await _start_with_media(self, {"enable_authenticated_media": False})
        code, hdrs, data = await fetch(hs.base_url, f"{LEGACY}/download/{origin.server_name}/oldstyle")
        self.assertEqual((code, data), (200, image))
        self.assertIn("public", hdrs["cache-control"])
        code, _, data = await fetch(hs.base_url, f"{LEGACY}/thumbnail/{origin.server_name}/oldstyle?width=32&height=32&method=crop")
        self.assertEqual((code, size_of(data)), (200, (32, 32)))
        code, _, _ = await fetch(hs.base_url, f"{LEGACY}/download/{origin.server_name}/other?allow_remote=false")
        self.assertEqual(code, 404)

    async def test_quarantined_remote_media_is_not_served(self) -> None:
        """Quarantine (admin API) applies to remote media we hold only a thumbnail of."""
        from tests.homeserver.admin.support import SECRET, register_admin
        from tests.homeserver.admin.support import V1 as ADMIN

        origin = LoopbackSite(tls=True).start(self)
        image = png(400, 300)
        _serve_png(origin, image)

        def thumbnail(request: server.Request) -> bytes:
            body, ctype = multipart(png(96, 96), {"Content-Type": "image/png"})
            request.setHeader(b"Content-Type", ctype)
            return body

        origin.route(f"{FED}/thumbnail/", thumbnail)
        hs, bob = await _start_with_media(self, {}, registration_shared_secret=SECRET)
        root = await register_admin(hs.base_url, SECRET)
        thumb = f"{V1}/thumbnail/{origin.server_name}/badcat?width=96&height=96&method=crop"
        code, _, _ = await fetch(hs.base_url, thumb, bob.access_token)
        self.assertEqual(code, 200)
        await root.request("POST", f"{ADMIN}/media/quarantine/{origin.server_name}/badcat", {})
        for path in (thumb, f"{V1}/download/{origin.server_name}/badcat"):
            code, _, _ = await fetch(hs.base_url, path, bob.access_token)
            self.assertEqual(code, 404, path)
        self.assertEqual(origin.hits_on(f"{FED}/download/"), [])

    async def test_a_stalled_origin_times_out(self) -> None:
        origin = LoopbackSite(tls=True).start(self)
        stalled: list[server.Request] = []

        def headers_then_nothing(request: server.Request) -> None:
            request.setHeader(b"Content-Type", b"multipart/mixed; boundary=xyz")
            request.write(b"--xyz\r\nContent-Type: application/json\r\n\r\n{}\r\n--xyz\r\nContent-Type: image/png\r\n\r\nabc")
            stalled.append(request)
            return None

        origin.route(f"{FED}/download/slowbody", headers_then_nothing)
        origin.route(f"{FED}/download/noanswer", lambda r: (stalled.append(r), None)[1])
        hs, bob = await _start_with_media(self, {"remote_fetch_timeout": 1})
        for media_id in ("slowbody", "noanswer"):
            t0 = time.monotonic()
            code, _, body = await fetch(hs.base_url, f"{V1}/download/{origin.server_name}/{media_id}", bob.access_token)
            self.assertEqual(code, 502, body)
            self.assertLess(time.monotonic() - t0, 10)
        await task.deferLater(reactor, 0, lambda: None)
        self.assertEqual(files_under(os.path.join(hs.hs.config.media.store_path, "remote_content")), [])


async def _start_with_media(test: unittest.TestCase, media: dict[str, object], **overrides: Any) -> tuple[RunningHomeServer, MatrixClient]:
    from tests.federation.helpers import LOOPBACK_FEDERATION
    from tests.support.synapse import free_port
    from tests.support.wspr import start_homeserver

    port = free_port()
    hs = await start_homeserver(
        test,
        server_name=f"127.0.0.1:{port}",
        federation_port=port,
        start_extras=True,
        federation=dict(LOOPBACK_FEDERATION),
        media=media,
        **overrides,
    )
    return hs, await client_of(hs)

