"""Room events: send, redact, /messages, /context, /event, /relations, /threads."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.handlers.filtering import RoomEventFilter
from homeserver.http.errors import BadJson, MatrixError
from homeserver.http.request import parse_boolean, parse_integer, parse_json_body, parse_string
from homeserver.http.server import CLIENT_V1, CLIENT_V3, Router
from homeserver.rest.client.rooms import ROOM, _check_room_id

if TYPE_CHECKING:
    from homeserver.app import HomeServer


def parse_filter_param(request: Request, name: str = "filter") -> RoomEventFilter:
    raw = parse_string(request, name)
    if not raw:
        return RoomEventFilter()
    try:
        obj = json.loads(raw)
    except ValueError:
        raise MatrixError(400, "M_NOT_JSON", f"Query parameter {name} must be a valid JSON object") from None
    return RoomEventFilter.parse(obj)


def register(hs: HomeServer, router: Router) -> None:
    async def send(request: Request, room_id: str, event_type: str, txn_id: str | None = None) -> tuple[int, Any]:
        _check_room_id(room_id)
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        content = parse_json_body(request, allow_empty=False)
        ev = await hs.messages.send_event(requester, room_id, event_type, content, txn_id=txn_id)
        return 200, {"event_id": ev.event_id}

    async def redact(request: Request, room_id: str, event_id: str, txn_id: str | None = None) -> tuple[int, Any]:
        _check_room_id(room_id)
        requester = await hs.auth.get_user_by_req(request)
        body = parse_json_body(request, allow_empty=True)
        if "reason" in body and not isinstance(body["reason"], str):
            raise BadJson("reason must be a string")
        ev = await hs.messages.redact(requester, room_id, event_id, body, txn_id)
        return 200, {"event_id": ev.event_id}

    async def timestamp_to_event(request: Request, room_id: str) -> tuple[int, Any]:
        _check_room_id(room_id)
        requester = await hs.auth.get_user_by_req(request)
        ts = parse_integer(request, "ts", required=True)
        direction = parse_string(request, "dir", "f", allowed=("f", "b")) or "f"
        return 200, await hs.messages.event_for_timestamp(requester, room_id, ts or 0, direction)

    async def messages(request: Request, room_id: str) -> tuple[int, Any]:
        _check_room_id(room_id)
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        # `dir` is required by the spec; Synapse defaults it to forwards, and "END" is its
        # old spelling of "from the end" (no `from`).
        direction = parse_string(request, "dir", "f", allowed=("b", "f")) or "f"
        limit = parse_integer(request, "limit", 10)
        from_token = parse_string(request, "from")
        result = await hs.messages.get_messages(
            requester,
            room_id,
            from_token if from_token != "END" else None,
            parse_string(request, "to"),
            direction,
            limit if limit is not None else 10,
            parse_filter_param(request),
        )
        return 200, result

    async def context(request: Request, room_id: str, event_id: str) -> tuple[int, Any]:
        _check_room_id(room_id)
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        limit = parse_integer(request, "limit", 10) or 0
        return 200, await hs.messages.get_context(requester, room_id, event_id, limit, parse_filter_param(request))

    async def get_event(request: Request, room_id: str, event_id: str) -> tuple[int, Any]:
        _check_room_id(room_id)
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        return 200, await hs.messages.get_event(requester, room_id, event_id)

    async def relations(
        request: Request, room_id: str, event_id: str, rel_type: str | None = None, event_type: str | None = None
    ) -> tuple[int, Any]:
        _check_room_id(room_id)
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        return 200, await hs.relations.get_relations(
            requester,
            room_id,
            event_id,
            rel_type,
            event_type,
            parse_integer(request, "limit", 50) or 50,
            parse_string(request, "from"),
            parse_string(request, "dir", "b", allowed=("b", "f")) or "b",
            parse_boolean(request, "recurse", False) or parse_boolean(request, "org.matrix.msc3981.recurse", False),
        )

    async def threads(request: Request, room_id: str) -> tuple[int, Any]:
        _check_room_id(room_id)
        requester = await hs.auth.get_user_by_req(request)
        include = parse_string(request, "include", "all", allowed=("all", "participated")) or "all"
        return 200, await hs.relations.get_threads(
            requester, room_id, include, parse_integer(request, "limit", 50) or 50, parse_string(request, "from")
        )

    router.register_prefixes("PUT", CLIENT_V3, ROOM + "/send/(?P<event_type>[^/]+)/(?P<txn_id>[^/]+)", send)
    # Without a transaction id (no retry safety): Synapse still serves it, Complement uses it.
    router.register_prefixes("POST", CLIENT_V3, ROOM + "/send/(?P<event_type>[^/]+)", send)
    router.register_prefixes("PUT", CLIENT_V3, ROOM + "/redact/(?P<event_id>[^/]+)/(?P<txn_id>[^/]+)", redact)
    router.register_prefixes("POST", CLIENT_V3, ROOM + "/redact/(?P<event_id>[^/]+)", redact)
    router.register_prefixes("GET", CLIENT_V3, ROOM + "/messages", messages)
    router.register_prefixes("GET", CLIENT_V3, ROOM + "/context/(?P<event_id>[^/]+)", context)
    router.register_prefixes("GET", CLIENT_V3, ROOM + "/event/(?P<event_id>[^/]+)", get_event)
    rel = ROOM + "/relations/(?P<event_id>[^/]+)"
    router.register_prefixes("GET", CLIENT_V1, rel, relations)
    router.register_prefixes("GET", CLIENT_V1, rel + "/(?P<rel_type>[^/]+)", relations)
    router.register_prefixes("GET", CLIENT_V1, rel + "/(?P<rel_type>[^/]+)/(?P<event_type>[^/]+)", relations)
    router.register_prefixes("GET", CLIENT_V1, ROOM + "/threads", threads)
    router.register_prefixes("GET", CLIENT_V1, ROOM + "/timestamp_to_event", timestamp_to_event)
