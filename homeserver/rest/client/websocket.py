"""``GET /_matrix/client/unstable/org.wspr.websocket``: the upgrade to the WebSocket stream
(docs/websocket.md, homeserver/websocket/).

A token in the request (``Authorization: Bearer``, or ``?access_token=`` as every Matrix
endpoint takes it) is checked before the upgrade, so a bad one is the usual 401. Without
one the socket opens and the client authenticates with its first frame: browsers cannot
set headers on a WebSocket, and a token in the URL ends up in proxies' logs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.http.errors import MatrixError
from homeserver.http.server import Router, get_access_token
from homeserver.websocket.frames import PATH

if TYPE_CHECKING:
    from homeserver.app import HomeServer


def _is_upgrade(request: Request) -> bool:
    upgrade = (request.getHeader(b"Upgrade") or b"").lower()
    connection = (request.getHeader(b"Connection") or b"").lower()
    return upgrade == b"websocket" and b"upgrade" in connection


def register(hs: HomeServer, router: Router) -> None:
    if not hs.config.websocket.enabled:
        return

    async def websocket(request: Request) -> Any:
        if not _is_upgrade(request):
            request.setHeader(b"Upgrade", b"websocket")
            raise MatrixError(426, "M_UNRECOGNIZED", "This endpoint takes a WebSocket upgrade")
        token = get_access_token(request)
        requester = None
        if token is not None:
            requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        hs.websocket.upgrade(request, requester, token)
        request.setResponseCode(101)
        return None  # the socket answered the handshake itself

    router.register("GET", PATH, websocket)
