"""Endpoints Element and other clients call at start-up whose answer, on a server without
the matching integration configured, is empty — as Synapse answers them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.http.server import CLIENT_V3, Router

if TYPE_CHECKING:
    from homeserver.app import HomeServer


def register(hs: HomeServer, router: Router) -> None:
    async def turn_server(request: Request) -> tuple[int, Any]:
        # No TURN server configured for 1:1 VoIP: Synapse answers an empty object.
        await hs.auth.get_user_by_req(request, allow_guest=True)
        return 200, {}

    async def thirdparty_protocols(request: Request) -> tuple[int, Any]:
        await hs.auth.get_user_by_req(request, allow_guest=True)
        return 200, {}

    async def thirdparty_protocol(request: Request, protocol: str) -> tuple[int, Any]:
        await hs.auth.get_user_by_req(request, allow_guest=True)
        # Synapse answers this bare body (no errcode) when no bridge offers the protocol.
        return 404, {"error": "Unknown protocol"}

    async def thirdparty_lookup(request: Request, protocol: str | None = None) -> tuple[int, Any]:
        # User and location lookups (by protocol, or reverse by Matrix ID / alias): with
        # no application services there is nothing to find, and Synapse answers [].
        await hs.auth.get_user_by_req(request, allow_guest=True)
        return 200, []

    router.register_prefixes("GET", CLIENT_V3, "/voip/turnServer", turn_server)
    router.register_prefixes("GET", CLIENT_V3, "/thirdparty/protocols", thirdparty_protocols)
    router.register_prefixes("GET", CLIENT_V3, "/thirdparty/protocol/(?P<protocol>[^/]+)", thirdparty_protocol)
    router.register_prefixes("GET", CLIENT_V3, "/thirdparty/(?:user|location)", thirdparty_lookup)
    router.register_prefixes("GET", CLIENT_V3, "/thirdparty/(?:user|location)/(?P<protocol>[^/]+)", thirdparty_lookup)
