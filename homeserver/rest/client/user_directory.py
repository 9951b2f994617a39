"""/user_directory/search."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.http.request import parse_json_body
from homeserver.http.server import CLIENT_V3, Router

if TYPE_CHECKING:
    from homeserver.app import HomeServer


def register(hs: HomeServer, router: Router) -> None:
    async def search(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        return 200, await hs.user_directory.search(requester.user_id, parse_json_body(request))

    router.register_prefixes("POST", CLIENT_V3, "/user_directory/search", search)
