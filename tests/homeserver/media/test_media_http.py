"""The media repository over HTTP: upload, download (authenticated and legacy), headers,
thumbnails, size limits, create + deferred upload."""

from __future__ import annotations

import io
import os
from urllib.parse import quote

import treq
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


async def start(test: "MediaMixin", **overrides: object):
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
        # Legacy unauthenticated endpoint still serves it.
        code, hdrs, got = await fetch(server.base_url, f"/_matrix/media/v3/download/localhost/{media_id}")
        self.assertEqual((code, got), (200, data))
        self.assertIn("public", hdrs["cache-control"])
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
            "/_matrix/client/v1/media/download/other.example/abcdef",
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
        code, hdrs, im = await thumb(jid, 640, 480, "scale", legacy=True)
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
        code, body = await alice.raw("PUT", f"/_matrix/media/v3/upload/localhost/{media_id}", data=b"again", headers={"Content-Type": "text/plain"})
        self.assertEqual((code, body["errcode"]), (409, "M_CANNOT_OVERWRITE_MEDIA"))
        code, body = await alice.raw("PUT", "/_matrix/media/v3/upload/localhost/nosuchmedia", data=b"x", headers={"Content-Type": "text/plain"})
        self.assertEqual(code, 404)
        code, body = await alice.raw("PUT", f"/_matrix/media/v3/upload/elsewhere.org/{media_id}", data=b"x", headers={"Content-Type": "text/plain"})
        self.assertEqual(code, 404)

    async def test_remote_media_hook(self) -> None:
        from homeserver.media import RemoteMedia

        server = await start(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        calls = []

        async def fetch_remote(server_name: str, media_id: str, max_size: int) -> RemoteMedia | None:
            calls.append((server_name, media_id))
            if media_id == "known":
                return RemoteMedia(png(200, 200), "image/png", "remote.png")
            return None

        server.hs.media.fetch_remote = fetch_remote
        path = "/_matrix/client/v1/media/download/remote.example/known"
        code, hdrs, body = await fetch(server.base_url, path, alice.access_token)
        self.assertEqual((code, hdrs["content-disposition"]), (200, "inline; filename=remote.png"))
        code, _, _ = await fetch(server.base_url, path, alice.access_token)
        self.assertEqual(calls, [("remote.example", "known")])  # cached
        code, hdrs, data = await fetch(
            server.base_url, "/_matrix/client/v1/media/thumbnail/remote.example/known?width=32&height=32&method=crop", alice.access_token
        )
        self.assertEqual(Image.open(io.BytesIO(data)).size, (32, 32))
        code, _, _ = await fetch(server.base_url, "/_matrix/client/v1/media/download/remote.example/unknown", alice.access_token)
        self.assertEqual(code, 404)
        code, _, _ = await fetch(server.base_url, "/_matrix/client/v1/media/download/remote.example/other?allow_remote=false", alice.access_token)
        self.assertEqual(code, 404)


class MediaSQLiteTest(MediaMixin, unittest.TestCase):
    database = "sqlite"


class MediaPostgresTest(MediaMixin, unittest.TestCase):
    database = "postgresql"
