"""Server-side key backup (/room_keys). The server stores opaque encrypted session data
with a little metadata; it decides which upload of a session to keep and keeps an etag
that changes whenever the stored keys change."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeserver.http.errors import BadJson, InvalidParam, MatrixError, NotFound

if TYPE_CHECKING:
    from homeserver.app import HomeServer


def should_replace(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether an uploaded session key replaces the stored one.

    The spec says: prefer verified; then the lower first_message_index; then the lower
    forwarded_count. This is Synapse's exact rule, which differs from the spec in one
    corner (a new unverified key with a lower index replaces a verified one); we match
    Synapse, as clients are tested against it.
    """
    if new["is_verified"] and not old["is_verified"]:
        return True
    if new["first_message_index"] < old["first_message_index"]:
        return True
    if new["forwarded_count"] < old["forwarded_count"]:
        return True
    return False


def _validate_session(room_id: str, session_id: str, key: Any) -> dict[str, Any]:
    if not isinstance(key, dict):
        raise BadJson(f"Key data for session {session_id} in {room_id} must be an object")
    for field in ("first_message_index", "forwarded_count"):
        value = key.get(field)
        if not isinstance(value, int) or isinstance(value, bool):
            raise BadJson(f"{field} must be an integer (session {session_id} in {room_id})")
    if not isinstance(key.get("is_verified"), bool):
        raise InvalidParam(f"is_verified must be a boolean (session {session_id} in {room_id})")
    if "session_data" not in key:
        raise BadJson(f"session_data is required (session {session_id} in {room_id})")
    return key


class RoomKeysHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store

    # -- versions ------------------------------------------------------------------

    async def create_version(self, user_id: str, body: dict[str, Any]) -> str:
        algorithm = body.get("algorithm")
        if not isinstance(algorithm, str):
            raise BadJson("algorithm must be a string")
        if "auth_data" not in body:
            raise BadJson("auth_data is required")
        return await self.store.room_keys_create_version(user_id, algorithm, body["auth_data"])

    async def get_version(self, user_id: str, version: str | None) -> dict[str, Any]:
        info = await self.store.room_keys_get_version(user_id, version)
        if info is None:
            raise NotFound("No backup found" if version is None else "Unknown backup version")
        return {
            "version": info.version,
            "algorithm": info.algorithm,
            "auth_data": info.auth_data,
            "etag": str(info.etag),
            "count": info.count,
        }

    async def update_version(self, user_id: str, version: str, body: dict[str, Any]) -> None:
        if "version" in body and body["version"] != version:
            raise InvalidParam("Version in body does not match")
        info = await self.store.room_keys_get_version(user_id, version)
        if info is None:
            raise NotFound("Unknown backup version")
        if body.get("algorithm") != info.algorithm:
            raise InvalidParam("Algorithm does not match")
        if "auth_data" not in body:
            raise BadJson("auth_data is required")
        await self.store.room_keys_update_version(user_id, version, body["auth_data"])

    async def delete_version(self, user_id: str, version: str | None) -> None:
        if not await self.store.room_keys_delete_version(user_id, version):
            raise NotFound("Unknown backup version")

    # -- keys ----------------------------------------------------------------------

    async def upload_keys(self, user_id: str, version: str, rooms: Any) -> dict[str, Any]:
        if not isinstance(rooms, dict):
            raise BadJson("rooms must be an object")
        sessions: list[tuple[str, str, dict[str, Any]]] = []
        for room_id, room in rooms.items():
            if not isinstance(room, dict) or not isinstance(room.get("sessions"), dict):
                raise BadJson(f"Room {room_id} must have a sessions object")
            for session_id, key in room["sessions"].items():
                sessions.append((room_id, session_id, _validate_session(room_id, session_id, key)))
        outcome = await self.store.room_keys_upload(user_id, version, sessions, should_replace)
        if outcome.status == "not_found":
            raise NotFound(f"Version '{version}' not found")
        if outcome.status == "wrong_version":
            raise MatrixError(
                403, "M_WRONG_ROOM_KEYS_VERSION", "Wrong room_keys version", current_version=outcome.current_version
            )
        return {"etag": str(outcome.etag), "count": outcome.count}

    async def get_keys(self, user_id: str, version: str, room_id: str | None, session_id: str | None) -> dict[str, Any]:
        keys = await self.store.room_keys_get(user_id, version, room_id, session_id)
        if keys is None:
            raise NotFound("Unknown backup version")
        if session_id is not None:
            key = keys.get(room_id or "", {}).get(session_id)
            if key is None:
                raise NotFound("No room_keys found")
            return key
        if room_id is not None:
            return {"sessions": keys.get(room_id, {})}
        return {"rooms": {r: {"sessions": s} for r, s in keys.items()}}

    async def delete_keys(self, user_id: str, version: str, room_id: str | None, session_id: str | None) -> dict[str, Any]:
        outcome = await self.store.room_keys_delete(user_id, version, room_id, session_id)
        if outcome.status == "not_found":
            raise NotFound("Unknown backup version")
        return {"etag": str(outcome.etag), "count": outcome.count}
