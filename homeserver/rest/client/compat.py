"""Endpoints Element and other clients call at start-up whose answer, on a server without
the matching integration configured, is empty — as Synapse answers them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.http.server import CLIENT_V3, Router

if TYPE_CHECKING:
    from homeserver.app import HomeServer


def register(hs: "HomeServer", router: Router) -> None:
    async def turn_server(request: Request) -> tuple[int, Any]:
        # No TURN server configured for 1:1 VoIP: Synapse answers an empty object.
        await hs.auth.get_user_by_req(request, allow_guest=True)
        return 200, {}

    async def thirdparty_protocols(request: Request) -> tuple[int, Any]:
        await hs.auth.get_user_by_req(request, allow_guest=True)
        return 200, {}

    router.register_prefixes("GET", CLIENT_V3, "/voip/turnServer", turn_server)
    router.register_prefixes("GET", CLIENT_V3, "/thirdparty/protocols", thirdparty_protocols)
