"""Media repository metadata: local uploads and the remote media cache."""

from __future__ import annotations

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


_COLS = "media_id, user_id, content_type, upload_name, size, created_ts, sha256, pending, unused_expires_ts"


def _record(row: tuple | None) -> MediaRecord | None:
    if row is None:
        return None
    return MediaRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6], bool(row[7]), row[8])


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
    ) -> None:
        await self.db.write(
            lambda txn: txn.execute(
                f"INSERT INTO media ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (media_id, user_id, content_type, upload_name, size, created_ts, sha256, False, None),
            ),
            name="store_local_media",
        )

    async def create_pending_media(self, media_id: str, user_id: str, created_ts: int, expires_ts: int) -> None:
        await self.db.write(
            lambda txn: txn.execute(
                f"INSERT INTO media ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (media_id, user_id, None, None, 0, created_ts, None, True, expires_ts),
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
            lambda txn: _record(txn.select_one(f"SELECT {_COLS} FROM media WHERE media_id = ?", (media_id,))),
            name="get_local_media",
        )

    async def get_remote_media(self, server_name: str, media_id: str) -> RemoteMediaRecord | None:
        def txn_fn(txn: Txn) -> RemoteMediaRecord | None:
            row = txn.select_one(
                "SELECT server_name, media_id, content_type, upload_name, size, sha256, filesystem_id, created_ts"
                " FROM remote_media_cache WHERE server_name = ? AND media_id = ?",
                (server_name, media_id),
            )
            return RemoteMediaRecord(*row) if row else None

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
                },
            ),
            name="store_remote_media",
        )
