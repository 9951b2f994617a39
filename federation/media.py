"""Fetching media from the server that holds it (``hs.federation.fetch_remote_media`` and
``fetch_remote_thumbnail``), as Synapse's ``federation_download_media``.

``GET /_matrix/federation/v1/media/download/{mediaId}`` answers multipart/mixed: a JSON
metadata part, then the content or a ``Location`` to fetch it from. A server without the
endpoint (404 or 405 without a JSON error, or ``M_UNRECOGNIZED``) is asked the deprecated
``/_matrix/media/v3/download/{serverName}/{mediaId}?allow_remote=false&allow_redirect=true``,
whose 307/308 redirect is followed once. A ``Location`` is fetched with
``OutboundHttpClient``, so it must resolve to an address the federation IP blocklist
allows, checked at the connection itself; its own redirects are not followed (Synapse's
``SimpleHttpClient.get_file`` does not either).

The content goes to the caller's ``sink`` as it arrives: nothing is held whole, and the
connection is dropped as soon as more than ``max_size`` bytes have come (or a
Content-Length says they would). Errors are Synapse's: the origin's 404 is passed on,
anything else that goes wrong is 502 (``M_TOO_LARGE`` for size), a refused destination
403.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlsplit

from twisted.internet import defer

from federation.client import q
from federation.errors import FederationDenied, FederationError, is_unknown_endpoint
from homeserver.http.errors import MatrixError
from homeserver.media.multipart import MultipartError, MultipartStream, boundary_of, filename_from_disposition
from homeserver.media.records import RemoteMedia
from homeserver.util.ip_filter import parse_ip
from homeserver.util.outbound_http import (
    BlockedAddress,
    BodyTimeout,
    BodyTooLarge,
    OutboundError,
    OutboundHttpClient,
    discard_body,
    read_body,
)

if TYPE_CHECKING:
    from federation.service import Federation

logger = logging.getLogger(__name__)

V1_MEDIA = "/_matrix/federation/v1/media"
LEGACY_DOWNLOAD = "/_matrix/media/v3/download"
# What a multipart body may carry besides the content: the metadata part and two parts'
# headers (multipart.MAX_METADATA, MAX_PART_HEADERS) and the delimiters.
FRAMING_ALLOWANCE = 64 * 1024 + 2 * 16 * 1024 + 1024

Sink = Callable[[bytes], object]
T = TypeVar("T")


def failed(msg: str = "Failed to fetch remote media") -> MatrixError:
    return MatrixError(502, "M_UNKNOWN", msg)


def too_large(max_size: int) -> MatrixError:
    return MatrixError(502, "M_TOO_LARGE", f"Requested file is too large > {max_size} bytes")


def _header(response: Any, name: bytes) -> str | None:
    values = response.headers.getRawHeaders(name)
    return values[0].decode("latin-1") if values else None


class _Limited:
    """The caller's sink, refusing content past ``max_size`` bytes."""

    def __init__(self, sink: Sink, max_size: int) -> None:
        self._sink = sink
        self._max = max_size
        self.size = 0

    def __call__(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self._max:
            raise BodyTooLarge(f"more than {self._max} bytes")
        self._sink(data)


# Downloads from one server at once (Synapse's remote_download_linearizer lets 6 run);
# more wait their turn.
MAX_DOWNLOADS_PER_SERVER = 6


class MediaClient:
    def __init__(self, fed: Federation) -> None:
        self.fed = fed
        self.reactor = fed.hs.reactor
        transport = fed.transport
        # Redirect targets obey the federation IP blocklist (and its TLS policy).
        self.redirects = OutboundHttpClient(self.reactor, transport.ip_filter, transport.tls.creator_for)
        self._per_server: dict[str, defer.DeferredSemaphore] = {}

    async def _limited(self, server_name: str, fetch: Callable[[], Awaitable[T]]) -> T:
        sem = self._per_server.get(server_name)
        if sem is None:
            sem = self._per_server[server_name] = defer.DeferredSemaphore(MAX_DOWNLOADS_PER_SERVER)
        await sem.acquire()
        try:
            return await fetch()
        finally:
            sem.release()
            if sem.tokens == sem.limit and not sem.waiting:
                self._per_server.pop(server_name, None)

    async def download(self, server_name: str, media_id: str, sink: Sink, max_size: int, timeout_s: float) -> RemoteMedia:
        try:
            try:
                return await self._federation_get(f"{V1_MEDIA}/download/{q(media_id)}", {}, server_name, sink, max_size, timeout_s)
            except FederationError as e:
                if not is_unknown_endpoint(e):
                    raise
            logger.debug("%s has no federation media endpoint: falling back to %s", server_name, LEGACY_DOWNLOAD)
            return await self._legacy_get(server_name, media_id, sink, max_size, timeout_s)
        except defer.CancelledError:
            raise  # shutdown
        except Exception as e:
            raise self._client_error(server_name, media_id, e, max_size) from None

    async def thumbnail(
        self, server_name: str, media_id: str, width: int, height: int, method: str, sink: Sink, max_size: int, timeout_s: float
    ) -> RemoteMedia | None:
        """The origin's thumbnail; None when it has none to give (it answers 4xx: a server
        without the endpoint, content it cannot thumbnail, no size of that method), and
        the caller makes it from the original."""
        query = {"width": str(width), "height": str(height), "method": method}
        try:
            return await self._federation_get(f"{V1_MEDIA}/thumbnail/{q(media_id)}", query, server_name, sink, max_size, timeout_s)
        except FederationError as e:
            if 400 <= e.code < 500 and e.code != 429 and not isinstance(e, FederationDenied):
                logger.info("no thumbnail of %s/%s from its origin: %s %s", server_name, media_id, e.code, e.errcode)
                return None
            raise self._client_error(server_name, media_id, e, max_size) from None
        except defer.CancelledError:
            raise
        except Exception as e:
            raise self._client_error(server_name, media_id, e, max_size) from None

    def _client_error(self, server_name: str, media_id: str, e: Exception, max_size: int) -> MatrixError:
        """What the client is told, as Synapse's ``_federation_download_remote_file``."""
        if isinstance(e, FederationDenied):
            return e
        if isinstance(e, FederationError):
            logger.info("fetching %s/%s: %s answered %s %s", server_name, media_id, server_name, e.code, e.errcode)
            if e.code == 404:
                # The origin's own error, as Synapse's HttpResponseException.to_synapse_error.
                error = e.body.get("error") if isinstance(e.body, dict) else None
                return MatrixError(404, e.errcode, error if isinstance(error, str) else "Not found")
            if e.code == 502 and e.errcode == "M_TOO_LARGE":
                return too_large(max_size)
            return failed()
        if isinstance(e, BodyTooLarge):
            return too_large(max_size)
        if isinstance(e, MatrixError):
            return e
        if isinstance(e, (OutboundError, MultipartError)):
            logger.info("fetching %s/%s failed: %s", server_name, media_id, e)
            return failed()
        logger.exception("fetching %s/%s failed", server_name, media_id)
        return failed()

    async def _federation_get(
        self, path: str, query: dict[str, str], server_name: str, sink: Sink, max_size: int, timeout_s: float
    ) -> RemoteMedia:
        query = {**query, "timeout_ms": str(int(timeout_s * 1000))}

        async def consume(response: Any) -> RemoteMedia:
            if response.code != 200:
                discard_body(response)
                raise failed(f"Unexpected answer {response.code} from {server_name}")
            try:
                boundary = boundary_of(_header(response, b"content-type") or "")
            except MultipartError:
                discard_body(response)
                raise failed(
                    "Remote response is malformed: expected Content-Type of multipart/mixed with a boundary"
                ) from None
            limited = _Limited(sink, max_size)
            stream = MultipartStream(boundary, limited)
            await read_body(self.reactor, response, stream.feed, max_size + FRAMING_ALLOWANCE, timeout_s)
            parsed = stream.finish()
            if parsed.location is None:
                return RemoteMedia(parsed.content_type, parsed.filename, limited.size)
            return await self._follow(parsed.location, sink, max_size, timeout_s)

        return await self._limited(
            server_name, lambda: self.fed.transport.stream(server_name, path, consume, query=query, timeout=timeout_s)
        )

    async def _legacy_get(self, server_name: str, media_id: str, sink: Sink, max_size: int, timeout_s: float) -> RemoteMedia:
        # The server name as Synapse sends it (a colon needs no escaping in a path).
        path = f"{LEGACY_DOWNLOAD}/{quote(server_name, safe=':')}/{q(media_id)}"
        # allow_remote=false: the origin must not fetch it from elsewhere (no loops).
        query = {"allow_remote": "false", "allow_redirect": "true", "timeout_ms": str(int(timeout_s * 1000))}

        async def consume(response: Any) -> RemoteMedia:
            if response.code in (307, 308):
                location = _header(response, b"location")
                discard_body(response)
                if not location:
                    raise failed("Redirect without a Location")
                return await self._follow(location, sink, max_size, timeout_s)
            if response.code != 200:
                discard_body(response)
                raise failed(f"Unexpected answer {response.code} from {server_name}")
            return await self._read_plain(response, sink, max_size, timeout_s)

        return await self._limited(
            server_name, lambda: self.fed.transport.stream(server_name, path, consume, query=query, timeout=timeout_s)
        )

    async def _follow(self, location: str, sink: Sink, max_size: int, timeout_s: float) -> RemoteMedia:
        try:
            response = await self.redirects.get(location, timeout=timeout_s)
        except BlockedAddress as e:
            logger.warning("not following a media redirect to %s: %s", location[:200], e)
            host = _host_of(location)
            if host is not None and parse_ip(host) is not None:
                # As Synapse's BlocklistingAgentWrapper for an IP literal.
                raise MatrixError(403, "M_UNKNOWN", "IP address blocked") from None
            raise failed() from None
        if not 200 <= response.code < 300:
            discard_body(response)
            raise failed(f"Got error {response.code}")
        return await self._read_plain(response, sink, max_size, timeout_s)

    async def _read_plain(self, response: Any, sink: Sink, max_size: int, timeout_s: float) -> RemoteMedia:
        try:
            size = await read_body(self.reactor, response, sink, max_size, timeout_s)
        except BodyTimeout:
            raise failed("Requested file took too long to download") from None
        return RemoteMedia(
            _header(response, b"content-type"),
            filename_from_disposition(_header(response, b"content-disposition")),
            size,
        )


def _host_of(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None
