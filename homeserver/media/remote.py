"""Media of other servers, fetched over federation (``hs.federation``) and cached on
disk: the original in ``remote_content/`` (``remote_media_cache``), thumbnails the
origin made in ``remote_thumbnails/`` (``remote_media_thumbnails``).

Each (server, media) is fetched once however many clients ask at once: the first ask
starts the fetch, apart from any request (a client that goes away does not cancel it
for the others), and everyone waits for its outcome. The content is written to disk as
it arrives, never held whole, and refused past ``media.max_upload_size`` (as Synapse).
"""

from __future__ import annotations

import logging
import os
import secrets
import string
from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from homeserver.config import ThumbnailSize
from homeserver.http.errors import NotFound
from homeserver.media.filestore import MediaFileStore
from homeserver.media.headers import base_type
from homeserver.media.records import STREAM_THRESHOLD, MediaContent, StoredMedia
from homeserver.storage.media import RemoteMediaRecord
from homeserver.util.async_helpers import SharedResult
from homeserver.util.ids import now_ms

if TYPE_CHECKING:
    from homeserver.app import HomeServer

logger = logging.getLogger(__name__)

# What a thumbnail from another server may be (the spec's list for the thumbnail part);
# anything else is ignored and the thumbnail is made here from the original.
THUMBNAIL_TYPES = frozenset({"image/png", "image/apng", "image/jpeg", "image/gif", "image/webp"})
MAX_HEADER_VALUE = 255

_ID_ALPHABET = string.ascii_letters + string.digits


def _file_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


def _clean(value: str | None) -> str | None:
    """A Content-Type or file name from another server, if it is a sane header value."""
    if value is None or len(value) > MAX_HEADER_VALUE or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return None
    return value or None


class RemoteMediaCache:
    def __init__(self, hs: HomeServer, files: MediaFileStore) -> None:
        self.hs = hs
        self.store = hs.store
        self.files = files
        cfg = hs.config.media
        self.max_size = cfg.max_upload_size
        self.timeout_s = cfg.remote_fetch_timeout_s
        self.authenticated_media = cfg.enable_authenticated_media
        self._fetches: dict[tuple[str, str], SharedResult[StoredMedia]] = {}
        self._thumbnail_fetches: dict[tuple[str, str, int, int, str], SharedResult[MediaContent | None]] = {}
        # Fetches running apart from any request (so that stop() can wait for them).
        self._running: set[defer.Deferred[Any]] = set()

    # -- what we hold ---------------------------------------------------------------------

    async def record(self, server_name: str, media_id: str, allow_authenticated: bool) -> RemoteMediaRecord | None:
        """What we know of the media, after the checks that make it 404 whatever we hold."""
        record = await self.store.get_remote_media(server_name, media_id)
        if self.authenticated_media and not allow_authenticated and (record is None or record.authenticated):
            # As Synapse: the legacy endpoints neither fetch remote media nor serve what
            # was fetched for the authenticated ones.
            raise NotFound("Not found")
        if record is not None and record.quarantined_by is not None:
            raise NotFound("Not found")
        return record

    def stored(self, record: RemoteMediaRecord) -> StoredMedia:
        return StoredMedia(
            self.files.remote_path(record.server_name, record.filesystem_id),
            record.content_type or "application/octet-stream",
            record.upload_name,
            record.size,
            record.authenticated,
        )

    def has_original(self, record: RemoteMediaRecord | None) -> bool:
        return record is not None and os.path.exists(self.stored(record).path)

    # -- the original ---------------------------------------------------------------------

    async def locate(self, server_name: str, media_id: str, allow_authenticated: bool) -> StoredMedia:
        """The original on disk, fetched from its server first when we do not hold it."""
        record = await self.record(server_name, media_id, allow_authenticated)
        if record is not None and self.has_original(record):
            return self.stored(record)
        key = (server_name, media_id)
        shared = self._fetches.get(key)
        if shared is None:
            shared = self._fetches[key] = SharedResult()
            self._detach(self._fetch(key, shared))
        return await shared.wait()

    async def _fetch(self, key: tuple[str, str], shared: SharedResult[StoredMedia]) -> None:
        server_name, media_id = key
        try:
            fsid = _file_id()
            pending = self.files.pending(self.files.remote_path(server_name, fsid))
            try:
                remote = await self.hs.federation.fetch_remote_media(
                    server_name, media_id, pending.write, self.max_size, self.timeout_s
                )
                await pending.commit()
            except BaseException:
                pending.abort()
                raise
            record = RemoteMediaRecord(
                server_name,
                media_id,
                _clean(remote.content_type) or "application/octet-stream",
                _clean(remote.upload_name),
                pending.size,
                pending.sha256,
                fsid,
                now_ms(),
                self.authenticated_media,
            )
            await self.store.store_remote_media(record)
            shared.callback(self.stored(record))
        except BaseException as e:
            shared.errback(e)
        finally:
            del self._fetches[key]

    # -- thumbnails the origin made ----------------------------------------------------------

    async def origin_thumbnail(self, server_name: str, media_id: str, size: ThumbnailSize) -> MediaContent | None:
        """The origin's thumbnail for one of our sizes (cached); None when it has none to
        give (it answered 4xx, or not with an image): then the caller makes it here from
        the original."""
        w, h, method = size.width, size.height, size.method
        path = self.files.origin_thumbnail_path(server_name, media_id, w, h, method)
        known = await self.store.get_remote_thumbnail(server_name, media_id, w, h, method)
        if known is not None:
            content = await self._thumbnail_content(path, known.content_type, known.size)
            if content is not None:
                return content
        key = (server_name, media_id, w, h, method)
        shared = self._thumbnail_fetches.get(key)
        if shared is None:
            shared = self._thumbnail_fetches[key] = SharedResult()
            self._detach(self._fetch_thumbnail(key, path, shared))
        return await shared.wait()

    async def _fetch_thumbnail(
        self, key: tuple[str, str, int, int, str], path: str, shared: SharedResult[MediaContent | None]
    ) -> None:
        server_name, media_id, w, h, method = key
        try:
            pending = self.files.pending(path)
            try:
                remote = await self.hs.federation.fetch_remote_thumbnail(
                    server_name, media_id, w, h, method, pending.write, self.max_size, self.timeout_s
                )
                content_type = _clean(remote.content_type) if remote is not None else None
                if content_type is None or base_type(content_type) not in THUMBNAIL_TYPES:
                    # None there (an older server, not an image, no size of that method),
                    # or not an image type: we make it from the original.
                    logger.info("no thumbnail of %s/%s from its origin (%r)", server_name, media_id, content_type)
                    pending.abort()
                    shared.callback(None)
                    return
                await pending.commit()
            except BaseException:
                pending.abort()
                raise
            now = now_ms()
            # The media becomes known, so that an admin can quarantine it by its id.
            await self.store.store_remote_media_if_absent(
                RemoteMediaRecord(server_name, media_id, None, None, 0, None, _file_id(), now, self.authenticated_media)
            )
            await self.store.store_remote_thumbnail(server_name, media_id, w, h, method, content_type, pending.size, now)
            shared.callback(await self._thumbnail_content(path, content_type, pending.size))
        except BaseException as e:
            shared.errback(e)
        finally:
            del self._thumbnail_fetches[key]

    async def _thumbnail_content(self, path: str, content_type: str, size: int) -> MediaContent | None:
        if size > STREAM_THRESHOLD:
            # Whatever the origin sent (it may be big): streamed from disk, never read whole.
            if not os.path.exists(path):
                return None
            return MediaContent(None, content_type, None, path, size, self.authenticated_media)
        data = await self.files.read(path)
        if data is None:
            return None
        return MediaContent(data, content_type, None, None, len(data), self.authenticated_media)

    # -- lifecycle ------------------------------------------------------------------------

    def _detach(self, coro: Any) -> None:
        d = defer.ensureDeferred(coro)
        if not d.called:
            self._running.add(d)

            def untrack(result: Any) -> Any:
                self._running.discard(d)
                return result

            d.addBoth(untrack)

    async def stop(self) -> None:
        for d in list(self._running):
            d.cancel()

