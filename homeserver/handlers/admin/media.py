"""Media as the server's admins see it (Synapse's admin API for media): a user's uploads,
quarantine (quarantined media answers 404 to everyone, see homeserver/media/handler.py),
protection from quarantine, and deletion of local media, one by one or by age and size."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeserver.handlers.audit import Actor, AuditEvent
from homeserver.storage.admin import AdminMedia

if TYPE_CHECKING:
    from homeserver.app import HomeServer


def media_json(m: AdminMedia) -> dict[str, Any]:
    """Synapse's LocalMedia. No URL previews or access tracking here: url_cache and
    last_access_ts are null (Synapse's last_access_ts of media never downloaded)."""
    return {
        "media_id": m.media_id,
        "media_type": m.media_type,
        "media_length": m.media_length,
        "upload_name": m.upload_name,
        "created_ts": m.created_ts,
        "url_cache": None,
        "last_access_ts": None,
        "quarantined_by": m.quarantined_by,
        "safe_from_quarantine": m.safe_from_quarantine,
        "user_id": m.user_id,
        "authenticated": m.authenticated,
        "sha256": m.sha256,
    }


class AdminMediaHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store

    async def user_media(
        self, user_id: str, start: int, limit: int, order_by: str, descending: bool
    ) -> tuple[list[dict[str, Any]], int]:
        media, total = await self.store.list_user_media(user_id, start, limit, order_by, descending)
        return [media_json(m) for m in media], total

    async def quarantine(self, server_name: str, media_id: str, quarantine: bool, by: Actor) -> None:
        by_user = by.user_id if quarantine else None
        if server_name == self.hs.server_name:
            await self.store.quarantine_media([media_id], [], by_user)
        else:
            await self.store.quarantine_media([], [(server_name, media_id)], by_user)
        await self.hs.audit.record_by(
            AuditEvent.ADMIN_MEDIA_QUARANTINED, None, by,
            {"mxc": f"mxc://{server_name}/{media_id}", "quarantine": quarantine},
        )

    async def quarantine_room(self, room_id: str, by: Actor) -> int:
        assert by.user_id is not None
        count = await self.store.quarantine_room_media(room_id, self.hs.server_name, by.user_id)
        await self.hs.audit.record_by(
            AuditEvent.ADMIN_MEDIA_QUARANTINED, None, by, {"room_id": room_id, "num_quarantined": count}
        )
        return count

    async def quarantine_user(self, user_id: str, by: Actor) -> int:
        assert by.user_id is not None
        count = await self.store.quarantine_user_media(user_id, by.user_id)
        await self.hs.audit.record_by(
            AuditEvent.ADMIN_MEDIA_QUARANTINED, user_id, by, {"num_quarantined": count}
        )
        return count

    async def protect(self, media_id: str, protected: bool, by: Actor) -> None:
        await self.store.set_media_protected(media_id, protected)
        await self.hs.audit.record_by(
            AuditEvent.ADMIN_MEDIA_PROTECTED, None, by, {"media_id": media_id, "protected": protected}
        )

    async def room_media(self, room_id: str) -> dict[str, list[str]]:
        local, remote = await self.store.get_room_media(room_id, self.hs.server_name)
        return {
            "local": [f"mxc://{self.hs.server_name}/{m}" for m in local],
            "remote": [f"mxc://{s}/{m}" for s, m in remote],
        }

    async def delete_local(self, media_ids: list[str], by: Actor) -> list[str]:
        """Deletes the files (with their thumbnails), then the records; the ids deleted."""
        if not media_ids:
            return []
        for media_id in media_ids:
            await self.hs.media.files.remove_local(media_id)
        await self.store.delete_local_media_rows(media_ids)
        await self.hs.audit.record_by(AuditEvent.ADMIN_MEDIA_DELETED, None, by, {"media_ids": media_ids})
        return media_ids

    async def delete_old(self, before_ts: int, size_gt: int, keep_profiles: bool, by: Actor) -> list[str]:
        keep = await self.store.local_avatar_media_urls() if keep_profiles else None
        prefix = f"mxc://{self.hs.server_name}/"
        keep_ids = {u[len(prefix):] for u in keep if u.startswith(prefix)} if keep is not None else None
        return await self.delete_local(await self.store.old_local_media_ids(before_ts, size_gt, keep_ids), by)
