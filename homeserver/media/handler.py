"""The media repository (``hs.media``): uploads, downloads, thumbnails.

Local media ids are random (24 url-safe characters); the content lives on disk (see
``filestore``), the metadata in the ``media`` table. Remote media is fetched from its
server and cached by ``remote.RemoteMediaCache``.
"""

from __future__ import annotations

import logging
import secrets
import string
from typing import TYPE_CHECKING, Any, BinaryIO

from twisted.internet import defer

from homeserver.config import ThumbnailSize
from homeserver.http.errors import Forbidden, LimitExceeded, MatrixError, NotFound, TooLarge
from homeserver.media.filestore import MEDIA_ID_RE, MediaFileStore
from homeserver.media.headers import base_type
from homeserver.media.records import STREAM_THRESHOLD, MediaContent, StoredMedia
from homeserver.media.remote import RemoteMediaCache
from homeserver.media.thumbnailer import (
    THUMBNAILABLE_TYPES,
    ImageInfo,
    Thumbnail,
    ThumbnailError,
    make_thumbnail,
    needs_thumbnail,
    output_type,
    probe,
    select_box,
    select_size,
)
from homeserver.media.workers import shared_pool
from homeserver.util.async_helpers import SharedResult
from homeserver.util.caches import LruCache
from homeserver.util.ids import now_ms

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester
    from homeserver.media.preview import UrlPreviewer

logger = logging.getLogger(__name__)

MEDIA_ID_LENGTH = 24
PENDING_EXPIRY_MS = 24 * 3600 * 1000
MAX_PENDING_PER_USER = 10
DEFAULT_WAIT_MS = 20_000
MAX_WAIT_MS = 60_000
MAX_CONTENT_TYPE_LEN = 255
MAX_FILENAME_LEN = 255

_ID_ALPHABET = string.ascii_letters + string.digits


# Thumbnails are decoded by this many threads (one pool per process), so at most this many
# images are in memory at full size at once (each up to 4 bytes x media.max_image_pixels)...
THUMBNAIL_WORKERS = 2
# ...and at most this many different thumbnails wait for them; beyond, 429.
MAX_THUMBNAIL_JOBS = 64
IMAGE_INFO_CACHE = 10_000


class MediaHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store
        self.server_name = hs.server_name
        self.max_upload_size = hs.config.media.max_upload_size
        self.max_image_pixels = hs.config.media.max_image_pixels
        self.thumbnail_sizes = hs.config.media.thumbnail_sizes
        self.authenticated_media = hs.config.media.enable_authenticated_media
        self.files = MediaFileStore(hs.config.media.store_path, hs.reactor)
        self.thumbnail_pool = shared_pool(hs.reactor, THUMBNAIL_WORKERS, "thumbnails")
        self._thumbnail_jobs: dict[str, SharedResult[Thumbnail]] = {}
        self._image_infos: LruCache[str, ImageInfo] = LruCache(IMAGE_INFO_CACHE)
        # Media of other servers.
        self.remote = RemoteMediaCache(hs, self.files)
        # URL previews, when they are on.
        self.previewer: UrlPreviewer | None = None
        if hs.config.media.url_preview.enabled:
            from homeserver.media.preview import UrlPreviewer

            self.previewer = UrlPreviewer(hs, self)
        self._upload_waiters: dict[str, SharedResult[None]] = {}
        self._upload_waiting: dict[str, int] = {}

    async def stop(self) -> None:
        """Cancels the fetches from other servers and sites still running (at shutdown)."""
        await self.remote.stop()
        if self.previewer is not None:
            await self.previewer.stop()

    async def preview_url(self, url: str, ts: int) -> bytes:
        """The OpenGraph preview of ``url`` as of ``ts`` (JSON bytes)."""
        if self.previewer is None:
            raise MatrixError(404, "M_UNRECOGNIZED", "URL previews are disabled on this server")
        return await self.previewer.preview(url, ts)

    def config(self) -> dict[str, Any]:
        return {"m.upload.size": self.max_upload_size}

    def mxc(self, media_id: str) -> str:
        return f"mxc://{self.server_name}/{media_id}"

    @staticmethod
    def new_media_id() -> str:
        return "".join(secrets.choice(_ID_ALPHABET) for _ in range(MEDIA_ID_LENGTH))

    # -- uploads ----------------------------------------------------------------------

    def _check_upload(self, size: int, content_type: str | None, filename: str | None) -> None:
        if size > self.max_upload_size:
            raise TooLarge(f"Cannot upload files larger than {self.max_upload_size} bytes")
        if content_type is not None and len(content_type) > MAX_CONTENT_TYPE_LEN:
            raise MatrixError(400, "M_INVALID_PARAM", "Content-Type too long")
        if filename is not None and (len(filename) > MAX_FILENAME_LEN or any(ord(c) < 0x20 for c in filename)):
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid filename")

    async def upload(
        self, requester: Requester, body: BinaryIO, size: int, content_type: str | None, filename: str | None
    ) -> str:
        """``body``: the request's spooled body, copied to the store without being read
        into memory whole."""
        self._check_upload(size, content_type, filename)
        self.hs.ratelimiter.check("media_upload", requester.user_id)
        media_id = self.new_media_id()
        sha256 = await self.files.write_from(self.files.local_path(media_id), body)
        await self.store.store_local_media(
            media_id,
            requester.user_id,
            content_type,
            filename,
            size,
            now_ms(),
            sha256,
            self.authenticated_media,
        )
        return self.mxc(media_id)

    async def create(self, requester: Requester) -> dict[str, Any]:
        """Reserves an mxc URI whose content comes later (PUT /upload/{server}/{id})."""
        self.hs.ratelimiter.check("media_upload", requester.user_id)
        now = now_ms()
        if await self.store.count_pending_media(requester.user_id, now) >= MAX_PENDING_PER_USER:
            raise MatrixError(429, "M_LIMIT_EXCEEDED", "Too many pending media uploads", retry_after_ms=60_000)
        media_id = self.new_media_id()
        expires = now + PENDING_EXPIRY_MS
        await self.store.create_pending_media(media_id, requester.user_id, now, expires, self.authenticated_media)
        return {"content_uri": self.mxc(media_id), "unused_expires_at": expires}

    async def upload_to(
        self,
        requester: Requester,
        server_name: str,
        media_id: str,
        body: BinaryIO,
        size: int,
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
        self._check_upload(size, content_type, filename)
        self.hs.ratelimiter.check("media_upload", requester.user_id)
        # Content first: once the row says "uploaded", the file must be there.
        sha256 = await self.files.write_from(self.files.local_path(media_id), body)
        done = await self.store.complete_pending_media(media_id, content_type, filename, size, sha256)
        if not done:
            raise MatrixError(409, "M_CANNOT_OVERWRITE_MEDIA", "Media ID already has content")
        waiter = self._upload_waiters.pop(media_id, None)
        if waiter is not None:
            waiter.callback(None)

    # -- downloads --------------------------------------------------------------------

    async def get_content(
        self,
        server_name: str,
        media_id: str,
        timeout_ms: int | None = None,
        allow_remote: bool = True,
        allow_authenticated: bool = True,
    ) -> MediaContent:
        """``allow_authenticated``: False on the legacy unauthenticated endpoints, which
        then do not serve media stored as authenticated (see ``_locate``)."""
        stored = await self._locate(server_name, media_id, timeout_ms, allow_remote, allow_authenticated)
        return await self._from_disk(stored)

    async def _locate(
        self, server_name: str, media_id: str, timeout_ms: int | None, allow_remote: bool, allow_authenticated: bool
    ) -> StoredMedia:
        if not MEDIA_ID_RE.match(media_id):
            raise NotFound("Unknown media")
        if server_name == self.server_name:
            return await self._locate_local(media_id, timeout_ms, allow_authenticated)
        if not allow_remote:
            raise NotFound("Remote media not cached")
        return await self.remote.locate(server_name, media_id, allow_authenticated)

    async def _locate_local(self, media_id: str, timeout_ms: int | None, allow_authenticated: bool) -> StoredMedia:
        record = await self.store.get_local_media(media_id)
        if record is None:
            raise NotFound("Unknown media")
        if record.quarantined_by is not None:
            # Quarantined by an admin: gone for everyone, as in Synapse.
            raise NotFound("Not found")
        if self.authenticated_media and not allow_authenticated and record.authenticated:
            # As Synapse: media uploaded under enable_authenticated_media does not exist
            # for the unauthenticated endpoints.
            raise NotFound("Not found")
        if record.pending:
            if record.unused_expires_ts is not None and record.unused_expires_ts < now_ms():
                raise NotFound("Unknown media")
            await self._wait_for_upload(media_id, timeout_ms)
            record = await self.store.get_local_media(media_id)
            if record is None or record.pending:
                raise MatrixError(504, "M_NOT_YET_UPLOADED", "Content has not yet been uploaded")
        return StoredMedia(
            self.files.local_path(media_id),
            record.content_type or "application/octet-stream",
            record.upload_name,
            record.size,
            record.authenticated,
        )

    async def _from_disk(self, stored: StoredMedia) -> MediaContent:
        if stored.size > STREAM_THRESHOLD:
            return MediaContent(None, stored.content_type, stored.upload_name, stored.path, stored.size, stored.authenticated)
        data = await self.files.read(stored.path)
        if data is None:
            logger.warning("media file %s is in the database but not on disk", stored.path)
            raise NotFound("Unknown media")
        return MediaContent(data, stored.content_type, stored.upload_name, None, len(data), stored.authenticated)

    async def _wait_for_upload(self, media_id: str, timeout_ms: int | None) -> None:
        timeout = DEFAULT_WAIT_MS if timeout_ms is None else max(0, min(timeout_ms, MAX_WAIT_MS))
        if timeout == 0:
            return
        waiter = self._upload_waiters.get(media_id)
        if waiter is None:
            waiter = self._upload_waiters[media_id] = SharedResult()
        self._upload_waiting[media_id] = self._upload_waiting.get(media_id, 0) + 1
        d = waiter.wait()
        d.addTimeout(timeout / 1000, self.hs.reactor)
        try:
            await d
        except defer.TimeoutError:
            pass
        finally:
            # The last one to stop waiting forgets the id (else every id ever asked for
            # while pending would stay in memory).
            left = self._upload_waiting.pop(media_id) - 1
            if left:
                self._upload_waiting[media_id] = left
            elif self._upload_waiters.get(media_id) is waiter:
                del self._upload_waiters[media_id]

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
        allow_authenticated: bool = True,
    ) -> MediaContent:
        """The configured thumbnail nearest to ``width``x``height`` (or the original when
        it is smaller), made at most once per (media, size) however many ask at once."""
        if width <= 0 or height <= 0:
            raise MatrixError(400, "M_INVALID_PARAM", "width and height must be positive")
        if server_name != self.server_name and allow_remote and MEDIA_ID_RE.match(media_id):
            # Remote media we do not hold: the origin's thumbnail, if it has one to give.
            record = await self.remote.record(server_name, media_id, allow_authenticated)
            if not self.remote.has_original(record):
                box = select_box(width, height, method, self.thumbnail_sizes)
                if box is None:
                    raise NotFound("No thumbnail of that method is made on this server")
                fetched = await self.remote.origin_thumbnail(server_name, media_id, box)
                if fetched is not None:
                    return fetched
        stored = await self._locate(server_name, media_id, timeout_ms, allow_remote, allow_authenticated)
        source_type = base_type(stored.content_type)
        if source_type not in THUMBNAILABLE_TYPES:
            raise MatrixError(400, "M_UNKNOWN", "Cannot generate thumbnails for this content type")
        info = await self._image_info(stored.path)
        size = select_size(info.width, info.height, width, height, method, self.thumbnail_sizes)
        if size is None:
            raise NotFound("No thumbnail of that method is made on this server")
        if not needs_thumbnail(info.width, info.height, size):
            return await self._from_disk(stored)
        origin = None if server_name == self.server_name else server_name
        out_type = output_type(source_type)
        path = self.files.thumbnail_path(origin, media_id, size.width, size.height, size.method, out_type)
        cached = await self.files.read(path)
        if cached is not None:
            return MediaContent(cached, out_type, None, None, len(cached), stored.authenticated)
        job = self._thumbnail_jobs.get(path)
        if job is None:
            if len(self._thumbnail_jobs) >= MAX_THUMBNAIL_JOBS:
                raise LimitExceeded(1000)
            job = self._thumbnail_jobs[path] = SharedResult()
            defer.ensureDeferred(self._generate(job, path, stored, source_type, size))
        thumb = await job.wait()
        return MediaContent(thumb.data, thumb.content_type, None, None, len(thumb.data), stored.authenticated)

    async def _image_info(self, path: str) -> ImageInfo:
        info = self._image_infos.fetch(path)
        if info is None:
            try:
                info = await self.thumbnail_pool.run(probe, path, self.max_image_pixels)
            except ThumbnailError as e:
                # As Synapse when no thumbnail could be made (too many pixels, not an image).
                logger.info("cannot thumbnail %s: %s", path, e)
                raise MatrixError(400, "M_UNKNOWN", "Cannot generate a thumbnail for this content") from None
            self._image_infos.put(path, info)
        return info

    async def _generate(
        self, job: SharedResult[Thumbnail], path: str, stored: StoredMedia, source_type: str, size: ThumbnailSize
    ) -> None:
        try:
            try:
                thumb = await self.thumbnail_pool.run(make_thumbnail, stored.path, source_type, size, self.max_image_pixels)
            except ThumbnailError as e:
                logger.info("cannot thumbnail %s: %s", stored.path, e)
                raise MatrixError(400, "M_UNKNOWN", "Cannot generate a thumbnail for this content") from None
            except Exception as e:  # any decoder failure on hostile input is the content's fault
                logger.info("cannot thumbnail %s: %s", stored.path, e)
                raise MatrixError(400, "M_UNKNOWN", "Cannot generate a thumbnail for this content") from None
            if thumb.content_type == output_type(source_type):
                await self.files.write(path, thumb.data)
            job.callback(thumb)
        except BaseException as e:
            job.errback(e)
        finally:
            del self._thumbnail_jobs[path]
