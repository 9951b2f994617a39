"""The deprecated event stream: ``GET /events`` and ``GET /events/{eventId}``
(homeserver/handlers/event_stream.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.web.server import Request

from homeserver.handlers.event_stream import DEFAULT_TIMEOUT_MS, parse_from_token
from homeserver.handlers.initial_sync import parse_limit
from homeserver.http.errors import MatrixError
from homeserver.http.request import parse_integer, parse_string
from homeserver.http.server import CLIENT_V3, Router
from homeserver.rest.client.rooms import _check_room_id

if TYPE_CHECKING:
    from homeserver.app import HomeServer

# Synapse's default number of room events per answer.
DEFAULT_LIMIT = 10


def register(hs: HomeServer, router: Router) -> None:
    async def events(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        room_id = parse_string(request, "room_id")
        if requester.is_guest and room_id is None:
            # Guests may only peek into one room at a time (Synapse's rule).
            raise MatrixError(400, "M_UNKNOWN", "Guest users must specify room_id param")
        if room_id is not None:
            _check_room_id(room_id)
        from_token = parse_from_token(parse_string(request, "from"))
        try:
            timeout = int(parse_string(request, "timeout") or DEFAULT_TIMEOUT_MS)
        except ValueError:
            raise MatrixError(400, "M_UNKNOWN", "timeout must be in milliseconds.") from None
        limit = parse_limit(parse_integer(request, "limit"), DEFAULT_LIMIT)
        waiting = defer.ensureDeferred(hs.event_stream.get_stream(requester, from_token, max(0, timeout), room_id, limit))
        # A client that hangs up (a closed tab, a stopped peek) ends its long-poll here too.
        request.notifyFinish().addErrback(lambda _: waiting.cancel())
        return 200, await waiting

    async def event(request: Request, event_id: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        return 200, await hs.event_stream.get_event(requester, event_id)

    router.register_prefixes("GET", CLIENT_V3, "/events", events)
    router.register_prefixes("GET", CLIENT_V3, "/events/(?P<event_id>[^/]+)", event)
