"""Profiles: display names and avatars, mirrored into the user's member events in every
room, and the extended fields of spec v1.16 (``m.tz`` and namespaced custom keys), which
stay in the profile only, as in Synapse."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from canonicaljson import encode_canonical_json

from homeserver.handlers.room_events import EventSpec
from homeserver.http.errors import Forbidden, MatrixError, NotFound

if TYPE_CHECKING:
    from homeserver.app import HomeServer

MAX_DISPLAYNAME_LEN = 256
MAX_AVATAR_URL_LEN = 1000
# The spec's limits: a key of at most 255 bytes, a whole profile under 64 KiB.
MAX_FIELD_NAME_LEN = 255
MAX_PROFILE_SIZE = 65536
MIRRORED_FIELDS = ("displayname", "avatar_url")
# Synapse's check of the Common Namespaced Identifier Grammar (looser than the spec's
# pattern, which wants a dot: Synapse accepts any lower-case key, so WSPR does too).
_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,254}$")


def check_field_name(field: str) -> None:
    """A profile key as Synapse's ProfileFieldRestServlet validates it."""
    if not field:
        raise MatrixError(400, "M_INVALID_PARAM", "Field name too short")
    if len(field.encode("utf-8")) > MAX_FIELD_NAME_LEN:
        raise MatrixError(400, "M_KEY_TOO_LARGE", "Field name too long")
    if not _FIELD_NAME.match(field):
        raise MatrixError(400, "M_INVALID_PARAM", "Field name does not follow Common Namespaced Identifier Grammar")


def profile_size(profile: dict[str, Any]) -> int:
    """The profile's size as the 64 KiB limit counts it: its canonical JSON."""
    return len(encode_canonical_json(profile))


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
        out.update(await self.store.get_custom_profile_fields(user_id))
        return out

    async def get_field(self, user_id: str, field: str) -> dict[str, Any]:
        profile = await self.get_profile(user_id)
        if field not in profile:
            raise NotFound(f"No {field} set" if field in MIRRORED_FIELDS else "Profile field not found")
        return {field: profile[field]}

    async def set_field(self, requester_user: str, user_id: str, field: str, value: Any) -> None:
        await self._check_may_change(requester_user, user_id)
        if field in MIRRORED_FIELDS:
            if value is not None and not isinstance(value, str):
                raise MatrixError(400, "M_INVALID_PARAM", f"'{field}' must be a string")
            limit = MAX_DISPLAYNAME_LEN if field == "displayname" else MAX_AVATAR_URL_LEN
            if value is not None and len(value) > limit:
                raise MatrixError(400, "M_TOO_LARGE", f"{field} is too long")
            # An empty string clears the field, as in Synapse (and as DELETE does).
            await self.store.set_profile_field(user_id, field, value or None)
            await self._update_member_events(user_id)
            return
        profile = await self.get_profile(user_id)
        profile[field] = value
        if profile_size(profile) > MAX_PROFILE_SIZE:
            raise MatrixError(400, "M_PROFILE_TOO_LARGE", "Profile too large")
        # Custom fields go neither into member events nor into the user directory.
        await self.store.set_custom_profile_field(user_id, field, value)

    async def delete_field(self, requester_user: str, user_id: str, field: str) -> None:
        if field in MIRRORED_FIELDS:
            await self.set_field(requester_user, user_id, field, None)
            return
        await self._check_may_change(requester_user, user_id)
        await self.store.delete_custom_profile_field(user_id, field)

    async def _check_may_change(self, requester_user: str, user_id: str) -> None:
        if requester_user != user_id:
            raise Forbidden("You may only change your own profile")
        if not self.hs.is_mine(user_id):
            raise MatrixError(400, "M_INVALID_PARAM", "Not a local user")

    async def _update_member_events(self, user_id: str) -> None:
        profile = await self.get_profile(user_id)
        for room_id in self.hs.rooms.joined_rooms(user_id):
            current = await self.hs.rooms.get_current_state_event(room_id, "m.room.member", user_id)
            if current is None or current.membership != "join":
                continue
            content = {k: v for k, v in current.content.items() if k not in MIRRORED_FIELDS}
            content.update({k: v for k, v in profile.items() if k in MIRRORED_FIELDS})
            content["membership"] = "join"
            try:
                await self.hs.rooms.send(room_id, EventSpec("m.room.member", user_id, content, state_key=user_id))
            except MatrixError:
                pass  # a room whose power levels forbid it keeps the old name
