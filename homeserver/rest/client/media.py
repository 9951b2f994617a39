"""Media endpoints: upload/create under /_matrix/media, authenticated download and
thumbnails under /_matrix/client/v1/media, the deprecated unauthenticated
/_matrix/media/v3 download/thumbnail, and the federation /media/download and
/media/thumbnail endpoints.

With ``media.enable_authenticated_media`` (the default, as in Synapse) the legacy
endpoints serve only media stored before it was turned on; newer media is 404 there.
Other servers still get everything over federation."""

from __future__ import annotations

import logging
import os
import re
from typing import TYPE_CHECKING, Any, BinaryIO

from twisted.protocols.basic import FileSender
from twisted.python.failure import Failure
from twisted.web.server import Request

from homeserver.http.errors import NotFound, TooLarge
from homeserver.http.request import body_file, parse_boolean, parse_integer, parse_string
from homeserver.http.server import RawResponse, Router
from homeserver.media.handler import MediaContent
from homeserver.media.headers import media_headers
from homeserver.media.multipart import frame as multipart_frame
from homeserver.util.ids import now_ms

if TYPE_CHECKING:
    from homeserver.app import HomeServer

logger = logging.getLogger(__name__)

MEDIA_LEGACY = ["/_matrix/media/v3", "/_matrix/media/r0", "/_matrix/media/v1"]
MEDIA_CLIENT = ["/_matrix/client/v1/media"]
SERVER_MEDIA = "/(?P<server_name>[^/]+)/(?P<media_id>[^/]+)"
_SERVER_NAME = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]+)(:[0-9]{1,5})?$")


def _check_server_name(server_name: str) -> None:
    if not _SERVER_NAME.match(server_name):
        raise NotFound("Unknown media")


def _upload_params(request: Request, max_size: int) -> tuple[BinaryIO, int, str | None, str | None]:
    # The HTTP layer refused anything over max_size before reading it (the route's max_body).
    body, size = body_file(request)
    if size > max_size:
        raise TooLarge(f"Cannot upload files larger than {max_size} bytes")
    raw_type = request.getHeader(b"Content-Type")
    content_type = raw_type.decode("utf-8", "replace").strip() if raw_type else None
    filename = parse_string(request, "filename")
    return body, size, content_type or None, filename or None


def _response(request: Request, content: MediaContent, filename: str | None, authenticated: bool) -> RawResponse | None:
    # Authenticated media, or any media asked for with a token, stays out of shared caches.
    headers = media_headers(content.content_type, filename or content.upload_name, authenticated or content.authenticated)
    if content.data is not None:
        return RawResponse(200, content.data, headers)
    _stream_file(request, content.path or "", headers)
    return None


def _stream_file(request: Request, path: str, headers: dict[str, str], head: bytes = b"", tail: bytes = b"") -> None:
    """Sends a large file from disk in chunks (the router's "handler wrote it" path),
    between ``head`` and ``tail`` (a multipart frame) if given."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise NotFound("Unknown media") from None
    request.setResponseCode(200)
    for k, v in headers.items():
        request.setHeader(k.encode(), v.encode())
    request.setHeader(b"Content-Length", str(len(head) + os.fstat(f.fileno()).st_size + len(tail)).encode())
    if request.method == b"HEAD":
        f.close()
        request.finish()
        return

    def done(result: Any) -> None:
        f.close()
        if not request.finished and not getattr(request, "_disconnected", False):
            if tail and not isinstance(result, Failure):
                request.write(tail)
            request.finish()

    if head:
        request.write(head)
    FileSender().beginFileTransfer(f, request).addBoth(done)


def register(hs: HomeServer, router: Router) -> None:
    media = hs.media
    max_size = hs.config.media.max_upload_size

    async def upload(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        body, size, content_type, filename = _upload_params(request, max_size)
        return 200, {"content_uri": await media.upload(requester, body, size, content_type, filename)}

    async def upload_to(request: Request, server_name: str, media_id: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        body, size, content_type, filename = _upload_params(request, max_size)
        await media.upload_to(requester, server_name, media_id, body, size, content_type, filename)
        return 200, {}

    async def create(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        return 200, await media.create(requester)

    async def config(request: Request) -> tuple[int, Any]:
        await hs.auth.get_user_by_req(request)
        return 200, media.config()

    async def preview_url(request: Request) -> RawResponse:
        # As Synapse: for registered users only (guests get M_GUEST_ACCESS_FORBIDDEN).
        await hs.auth.get_user_by_req(request)
        url = parse_string(request, "url", required=True)
        ts = parse_integer(request, "ts")
        og = await media.preview_url(url or "", ts if ts is not None else now_ms())
        return RawResponse(200, og, {"Content-Type": "application/json"})

    def download_handler(authenticated: bool) -> Any:
        async def download(request: Request, server_name: str, media_id: str, file_name: str | None = None) -> RawResponse | None:
            if authenticated:
                await hs.auth.get_user_by_req(request, allow_guest=True)
            _check_server_name(server_name)
            timeout_ms = parse_integer(request, "timeout_ms")
            allow_remote = parse_boolean(request, "allow_remote", default=True)
            content = await media.get_content(
                server_name, media_id, timeout_ms, allow_remote, allow_authenticated=authenticated
            )
            return _response(request, content, file_name, authenticated)

        return download

    def thumbnail_handler(authenticated: bool) -> Any:
        async def thumbnail(request: Request, server_name: str, media_id: str) -> RawResponse | None:
            if authenticated:
                await hs.auth.get_user_by_req(request, allow_guest=True)
            _check_server_name(server_name)
            width = parse_integer(request, "width", required=True)
            height = parse_integer(request, "height", required=True)
            method = parse_string(request, "method", default="scale", allowed=("crop", "scale"))
            parse_boolean(request, "animated", default=False)  # static thumbnails only
            timeout_ms = parse_integer(request, "timeout_ms")
            allow_remote = parse_boolean(request, "allow_remote", default=True)
            content = await media.get_thumbnail(
                server_name,
                media_id,
                width,
                height,
                method or "scale",
                timeout_ms,
                allow_remote,
                allow_authenticated=authenticated,
            )
            return _response(request, content, None, authenticated)

        return thumbnail

    # Uploads are the one client body bigger than a JSON request.
    router.register_prefixes("POST", MEDIA_LEGACY, "/upload", upload, max_body=max_size)
    router.register_prefixes("PUT", MEDIA_LEGACY, "/upload" + SERVER_MEDIA, upload_to, max_body=max_size)
    router.register("POST", "/_matrix/media/v1/create", create)
    for prefixes, authed in ((MEDIA_CLIENT, True), (MEDIA_LEGACY, False)):
        download = download_handler(authed)
        router.register_prefixes("GET", prefixes, "/download" + SERVER_MEDIA, download)
        router.register_prefixes("GET", prefixes, "/download" + SERVER_MEDIA + "/(?P<file_name>[^/]+)", download)
        router.register_prefixes("GET", prefixes, "/thumbnail" + SERVER_MEDIA, thumbnail_handler(authed))
        router.register_prefixes("GET", prefixes, "/config", config)
        router.register_prefixes("GET", prefixes, "/preview_url", preview_url)
    register_federation(hs)


def register_federation(hs: HomeServer) -> None:
    """Serves our media to other servers (multipart/mixed: JSON metadata, then the file)."""
    try:
        from federation.transport.server import authenticated
    except ImportError:  # a build without federation
        return
    media = hs.media

    def multipart(request: Request, content: MediaContent) -> RawResponse | None:
        headers = media_headers(content.content_type, content.upload_name, authenticated=True)
        head, tail, ctype = multipart_frame({k: headers[k] for k in ("Content-Type", "Content-Disposition")})
        if content.data is not None:
            return RawResponse(200, head + content.data + tail, {"Content-Type": ctype})
        # A big file is streamed from disk, never read whole: any server may ask for it.
        _stream_file(request, content.path or "", {"Content-Type": ctype}, head, tail)
        return None

    async def fed_download(request: Request, origin: str, media_id: str) -> RawResponse | None:
        timeout_ms = parse_integer(request, "timeout_ms")
        return multipart(request, await media.get_content(hs.server_name, media_id, timeout_ms, allow_remote=False))

    async def fed_thumbnail(request: Request, origin: str, media_id: str) -> RawResponse | None:
        width = parse_integer(request, "width", required=True)
        height = parse_integer(request, "height", required=True)
        method = parse_string(request, "method", default="scale", allowed=("crop", "scale"))
        timeout_ms = parse_integer(request, "timeout_ms")
        content = await media.get_thumbnail(
            hs.server_name, media_id, width, height, method or "scale", timeout_ms, allow_remote=False
        )
        return multipart(request, content)

    prefix = "/_matrix/federation/v1/media"
    hs.federation_router.register("GET", prefix + "/download/(?P<media_id>[^/]+)", authenticated(hs, fed_download))
    hs.federation_router.register("GET", prefix + "/thumbnail/(?P<media_id>[^/]+)", authenticated(hs, fed_thumbnail))
