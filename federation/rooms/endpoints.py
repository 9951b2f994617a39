"""The federation endpoints of rooms: membership handshakes and history reads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from federation.transport.server import json_body
from homeserver.http.request import parse_boolean, parse_integer, parse_string, parse_strings

if TYPE_CHECKING:
    from federation.service import Federation
    from homeserver.app import HomeServer

V1 = "/_matrix/federation/v1"
V2 = "/_matrix/federation/v2"
SEG = "[^/]+"


def register_room_endpoints(hs: HomeServer, fed: Federation) -> None:
    router = hs.federation_router
    members = fed.membership
    history = fed.history

    def reg(method: str, path: str, fn: Any) -> None:
        router.register(method, path, fed.authenticated(fn))

    for kind in ("join", "leave", "knock"):

        async def make(request: Request, origin: str, room_id: str, user_id: str, kind: str = kind) -> Any:
            return 200, await members.on_make(origin, kind, room_id, user_id, parse_strings(request, "ver"))

        reg("GET", f"{V1}/make_{kind}/(?P<room_id>{SEG})/(?P<user_id>{SEG})", make)

    async def send_join_v2(request: Request, origin: str, room_id: str, event_id: str) -> Any:
        omit_members = parse_boolean(request, "omit_members")
        return 200, await members.on_send_join(origin, room_id, event_id, json_body(request), omit_members)

    async def send_join_v1(request: Request, origin: str, room_id: str, event_id: str) -> Any:
        resp = await members.on_send_join(origin, room_id, event_id, json_body(request))
        return 200, [200, {"state": resp["state"], "auth_chain": resp["auth_chain"], "origin": resp["origin"]}]

    async def send_leave_v2(request: Request, origin: str, room_id: str, event_id: str) -> Any:
        await members.on_send(origin, "leave", room_id, event_id, json_body(request))
        return 200, {}

    async def send_leave_v1(request: Request, origin: str, room_id: str, event_id: str) -> Any:
        await members.on_send(origin, "leave", room_id, event_id, json_body(request))
        return 200, [200, {}]

    async def send_knock(request: Request, origin: str, room_id: str, event_id: str) -> Any:
        return 200, await members.on_send_knock(origin, room_id, event_id, json_body(request))

    async def invite_v2(request: Request, origin: str, room_id: str, event_id: str) -> Any:
        return 200, await members.on_invite(origin, room_id, event_id, json_body(request))

    pair = f"(?P<room_id>{SEG})/(?P<event_id>{SEG})"
    reg("PUT", f"{V2}/send_join/{pair}", send_join_v2)
    reg("PUT", f"{V1}/send_join/{pair}", send_join_v1)
    reg("PUT", f"{V2}/send_leave/{pair}", send_leave_v2)
    reg("PUT", f"{V1}/send_leave/{pair}", send_leave_v1)
    reg("PUT", f"{V1}/send_knock/{pair}", send_knock)
    reg("PUT", f"{V2}/invite/{pair}", invite_v2)

    async def backfill(request: Request, origin: str, room_id: str) -> Any:
        limit = parse_integer(request, "limit", 10) or 0
        return 200, await history.on_backfill(origin, room_id, parse_strings(request, "v"), limit)

    async def timestamp_to_event(request: Request, origin: str, room_id: str) -> Any:
        ts = parse_integer(request, "ts", required=True)
        direction = parse_string(request, "dir", "f", allowed=("f", "b")) or "f"
        return 200, await history.on_timestamp_to_event(origin, room_id, ts or 0, direction)

    async def event(request: Request, origin: str, event_id: str) -> Any:
        return 200, await history.on_event(origin, event_id)

    async def state(request: Request, origin: str, room_id: str) -> Any:
        return 200, await history.on_state(origin, room_id, parse_string(request, "event_id", required=True) or "")

    async def state_ids(request: Request, origin: str, room_id: str) -> Any:
        return 200, await history.on_state_ids(origin, room_id, parse_string(request, "event_id", required=True) or "")

    async def event_auth(request: Request, origin: str, room_id: str, event_id: str) -> Any:
        return 200, await history.on_event_auth(origin, room_id, event_id)

    async def missing(request: Request, origin: str, room_id: str) -> Any:
        return 200, await history.on_get_missing_events(origin, room_id, json_body(request))

    reg("GET", f"{V1}/backfill/(?P<room_id>{SEG})", backfill)
    reg("GET", f"{V1}/timestamp_to_event/(?P<room_id>{SEG})", timestamp_to_event)
    reg("GET", f"{V1}/event/(?P<event_id>{SEG})", event)
    reg("GET", f"{V1}/state/(?P<room_id>{SEG})", state)
    reg("GET", f"{V1}/state_ids/(?P<room_id>{SEG})", state_ids)
    reg("GET", f"{V1}/event_auth/{pair}", event_auth)
    reg("POST", f"{V1}/get_missing_events/(?P<room_id>{SEG})", missing)
