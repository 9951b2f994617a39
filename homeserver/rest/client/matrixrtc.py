"""MatrixRTC: SFU discovery (MSC4143) and the lk-jwt-service compatible token endpoints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.http.request import parse_json_body
from homeserver.http.server import Router

if TYPE_CHECKING:
    from homeserver.app import HomeServer

SERVICE_PREFIX = "/_wspr/livekit/jwt"


def register(hs: HomeServer, router: Router) -> None:
    if not hs.config.sfu.enabled:
        return
    tokens = hs.call_tokens
    # Older Element Call builds read the list from .well-known.
    hs.well_known_extra["org.matrix.msc4143.rtc_foci"] = tokens.transports()

    async def transports(request: Request) -> tuple[int, Any]:
        await hs.auth.get_user_by_req(request, allow_guest=True)
        return 200, {"rtc_transports": tokens.transports()}

    async def get_token(request: Request) -> tuple[int, Any]:
        return 200, await tokens.get_token(parse_json_body(request))

    async def legacy_get(request: Request) -> tuple[int, Any]:
        return 200, await tokens.legacy_get(parse_json_body(request))

    async def healthz(request: Request) -> tuple[int, Any]:
        return 200, {}

    router.register("GET", "/_matrix/client/unstable/org.matrix.msc4143/rtc/transports", transports)
    router.register("GET", "/_matrix/client/v1/rtc/transports", transports)
    router.register("POST", SERVICE_PREFIX + "/get_token", get_token)
    router.register("POST", SERVICE_PREFIX + "/sfu/get", legacy_get)
    router.register("GET", SERVICE_PREFIX + "/healthz", healthz)
