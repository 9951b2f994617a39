"""Registration tokens for the admin API (Synapse's /_synapse/admin/v1/registration_tokens),
over the same table that /register's m.login.registration_token stage checks."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from homeserver.handlers.audit import Actor, AuditEvent
from homeserver.http.errors import MatrixError, NotFound
from homeserver.storage.admin import RegistrationToken
from homeserver.util.ids import now_ms

if TYPE_CHECKING:
    from homeserver.app import HomeServer

# Synapse's alphabet for tokens, given or generated.
TOKEN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-"


def token_json(t: RegistrationToken) -> dict[str, Any]:
    return {
        "token": t.token,
        "uses_allowed": t.uses_allowed,
        "pending": t.pending,
        "completed": t.completed,
        "expiry_time": t.expiry_time,
    }


class RegistrationTokensHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store

    async def list(self, valid: bool | None) -> list[dict[str, Any]]:
        return [token_json(t) for t in await self.store.list_registration_tokens(valid, now_ms())]

    async def get(self, token: str) -> dict[str, Any]:
        t = await self.store.get_registration_token(token)
        if t is None:
            raise NotFound(f"No such registration token: {token}")
        return token_json(t)

    async def create(
        self, token: str | None, length: int, uses_allowed: int | None, expiry_time: int | None, by: Actor
    ) -> dict[str, Any]:
        if token is None:
            # a fresh random token; retried on the (unlikely) clash, as Synapse does
            for _ in range(10):
                token = "".join(secrets.choice(TOKEN_CHARS) for _ in range(length))
                if await self.store.add_registration_token(token, uses_allowed, expiry_time):
                    break
            else:
                raise MatrixError(500, "M_UNKNOWN", "Unable to generate a unique registration token")
        elif not await self.store.add_registration_token(token, uses_allowed, expiry_time):
            raise MatrixError(400, "M_INVALID_PARAM", f"Token already exists: {token}")
        await self.hs.audit.record_by(
            AuditEvent.ADMIN_REGISTRATION_TOKEN, None, by, {"action": "create", "uses_allowed": uses_allowed,
                                                             "expiry_time": expiry_time}
        )
        return {"token": token, "uses_allowed": uses_allowed, "pending": 0, "completed": 0, "expiry_time": expiry_time}

    async def update(self, token: str, changes: dict[str, int | None], by: Actor) -> dict[str, Any]:
        if not changes:
            return await self.get(token)
        t = await self.store.update_registration_token(token, changes)
        if t is None:
            raise NotFound(f"No such registration token: {token}")
        await self.hs.audit.record_by(AuditEvent.ADMIN_REGISTRATION_TOKEN, None, by, {"action": "update", **changes})
        return token_json(t)

    async def delete(self, token: str, by: Actor) -> None:
        if not await self.store.delete_registration_token(token):
            raise NotFound(f"No such registration token: {token}")
        await self.hs.audit.record_by(AuditEvent.ADMIN_REGISTRATION_TOKEN, None, by, {"action": "delete"})
