"""Account data and room tags."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.http.request import parse_json_body
from homeserver.http.server import CLIENT_V3, Router

if TYPE_CHECKING:
    from homeserver.app import HomeServer

USER = "/user/(?P<user_id>[^/]+)"


def register(hs: HomeServer, router: Router) -> None:
    ad = hs.account_data

    async def put_global(request: Request, user_id: str, data_type: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        ad.check_owner(requester.user_id, user_id)
        await ad.put(user_id, "", data_type, parse_json_body(request, allow_empty=True))
        return 200, {}

    async def get_global(request: Request, user_id: str, data_type: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        ad.check_owner(requester.user_id, user_id)
        return 200, await ad.get(user_id, "", data_type)

    async def put_room(request: Request, user_id: str, room_id: str, data_type: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        ad.check_owner(requester.user_id, user_id)
        await ad.put(user_id, room_id, data_type, parse_json_body(request, allow_empty=True))
        return 200, {}

    async def get_room(request: Request, user_id: str, room_id: str, data_type: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        ad.check_owner(requester.user_id, user_id)
        return 200, await ad.get(user_id, room_id, data_type)

    async def get_tags(request: Request, user_id: str, room_id: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        ad.check_owner(requester.user_id, user_id)
        return 200, await ad.get_tags(user_id, room_id)

    async def put_tag(request: Request, user_id: str, room_id: str, tag: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        ad.check_owner(requester.user_id, user_id)
        await ad.add_tag(user_id, room_id, tag, parse_json_body(request, allow_empty=True))
        return 200, {}

    async def delete_tag(request: Request, user_id: str, room_id: str, tag: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        ad.check_owner(requester.user_id, user_id)
        await ad.remove_tag(user_id, room_id, tag)
        return 200, {}

    router.register_prefixes("PUT", CLIENT_V3, USER + "/account_data/(?P<data_type>[^/]+)", put_global)
    router.register_prefixes("GET", CLIENT_V3, USER + "/account_data/(?P<data_type>[^/]+)", get_global)
    room = USER + "/rooms/(?P<room_id>[^/]+)"
    router.register_prefixes("PUT", CLIENT_V3, room + "/account_data/(?P<data_type>[^/]+)", put_room)
    router.register_prefixes("GET", CLIENT_V3, room + "/account_data/(?P<data_type>[^/]+)", get_room)
    router.register_prefixes("GET", CLIENT_V3, room + "/tags", get_tags)
    router.register_prefixes("PUT", CLIENT_V3, room + "/tags/(?P<tag>[^/]+)", put_tag)
    router.register_prefixes("DELETE", CLIENT_V3, room + "/tags/(?P<tag>[^/]+)", delete_tag)
