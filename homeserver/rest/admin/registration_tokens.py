"""Synapse's admin API for registration tokens: list, create, get, update, delete
(synapse/rest/admin/registration_tokens.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.handlers.admin.registration_tokens import TOKEN_CHARS
from homeserver.http.errors import InvalidParam
from homeserver.http.request import parse_json_body
from homeserver.http.server import Router
from homeserver.rest.admin._base import ADMIN_V1, SEG, actor, check_safe_int, optional_bool, require_admin
from homeserver.util.ids import now_ms

if TYPE_CHECKING:
    from homeserver.app import HomeServer

_ALLOWED = frozenset(TOKEN_CHARS)


def _uses_allowed(value: Any) -> int | None:
    if not (value is None or (type(value) is int and value >= 0)):
        raise InvalidParam("uses_allowed must be a non-negative integer or null")
    return None if value is None else check_safe_int(value, "uses_allowed")


def _expiry_time(value: Any) -> int | None:
    if value is not None and type(value) is not int:
        raise InvalidParam("expiry_time must be an integer or null")
    if value is not None and value < now_ms():
        raise InvalidParam("expiry_time must not be in the past")
    return None if value is None else check_safe_int(value, "expiry_time")


def register(hs: HomeServer, router: Router) -> None:
    tokens = hs.admin.registration_tokens

    async def list_tokens(request: Request) -> tuple[int, Any]:
        await require_admin(hs, request)
        valid = optional_bool(request, "valid")
        return 200, {"registration_tokens": await tokens.list(valid)}

    async def new_token(request: Request) -> tuple[int, Any]:
        admin = await require_admin(hs, request)
        body = parse_json_body(request)
        token: str | None = None
        length = 16
        if "token" in body:
            token = body["token"]
            if not isinstance(token, str):
                raise InvalidParam("token must be a string")
            if not 0 < len(token) <= 64:
                raise InvalidParam("token must not be empty and must not be longer than 64 characters")
            if not set(token) <= _ALLOWED:
                raise InvalidParam("token must consist only of characters matched by the regex [A-Za-z0-9-_]")
        else:
            length = body.get("length", 16)
            if type(length) is not int:
                raise InvalidParam("length must be an integer")
            if not 0 < length <= 64:
                raise InvalidParam("length must be greater than zero and not greater than 64")
        uses_allowed = _uses_allowed(body.get("uses_allowed"))
        expiry_time = _expiry_time(body.get("expiry_time"))
        return 200, await tokens.create(token, length, uses_allowed, expiry_time, actor(admin, request))

    async def get_token(request: Request, token: str) -> tuple[int, Any]:
        await require_admin(hs, request)
        return 200, await tokens.get(token)

    async def put_token(request: Request, token: str) -> tuple[int, Any]:
        admin = await require_admin(hs, request)
        body = parse_json_body(request)
        changes: dict[str, int | None] = {}
        if "uses_allowed" in body:
            changes["uses_allowed"] = _uses_allowed(body["uses_allowed"])
        if "expiry_time" in body:
            changes["expiry_time"] = _expiry_time(body["expiry_time"])
        return 200, await tokens.update(token, changes, actor(admin, request))

    async def delete_token(request: Request, token: str) -> tuple[int, Any]:
        admin = await require_admin(hs, request)
        await tokens.delete(token, actor(admin, request))
        return 200, {}

    # /new is registered first: it would otherwise be read as a token named "new"
    router.register("POST", ADMIN_V1 + "/registration_tokens/new", new_token)
    router.register("GET", ADMIN_V1 + "/registration_tokens", list_tokens)
    router.register("GET", f"{ADMIN_V1}/registration_tokens/(?P<token>{SEG})", get_token)
    router.register("PUT", f"{ADMIN_V1}/registration_tokens/(?P<token>{SEG})", put_token)
    router.register("DELETE", f"{ADMIN_V1}/registration_tokens/(?P<token>{SEG})", delete_token)
