"""/sync and the event filters it uses."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.web.server import Request

from homeserver.handlers.filtering import SyncFilter
from homeserver.http.errors import MatrixError
from homeserver.http.request import parse_boolean, parse_integer, parse_string
from homeserver.http.server import CLIENT_V3, Router

if TYPE_CHECKING:
    from homeserver.app import HomeServer


async def sync_filter_from_param(hs: HomeServer, user_id: str, filter_param: str | None) -> SyncFilter:
    """The ``filter`` query parameter: inline JSON or a stored filter's id, with
    Synapse's errors for each way it can be wrong."""
    if not filter_param:
        return SyncFilter.parse(None)
    if filter_param.startswith("{"):
        try:
            obj = json.loads(filter_param)
        except ValueError:
            raise MatrixError(400, "M_NOT_JSON", "Invalid filter JSON") from None
        return SyncFilter.parse(obj)
    try:
        filter_id = int(filter_param)
    except ValueError:
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid filter ID") from None
    obj = await hs.store.get_filter(user_id, filter_id)
    if obj is None:
        raise MatrixError(400, "M_INVALID_PARAM", "No such filter")
    return SyncFilter.parse(obj)


def register(hs: HomeServer, router: Router) -> None:
    async def sync(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        if parse_string(request, "from") is not None:
            raise MatrixError(400, "M_UNKNOWN", "'from' is not a valid query parameter. Did you mean 'since'?")
        since = parse_string(request, "since")
        timeout = parse_integer(request, "timeout", 0) or 0
        full_state = parse_boolean(request, "full_state", False)
        set_presence = parse_string(request, "set_presence", allowed=("online", "offline", "unavailable"))
        sync_filter = await sync_filter_from_param(hs, requester.user_id, parse_string(request, "filter"))
        d = defer.ensureDeferred(hs.sync.sync(requester, since, timeout, full_state, sync_filter, set_presence))
        # A client that hangs up mid long-poll (tab closed, network switch, SDK stopClient)
        # must not leave its wait parked for up to `timeout` and then build a sync nobody
        # reads: cancel it, as Synapse does (the router answers nothing to a gone client).
        request.notifyFinish().addErrback(lambda _: d.cancel())
        return 200, await d

    router.register_prefixes("GET", CLIENT_V3, "/sync", sync)
