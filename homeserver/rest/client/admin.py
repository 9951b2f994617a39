"""``GET /_matrix/client/v3/admin/whois/{userId}`` (and Synapse's admin API path for it):
where a user's sessions were last seen from. Checks in Synapse's order: someone else's
whois needs a server admin (403), then the user must be local (400); an unknown local
user has no connections."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.http.errors import Forbidden, InvalidParam, MatrixError
from homeserver.http.server import CLIENT_V3, Router
from homeserver.util.ids import is_valid_user_id

if TYPE_CHECKING:
    from homeserver.app import HomeServer


def register(hs: HomeServer, router: Router) -> None:
    async def whois(request: Request, user_id: str) -> tuple[int, Any]:
        if not is_valid_user_id(user_id):
            raise InvalidParam("Invalid user id")
        requester = await hs.auth.get_user_by_req(request)
        if user_id != requester.user_id:
            me = await hs.store.get_user(requester.user_id)
            if me is None or not me.is_admin:
                raise Forbidden("You are not a server admin")
        if not hs.is_mine(user_id):
            raise MatrixError(400, "M_UNKNOWN", "Can only whois a local user")
        return 200, await hs.auth.client_ips.whois(user_id)

    path = "/admin/whois/(?P<user_id>[^/]+)"
    router.register_prefixes("GET", CLIENT_V3, path, whois)
    router.register("GET", "/_synapse/admin/v1/whois/(?P<user_id>[^/]+)", whois)
