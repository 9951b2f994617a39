"""/profile: display names and avatars."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.http.errors import MatrixError, NotFound
from homeserver.http.request import parse_json_body
from homeserver.http.server import CLIENT_V3, Router
from homeserver.util.ids import is_valid_user_id

if TYPE_CHECKING:
    from homeserver.app import HomeServer

FIELDS = ("displayname", "avatar_url")


def register(hs: HomeServer, router: Router) -> None:
    def check_user(user_id: str) -> None:
        if not is_valid_user_id(user_id):
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid user id")

    async def get_profile(request: Request, user_id: str) -> tuple[int, Any]:
        check_user(user_id)
        return 200, await hs.profile.get_profile(user_id)

    async def get_field(request: Request, user_id: str, field: str) -> tuple[int, Any]:
        check_user(user_id)
        profile = await hs.profile.get_profile(user_id)
        if field not in profile:
            raise NotFound(f"No {field} set")
        return 200, {field: profile[field]}

    async def put_field(request: Request, user_id: str, field: str) -> tuple[int, Any]:
        # Guests may change their display name only (spec, Guest Access).
        requester = await hs.auth.get_user_by_req(request, allow_guest=field == "displayname")
        check_user(user_id)
        body = parse_json_body(request)
        if field not in FIELDS:
            raise MatrixError(400, "M_UNRECOGNIZED", "Unknown profile field")
        if field not in body:
            raise MatrixError(400, "M_MISSING_PARAM", f"Missing {field}")
        await hs.profile.set_field(requester.user_id, user_id, field, body[field])
        return 200, {}

    router.register_prefixes("GET", CLIENT_V3, "/profile/(?P<user_id>[^/]+)", get_profile)
    router.register_prefixes("GET", CLIENT_V3, "/profile/(?P<user_id>[^/]+)/(?P<field>displayname|avatar_url)", get_field)
    router.register_prefixes("PUT", CLIENT_V3, "/profile/(?P<user_id>[^/]+)/(?P<field>displayname|avatar_url)", put_field)
