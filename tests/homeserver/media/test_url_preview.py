"""URL previews over HTTP (``/_matrix/client/v1/media/preview_url`` and the legacy
``/_matrix/media/v3/preview_url``) against real web servers on loopback: OpenGraph,
the fallbacks, images, caching; and the SSRF surface: internal addresses as literals
(IPv4, IPv6, IPv4-mapped), names resolving to them (a name resolver installed on the
reactor for the test), DNS rebinding, redirects from an allowed to a blocked address,
the URL blocklist, size and time limits."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

from twisted.internet import reactor
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IHostnameResolver, IHostResolution
from twisted.trial import unittest
from twisted.web import server
from zope.interface import implementer

from tests.homeserver.media.origin_server import LoopbackSite
from tests.homeserver.media.test_media_http import fetch, png
from tests.homeserver.media.test_remote_media import size_of
from tests.support.wspr import MatrixClient, PostgresUnavailable, RunningHomeServer, start_homeserver

V1 = "/_matrix/client/v1/media"
LOOPBACK_ONLY = {"url_preview_enabled": True, "url_preview_ip_range_whitelist": ["127.0.0.1/32"]}

PAGE = b"""<!doctype html><html><head>
<title>Ignored title</title>
<meta property="og:title" content="A page worth sharing">
<meta property="og:description" content="What this page is about, in a sentence.">
<meta property="og:image" content="/images/cover.png">
<meta property="og:type" content="article">
<meta name="twitter:site" content="@wspr">
</head><body><p>Body text</p></body></html>"""

PLAIN_PAGE = b"""<html><head><title>  Plain page </title>
<meta name="description" content="A description from the meta tag.">
</head><body>
<img src="/tiny.png" width="8" height="8"><img src="/images/wide.png" width="300" height="100">
<img src="/images/cover.png" width="400" height="300">
</body></html>"""


async def preview(hs: RunningHomeServer, client: MatrixClient, url: str, prefix: str = V1, ts: int | None = None) -> tuple[int, Any]:
    path = f"{prefix}/preview_url?url={quote(url, safe='')}" + (f"&ts={ts}" if ts is not None else "")
    code, _, body = await fetch(hs.base_url, path, client.access_token)
    return code, json.loads(body) if body else None


async def start(test: Any, **media: Any) -> tuple[RunningHomeServer, MatrixClient]:
    try:
        hs = await start_homeserver(test, media=media)
    except PostgresUnavailable as e:
        raise unittest.SkipTest(str(e)) from e
    return hs, await MatrixClient.register(hs.base_url, "alice")


def site_with_pages(test: Any, host: str = "127.0.0.1") -> LoopbackSite:
    site = LoopbackSite(host=host).start(test)
    cover = png(640, 480, (10, 200, 90, 255))

    def page(body: bytes, ctype: bytes = b"text/html; charset=utf-8") -> Any:
        def handler(request: server.Request) -> bytes:
            request.setHeader(b"Content-Type", ctype)
            return body

        return handler

    site.route("/page", page(PAGE))
    site.route("/plain", page(PLAIN_PAGE))
    site.route("/images/", page(cover, b"image/png"))
    site.cover = cover  # type: ignore[attr-defined]
    return site


@implementer(IHostResolution)
class _Resolution:
    def __init__(self, name: str) -> None:
        self.name = name

    def cancel(self) -> None:
        pass


@implementer(IHostnameResolver)
class FakeResolver:
    """Names of the test resolve to the addresses given (a callable may change its answer
    from one lookup to the next); any other name goes to the reactor's own resolver."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.lookups: list[str] = []
        self.real = reactor.nameResolver

    def resolveHostName(self, receiver: Any, hostName: str, portNumber: int = 0, addressTypes: Any = None, transportSemantics: str = "TCP") -> Any:
        if hostName not in self.answers:
            return self.real.resolveHostName(receiver, hostName, portNumber, addressTypes, transportSemantics)
        self.lookups.append(hostName)
        answer = self.answers[hostName]
        ips = answer() if callable(answer) else answer
        receiver.resolutionBegan(_Resolution(hostName))
        for ip in ips:
            cls = IPv6Address if ":" in ip else IPv4Address
            receiver.addressResolved(cls("TCP", ip, portNumber))
        receiver.resolutionComplete()
        return receiver

    def install(self, test: Any) -> FakeResolver:
        reactor.installNameResolver(self)
        test.addCleanup(reactor.installNameResolver, self.real)
        return self


class PreviewMixin:
    database = "sqlite"

    async def test_page_preview(self) -> None:
        site = site_with_pages(self)
        hs, alice = await _start_db(self, LOOPBACK_ONLY)
        code, og = await preview(hs, alice, site.url("/page"))
        self.assertEqual(code, 200, og)
        mxc = og.pop("og:image")
        self.assertEqual(
            og,
            {
                "og:title": "A page worth sharing",
                "og:description": "What this page is about, in a sentence.",
                "og:type": "article",
                "og:site_name": "@wspr",
                "og:image:type": "image/png",
                "matrix:image:size": len(site.cover),  # type: ignore[attr-defined]
                "og:image:width": 640,
                "og:image:height": 480,
            },
        )
        self.assertTrue(mxc.startswith(f"mxc://{hs.server_name}/"), mxc)
        code, hdrs, data = await fetch(hs.base_url, f"{V1}/download/{mxc[len('mxc://'):]}", alice.access_token)
        self.assertEqual((code, data), (200, site.cover))  # type: ignore[attr-defined]
        code, _, data = await fetch(hs.base_url, f"{V1}/thumbnail/{mxc[len('mxc://'):]}?width=96&height=96&method=crop", alice.access_token)
        self.assertEqual((code, size_of(data)), (200, (96, 96)))
        hits = len(site.hits)
        self.assertEqual([h.path for h in site.hits], ["/page", "/images/cover.png"])
        self.assertEqual(site.hits[0].headers["user-agent"], "WSPR (bot; URL preview)")

        # Cached: the legacy endpoint and a later request get the same answer, unfetched.
        code, again = await preview(hs, alice, site.url("/page"), prefix="/_matrix/media/v3")
        self.assertEqual((code, again), (200, {**og, "og:image": mxc}))
        self.assertEqual(len(site.hits), hits)
        # Kept in the database: a server restarted on it does not fetch it again.
        record = await hs.hs.store.get_url_preview(site.url("/page"), int(time.time() * 1000))
        assert record is not None
        self.assertEqual((json.loads(record.og)["og:title"], record.response_code), ("A page worth sharing", 200))
        self.assertGreater(record.expires_ts, record.download_ts)

        # The same image in another page is stored once.
        code, plain = await preview(hs, alice, site.url("/plain"))
        self.assertEqual(code, 200, plain)
        self.assertEqual(
            plain,
            {
                "og:title": "Plain page",
                "og:description": "A description from the meta tag.",
                "og:image": mxc,  # the biggest image of the page
                "og:image:type": "image/png",
                "matrix:image:size": len(site.cover),  # type: ignore[attr-defined]
                "og:image:width": 640,
                "og:image:height": 480,
            },
        )

    async def test_image_url_is_previewed_as_the_image(self) -> None:
        site = site_with_pages(self)

        def named(request: server.Request) -> bytes:
            request.setHeader(b"Content-Type", b"image/png")
            request.setHeader(b"Content-Disposition", b'inline; filename="holiday.png"')
            return png(100, 50)

        site.route("/photo", named)
        hs, alice = await _start_db(self, LOOPBACK_ONLY)
        code, og = await preview(hs, alice, site.url("/photo"))
        self.assertEqual(code, 200, og)
        mxc = og.pop("og:image")
        self.assertEqual(
            og,
            {"og:description": "holiday.png", "og:image:type": "image/png", "matrix:image:size": len(png(100, 50)), "og:image:width": 100, "og:image:height": 50},
        )
        code, _, data = await fetch(hs.base_url, f"{V1}/download/{mxc[len('mxc://'):]}", alice.access_token)
        self.assertEqual((code, data), (200, png(100, 50)))


async def _start_db(test: Any, media: dict[str, Any]) -> tuple[RunningHomeServer, MatrixClient]:
    try:
        hs = await start_homeserver(test, database=test.database, media=media)
    except PostgresUnavailable as e:
        raise unittest.SkipTest(str(e)) from e
    return hs, await MatrixClient.register(hs.base_url, "alice")


class PreviewSQLiteTest(PreviewMixin, unittest.TestCase):
    timeout = 120
    database = "sqlite"


class PreviewPostgresTest(PreviewMixin, unittest.TestCase):
    timeout = 120
    database = "postgresql"


class PreviewSSRFTest(unittest.TestCase):
    """Everything a preview must refuse to fetch; the servers that should never be
    reached count their requests."""

    timeout = 120

    async def test_internal_addresses_are_refused(self) -> None:
        # Default blocklist, nothing allowed: even the site on loopback is out of reach.
        site = site_with_pages(self)
        resolver = FakeResolver({"evil.test": ["127.0.0.1"], "mixed.test": ["93.184.216.34", "127.0.0.1"], "metadata.test": ["169.254.169.254"]}).install(self)
        hs, alice = await start(self, url_preview_enabled=True)
        port = site.port
        literals = [
            f"http://127.0.0.1:{port}/page",
            f"http://127.1.2.3:{port}/page",
            "http://10.0.0.1/",
            "http://192.168.1.1/",
            "http://172.16.0.1/",
            "http://100.64.0.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://0.0.0.0/",
            f"http://[::1]:{port}/page",
            f"http://[::ffff:127.0.0.1]:{port}/page",
            "http://[::ffff:a9fe:a9fe]/latest/meta-data/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://[::]/",
            "http://[64:ff9b::7f00:1]/",
        ]
        for url in literals:
            code, body = await preview(hs, alice, url)
            self.assertEqual((code, body), (403, {"errcode": "M_UNKNOWN", "error": "IP address blocked"}), url)
        for name in ("evil.test", "mixed.test", "metadata.test"):
            code, body = await preview(hs, alice, f"http://{name}:{port}/page")
            self.assertEqual(
                (code, body), (502, {"errcode": "M_UNKNOWN", "error": "DNS resolution failure during URL preview generation"}), name
            )
        self.assertEqual(sorted(set(resolver.lookups)), ["evil.test", "metadata.test", "mixed.test"])
        self.assertEqual(site.hits, [])
        for url in ("ftp://example.org/", "file:///etc/passwd", "http:///nohost", "gopher://127.0.0.1:70/"):
            code, body = await preview(hs, alice, url)
            self.assertEqual((code, body["errcode"]), (400, "M_INVALID_PARAM"), url)

    async def test_redirects_rebinding_and_limits(self) -> None:
        site = site_with_pages(self)
        # On 127.0.0.2: not allowed (only 127.0.0.1/32 is); same port as the site.
        secret = LoopbackSite(host="127.0.0.2").start(self, port=site.port)
        secret.route("/", lambda r: b"<html><title>internal</title></html>")
        flip = iter(["127.0.0.1"] + ["127.0.0.2"] * 100)
        resolver = FakeResolver(
            {"good.test": ["127.0.0.1"], "internal.test": ["127.0.0.2"], "rebind.test": lambda: [next(flip)]}
        ).install(self)
        hs, alice = await start(
            self,
            **LOOPBACK_ONLY,
            max_spider_size="64K",
            remote_fetch_timeout=1,
            url_preview_url_blacklist=[{"netloc": "blocked.test*"}, {"path": "^/private"}],
        )

        def redirect(target: str) -> Any:
            def handler(request: server.Request) -> bytes:
                request.setResponseCode(302)
                request.setHeader(b"Location", target.encode())
                return b""

            return handler

        site.route("/to-secret", redirect(secret.url("/")))
        site.route("/to-internal-name", redirect(f"http://internal.test:{secret.port}/"))
        site.route("/to-private-path", redirect("/private/x"))
        site.route("/to-page", redirect("/page"))
        site.route("/image-on-secret", lambda r: (r.setHeader(b"Content-Type", b"text/html"), f'<html><title>T</title><meta property="og:image" content="{secret.url("/img.png")}"></html>'.encode())[1])
        site.route("/huge", lambda r: site.stream(r, b"<html><title>big</title>", b"<p>" + b"x" * 65536 + b"</p>", 8 * 1024 * 1024, b"text/html"))
        site.route("/stall", lambda r: (r.setHeader(b"Content-Type", b"text/html"), r.write(b"<html>"), None)[2])
        site.route("/pdf", lambda r: (r.setHeader(b"Content-Type", b"application/pdf"), b"%PDF-1.4")[1])
        site.route("/missing", lambda r: (r.setResponseCode(404), b"nope")[1])

        # A name of an allowed address works; a redirect (relative) is followed.
        code, og = await preview(hs, alice, f"http://good.test:{site.port}/to-page")
        self.assertEqual((code, og["og:title"]), (200, "A page worth sharing"))
        self.assertEqual(site.hits[0].headers["host"], f"good.test:{site.port}")
        # Redirects to blocked addresses, by literal and by name.
        code, body = await preview(hs, alice, site.url("/to-secret"))
        self.assertEqual((code, body["error"]), (403, "IP address blocked"))
        code, body = await preview(hs, alice, site.url("/to-internal-name"))
        self.assertEqual((code, body["error"]), (502, "DNS resolution failure during URL preview generation"))
        # The URL blocklist, for the URL and for where it redirects.
        for url in (f"http://blocked.test:{site.port}/page", site.url("/private/page"), site.url("/to-private-path")):
            code, body = await preview(hs, alice, url)
            self.assertEqual((code, body["error"]), (403, "URL blocked by url pattern blocklist entry"), url)
        # A page whose image is on a blocked address: previewed, without the image (the
        # title's text is the page's only text, so the description too, as in Synapse).
        code, og = await preview(hs, alice, site.url("/image-on-secret"))
        self.assertEqual((code, og), (200, {"og:title": "T", "og:description": "T"}))
        # DNS rebinding: the name is resolved once per connection and the connection
        # goes to the address that was checked. The page's connection got 127.0.0.1; the
        # next lookup (for the page's image, same name) says 127.0.0.2 and is refused.
        code, og = await preview(hs, alice, f"http://rebind.test:{site.port}/page")
        self.assertEqual((code, og["og:title"]), (200, "A page worth sharing"))
        self.assertNotIn("og:image", og)
        self.assertEqual(resolver.lookups.count("rebind.test"), 2)
        self.assertEqual(secret.hits, [])

        # Size: refused past max_spider_size, the connection dropped.
        code, body = await preview(hs, alice, site.url("/huge"))
        self.assertEqual((code, body["errcode"]), (502, "M_TOO_LARGE"))
        self.assertLess(site.sent, 4 * 1024 * 1024)
        # Time: a page that stops coming.
        t0 = time.monotonic()
        code, body = await preview(hs, alice, site.url("/stall"))
        self.assertEqual(code, 502)
        self.assertLess(time.monotonic() - t0, 10)
        code, body = await preview(hs, alice, site.url("/pdf"))
        self.assertEqual((code, body["errcode"]), (502, "M_UNKNOWN"))
        code, body = await preview(hs, alice, site.url("/missing"))
        self.assertEqual((code, body), (502, {"errcode": "M_UNKNOWN", "error": "Got error 404"}))

    async def test_disabled_and_for_users_only(self) -> None:
        hs, alice = await start(self)
        code, body = await preview(hs, alice, "http://example.org/")
        self.assertEqual((code, body["errcode"]), (404, "M_UNRECOGNIZED"))
        code, _, _ = await fetch(hs.base_url, f"{V1}/preview_url?url=http://example.org/")
        self.assertEqual(code, 401)


try:
    import bs4  # noqa: F401  (Synapse's URL previews need it: matrix-synapse[url-preview])
    import synapse  # noqa: F401
except ImportError:
    synapse = None


class PreviewComparedWithSynapseTest(unittest.TestCase):
    timeout = 180
    if synapse is None:
        skip = "matrix-synapse[url-preview] is not installed"

    async def test_same_answer_as_synapse(self) -> None:
        from homeserver.util.ip_filter import DEFAULT_IP_RANGE_BLOCKLIST
        from tests.support.synapse import start_synapse_peer, synapse_client

        site = site_with_pages(self)
        article = (
            b"<html><head><title>Fallback</title></head><body><nav>Skip me</nav>"
            b"<h1>Heading</h1><p>" + b"A first paragraph of the article with enough words to be summarised. " * 4 + b"</p>"
            b"<p>A second paragraph.</p><script>ignored()</script>"
            b'<img src="/images/cover.png" width="640" height="480"></body></html>'
        )
        site.route("/article", lambda r: (r.setHeader(b"Content-Type", b"text/html"), article)[1])
        syn = await start_synapse_peer(
            self,
            "wspr-preview-synapse-",
            extra_config={
                "url_preview_enabled": True,
                "url_preview_ip_range_blacklist": list(DEFAULT_IP_RANGE_BLOCKLIST),
                "url_preview_ip_range_whitelist": ["127.0.0.1"],
            },
        )
        sam = await synapse_client(syn, "sam")
        hs, alice = await start(self, **LOOPBACK_ONLY)
        for path in ("/page", "/plain", "/article", "/images/cover.png"):
            url = site.url(path)
            code, ours = await preview(hs, alice, url)
            _, _, raw = await fetch(syn.client_url, f"{V1}/preview_url?url={quote(url, safe='')}", sam.access_token)
            theirs = json.loads(raw)
            self.assertEqual(code, 200, ours)
            # The image is stored on each server under its own mxc URI.
            self.assertTrue(ours.pop("og:image").startswith(f"mxc://{hs.server_name}/"))
            self.assertTrue(theirs.pop("og:image").startswith(f"mxc://{syn.server_name}/"))
            self.assertEqual(ours, theirs, path)
        # A blocked address: the same errors. (Not an IPv6 literal: Synapse answers 500,
        # as its URL encoding refuses one; WSPR refuses it as blocked, 403.)
        for url in (f"http://127.0.0.2:{site.port}/page", "http://10.0.0.1/", "http://169.254.169.254/latest/"):
            code, ours = await preview(hs, alice, url)
            scode, _, raw = await fetch(syn.client_url, f"{V1}/preview_url?url={quote(url, safe='')}", sam.access_token)
            self.assertEqual((code, ours), (scode, json.loads(raw)), url)


class PreviewConfigTest(unittest.TestCase):
    """The preview keys of wspr.yaml: Synapse's names, defaults that block internal
    addresses, and one line naming a bad key."""

    def _load(self, media: dict[str, Any]) -> Any:
        import os
        import tempfile

        import yaml

        from homeserver.cli import main as wspr_main
        from homeserver.config import load_config

        directory = tempfile.mkdtemp()
        assert wspr_main(["init", directory, "--server-name", "example.org"]) == 0
        path = os.path.join(directory, "wspr.yaml")
        with open(path) as f:
            data = yaml.safe_load(f)
        data["media"].update(media)
        with open(path, "w") as f:
            yaml.safe_dump(data, f)
        return load_config(path)

    def test_keys(self) -> None:
        from homeserver.config import ConfigError

        cfg = self._load({}).media
        self.assertFalse(cfg.url_preview.enabled)
        self.assertIn("169.254.0.0/16", cfg.url_preview.ip_range_blocklist)
        self.assertEqual((cfg.url_preview.max_spider_size, cfg.remote_fetch_timeout_s), (10 * 1024 * 1024, 60.0))
        cfg = self._load(
            {"url_preview_enabled": True, "url_preview_ip_range_whitelist": ["127.0.0.1/32"], "max_spider_size": "1M", "url_preview_url_blacklist": [{"netloc": "*.x"}]}
        ).media
        self.assertEqual((cfg.url_preview.enabled, cfg.url_preview.ip_range_allowlist, cfg.url_preview.max_spider_size), (True, ("127.0.0.1/32",), 1024 * 1024))
        for media, key in (
            ({"url_preview_ip_range_blacklist": ["nonsense"]}, "media.url_preview_ip_range_blacklist"),
            ({"url_preview_url_blacklist": [{"host": "x"}]}, "media.url_preview_url_blacklist[0].host"),
            ({"url_preview_url_blacklist": [{"path": "^(unclosed"}]}, "media.url_preview_url_blacklist[0].path"),
            ({"remote_fetch_timeout": 0}, "media.remote_fetch_timeout"),
            ({"url_preview": True}, "media.url_preview"),
        ):
            with self.assertRaises(ConfigError) as cm:
                self._load(media)
            self.assertEqual(cm.exception.key, key)
