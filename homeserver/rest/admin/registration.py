"""``/_synapse/admin/v1/register``: shared-secret registration, as provisioning tools
(register_new_matrix_user) use it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.http.errors import MatrixError
from homeserver.http.request import parse_json_body
from homeserver.http.server import Router
from homeserver.rest.admin._base import ADMIN_V1

if TYPE_CHECKING:
    from homeserver.app import HomeServer


def register(hs: HomeServer, router: Router) -> None:
    async def get_nonce(request: Request) -> tuple[int, Any]:
        if not hs.config.registration_shared_secret:
            raise MatrixError(400, "M_UNKNOWN", "Shared secret registration is not enabled")
        return 200, {"nonce": hs.registration.new_nonce()}

    async def post_register(request: Request) -> tuple[int, Any]:
        body = parse_json_body(request)
        return 200, await hs.registration.register_with_shared_secret(body)

    router.register("GET", ADMIN_V1 + "/register", get_nonce)
    router.register("POST", ADMIN_V1 + "/register", post_register)
