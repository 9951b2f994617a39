"""Media repository metadata: local uploads and the remote media cache."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from homeserver.storage.database import Database, Txn


@dataclass(frozen=True)
class MediaRecord:
    media_id: str
    user_id: str | None
    content_type: str | None
    upload_name: str | None
    size: int
    created_ts: int
    sha256: str | None
    pending: bool
    unused_expires_ts: int | None
    # Served only on the authenticated endpoints (uploaded while enable_authenticated_media was on).
    authenticated: bool = False
    # The admin who quarantined it (then it is served to nobody); see storage/admin.py.
    quarantined_by: str | None = None


@dataclass(frozen=True)
class RemoteMediaRecord:
    server_name: str
    media_id: str
    content_type: str | None
    upload_name: str | None
    size: int
    sha256: str | None
    filesystem_id: str
    created_ts: int
    authenticated: bool = False
    quarantined_by: str | None = None


@dataclass(frozen=True)
class RemoteThumbnailRecord:
    content_type: str
    size: int


@dataclass(frozen=True)
class UrlPreviewRecord:
    download_ts: int
    expires_ts: int
    response_code: int
    og: str  # the JSON answer


_COLS = "media_id, user_id, content_type, upload_name, size, created_ts, sha256, pending, unused_expires_ts, authenticated"
# what is read back: the written columns and the quarantine the admin API sets
_READ_COLS = _COLS + ", quarantined_by"


def _record(row: tuple | None) -> MediaRecord | None:
    if row is None:
        return None
    return MediaRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6], bool(row[7]), row[8], bool(row[9]), row[10])


class MediaStore:
    db: Database

    async def store_local_media(
        self,
        media_id: str,
        user_id: str,
        content_type: str | None,
        upload_name: str | None,
        size: int,
        created_ts: int,
        sha256: str,
        authenticated: bool,
    ) -> None:
        await self.db.write(
            lambda txn: txn.execute(
                f"INSERT INTO media ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (media_id, user_id, content_type, upload_name, size, created_ts, sha256, False, None, authenticated),
            ),
            name="store_local_media",
        )

    async def create_pending_media(
        self, media_id: str, user_id: str, created_ts: int, expires_ts: int, authenticated: bool
    ) -> None:
        await self.db.write(
            lambda txn: txn.execute(
                f"INSERT INTO media ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (media_id, user_id, None, None, 0, created_ts, None, True, expires_ts, authenticated),
            ),
            name="create_pending_media",
        )

    async def count_pending_media(self, user_id: str, now: int) -> int:
        return await self.db.read(
            lambda txn: txn.select_value(
                "SELECT COUNT(*) FROM media WHERE user_id = ? AND pending AND unused_expires_ts > ?", (user_id, now), 0
            ),
            name="count_pending_media",
        )

    async def complete_pending_media(
        self, media_id: str, content_type: str | None, upload_name: str | None, size: int, sha256: str
    ) -> bool:
        """Fills in a reserved id; False if someone else completed it first."""

        def txn_fn(txn: Txn) -> bool:
            txn.execute(
                "UPDATE media SET content_type = ?, upload_name = ?, size = ?, sha256 = ?, pending = ?,"
                " unused_expires_ts = NULL WHERE media_id = ? AND pending",
                (content_type, upload_name, size, sha256, False, media_id),
            )
            return txn.rowcount > 0

        return await self.db.write(txn_fn, name="complete_pending_media")

    async def get_local_media(self, media_id: str) -> MediaRecord | None:
        return await self.db.read(
            lambda txn: _record(txn.select_one(f"SELECT {_READ_COLS} FROM media WHERE media_id = ?", (media_id,))),
            name="get_local_media",
        )

    async def get_remote_media(self, server_name: str, media_id: str) -> RemoteMediaRecord | None:
        def txn_fn(txn: Txn) -> RemoteMediaRecord | None:
            row = txn.select_one(
                "SELECT server_name, media_id, content_type, upload_name, size, sha256, filesystem_id, created_ts,"
                " authenticated, quarantined_by FROM remote_media_cache WHERE server_name = ? AND media_id = ?",
                (server_name, media_id),
            )
            if row is None:
                return None
            return RemoteMediaRecord(
                row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], bool(row[8]), row[9]
            )

        return await self.db.read(txn_fn, name="get_remote_media")

    async def store_remote_media(self, record: RemoteMediaRecord) -> None:
        await self.db.write(
            lambda txn: txn.upsert(
                "remote_media_cache",
                {"server_name": record.server_name, "media_id": record.media_id},
                {
                    "content_type": record.content_type,
                    "upload_name": record.upload_name,
                    "size": record.size,
                    "sha256": record.sha256,
                    "filesystem_id": record.filesystem_id,
                    "created_ts": record.created_ts,
                    "authenticated": record.authenticated,
                },
            ),
            name="store_remote_media",
        )

    async def store_remote_media_if_absent(self, record: RemoteMediaRecord) -> None:
        """Makes the media known (so an admin can quarantine it) without replacing what is
        stored; used when only a thumbnail of it was fetched (the file named is absent
        until the original is)."""
        await self.db.write(
            lambda txn: txn.execute(
                "INSERT INTO remote_media_cache (server_name, media_id, content_type, upload_name, size, sha256,"
                " filesystem_id, created_ts, authenticated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (server_name, media_id) DO NOTHING",
                (
                    record.server_name,
                    record.media_id,
                    record.content_type,
                    record.upload_name,
                    record.size,
                    record.sha256,
                    record.filesystem_id,
                    record.created_ts,
                    record.authenticated,
                ),
            ),
            name="store_remote_media_if_absent",
        )

    async def get_remote_thumbnail(
        self, server_name: str, media_id: str, width: int, height: int, method: str
    ) -> RemoteThumbnailRecord | None:
        def txn_fn(txn: Txn) -> RemoteThumbnailRecord | None:
            row = txn.select_one(
                "SELECT content_type, size FROM remote_media_thumbnails"
                " WHERE server_name = ? AND media_id = ? AND width = ? AND height = ? AND method = ?",
                (server_name, media_id, width, height, method),
            )
            return None if row is None else RemoteThumbnailRecord(row[0], row[1])

        return await self.db.read(txn_fn, name="get_remote_thumbnail")

    async def store_remote_thumbnail(
        self, server_name: str, media_id: str, width: int, height: int, method: str, content_type: str, size: int, ts: int
    ) -> None:
        await self.db.write(
            lambda txn: txn.upsert(
                "remote_media_thumbnails",
                {"server_name": server_name, "media_id": media_id, "width": width, "height": height, "method": method},
                {"content_type": content_type, "size": size, "created_ts": ts},
            ),
            name="store_remote_thumbnail",
        )

    async def is_sha256_quarantined(self, sha256: str) -> bool:
        def txn_fn(txn: Txn) -> bool:
            for table in ("media", "remote_media_cache"):
                if txn.select_one(f"SELECT 1 FROM {table} WHERE sha256 = ? AND quarantined_by IS NOT NULL LIMIT 1", (sha256,)):
                    return True
            return False

        return await self.db.read(txn_fn, name="is_sha256_quarantined")

    async def find_unowned_media_by_sha256(self, sha256: str) -> str | None:
        """A stored local media id of that content that belongs to no user (what URL
        previews store), so the same image previewed again is not stored again."""
        return await self.db.read(
            lambda txn: txn.select_value(
                "SELECT media_id FROM media WHERE sha256 = ? AND user_id IS NULL AND NOT pending"
                " AND quarantined_by IS NULL LIMIT 1",
                (sha256,),
            ),
            name="find_unowned_media_by_sha256",
        )

    async def store_unowned_media(
        self, media_id: str, content_type: str, upload_name: str | None, size: int, created_ts: int, sha256: str, authenticated: bool
    ) -> None:
        await self.db.write(
            lambda txn: txn.execute(
                f"INSERT INTO media ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (media_id, None, content_type, upload_name, size, created_ts, sha256, False, None, authenticated),
            ),
            name="store_unowned_media",
        )

    # -- URL previews ---------------------------------------------------------------------

    async def get_url_preview(self, url: str, ts: int) -> UrlPreviewRecord | None:
        """The preview of ``url`` as of ``ts``: the latest downloaded at or before it, or
        else the oldest one (Synapse's get_url_cache)."""
        url_hash = _url_hash(url)

        def txn_fn(txn: Txn) -> UrlPreviewRecord | None:
            row = txn.select_one(
                "SELECT url, download_ts, expires_ts, response_code, og FROM url_previews"
                " WHERE url_hash = ? AND download_ts <= ? ORDER BY download_ts DESC LIMIT 1",
                (url_hash, ts),
            ) or txn.select_one(
                "SELECT url, download_ts, expires_ts, response_code, og FROM url_previews"
                " WHERE url_hash = ? AND download_ts > ? ORDER BY download_ts ASC LIMIT 1",
                (url_hash, ts),
            )
            if row is None or row[0] != url:
                return None
            return UrlPreviewRecord(row[1], row[2], row[3], row[4])

        return await self.db.read(txn_fn, name="get_url_preview")

    async def store_url_preview(self, url: str, record: UrlPreviewRecord, now: int) -> None:
        """Stores a preview and drops the expired ones (the table holds only live ones)."""

        def txn_fn(txn: Txn) -> None:
            txn.execute("DELETE FROM url_previews WHERE expires_ts < ?", (now,))
            txn.execute(
                "INSERT INTO url_previews (url_hash, url, download_ts, expires_ts, response_code, og) VALUES (?, ?, ?, ?, ?, ?)",
                (_url_hash(url), url, record.download_ts, record.expires_ts, record.response_code, record.og),
            )

        await self.db.write(txn_fn, name="store_url_preview")


def _url_hash(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()
