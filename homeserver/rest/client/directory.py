"""Room aliases, the room directory and /publicRooms."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.http.errors import BadJson, MatrixError
from homeserver.http.request import parse_integer, parse_json_body, parse_string
from homeserver.http.server import CLIENT_V3, Router
from homeserver.util.ids import is_valid_server_name

if TYPE_CHECKING:
    from homeserver.app import HomeServer


def register(hs: HomeServer, router: Router) -> None:
    async def get_alias(request: Request, alias: str) -> tuple[int, Any]:
        room_id, servers = await hs.directory.resolve_alias(alias)
        return 200, {"room_id": room_id, "servers": servers}

    async def put_alias(request: Request, alias: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        body = parse_json_body(request)
        await hs.directory.create_alias(requester, alias, body.get("room_id"))
        return 200, {}

    async def delete_alias(request: Request, alias: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        await hs.directory.delete_alias(requester, alias)
        return 200, {}

    async def room_aliases(request: Request, room_id: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        await hs.messages.get_state(requester, room_id)  # same visibility as the room state
        return 200, {"aliases": await hs.store.get_aliases_for_room(room_id)}

    async def get_visibility(request: Request, room_id: str) -> tuple[int, Any]:
        public = await hs.store.get_room_visibility(room_id)
        if public is None:
            from homeserver.http.errors import NotFound

            raise NotFound("Unknown room")
        return 200, {"visibility": "public" if public else "private"}

    async def put_visibility(request: Request, room_id: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        body = parse_json_body(request, allow_empty=True)
        await hs.directory.set_visibility(requester, room_id, body.get("visibility", "public"))
        return 200, {}

    def remote_server(request: Request) -> str | None:
        server = parse_string(request, "server")
        if server:
            if not is_valid_server_name(server):
                # Synapse's answer, before any federation is tried.
                raise MatrixError(400, "M_INVALID_PARAM", f"Invalid server name: {server}")
        return server

    async def get_public_rooms(request: Request) -> tuple[int, Any]:
        server = remote_server(request)
        if server and server != hs.server_name:
            return 200, await hs.directory.remote_public_rooms(server, {"limit": parse_integer(request, "limit")})
        return 200, await hs.directory.public_rooms(parse_integer(request, "limit"), parse_string(request, "since"), None)

    async def post_public_rooms(request: Request) -> tuple[int, Any]:
        await hs.auth.get_user_by_req(request, allow_guest=True)
        body = parse_json_body(request, allow_empty=True)
        server = remote_server(request)
        if server and server != hs.server_name:
            return 200, await hs.directory.remote_public_rooms(server, body)
        limit = body.get("limit")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
            raise BadJson("limit must be an integer")
        since = body.get("since")
        if since is not None and not isinstance(since, str):
            raise BadJson("since must be a string")
        search = body.get("filter", {}) or {}
        if not isinstance(search, dict):
            raise BadJson("filter must be an object")
        term = search.get("generic_search_term")
        if term is not None and not isinstance(term, str):
            raise BadJson("generic_search_term must be a string")
        return 200, await hs.directory.public_rooms(limit, since, term)

    router.register_prefixes("GET", CLIENT_V3, "/directory/room/(?P<alias>[^/]+)", get_alias)
    router.register_prefixes("PUT", CLIENT_V3, "/directory/room/(?P<alias>[^/]+)", put_alias)
    router.register_prefixes("DELETE", CLIENT_V3, "/directory/room/(?P<alias>[^/]+)", delete_alias)
    router.register_prefixes("GET", CLIENT_V3, "/rooms/(?P<room_id>[^/]+)/aliases", room_aliases)
    router.register_prefixes("GET", CLIENT_V3, "/directory/list/room/(?P<room_id>[^/]+)", get_visibility)
    router.register_prefixes("PUT", CLIENT_V3, "/directory/list/room/(?P<room_id>[^/]+)", put_visibility)
    router.register_prefixes("GET", CLIENT_V3, "/publicRooms", get_public_rooms)
    router.register_prefixes("POST", CLIENT_V3, "/publicRooms", post_public_rooms)
