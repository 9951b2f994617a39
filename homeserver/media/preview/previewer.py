"""URL previews (``GET /_matrix/client/v1/media/preview_url``), as Synapse's
``synapse/media/url_previewer.py`` makes them, without oEmbed.

A preview fetches what a user names, so it is an SSRF surface: every connection, the
first and each redirect's, goes only to an address ``media.url_preview_ip_range_blacklist``
(minus the whitelist) allows, checked at the connection itself with the name resolved
once (``homeserver.util.outbound_http``); ``media.url_preview_url_blacklist`` is checked
for the URL and every redirect; the body is read only up to ``media.max_spider_size``
and only for HTML and images, within ``media.remote_fetch_timeout``.

HTML gives its OpenGraph data (``html.py``) and its image, fetched the same way; an
image URL is previewed as the image itself. Images are stored as local media of no user
(the same content once), so ``og:image`` is an ``mxc://`` URI. Previews are kept in the
database per URL for an hour (asking with an older ``ts`` finds the preview of then, as
Synapse), and in memory for an hour per URL whatever the outcome (one fetch at a time
per URL, failures included, as Synapse's in-memory cache).
"""

from __future__ import annotations

import fnmatch
import json
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from twisted.internet import defer

from homeserver.http.errors import LimitExceeded, MatrixError
from homeserver.media.filestore import PendingFile
from homeserver.media.headers import base_type
from homeserver.media.multipart import filename_from_disposition
from homeserver.media.preview.html import open_graph_of
from homeserver.media.thumbnailer import ThumbnailError, probe
from homeserver.media.workers import shared_pool
from homeserver.storage.media import UrlPreviewRecord
from homeserver.util.async_helpers import SharedResult
from homeserver.util.ids import now_ms
from homeserver.util.ip_filter import IPFilter, parse_ip
from homeserver.util.outbound_http import (
    BadURL,
    BlockedAddress,
    BodyTimeout,
    BodyTooLarge,
    NoAddress,
    OutboundError,
    OutboundHttpClient,
    discard_body,
    read_body,
)

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.media.handler import MediaHandler

logger = logging.getLogger(__name__)

ONE_HOUR_MS = 3600 * 1000
ONE_DAY_MS = 24 * ONE_HOUR_MS
OG_TAG_NAME_MAXLEN = 50
OG_TAG_VALUE_MAXLEN = 1000
MAX_REDIRECTS = 10
MAX_URL_LENGTH = 8192
# Previews being made at once, beyond which a new one is refused with 429 (a page is held
# in memory, up to max_spider_size, while it is fetched and parsed).
MAX_IN_FLIGHT = 10
# Results kept in memory (an hour each, as Synapse).
MEMORY_CACHE_SIZE = 1000
USER_AGENT = b"WSPR (bot; URL preview)"
REDIRECT_CODES = (301, 302, 303, 307, 308)


def _is_html(content_type: str) -> bool:
    return content_type.lower().startswith(("text/html", "application/xhtml"))


def _is_image(content_type: str) -> bool:
    return content_type.lower().startswith("image/")


def url_blocked(url: str, blocklist: tuple[dict[str, str], ...]) -> bool:
    """Synapse's ``_is_url_blocked``: a URL is refused when every attribute of one entry
    matches (a glob, or a regex when the pattern starts with ^)."""
    parts = urlsplit(url)
    for entry in blocklist:
        matched = True
        for attr, pattern in entry.items():
            try:
                value = getattr(parts, attr)
            except ValueError:  # a port that is not a number
                value = None
            if value is None:
                matched = False
                break
            text = str(value)
            if not (re.match(pattern, text) if pattern.startswith("^") else fnmatch.fnmatch(text, pattern)):
                matched = False
                break
        if matched:
            return True
    return False


@dataclass(frozen=True)
class Download:
    url: str  # where it came from, after redirects
    code: int
    content_type: str
    filename: str | None
    body: bytes | None  # HTML: the page
    file: PendingFile | None  # an image: its file, not yet committed...
    media_id: str = ""  # ...as this local media id


class UrlPreviewer:
    def __init__(self, hs: HomeServer, media: MediaHandler) -> None:
        self.hs = hs
        self.store = hs.store
        self.media = media
        cfg = hs.config.media.url_preview
        self.max_size = cfg.max_spider_size
        self.url_blocklist = cfg.url_blocklist
        self.timeout_s = hs.config.media.remote_fetch_timeout_s
        self.client = OutboundHttpClient(hs.reactor, IPFilter(cfg.ip_range_blocklist, cfg.ip_range_allowlist), user_agent=USER_AGENT)
        # HTML is parsed off the reactor thread, one page at a time.
        self.parser_pool = shared_pool(hs.reactor, 1, "url_previews")
        self._in_flight: dict[str, SharedResult[bytes]] = {}
        self._recent: dict[str, tuple[int, bytes | BaseException]] = {}
        self._running: set[defer.Deferred[Any]] = set()

    async def preview(self, url: str, ts: int) -> bytes:
        """The preview as JSON bytes (what Synapse answers)."""
        if len(url) > MAX_URL_LENGTH:
            raise MatrixError(400, "M_INVALID_PARAM", "URL too long")
        try:
            parts = urlsplit(url)
        except ValueError:
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise MatrixError(400, "M_INVALID_PARAM", "Only http and https URLs can be previewed")
        if url_blocked(url, self.url_blocklist):
            raise MatrixError(403, "M_UNKNOWN", "URL blocked by url pattern blocklist entry")
        now = now_ms()
        recent = self._recent.get(url)
        if recent is not None and recent[0] > now:
            if isinstance(recent[1], BaseException):
                raise recent[1]
            return recent[1]
        shared = self._in_flight.get(url)
        if shared is None:
            if len(self._in_flight) >= MAX_IN_FLIGHT:
                raise LimitExceeded(1000)
            shared = self._in_flight[url] = SharedResult()
            d = defer.ensureDeferred(self._run(url, ts, shared))
            self._running.add(d)

            def untrack(result: Any) -> Any:
                self._running.discard(d)
                return result

            d.addBoth(untrack)
        return await shared.wait()

    async def _run(self, url: str, ts: int, shared: SharedResult[bytes]) -> None:
        try:
            result = await self._preview(url, ts)
            self._remember(url, result)
            shared.callback(result)
        except BaseException as e:
            if not isinstance(e, defer.CancelledError):
                self._remember(url, e)
            shared.errback(e)
        finally:
            del self._in_flight[url]

    def _remember(self, url: str, outcome: bytes | BaseException) -> None:
        now = now_ms()
        if len(self._recent) >= MEMORY_CACHE_SIZE:
            self._recent = {k: v for k, v in self._recent.items() if v[0] > now}
            while len(self._recent) >= MEMORY_CACHE_SIZE:
                del self._recent[next(iter(self._recent))]
        self._recent[url] = (now + ONE_HOUR_MS, outcome)

    async def stop(self) -> None:
        for d in list(self._running):
            d.cancel()

    # -- making one ------------------------------------------------------------------------

    async def _preview(self, url: str, ts: int) -> bytes:
        cached = await self.store.get_url_preview(url, ts)
        if cached is not None and cached.expires_ts > ts and cached.response_code // 100 == 2:
            return cached.og.encode("utf-8")
        download = await self._download(url)
        og: dict[str, Any]
        if download.file is not None:
            og = {"og:description": download.filename}
            og.update(await self._store_image(download))
        elif download.body is not None:
            og = await self.parser_pool.run(open_graph_of, download.body, download.content_type)
            await self._precache_image(download.url, og)
        else:
            og = {}
        for key in [k for k, v in og.items() if len(k) > OG_TAG_NAME_MAXLEN or len(str(v)) > OG_TAG_VALUE_MAXLEN]:
            logger.info("dropping an overlong tag %s from a preview", key[:OG_TAG_NAME_MAXLEN])
            del og[key]
        encoded = json.dumps(og, separators=(",", ":"), ensure_ascii=False)
        now = now_ms()
        # Synapse's expiry: an hour (capped at a day).
        record = UrlPreviewRecord(now, now + min(ONE_HOUR_MS, ONE_DAY_MS), download.code, encoded)
        await self.store.store_url_preview(url, record, now)
        return encoded.encode("utf-8")

    async def _precache_image(self, page_url: str, og: dict[str, Any]) -> None:
        """Replaces the page's image URL with the image stored here (or drops it)."""
        image_url = og.pop("og:image", None)
        if not image_url:
            return
        image_url = urljoin(page_url, str(image_url))
        try:
            if url_blocked(image_url, self.url_blocklist):
                raise MatrixError(403, "M_UNKNOWN", "URL blocked by url pattern blocklist entry")
            download = await self._download(image_url)
        except Exception as e:
            # As Synapse: the page's preview goes on without its image.
            logger.info("image %s of a preview not fetched: %s", image_url[:200], e)
            return
        if download.file is None:
            return
        og.update(await self._store_image(download))

    async def _store_image(self, download: Download) -> dict[str, Any]:
        """Stores a downloaded image as local media (once per content); its og: keys."""
        pending = download.file
        assert pending is not None
        sha256 = pending.sha256
        if await self.store.is_sha256_quarantined(sha256):
            # As Synapse: content an admin quarantined is not handed out again.
            logger.warning("discarding %s from a URL preview: it matches quarantined media", download.url[:200])
            pending.abort()
            return {}
        existing = await self.store.find_unowned_media_by_sha256(sha256)
        if existing is not None:
            pending.abort()
            media_id = existing
        else:
            await pending.commit()
            media_id = download.media_id
            await self.store.store_unowned_media(
                media_id, download.content_type, download.filename, pending.size, now_ms(), sha256, self.media.authenticated_media
            )
        og: dict[str, Any] = {
            "og:image": self.media.mxc(media_id),
            "og:image:type": download.content_type,
            "matrix:image:size": pending.size,
        }
        try:
            info = await self.media.thumbnail_pool.run(probe, self.media.files.local_path(media_id), self.media.max_image_pixels)
            og["og:image:width"], og["og:image:height"] = info.width, info.height
        except ThumbnailError as e:
            logger.info("no dimensions for %s: %s", download.url[:200], e)
        return og

    async def _download(self, url: str) -> Download:
        """GET ``url``, following redirects (each one checked again); HTML into memory,
        an image into a new file of the media store; both within ``max_spider_size``."""
        hops = 0
        while True:
            response = await self._get(url)
            if response.code in REDIRECT_CODES:
                location = response.headers.getRawHeaders(b"location")
                discard_body(response)
                if not location or hops >= MAX_REDIRECTS:
                    raise MatrixError(502, "M_UNKNOWN", f"Got error {response.code}")
                hops += 1
                url = urljoin(url, location[0].decode("latin-1"))
                if url_blocked(url, self.url_blocklist):
                    raise MatrixError(403, "M_UNKNOWN", "URL blocked by url pattern blocklist entry")
                continue
            break
        if not 200 <= response.code < 300:
            discard_body(response)
            raise MatrixError(502, "M_UNKNOWN", f"Got error {response.code}")
        raw_type = response.headers.getRawHeaders(b"content-type")
        content_type = raw_type[0].decode("latin-1") if raw_type else "application/octet-stream"
        if not (_is_html(content_type) or _is_image(content_type)):
            discard_body(response)
            raise MatrixError(502, "M_UNKNOWN", f"Requested file's content type not allowed for this operation: {content_type[:100]}")
        disposition = response.headers.getRawHeaders(b"content-disposition")
        filename = filename_from_disposition(disposition[0].decode("latin-1") if disposition else None)
        if _is_image(content_type):
            media_id = self.media.new_media_id()
            pending = self.media.files.pending(self.media.files.local_path(media_id))
            try:
                await self._read(response, pending.write)
            except BaseException:
                pending.abort()
                raise
            stored_type = base_type(content_type) if len(content_type) > 255 else content_type
            return Download(url, response.code, stored_type, filename, None, pending, media_id)
        chunks: list[bytes] = []
        await self._read(response, chunks.append)
        return Download(url, response.code, content_type, filename, b"".join(chunks), None)

    async def _get(self, url: str) -> Any:
        try:
            return await self.client.get(url, {b"Accept-Language": [b"en"]}, timeout=self.timeout_s)
        except BadURL as e:
            raise MatrixError(400, "M_INVALID_PARAM", str(e)) from None
        except BlockedAddress:
            host = urlsplit(url).hostname or ""
            logger.warning("URL preview of %s refused: a blocked address", url[:200])
            if parse_ip(host) is not None:
                # As Synapse's BlocklistingAgentWrapper for an IP literal...
                raise MatrixError(403, "M_UNKNOWN", "IP address blocked") from None
            # ...and its resolver for a name (the name "does not resolve").
            raise MatrixError(502, "M_UNKNOWN", "DNS resolution failure during URL preview generation") from None
        except NoAddress:
            raise MatrixError(502, "M_UNKNOWN", "DNS resolution failure during URL preview generation") from None
        except OutboundError as e:
            # Synapse answers 500 here; it is the other side that failed.
            logger.info("URL preview of %s failed: %s", url[:200], e)
            raise MatrixError(502, "M_UNKNOWN", "Failed to download content") from None

    async def _read(self, response: Any, write: Any) -> None:
        try:
            await read_body(self.hs.reactor, response, write, self.max_size, self.timeout_s)
        except BodyTooLarge:
            raise MatrixError(502, "M_TOO_LARGE", f"Requested file is too large > {self.max_size} bytes") from None
        except BodyTimeout:
            # Synapse's errcode for this, odd as it is.
            raise MatrixError(502, "M_TOO_LARGE", "Requested file took too long to download") from None
        except OutboundError:
            raise MatrixError(502, "M_UNKNOWN", "Failed to download content") from None
