"""/versions, /.well-known/matrix/client and /server, and /capabilities."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.http.server import CLIENT_V3, RawResponse, Router, json_bytes
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.websocket.frames import FEATURE as WEBSOCKET_FEATURE

if TYPE_CHECKING:
    from homeserver.app import HomeServer

SPEC_VERSIONS = [
    "r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10", "v1.11", "v1.12",
]


def register(hs: HomeServer, router: Router) -> None:
    async def versions(request: Request) -> tuple[int, Any]:
        return 200, {
            "versions": SPEC_VERSIONS,
            "unstable_features": {
                # Element sets up cross-signing at first login only where this is on;
                # without it every message shows "sent by an unverified device".
                "org.matrix.e2e_cross_signing": True,
                "org.matrix.msc2432": True,
                "org.matrix.msc3440.stable": True,
                "org.matrix.msc3771": True,
                "org.matrix.msc3773": True,
                "org.matrix.msc2285.stable": True,
                # dehydrated devices (handlers/e2e_keys/dehydrated_devices.py)
                "org.matrix.msc3814": True,
                # simplified sliding sync (handlers/sliding_sync/), what Element X needs
                "org.matrix.simplified_msc3575": True,
                # /relations?recurse=true (handlers/relations.py)
                "org.matrix.msc3981": True,
                # the WebSocket stream (docs/websocket.md): clients use it where this is on
                WEBSOCKET_FEATURE: hs.config.websocket.enabled,
            },
        }

    async def well_known(request: Request) -> tuple[int, Any]:
        body: dict[str, Any] = {"m.homeserver": {"base_url": hs.config.public_baseurl.rstrip("/")}}
        body.update(hs.well_known_extra)
        return 200, body

    async def well_known_server(request: Request) -> RawResponse:
        # Federation delegation (serve_server_wellknown / well_known_server), answered as
        # Synapse's ServerWellKnownResource, its 404 included.
        if hs.config.well_known_server is None:
            return RawResponse(404, b"404. Is anything ever truly *well* known?\n", {"Content-Type": "text/plain"})
        return RawResponse(200, json_bytes({"m.server": hs.config.well_known_server}), {"Content-Type": "application/json"})

    async def capabilities(request: Request) -> tuple[int, Any]:
        await hs.auth.get_user_by_req(request, allow_guest=True)
        return 200, {
            "capabilities": {
                "m.room_versions": {
                    "default": hs.config.default_room_version,
                    "available": {v: "stable" for v in KNOWN_ROOM_VERSIONS},
                },
                # Off when accounts are managed on the account pages only (as Synapse with MAS).
                "m.change_password": {"enabled": hs.config.auth.password_login != "oauth_only"},
                "m.set_displayname": {"enabled": True},
                "m.set_avatar_url": {"enabled": True},
                # Extended profile fields (spec v1.16): m.tz and custom keys (homeserver/handlers/profile.py).
                "m.profile_fields": {"enabled": True},
                # E-mail addresses through /account/3pid (homeserver/oauth/email.py) when the
                # server can send e-mail; with oauth_only, on the account pages only.
                "m.3pid_changes": {
                    "enabled": hs.sign_in_factors.email.enabled and hs.config.auth.password_login != "oauth_only"
                },
                "m.get_login_token": {"enabled": False},
            }
        }

    router.register("GET", "/_matrix/client/versions", versions)
    router.register("GET", "/.well-known/matrix/client", well_known)
    router.register("GET", "/.well-known/matrix/server", well_known_server)
    router.register_prefixes("GET", CLIENT_V3, "/capabilities", capabilities)
