"""Synapse's admin API for media: a user's uploads (list, delete), quarantine (one item, a
room's, a user's) and its reverse, protection, a room's media, and deletion of local
media by id or by age and size. As synapse/rest/admin/media.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.handlers.admin.media import media_json
from homeserver.http.errors import InvalidParam, MatrixError, NotFound
from homeserver.http.request import parse_boolean, parse_integer, parse_string
from homeserver.http.server import Router
from homeserver.rest.admin._base import ADMIN_V1, SEG, actor, check_local_user, has_arg, parse_paging, require_admin
from homeserver.storage.admin import MEDIA_ORDER

if TYPE_CHECKING:
    from homeserver.app import HomeServer

# Anything smaller is a time in seconds given by mistake (Synapse's check).
_MIN_BEFORE_TS = 30_000_000_000


def register(hs: HomeServer, router: Router) -> None:
    media = hs.admin.media

    def _order(request: Request) -> tuple[str, bool]:
        """Newest first unless the request orders it (Synapse's default)."""
        if not has_arg(request, "order_by") and not has_arg(request, "dir"):
            return "created_ts", True
        order_by = parse_string(request, "order_by", "created_ts", allowed=tuple(MEDIA_ORDER))
        direction = parse_string(request, "dir", "f", allowed=("f", "b"))
        return order_by or "created_ts", direction == "b"

    async def _user_media_page(request: Request, user_id: str) -> tuple[list[dict[str, Any]], int, int, int]:
        check_local_user(hs, user_id, "Can only look up local users")
        if await hs.store.get_user(user_id) is None:
            raise NotFound("Unknown user")
        start, limit = parse_paging(request)
        order_by, descending = _order(request)
        found, total = await media.user_media(user_id, start, limit, order_by, descending)
        return found, total, start, limit

    async def list_user_media(request: Request, user_id: str) -> tuple[int, Any]:
        await require_admin(hs, request)
        found, total, start, limit = await _user_media_page(request, user_id)
        out: dict[str, Any] = {"media": found, "total": total}
        if start + limit < total:
            out["next_token"] = start + len(found)
        return 200, out

    async def delete_user_media(request: Request, user_id: str) -> tuple[int, Any]:
        admin = await require_admin(hs, request)
        found, _, _, _ = await _user_media_page(request, user_id)
        deleted = await media.delete_local([m["media_id"] for m in found], actor(admin, request))
        return 200, {"deleted_media": deleted, "total": len(deleted)}

    async def quarantine(request: Request, server_name: str, media_id: str) -> tuple[int, Any]:
        admin = await require_admin(hs, request)
        await media.quarantine(server_name, media_id, True, actor(admin, request))
        return 200, {}

    async def unquarantine(request: Request, server_name: str, media_id: str) -> tuple[int, Any]:
        admin = await require_admin(hs, request)
        await media.quarantine(server_name, media_id, False, actor(admin, request))
        return 200, {}

    async def quarantine_room(request: Request, room_id: str) -> tuple[int, Any]:
        admin = await require_admin(hs, request)
        return 200, {"num_quarantined": await media.quarantine_room(room_id, actor(admin, request))}

    async def quarantine_user(request: Request, user_id: str) -> tuple[int, Any]:
        admin = await require_admin(hs, request)
        return 200, {"num_quarantined": await media.quarantine_user(user_id, actor(admin, request))}

    async def protect(request: Request, media_id: str) -> tuple[int, Any]:
        admin = await require_admin(hs, request)
        await media.protect(media_id, True, actor(admin, request))
        return 200, {}

    async def unprotect(request: Request, media_id: str) -> tuple[int, Any]:
        admin = await require_admin(hs, request)
        await media.protect(media_id, False, actor(admin, request))
        return 200, {}

    async def room_media(request: Request, room_id: str) -> tuple[int, Any]:
        await require_admin(hs, request)
        if await hs.store.get_room_version(room_id) is None:
            raise NotFound("Room not found")
        return 200, await media.room_media(room_id)

    async def get_media(request: Request, server_name: str, media_id: str) -> tuple[int, Any]:
        await require_admin(hs, request)
        if server_name != hs.server_name:
            remote = await hs.store.get_remote_media(server_name, media_id)
            if remote is None:
                raise NotFound("Unknown media")
            return 200, {
                "media_info": {
                    "media_origin": remote.server_name,
                    "user_id": None,
                    "media_id": remote.media_id,
                    "media_type": remote.content_type,
                    "media_length": remote.size,
                    "upload_name": remote.upload_name,
                    "created_ts": remote.created_ts,
                    "filesystem_id": remote.filesystem_id,
                    "url_cache": None,
                    "last_access_ts": None,
                    "quarantined_by": remote.quarantined_by,
                    "authenticated": remote.authenticated,
                    "safe_from_quarantine": None,
                    "sha256": remote.sha256,
                }
            }
        found = await hs.store.get_admin_media(media_id)
        if found is None:
            raise NotFound("Unknown media")
        info = media_json(found)
        return 200, {"media_info": {"media_origin": None, "filesystem_id": None, **info}}

    async def delete_media(request: Request, server_name: str, media_id: str) -> tuple[int, Any]:
        admin = await require_admin(hs, request)
        if server_name != hs.server_name:
            raise MatrixError(400, "M_UNKNOWN", "Can only delete local media")
        if await hs.store.get_local_media(media_id) is None:
            raise NotFound("Unknown media")
        deleted = await media.delete_local([media_id], actor(admin, request))
        return 200, {"deleted_media": deleted, "total": len(deleted)}

    async def delete_by_date_size(request: Request, server_name: str | None = None) -> tuple[int, Any]:
        admin = await require_admin(hs, request)
        before_ts = parse_integer(request, "before_ts", required=True)
        size_gt = parse_integer(request, "size_gt", 0)
        keep_profiles = parse_boolean(request, "keep_profiles", True)
        assert before_ts is not None and size_gt is not None
        if before_ts < 0:
            raise InvalidParam("Query parameter before_ts must be a positive integer.")
        if size_gt < 0:
            raise InvalidParam("Query parameter size_gt must be a positive integer.")
        if before_ts < _MIN_BEFORE_TS:
            raise InvalidParam(
                "Query parameter before_ts you provided is from the year 1970. "
                "Double check that you are providing a timestamp in milliseconds."
            )
        if server_name is not None and server_name != hs.server_name:
            raise MatrixError(400, "M_UNKNOWN", "Can only delete local media")
        deleted = await media.delete_old(before_ts, size_gt, keep_profiles, actor(admin, request))
        return 200, {"deleted_media": deleted, "total": len(deleted)}

    uid, rid = f"(?P<user_id>{SEG})", f"(?P<room_id>{SEG})"
    item = f"(?P<server_name>{SEG})/(?P<media_id>{SEG})"
    router.register("GET", f"{ADMIN_V1}/users/{uid}/media", list_user_media)
    router.register("DELETE", f"{ADMIN_V1}/users/{uid}/media", delete_user_media)
    router.register("POST", f"{ADMIN_V1}/media/quarantine/{item}", quarantine)
    router.register("POST", f"{ADMIN_V1}/media/unquarantine/{item}", unquarantine)
    router.register("POST", f"{ADMIN_V1}/room/{rid}/media/quarantine", quarantine_room)
    router.register("POST", f"{ADMIN_V1}/quarantine_media/{rid}", quarantine_room)
    router.register("POST", f"{ADMIN_V1}/user/{uid}/media/quarantine", quarantine_user)
    router.register("POST", f"{ADMIN_V1}/media/protect/(?P<media_id>{SEG})", protect)
    router.register("POST", f"{ADMIN_V1}/media/unprotect/(?P<media_id>{SEG})", unprotect)
    router.register("GET", f"{ADMIN_V1}/room/{rid}/media", room_media)
    router.register("POST", f"{ADMIN_V1}/media/delete", delete_by_date_size)
    router.register("POST", f"{ADMIN_V1}/media/(?P<server_name>{SEG})/delete", delete_by_date_size)
    router.register("GET", f"{ADMIN_V1}/media/{item}", get_media)
    router.register("DELETE", f"{ADMIN_V1}/media/{item}", delete_media)
