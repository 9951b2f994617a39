"""The media repository (``hs.media``): uploads, downloads, thumbnails.

Local media ids are random (24 url-safe characters); the content lives on disk (see
``filestore``), the metadata in the ``media`` table. Remote media goes through the
``fetch_remote`` hook, which the federation layer sets; without it remote media is 404.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from twisted.internet import defer, threads

from homeserver.http.errors import Forbidden, MatrixError, NotFound, TooLarge
from homeserver.media.filestore import MEDIA_ID_RE, MediaFileStore
from homeserver.media.thumbnailer import (
    THUMBNAILABLE_TYPES,
    ImageTooLarge,
    choose_size,
    make_thumbnail,
)
from homeserver.storage.media import RemoteMediaRecord
from homeserver.util.async_helpers import SharedResult
from homeserver.util.ids import now_ms

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester

logger = logging.getLogger(__name__)

MEDIA_ID_LENGTH = 24
PENDING_EXPIRY_MS = 24 * 3600 * 1000
MAX_PENDING_PER_USER = 10
DEFAULT_WAIT_MS = 20_000
MAX_WAIT_MS = 60_000
MAX_CONTENT_TYPE_LEN = 255
MAX_FILENAME_LEN = 255

_ID_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class RemoteMedia:
    """What ``fetch_remote`` returns for media found on another server."""

    data: bytes
    content_type: str | None
    upload_name: str | None


# fetch_remote(server_name, media_id, max_size) -> RemoteMedia | None (None: not found).
FetchRemote = Callable[[str, str, int], Awaitable["RemoteMedia | None"]]


# Files bigger than this are streamed from disk rather than read into memory.
STREAM_THRESHOLD = 4 * 1024 * 1024


@dataclass(frozen=True)
class MediaContent:
    """Content to serve: in memory (``data``), or a file on disk to stream (``path``)."""

    data: bytes | None
    content_type: str
    upload_name: str | None
    path: str | None = None
    size: int = 0


class MediaHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self.hs = hs
        self.store = hs.store
        self.server_name = hs.server_name
        self.max_upload_size = hs.config.media.max_upload_size
        self.files = MediaFileStore(hs.config.media.store_path, hs.reactor)
        # Set by the federation layer: fetches media from its origin server.
        self.fetch_remote: FetchRemote | None = None
        self._upload_waiters: dict[str, SharedResult[None]] = {}
        self._remote_fetches: dict[tuple[str, str], SharedResult[Any]] = {}

    def config(self) -> dict[str, Any]:
        return {"m.upload.size": self.max_upload_size}

    def mxc(self, media_id: str) -> str:
        return f"mxc://{self.server_name}/{media_id}"

    @staticmethod
    def new_media_id() -> str:
        return "".join(secrets.choice(_ID_ALPHABET) for _ in range(MEDIA_ID_LENGTH))

    # -- uploads ----------------------------------------------------------------------

    def _check_upload(self, data: bytes, content_type: str | None, filename: str | None) -> None:
        if len(data) > self.max_upload_size:
            raise TooLarge(f"Cannot upload files larger than {self.max_upload_size} bytes")
        if content_type is not None and len(content_type) > MAX_CONTENT_TYPE_LEN:
            raise MatrixError(400, "M_INVALID_PARAM", "Content-Type too long")
        if filename is not None and (len(filename) > MAX_FILENAME_LEN or any(ord(c) < 0x20 for c in filename)):
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid filename")

    async def upload(self, requester: "Requester", data: bytes, content_type: str | None, filename: str | None) -> str:
        self._check_upload(data, content_type, filename)
        self.hs.ratelimiter.check("media_upload", requester.user_id)
        media_id = self.new_media_id()
        await self.files.write(self.files.local_path(media_id), data)
        await self.store.store_local_media(
            media_id, requester.user_id, content_type, filename, len(data), now_ms(), hashlib.sha256(data).hexdigest()
        )
        return self.mxc(media_id)

    async def create(self, requester: "Requester") -> dict[str, Any]:
        """Reserves an mxc URI whose content comes later (PUT /upload/{server}/{id})."""
        self.hs.ratelimiter.check("media_upload", requester.user_id)
        now = now_ms()
        if await self.store.count_pending_media(requester.user_id, now) >= MAX_PENDING_PER_USER:
            raise MatrixError(429, "M_LIMIT_EXCEEDED", "Too many pending media uploads", retry_after_ms=60_000)
        media_id = self.new_media_id()
        expires = now + PENDING_EXPIRY_MS
        await self.store.create_pending_media(media_id, requester.user_id, now, expires)
        return {"content_uri": self.mxc(media_id), "unused_expires_at": expires}

    async def upload_to(
        self,
        requester: "Requester",
        server_name: str,
        media_id: str,
        data: bytes,
        content_type: str | None,
        filename: str | None,
    ) -> None:
        if server_name != self.server_name or not MEDIA_ID_RE.match(media_id):
            raise NotFound("Unknown media id")
        record = await self.store.get_local_media(media_id)
        if record is None:
            raise NotFound("Unknown media id")
        if record.user_id != requester.user_id:
            raise Forbidden("You did not create this media id")
        if not record.pending:
            raise MatrixError(409, "M_CANNOT_OVERWRITE_MEDIA", "Media ID already has content")
        if record.unused_expires_ts is not None and record.unused_expires_ts < now_ms():
            raise NotFound("Media id has expired")
        self._check_upload(data, content_type, filename)
        self.hs.ratelimiter.check("media_upload", requester.user_id)
        # Content first: once the row says "uploaded", the file must be there.
        await self.files.write(self.files.local_path(media_id), data)
        done = await self.store.complete_pending_media(
            media_id, content_type, filename, len(data), hashlib.sha256(data).hexdigest()
        )
        if not done:
            raise MatrixError(409, "M_CANNOT_OVERWRITE_MEDIA", "Media ID already has content")
        waiter = self._upload_waiters.pop(media_id, None)
        if waiter is not None:
            waiter.callback(None)

    # -- downloads --------------------------------------------------------------------

    async def get_content(
        self, server_name: str, media_id: str, timeout_ms: int | None = None, allow_remote: bool = True
    ) -> MediaContent:
        if not MEDIA_ID_RE.match(media_id):
            raise NotFound("Unknown media")
        if server_name == self.server_name:
            return await self._get_local(media_id, timeout_ms)
        if not allow_remote:
            raise NotFound("Remote media not cached")
        return await self._get_remote(server_name, media_id)

    async def _get_local(self, media_id: str, timeout_ms: int | None) -> MediaContent:
        record = await self.store.get_local_media(media_id)
        if record is None:
            raise NotFound("Unknown media")
        if record.pending:
            if record.unused_expires_ts is not None and record.unused_expires_ts < now_ms():
                raise NotFound("Unknown media")
            await self._wait_for_upload(media_id, timeout_ms)
            record = await self.store.get_local_media(media_id)
            if record is None or record.pending:
                raise MatrixError(504, "M_NOT_YET_UPLOADED", "Content has not yet been uploaded")
        return await self._from_disk(
            self.files.local_path(media_id), record.size, record.content_type, record.upload_name
        )

    async def _from_disk(self, path: str, size: int, content_type: str | None, upload_name: str | None) -> MediaContent:
        ctype = content_type or "application/octet-stream"
        if size > STREAM_THRESHOLD:
            return MediaContent(None, ctype, upload_name, path=path, size=size)
        data = await self.files.read(path)
        if data is None:
            logger.warning("media file %s is in the database but not on disk", path)
            raise NotFound("Unknown media")
        return MediaContent(data, ctype, upload_name, size=len(data))

    async def load(self, content: MediaContent) -> bytes:
        """The bytes of content that may be on disk only."""
        if content.data is not None:
            return content.data
        data = await self.files.read(content.path or "")
        if data is None:
            raise NotFound("Unknown media")
        return data

    async def _wait_for_upload(self, media_id: str, timeout_ms: int | None) -> None:
        timeout = DEFAULT_WAIT_MS if timeout_ms is None else max(0, min(timeout_ms, MAX_WAIT_MS))
        if timeout == 0:
            return
        waiter = self._upload_waiters.get(media_id)
        if waiter is None:
            waiter = self._upload_waiters[media_id] = SharedResult()
        d = waiter.wait()
        d.addTimeout(timeout / 1000, self.hs.reactor)
        try:
            await d
        except defer.TimeoutError:
            pass

    async def _get_remote(self, server_name: str, media_id: str) -> MediaContent:
        record = await self.store.get_remote_media(server_name, media_id)
        if record is not None:
            path = self.files.remote_path(server_name, record.filesystem_id)
            try:
                return await self._from_disk(path, record.size, record.content_type, record.upload_name)
            except NotFound:
                pass  # the cached file is gone: fetch it again
        if self.fetch_remote is None:
            raise NotFound("Remote media is not available")
        key = (server_name, media_id)
        inflight = self._remote_fetches.get(key)
        if inflight is not None:
            return await inflight.wait()
        shared: SharedResult[MediaContent] = SharedResult()
        self._remote_fetches[key] = shared
        try:
            content = await self._fetch_and_cache(server_name, media_id)
            shared.callback(content)
            return content
        except BaseException as e:
            shared.errback(e)
            raise
        finally:
            del self._remote_fetches[key]

    async def _fetch_and_cache(self, server_name: str, media_id: str) -> MediaContent:
        assert self.fetch_remote is not None
        remote = await self.fetch_remote(server_name, media_id, self.max_upload_size)
        if remote is None:
            raise NotFound("Remote media not found")
        if len(remote.data) > self.max_upload_size:
            raise MatrixError(502, "M_TOO_LARGE", "Remote media is too large")
        fsid = self.new_media_id()
        await self.files.write(self.files.remote_path(server_name, fsid), remote.data)
        await self.store.store_remote_media(
            RemoteMediaRecord(
                server_name,
                media_id,
                remote.content_type,
                remote.upload_name,
                len(remote.data),
                hashlib.sha256(remote.data).hexdigest(),
                fsid,
                now_ms(),
            )
        )
        return MediaContent(
            remote.data, remote.content_type or "application/octet-stream", remote.upload_name, size=len(remote.data)
        )

    # -- thumbnails -------------------------------------------------------------------

    async def get_thumbnail(
        self,
        server_name: str,
        media_id: str,
        width: int,
        height: int,
        method: str,
        timeout_ms: int | None = None,
        allow_remote: bool = True,
    ) -> MediaContent:
        if width <= 0 or height <= 0:
            raise MatrixError(400, "M_INVALID_PARAM", "width and height must be positive")
        content = await self.get_content(server_name, media_id, timeout_ms, allow_remote)
        source_type = content.content_type.split(";", 1)[0].strip().lower()
        if source_type not in THUMBNAILABLE_TYPES:
            raise MatrixError(400, "M_UNKNOWN", "Cannot generate thumbnails for this content type")
        tw, th, tmethod = choose_size(width, height, method)
        origin = None if server_name == self.server_name else server_name
        out_type = "image/jpeg" if source_type in ("image/jpeg", "image/jpg") else "image/png"
        path = self.files.thumbnail_path(origin, media_id, tw, th, tmethod, out_type)
        cached = await self.files.read(path)
        if cached is not None:
            return MediaContent(cached, out_type, None, size=len(cached))
        data = await self.load(content)
        try:
            thumb = await threads.deferToThreadPool(
                self.hs.reactor, self.hs.reactor.getThreadPool(), make_thumbnail, data, source_type, tw, th, tmethod
            )
        except ImageTooLarge:
            raise TooLarge("Image is too large to thumbnail") from None
        except Exception as e:  # any decoder failure on hostile input is the content's fault
            logger.info("cannot thumbnail %s/%s: %s", server_name, media_id, e)
            raise MatrixError(400, "M_UNKNOWN", "Cannot generate a thumbnail for this content") from None
        if thumb is None:
            # The original is no larger than the thumbnail would be: serve it.
            return MediaContent(data, content.content_type, None, size=len(data))
        if thumb.content_type == out_type:
            await self.files.write(path, thumb.data)
        return MediaContent(thumb.data, thumb.content_type, None, size=len(thumb.data))
