"""/user/{userId}/filter: stored sync filters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.handlers.filtering import cap_timeline_limit, validate_filter_json
from homeserver.http.errors import Forbidden, MatrixError, NotFound
from homeserver.http.request import parse_json_body
from homeserver.http.server import CLIENT_V3, Router

if TYPE_CHECKING:
    from homeserver.app import HomeServer


def register(hs: HomeServer, router: Router) -> None:
    async def post_filter(request: Request, user_id: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        if requester.user_id != user_id:
            raise Forbidden("Cannot create filters for other users")
        body = parse_json_body(request, allow_empty=True)
        validate_filter_json(body)
        filter_id = await hs.store.add_filter(user_id, cap_timeline_limit(body))
        return 200, {"filter_id": str(filter_id)}

    async def get_filter(request: Request, user_id: str, filter_id: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        if requester.user_id != user_id:
            raise Forbidden("Cannot read other users' filters")
        try:
            fid = int(filter_id)
        except ValueError:
            raise MatrixError(400, "M_UNKNOWN", "Invalid filter_id") from None
        obj = await hs.store.get_filter(user_id, fid)
        if obj is None:
            raise NotFound("No such filter")
        return 200, obj

    router.register_prefixes("POST", CLIENT_V3, "/user/(?P<user_id>[^/]+)/filter", post_filter)
    router.register_prefixes("GET", CLIENT_V3, "/user/(?P<user_id>[^/]+)/filter/(?P<filter_id>[^/]+)", get_filter)
