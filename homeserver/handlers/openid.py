"""OpenID tokens: a short-lived proof of identity a user hands to a third party (the
SFU token service, integration managers), checked through federation
``/openid/userinfo``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeserver.util.ids import hash_token, new_token, now_ms

if TYPE_CHECKING:
    from homeserver.app import HomeServer

OPENID_LIFETIME_MS = 60 * 60 * 1000


class OpenIdHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs

    async def issue_token(self, user_id: str) -> dict[str, Any]:
        token = new_token("wspr_oid")
        await self.hs.store.store_openid_token(hash_token(token), user_id, now_ms() + OPENID_LIFETIME_MS)
        return {
            "access_token": token,
            "token_type": "Bearer",
            "matrix_server_name": self.hs.server_name,
            "expires_in": OPENID_LIFETIME_MS // 1000,
        }

    async def user_for_token(self, token: str) -> str | None:
        return await self.hs.store.get_openid_user(hash_token(token))
