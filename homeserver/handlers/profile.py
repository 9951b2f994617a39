"""Display names and avatars, mirrored into the user's member events in every room."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeserver.handlers.room_events import EventSpec
from homeserver.http.errors import BadJson, Forbidden, MatrixError, NotFound

if TYPE_CHECKING:
    from homeserver.app import HomeServer

MAX_DISPLAYNAME_LEN = 256
MAX_AVATAR_URL_LEN = 1000


class ProfileHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store

    async def get_profile(self, user_id: str) -> dict[str, Any]:
        if not self.hs.is_mine(user_id):
            return await self.hs.federation.remote_profile(user_id)
        user = await self.store.get_user(user_id)
        if user is None or user.deactivated:
            raise NotFound("Profile not found")
        out: dict[str, Any] = {}
        if user.displayname is not None:
            out["displayname"] = user.displayname
        if user.avatar_url is not None:
            out["avatar_url"] = user.avatar_url
        return out

    async def set_field(self, requester_user: str, user_id: str, field: str, value: Any) -> None:
        if requester_user != user_id:
            raise Forbidden("You may only change your own profile")
        if not self.hs.is_mine(user_id):
            raise MatrixError(400, "M_INVALID_PARAM", "Not a local user")
        if value is not None and not isinstance(value, str):
            raise BadJson(f"{field} must be a string")
        limit = MAX_DISPLAYNAME_LEN if field == "displayname" else MAX_AVATAR_URL_LEN
        if value is not None and len(value) > limit:
            raise MatrixError(400, "M_TOO_LARGE", f"{field} is too long")
        await self.store.set_profile_field(user_id, field, value)
        await self._update_member_events(user_id)

    async def _update_member_events(self, user_id: str) -> None:
        profile = await self.get_profile(user_id)
        for room_id in self.hs.rooms.joined_rooms(user_id):
            current = await self.hs.rooms.get_current_state_event(room_id, "m.room.member", user_id)
            if current is None or current.membership != "join":
                continue
            content = {k: v for k, v in current.content.items() if k not in ("displayname", "avatar_url")}
            content.update(profile)
            content["membership"] = "join"
            try:
                await self.hs.rooms.send(room_id, EventSpec("m.room.member", user_id, content, state_key=user_id))
            except MatrixError:
                pass  # a room whose power levels forbid it keeps the old name
