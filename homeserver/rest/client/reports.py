"""Reporting content: ``POST /rooms/{roomId}/report/{eventId}``, ``/rooms/{roomId}/report``
(MSC4151) and ``/users/{userId}/report`` (MSC4260); see handlers/reports.py.

Validation as Synapse 1.163: an event report's ``reason`` must be a string when given, and
its ``score`` an integer when given (the spec dropped ``score`` in v1.18; Synapse checks
only its type, not the -100..0 range of older spec versions, and so do we). Room and user
reports need a string ``reason``: missing is ``M_MISSING_PARAM``, another type
``M_BAD_JSON``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.handlers.reports import ReportsHandler
from homeserver.http.errors import BadJson, MissingParam
from homeserver.http.request import parse_json_body
from homeserver.http.server import Router

if TYPE_CHECKING:
    from homeserver.app import HomeServer

V3 = ["/_matrix/client/v3"]
# The event report predates v3, so clients still find it under r0 too.
V3_R0 = ["/_matrix/client/v3", "/_matrix/client/r0"]


def _reason(body: dict[str, Any]) -> str:
    if "reason" not in body:
        raise MissingParam("Missing params: ['reason']")
    if not isinstance(body["reason"], str):
        raise BadJson("reason must be a string")
    return body["reason"]


def register(hs: HomeServer, router: Router) -> None:
    handler = ReportsHandler(hs)

    async def report_event(request: Request, room_id: str, event_id: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        body = parse_json_body(request)
        if not isinstance(body.get("reason", ""), str):
            raise BadJson("Param 'reason' must be a string")
        if type(body.get("score", 0)) is not int:  # a bool is not a score
            raise BadJson("Param 'score' must be an integer")
        await handler.report_event(requester, room_id, event_id, body)
        return 200, {}

    async def report_room(request: Request, room_id: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        reason = _reason(parse_json_body(request))
        await handler.report_room(requester, room_id, reason)
        return 200, {}

    async def report_user(request: Request, user_id: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        reason = _reason(parse_json_body(request))
        await handler.report_user(requester, user_id, reason)
        return 200, {}

    router.register_prefixes("POST", V3_R0, "/rooms/(?P<room_id>[^/]+)/report/(?P<event_id>[^/]+)", report_event)
    router.register_prefixes("POST", V3, "/rooms/(?P<room_id>[^/]+)/report", report_room)
    router.register_prefixes("POST", V3, "/users/(?P<user_id>[^/]+)/report", report_user)
