"""/versions, /.well-known/matrix/client and /capabilities."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.http.server import CLIENT_V3, Router
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS

if TYPE_CHECKING:
    from homeserver.app import HomeServer

SPEC_VERSIONS = [
    "r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10", "v1.11", "v1.12",
]


def register(hs: "HomeServer", router: Router) -> None:
    async def versions(request: Request) -> tuple[int, Any]:
        return 200, {
            "versions": SPEC_VERSIONS,
            "unstable_features": {
                "org.matrix.msc2432": True,
                "org.matrix.msc3440.stable": True,
                "org.matrix.msc3771": True,
                "org.matrix.msc3773": True,
                "org.matrix.msc2285.stable": True,
                # dehydrated devices (handlers/e2e_keys.py)
                "org.matrix.msc3814": True,
            },
        }

    async def well_known(request: Request) -> tuple[int, Any]:
        body: dict[str, Any] = {"m.homeserver": {"base_url": hs.config.public_baseurl.rstrip("/")}}
        body.update(hs.well_known_extra)
        return 200, body

    async def capabilities(request: Request) -> tuple[int, Any]:
        await hs.auth.get_user_by_req(request, allow_guest=True)
        return 200, {
            "capabilities": {
                "m.room_versions": {
                    "default": hs.config.default_room_version,
                    "available": {v: "stable" for v in KNOWN_ROOM_VERSIONS},
                },
                "m.change_password": {"enabled": True},
                "m.set_displayname": {"enabled": True},
                "m.set_avatar_url": {"enabled": True},
                "m.3pid_changes": {"enabled": False},
                "m.get_login_token": {"enabled": False},
            }
        }

    router.register("GET", "/_matrix/client/versions", versions)
    router.register("GET", "/.well-known/matrix/client", well_known)
    router.register_prefixes("GET", CLIENT_V3, "/capabilities", capabilities)
