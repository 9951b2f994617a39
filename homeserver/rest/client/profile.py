"""/profile: the whole profile, and one field of it (displayname, avatar_url, m.tz or a
custom namespaced key: spec v1.16), read, set and deleted as Synapse's
ProfileFieldRestServlet does."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.handlers.profile import check_field_name
from homeserver.http.errors import MatrixError
from homeserver.http.request import parse_json_body
from homeserver.http.server import CLIENT_V3, Router
from homeserver.util.ids import is_valid_user_id

if TYPE_CHECKING:
    from homeserver.app import HomeServer

def register(hs: HomeServer, router: Router) -> None:
    def check_user(user_id: str) -> None:
        if not is_valid_user_id(user_id):
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid user id")

    async def get_profile(request: Request, user_id: str) -> tuple[int, Any]:
        check_user(user_id)
        return 200, await hs.profile.get_profile(user_id)

    async def get_field(request: Request, user_id: str, field: str) -> tuple[int, Any]:
        check_user(user_id)
        check_field_name(field)
        return 200, await hs.profile.get_field(user_id, field)

    async def put_field(request: Request, user_id: str, field: str) -> tuple[int, Any]:
        # Guests may change their display name only (spec, Guest Access).
        requester = await hs.auth.get_user_by_req(request, allow_guest=field == "displayname")
        check_user(user_id)
        check_field_name(field)
        body = parse_json_body(request)
        if field not in body:
            raise MatrixError(400, "M_MISSING_PARAM", f"Missing key '{field}'")
        await hs.profile.set_field(requester.user_id, user_id, field, body[field])
        return 200, {}

    async def delete_field(request: Request, user_id: str, field: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request, allow_guest=field == "displayname")
        check_user(user_id)
        check_field_name(field)
        await hs.profile.delete_field(requester.user_id, user_id, field)
        return 200, {}

    field_path = "/profile/(?P<user_id>[^/]+)/(?P<field>[^/]+)"
    router.register_prefixes("GET", CLIENT_V3, "/profile/(?P<user_id>[^/]+)", get_profile)
    router.register_prefixes("GET", CLIENT_V3, field_path, get_field)
    router.register_prefixes("PUT", CLIENT_V3, field_path, put_field)
    router.register_prefixes("DELETE", CLIENT_V3, field_path, delete_field)
