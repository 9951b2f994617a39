"""Synapse's admin API for rooms: list, details, members, state, messages, block, and
delete (v1 at once, v2 in the background with its status). Checks and messages as
synapse/rest/admin/rooms.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.handlers.admin.rooms import ROOM_ORDER, ShutdownParams
from homeserver.handlers.auth import Requester
from homeserver.http.errors import BadJson, InvalidParam, MatrixError, MissingParam, NotFound
from homeserver.http.request import parse_integer, parse_json_body, parse_string
from homeserver.http.server import Router
from homeserver.rest.admin._base import (
    ADMIN_V1,
    ADMIN_V2,
    SEG,
    actor,
    check_room_id,
    optional_bool,
    parse_paging,
    require_admin,
)

if TYPE_CHECKING:
    from homeserver.app import HomeServer



def parse_shutdown(body: dict[str, Any], requester: Requester) -> ShutdownParams:
    flags: dict[str, bool] = {}
    for key, default in (("block", False), ("purge", True), ("force_purge", False)):
        value = body.get(key, default)
        if not isinstance(value, bool):
            raise BadJson(f"Param '{key}' must be a boolean, if given")
        flags[key] = value
    for key in ("new_room_user_id", "room_name", "message"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise BadJson(f"Param '{key}' must be a string, if given")
    return ShutdownParams(
        requester_user_id=requester.user_id,
        new_room_user_id=body.get("new_room_user_id"),
        new_room_name=body.get("room_name"),
        message=body.get("message"),
        **flags,
    )


def register(hs: HomeServer, router: Router) -> None:
    rooms = hs.admin.rooms

    async def list_rooms(request: Request) -> tuple[int, Any]:
        await require_admin(hs, request)
        start, limit = parse_paging(request)
        order_by = parse_string(request, "order_by", "name", allowed=tuple(ROOM_ORDER))
        search_term = parse_string(request, "search_term")
        if search_term == "":
            raise InvalidParam("search_term cannot be an empty string")
        public_rooms = optional_bool(request, "public_rooms")
        empty_rooms = optional_bool(request, "empty_rooms")
        direction = parse_string(request, "dir", "f", allowed=("f", "b"))
        found, total = await rooms.list_rooms(
            start, limit, order_by or "name", direction == "b", search_term, public_rooms, empty_rooms
        )
        out: dict[str, Any] = {"offset": start, "rooms": found, "total_rooms": total}
        if start + limit < total:
            out["next_batch"] = start + limit
        if start > 0:
            out["prev_batch"] = start - limit if start > limit else 0
        return 200, out

    async def get_room(request: Request, room_id: str) -> tuple[int, Any]:
        await require_admin(hs, request)
        details = await rooms.details(room_id)
        if details is None:
            raise NotFound("Room not found")
        return 200, details

    async def delete_room_v1(request: Request, room_id: str) -> tuple[int, Any]:
        admin = await require_admin(hs, request)
        params = parse_shutdown(parse_json_body(request), admin)
        check_room_id(room_id)
        if params.new_room_user_id is not None and not hs.is_mine(params.new_room_user_id):
            raise MatrixError(400, "M_UNKNOWN", f"User must be our own: {params.new_room_user_id}")
        return 200, await rooms.delete(room_id, params, actor(admin, request))

    async def delete_room_v2(request: Request, room_id: str) -> tuple[int, Any]:
        admin = await require_admin(hs, request)
        params = parse_shutdown(parse_json_body(request), admin)
        check_room_id(room_id)
        return 200, {"delete_id": await rooms.start_delete(room_id, params, actor(admin, request))}

    async def delete_status_by_room(request: Request, room_id: str) -> tuple[int, Any]:
        await require_admin(hs, request)
        check_room_id(room_id)
        tasks = await hs.store.get_delete_tasks(room_id)
        if not tasks:
            raise NotFound(f"No delete task for room_id '{room_id}' found")
        return 200, {"results": [rooms.task_json(t) for t in tasks]}

    async def delete_status_by_id(request: Request, delete_id: str) -> tuple[int, Any]:
        await require_admin(hs, request)
        task = await hs.store.get_delete_task(delete_id)
        if task is None:
            raise NotFound(f"delete id '{delete_id}' not found")
        return 200, rooms.task_json(task)

    async def members(request: Request, room_id: str) -> tuple[int, Any]:
        await require_admin(hs, request)
        found = await rooms.members(room_id)
        if found is None:
            raise NotFound("Room not found")
        return 200, {"members": found, "total": len(found)}

    async def state(request: Request, room_id: str) -> tuple[int, Any]:
        await require_admin(hs, request)
        events = await rooms.state(room_id, parse_string(request, "type") or None)
        if events is None:
            raise NotFound("Room not found")
        return 200, {"state": events}

    async def get_block(request: Request, room_id: str) -> tuple[int, Any]:
        await require_admin(hs, request)
        check_room_id(room_id)
        blocked_by = await hs.store.room_blocked_by(room_id)
        return 200, ({"block": True, "user_id": blocked_by} if blocked_by is not None else {"block": False})

    async def put_block(request: Request, room_id: str) -> tuple[int, Any]:
        admin = await require_admin(hs, request)
        body = parse_json_body(request)
        check_room_id(room_id)
        if "block" not in body:
            raise MissingParam("Missing params: ['block']")
        block = body["block"]
        if not isinstance(block, bool):
            raise BadJson("Param 'block' must be a boolean.")
        await rooms.block(room_id, block, actor(admin, request))
        return 200, {"block": block}

    async def messages(request: Request, room_id: str) -> tuple[int, Any]:
        admin = await require_admin(hs, request)
        limit = parse_integer(request, "limit", 10)
        assert limit is not None
        # forwards from the start unless told otherwise (Synapse's PaginationConfig)
        direction = parse_string(request, "dir", "f", allowed=("f", "b"))
        return 200, await rooms.messages(
            admin, room_id, parse_string(request, "from"), parse_string(request, "to"), direction or "f", limit
        )

    rid = f"(?P<room_id>{SEG})"
    router.register("GET", ADMIN_V1 + "/rooms", list_rooms)
    router.register("GET", f"{ADMIN_V1}/rooms/{rid}", get_room)
    router.register("DELETE", f"{ADMIN_V1}/rooms/{rid}", delete_room_v1)
    router.register("DELETE", f"{ADMIN_V2}/rooms/{rid}", delete_room_v2)
    router.register("GET", f"{ADMIN_V2}/rooms/{rid}/delete_status", delete_status_by_room)
    router.register("GET", f"{ADMIN_V2}/rooms/delete_status/(?P<delete_id>{SEG})", delete_status_by_id)
    router.register("GET", f"{ADMIN_V1}/rooms/{rid}/members", members)
    router.register("GET", f"{ADMIN_V1}/rooms/{rid}/state", state)
    router.register("GET", f"{ADMIN_V1}/rooms/{rid}/messages", messages)
    router.register("GET", f"{ADMIN_V1}/rooms/{rid}/block", get_block)
    router.register("PUT", f"{ADMIN_V1}/rooms/{rid}/block", put_block)
