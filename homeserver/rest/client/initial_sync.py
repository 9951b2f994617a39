"""The deprecated ``GET /initialSync`` and ``GET /rooms/{roomId}/initialSync``
(homeserver/handlers/initial_sync.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.handlers.initial_sync import parse_limit
from homeserver.http.request import parse_boolean, parse_integer
from homeserver.http.server import CLIENT_V3, Router
from homeserver.rest.client.rooms import ROOM, _check_room_id

if TYPE_CHECKING:
    from homeserver.app import HomeServer

# Synapse's default page of these endpoints.
DEFAULT_LIMIT = 10


def register(hs: HomeServer, router: Router) -> None:
    async def initial_sync(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        limit = parse_limit(parse_integer(request, "limit"), DEFAULT_LIMIT)
        archived = parse_boolean(request, "archived", default=False)
        return 200, await hs.initial_sync.snapshot_all_rooms(requester, limit, archived)

    async def room_initial_sync(request: Request, room_id: str) -> tuple[int, Any]:
        _check_room_id(room_id)
        # Guests may: it is how they look into a world-readable room (spec, Guest Access).
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        limit = parse_limit(parse_integer(request, "limit"), DEFAULT_LIMIT)
        return 200, await hs.initial_sync.room_initial_sync(requester, room_id, limit)

    router.register_prefixes("GET", CLIENT_V3, "/initialSync", initial_sync)
    router.register_prefixes("GET", CLIENT_V3, ROOM + "/initialSync", room_initial_sync)
