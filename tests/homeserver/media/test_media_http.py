"""The media repository over HTTP: upload, download (authenticated and legacy), headers,
thumbnails, size limits, create + deferred upload."""

from __future__ import annotations

import io
import json
import os
from urllib.parse import quote

import treq
import yaml
from PIL import Image
from twisted.internet import defer, reactor
from twisted.trial import unittest
from twisted.web.client import HTTPConnectionPool

from tests.support.wspr import MatrixClient, PostgresUnavailable, start_homeserver

CSP = "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; object-src 'self';"


def png(width: int, height: int, color: tuple = (200, 30, 30, 255)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


def jpeg(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(buf, "JPEG")
    return buf.getvalue()


async def fetch(base_url: str, path: str, token: str | None = None) -> tuple[int, dict[str, str], bytes]:
    headers = {"Authorization": [f"Bearer {token}"]} if token else {}
    resp = await treq.get((base_url + path).encode(), headers=headers, pool=HTTPConnectionPool(reactor, persistent=False))
    body = await resp.content()
    hdrs = {k.decode().lower(): v[0].decode() for k, v in resp.headers.getAllRawHeaders()}
    return resp.code, hdrs, body


async def upload(client: MatrixClient, data: bytes, content_type: str, filename: str | None = None) -> tuple[int, dict]:
    path = "/_matrix/media/v3/upload" + (f"?filename={quote(filename)}" if filename else "")
    return await client.raw("POST", path, data=data, headers={"Content-Type": content_type})


async def start(test: MediaMixin, **overrides: object):
    try:
        return await start_homeserver(test, database=test.database, **overrides)  # type: ignore[arg-type]
    except PostgresUnavailable as e:
        raise unittest.SkipTest(str(e)) from e


class MediaMixin:
    """The tests, run on both databases by the classes at the end."""

    database = "sqlite"

    async def test_upload_and_download(self) -> None:
        server = await start(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        data = png(10, 10)
        code, body = await upload(alice, data, "image/png", "avatar.png")
        self.assertEqual(code, 200, body)
        mxc = body["content_uri"]
        self.assertTrue(mxc.startswith("mxc://localhost/"))
        media_id = mxc.rsplit("/", 1)[1]
        self.assertRegex(media_id, r"^[A-Za-z0-9_-]{16,}$")

        path = f"/_matrix/client/v1/media/download/localhost/{media_id}"
        code, hdrs, got = await fetch(server.base_url, path)
        self.assertEqual(code, 401)  # authenticated media needs a token
        code, hdrs, got = await fetch(server.base_url, path, alice.access_token)
        self.assertEqual((code, got), (200, data))
        self.assertEqual(hdrs["content-type"], "image/png")
        self.assertEqual(hdrs["content-disposition"], "inline; filename=avatar.png")
        self.assertEqual(hdrs["content-security-policy"], CSP)
        self.assertEqual(hdrs["x-content-type-options"], "nosniff")
        self.assertEqual(hdrs["cross-origin-resource-policy"], "cross-origin")
        self.assertIn("max-age=31536000", hdrs["cache-control"])
        self.assertIn("private", hdrs["cache-control"])
        # File name override, unicode encoded per RFC 6266.
        code, hdrs, _ = await fetch(server.base_url, path + "/" + quote("résumé été.png"), alice.access_token)
        self.assertEqual(hdrs["content-disposition"], "inline; filename*=utf-8''r%C3%A9sum%C3%A9%20%C3%A9t%C3%A9.png")
        # Authenticated media (the default): the legacy unauthenticated endpoints do not
        # have it (issue 9 finding 9), with or without a token.
        for path in (f"/_matrix/media/v3/download/localhost/{media_id}", f"/_matrix/media/r0/thumbnail/localhost/{media_id}?width=5&height=5"):
            code, hdrs, got = await fetch(server.base_url, path)
            self.assertEqual((code, json.loads(got)["errcode"]), (404, "M_NOT_FOUND"), path)
            code, hdrs, got = await fetch(server.base_url, path, alice.access_token)
            self.assertEqual(code, 404, path)
        # Stored on disk under the configured store path.
        store = server.hs.config.media.store_path
        self.assertTrue(any(media_id[4:] in files for _, _, files in os.walk(store)))

    async def test_large_file_is_streamed(self) -> None:
        server = await start(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        data = os.urandom(5 * 1024 * 1024 + 17)
        code, body = await upload(alice, data, "video/mp4", "clip.mp4")
        self.assertEqual(code, 200)
        media_id = body["content_uri"].rsplit("/", 1)[1]
        path = f"/_matrix/client/v1/media/download/localhost/{media_id}"
        code, hdrs, got = await fetch(server.base_url, path, alice.access_token)
        self.assertEqual((code, len(got), got == data), (200, len(data), True))
        self.assertEqual(hdrs["content-disposition"], "inline; filename=clip.mp4")
        self.assertEqual(hdrs["content-security-policy"], CSP)
        resp = await treq.head(
            (server.base_url + path).encode(),
            headers={"Authorization": [f"Bearer {alice.access_token}"]},
            pool=HTTPConnectionPool(reactor, persistent=False),
        )
        self.assertEqual((resp.code, await resp.content()), (200, b""))

    async def test_unsafe_types_are_attachments(self) -> None:
        server = await start(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        for ctype, expected in (
            ("text/html", "attachment"),
            ("image/svg+xml", "attachment"),
            ("application/javascript", "attachment"),
            ("text/plain", "inline"),
            ("video/mp4", "inline"),
        ):
            code, body = await upload(alice, b"<script>alert(1)</script>", ctype, "x")
            media_id = body["content_uri"].rsplit("/", 1)[1]
            _, hdrs, _ = await fetch(server.base_url, f"/_matrix/client/v1/media/download/localhost/{media_id}", alice.access_token)
            self.assertEqual(hdrs["content-disposition"], f"{expected}; filename=x", ctype)
            self.assertEqual(hdrs["content-security-policy"], CSP)
        _, hdrs, _ = await fetch(server.base_url, f"/_matrix/client/v1/media/download/localhost/{media_id}", alice.access_token)
        # No type given: octet-stream, attachment.
        code, body = await alice.raw("POST", "/_matrix/media/v3/upload", data=b"\x00\x01", headers={"Content-Type": ""})
        self.assertEqual(code, 200)
        media_id = body["content_uri"].rsplit("/", 1)[1]
        _, hdrs, _ = await fetch(server.base_url, f"/_matrix/client/v1/media/download/localhost/{media_id}", alice.access_token)
        self.assertEqual(hdrs["content-type"], "application/octet-stream")
        self.assertEqual(hdrs["content-disposition"], "attachment")

    async def test_not_found_and_bad_ids(self) -> None:
        server = await start(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        tok = alice.access_token
        for path in (
            "/_matrix/client/v1/media/download/localhost/doesnotexist",
            "/_matrix/client/v1/media/download/localhost/..%2F..%2Fetc",
            "/_matrix/client/v1/media/download/localhost/a.b",
            "/_matrix/client/v1/media/download/..%2F/abcdef",
            "/_matrix/media/v3/download/localhost/doesnotexist",
            "/_matrix/client/v1/media/thumbnail/localhost/doesnotexist?width=32&height=32",
        ):
            code, _, body = await fetch(server.base_url, path, tok)
            self.assertEqual(code, 404, path)
        code, _, _ = await fetch(server.base_url, "/_matrix/client/v1/media/preview_url?url=https://example.com", tok)
        self.assertEqual(code, 404)
        code, _, body = await fetch(server.base_url, "/_matrix/client/v1/media/config", tok)
        self.assertEqual(code, 200)
        self.assertEqual(b'{"m.upload.size":52428800}', body)
        code, body = await alice.raw("GET", "/_matrix/media/v3/config")
        self.assertEqual(body, {"m.upload.size": 52428800})

    async def test_upload_is_not_read_into_memory(self) -> None:
        """A 40 MB upload is copied from the request's spool file to the store in pieces:
        the server's memory does not grow by the upload's size (it did: the body was read
        into one bytes object, so 20 uploads in flight held a GiB)."""
        server = await start(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        data = os.urandom(40 * 1024 * 1024)
        base_rss = rss_mib()
        reset_peak_rss()
        code, body = await upload(alice, data, "application/octet-stream")
        grown = peak_rss_mib() - base_rss
        self.assertEqual(code, 200)
        media_id = body["content_uri"].rsplit("/", 1)[1]
        self.assertLess(grown, 16, f"peak RSS grew by {grown} MiB")
        code, _, got = await fetch(server.base_url, f"/_matrix/client/v1/media/download/localhost/{media_id}", alice.access_token)
        self.assertEqual((code, got == data), (200, True))

    async def test_size_limit(self) -> None:
        server = await start(self, media={"max_upload_size": 1000})
        alice = await MatrixClient.register(server.base_url, "alice")
        code, body = await upload(alice, b"x" * 1000, "application/octet-stream")
        self.assertEqual(code, 200)
        code, body = await upload(alice, b"x" * 1001, "application/octet-stream")
        self.assertEqual((code, body["errcode"]), (413, "M_TOO_LARGE"))
        code, body = await alice.raw("GET", "/_matrix/client/v1/media/config")
        self.assertEqual(body, {"m.upload.size": 1000})

    async def test_upload_rate_limited(self) -> None:
        server = await start(self, rate_limits={"enabled": True, "media_upload": {"per_second": 0.01, "burst": 2}})
        alice = await MatrixClient.register(server.base_url, "alice")
        codes = [(await upload(alice, b"x", "text/plain"))[0] for _ in range(3)]
        self.assertEqual(codes, [200, 200, 429])

    async def test_thumbnails(self) -> None:
        server = await start(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        tok = alice.access_token
        _, body = await upload(alice, png(1000, 500), "image/png")
        pid = body["content_uri"].rsplit("/", 1)[1]
        _, body = await upload(alice, jpeg(900, 900), "image/jpeg")
        jid = body["content_uri"].rsplit("/", 1)[1]

        async def thumb(media_id: str, w: int, h: int, method: str, legacy: bool = False) -> tuple[int, dict, Image.Image | bytes]:
            prefix = "/_matrix/media/v3" if legacy else "/_matrix/client/v1/media"
            code, hdrs, data = await fetch(
                server.base_url, f"{prefix}/thumbnail/localhost/{media_id}?width={w}&height={h}&method={method}", None if legacy else tok
            )
            return code, hdrs, Image.open(io.BytesIO(data)) if code == 200 else data

        code, hdrs, im = await thumb(pid, 32, 32, "crop")
        self.assertEqual((code, hdrs["content-type"], im.size), (200, "image/png", (32, 32)))
        self.assertEqual(hdrs["content-security-policy"], CSP)
        code, hdrs, im = await thumb(pid, 320, 240, "scale")
        self.assertEqual(im.size, (320, 160))  # aspect kept, fits the box
        code, hdrs, im = await thumb(pid, 50, 50, "crop")
        self.assertEqual(im.size, (96, 96))  # next standard size up, never smaller than asked
        code, hdrs, im = await thumb(jid, 96, 96, "crop")
        self.assertEqual((hdrs["content-type"], im.size), ("image/jpeg", (96, 96)))
        code, hdrs, im = await thumb(jid, 640, 480, "scale")
        self.assertEqual((code, im.size), (200, (480, 480)))
        # Asking for more than the original: the original, never upscaled.
        _, body = await upload(alice, png(20, 20), "image/png")
        sid = body["content_uri"].rsplit("/", 1)[1]
        code, hdrs, im = await thumb(sid, 96, 96, "crop")
        self.assertEqual((code, im.size), (200, (20, 20)))
        # A second request is served from the cache on disk.
        code, hdrs, im = await thumb(pid, 32, 32, "crop")
        self.assertEqual(im.size, (32, 32))
        # Not an image / bad parameters.
        _, body = await upload(alice, b"hello", "text/plain")
        tid = body["content_uri"].rsplit("/", 1)[1]
        code, _, _ = await thumb(tid, 32, 32, "crop")
        self.assertEqual(code, 400)
        _, body = await upload(alice, b"not really a png", "image/png")
        code, _, _ = await thumb(body["content_uri"].rsplit("/", 1)[1], 32, 32, "crop")
        self.assertEqual(code, 400)
        code, _, _ = await thumb(pid, 32, 32, "stretch")
        self.assertEqual(code, 400)
        code, _, _ = await thumb(pid, -1, 32, "crop")
        self.assertEqual(code, 400)
        code, _, data = await fetch(server.base_url, f"/_matrix/client/v1/media/thumbnail/localhost/{pid}?height=3", tok)
        self.assertEqual(code, 400)

    async def test_create_then_upload(self) -> None:
        server = await start(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        created = await alice.request("POST", "/_matrix/media/v1/create", {})
        self.assertIn("unused_expires_at", created)
        media_id = created["content_uri"].rsplit("/", 1)[1]
        path = f"/_matrix/client/v1/media/download/localhost/{media_id}"
        # Not uploaded yet: after the timeout, 504 M_NOT_YET_UPLOADED.
        code, _, body = await fetch(server.base_url, path + "?timeout_ms=50", alice.access_token)
        self.assertEqual(code, 504)
        self.assertIn(b"M_NOT_YET_UPLOADED", body)
        # A waiting download gets the content as soon as it arrives.
        waiting = defer.ensureDeferred(fetch(server.base_url, path + "?timeout_ms=10000", alice.access_token))
        code, body = await bob.raw("PUT", f"/_matrix/media/v3/upload/localhost/{media_id}", data=b"hi", headers={"Content-Type": "text/plain"})
        self.assertEqual((code, body["errcode"]), (403, "M_FORBIDDEN"))
        code, body = await alice.raw("PUT", f"/_matrix/media/v3/upload/localhost/{media_id}", data=b"hi", headers={"Content-Type": "text/plain"})
        self.assertEqual((code, body), (200, {}))
        code, hdrs, got = await waiting
        self.assertEqual((code, got, hdrs["content-type"]), (200, b"hi", "text/plain; charset=UTF-8"))
        # Nothing is kept for ids asked for while pending and never uploaded.
        never = (await alice.request("POST", "/_matrix/media/v1/create", {}))["content_uri"].rsplit("/", 1)[1]
        code, _, _ = await fetch(server.base_url, f"/_matrix/client/v1/media/download/localhost/{never}?timeout_ms=50", alice.access_token)
        self.assertEqual(code, 504)
        self.assertEqual(server.hs.media._upload_waiters, {})
        code, body = await alice.raw("PUT", f"/_matrix/media/v3/upload/localhost/{media_id}", data=b"again", headers={"Content-Type": "text/plain"})
        self.assertEqual((code, body["errcode"]), (409, "M_CANNOT_OVERWRITE_MEDIA"))
        code, body = await alice.raw("PUT", "/_matrix/media/v3/upload/localhost/nosuchmedia", data=b"x", headers={"Content-Type": "text/plain"})
        self.assertEqual(code, 404)
        code, body = await alice.raw("PUT", f"/_matrix/media/v3/upload/elsewhere.org/{media_id}", data=b"x", headers={"Content-Type": "text/plain"})
        self.assertEqual(code, 404)

    async def test_legacy_endpoints_keep_older_media(self) -> None:
        """Media stored before enable_authenticated_media was turned on keeps working on
        the legacy endpoints (publicly cacheable); media stored after is 404 there."""
        from homeserver.app import HomeServer
        from homeserver.config import load_config

        server = await start(self, media={"enable_authenticated_media": False})
        alice = await MatrixClient.register(server.base_url, "alice")
        _, body = await upload(alice, png(100, 100), "image/png")
        old = body["content_uri"].rsplit("/", 1)[1]
        code, hdrs, _ = await fetch(server.base_url, f"/_matrix/media/v3/download/localhost/{old}")
        self.assertEqual(code, 200)
        self.assertIn("public", hdrs["cache-control"])
        # Restart on the same data with authenticated media on.
        await server.hs.stop()
        with open(server.config_path, encoding="utf-8") as f:
            config = yaml.safe_load(f)
        config["media"]["enable_authenticated_media"] = True
        with open(server.config_path, "w", encoding="utf-8") as f:
            yaml.safe_dump(config, f)
        hs = HomeServer(load_config(server.config_path))
        await hs.start()
        self.addCleanup(lambda: defer.ensureDeferred(hs.stop()))
        base = f"http://127.0.0.1:{hs.client_port}"
        alice = await MatrixClient.login(base, "alice")
        _, body = await upload(alice, png(100, 100), "image/png")
        new = body["content_uri"].rsplit("/", 1)[1]
        for path in ("/_matrix/media/v3/download/localhost/{}", "/_matrix/media/v3/thumbnail/localhost/{}?width=32&height=32&method=crop"):
            code, hdrs, _ = await fetch(base, path.format(old))
            self.assertEqual(code, 200, path)
            self.assertIn("public", hdrs["cache-control"])
            code, _, _ = await fetch(base, path.format(new))
            self.assertEqual(code, 404, path)
        # Both on the authenticated endpoints, never for shared caches.
        for media_id in (old, new):
            code, hdrs, _ = await fetch(base, f"/_matrix/client/v1/media/download/localhost/{media_id}", alice.access_token)
            self.assertEqual((code, hdrs["cache-control"]), (200, "private, max-age=31536000, immutable"))

    async def test_thumbnail_sizes_are_the_configured_ones(self) -> None:
        server = await start(self, media={"thumbnail_sizes": [{"width": 64, "height": 64, "method": "crop"}, {"width": 300, "height": 200, "method": "scale"}]})
        alice = await MatrixClient.register(server.base_url, "alice")
        _, body = await upload(alice, png(1200, 900), "image/png")
        media_id = body["content_uri"].rsplit("/", 1)[1]
        got = set()
        for w, h, method in ((10, 10, "crop"), (64, 64, "crop"), (500, 500, "crop"), (17, 33, "scale"), (1000, 1000, "scale"), (3000, 3000, "scale")):
            code, _, data = await fetch(
                server.base_url, f"/_matrix/client/v1/media/thumbnail/localhost/{media_id}?width={w}&height={h}&method={method}", alice.access_token
            )
            self.assertEqual(code, 200)
            got.add(Image.open(io.BytesIO(data)).size)
        self.assertEqual(got, {(64, 64), (266, 200)})
        self.assertEqual(sorted(thumbnail_files(server, media_id)), ["300-200-scale.png", "64-64-crop.png"])

    async def test_thumbnail_pixel_limit(self) -> None:
        server = await start(self, media={"max_image_pixels": "1M"})
        alice = await MatrixClient.register(server.base_url, "alice")
        _, body = await upload(alice, png(1100, 1000), "image/png")
        media_id = body["content_uri"].rsplit("/", 1)[1]
        code, _, data = await fetch(
            server.base_url, f"/_matrix/client/v1/media/thumbnail/localhost/{media_id}?width=32&height=32&method=crop", alice.access_token
        )
        self.assertEqual((code, json.loads(data)["errcode"]), (400, "M_UNKNOWN"))
        self.assertEqual(thumbnail_files(server, media_id), [])

    async def test_parallel_thumbnails_of_a_huge_image(self) -> None:
        """The attack of issue 9 finding 4: a 5650x5650 PNG of 138 KB, thumbnailed at many
        sizes at once. Before, each request decoded it on the reactor's thread pool
        (about 370 MiB each; 6 at once took the server to 2.4 GiB) and every distinct size
        was cached. Now: at most two decodes at once, about one decoded image each (4 bytes
        a pixel, 122 MiB), one per (media, size) however many ask, only configured sizes."""
        server = await start(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        _, body = await upload(alice, png(5650, 5650), "image/png")
        media_id = body["content_uri"].rsplit("/", 1)[1]
        base_rss = rss_mib()
        reset_peak_rss()
        requests = [(w, h, m) for w, h, m in ((32, 32, "crop"), (100, 100, "crop"), (300, 300, "scale"), (641, 481, "scale"), (1000, 1000, "scale"), (2000, 1900, "scale"))]
        requests += [(1000, 1000, "scale")] * 6
        results = await defer.gatherResults(
            [
                defer.ensureDeferred(
                    fetch(server.base_url, f"/_matrix/client/v1/media/thumbnail/localhost/{media_id}?width={w}&height={h}&method={m}", alice.access_token)
                )
                for w, h, m in requests
            ]
        )
        grown = peak_rss_mib() - base_rss
        self.assertEqual([code for code, _, _ in results], [200] * len(results))
        # Two workers, one decoded image each (122 MiB), plus slack for the rest of the process.
        self.assertLess(grown, 2 * 122 + 120, f"peak RSS grew by {grown} MiB")
        sizes = [Image.open(io.BytesIO(data)).size for _, _, data in results]
        # Each answered with the nearest configured size (Synapse's choice), at least as
        # big as asked where there is one.
        self.assertEqual(sizes[:6], [(32, 32), (96, 96), (480, 480), (600, 600), (600, 600), (600, 600)])
        self.assertEqual(set(sizes[6:]), {(600, 600)})
        self.assertEqual(sorted(thumbnail_files(server, media_id)), ["32-32-crop.png", "640-480-scale.png", "800-600-scale.png", "96-96-crop.png"])
        # The memory goes back to the system afterwards (the report found 1.1 GiB still held).
        self.assertLess(rss_mib() - base_rss, 100, f"RSS still {rss_mib() - base_rss} MiB above where it was")


def thumbnail_files(server, media_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    top = os.path.join(server.hs.config.media.store_path, "local_thumbnails", media_id[0:2], media_id[2:4], media_id[4:])
    return [f for f in os.listdir(top) if not f.startswith(".")] if os.path.isdir(top) else []


def rss_mib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) // 1024


def peak_rss_mib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) // 1024


def reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS


class MediaSQLiteTest(MediaMixin, unittest.TestCase):
    database = "sqlite"


class MediaPostgresTest(MediaMixin, unittest.TestCase):
    database = "postgresql"
