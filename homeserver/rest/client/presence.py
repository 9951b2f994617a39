"""/presence/{userId}/status."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.http.errors import Forbidden
from homeserver.http.request import parse_json_body
from homeserver.http.server import CLIENT_V3, Router

if TYPE_CHECKING:
    from homeserver.app import HomeServer


def register(hs: HomeServer, router: Router) -> None:
    async def get_status(request: Request, user_id: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        return 200, await hs.presence.get_status(requester.user_id, user_id)

    async def put_status(request: Request, user_id: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        if requester.user_id != user_id:
            raise Forbidden("Cannot set another user's presence")
        body = parse_json_body(request)
        await hs.presence.set_state(user_id, body.get("presence"), body.get("status_msg"))  # type: ignore[arg-type]  # set_state refuses a bad one
        return 200, {}

    router.register_prefixes("GET", CLIENT_V3, "/presence/(?P<user_id>[^/]+)/status", get_status)
    router.register_prefixes("PUT", CLIENT_V3, "/presence/(?P<user_id>[^/]+)/status", put_status)
