"""Synapse's admin API for the server: its version, and server notices
(synapse/rest/admin/__init__.py, server_notice_servlet.py)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.http.errors import BadJson, MatrixError, MissingParam
from homeserver.http.request import parse_json_body
from homeserver.http.server import Router
from homeserver.rest.admin._base import ADMIN_V1, SEG, actor, check_user_id, require_admin

if TYPE_CHECKING:
    from homeserver.app import HomeServer


def server_version() -> str:
    try:
        return version("wspr")
    except PackageNotFoundError:
        return "unknown"


def register(hs: HomeServer, router: Router) -> None:
    async def get_version(request: Request) -> tuple[int, Any]:
        # Synapse answers this one without authentication.
        return 200, {"server_version": server_version()}

    async def send_notice(request: Request, txn_id: str | None = None) -> tuple[int, Any]:
        admin = await require_admin(hs, request)
        body = parse_json_body(request)
        missing = [k for k in ("user_id", "content") if k not in body]
        if missing:
            raise MissingParam(f"Missing params: {missing}")
        user_id, content = body["user_id"], body["content"]
        event_type = body.get("type", "m.room.message")
        state_key = body.get("state_key")
        if not isinstance(user_id, str):
            raise BadJson("user_id must be a string")
        if not isinstance(content, dict):
            raise BadJson("content must be an object")
        if not isinstance(event_type, str) or (state_key is not None and not isinstance(state_key, str)):
            raise BadJson("type and state_key must be strings")
        if not hs.admin.notices.enabled:
            raise MatrixError(400, "M_UNKNOWN", "Server notices are not enabled on this server")
        check_user_id(user_id)
        event = await hs.admin.notices.send(user_id, event_type, content, state_key, txn_id, actor(admin, request))
        return 200, {"event_id": event.event_id}

    router.register("GET", ADMIN_V1 + "/server_version", get_version)
    router.register("POST", ADMIN_V1 + "/send_server_notice", send_notice)
    router.register("PUT", f"{ADMIN_V1}/send_server_notice/(?P<txn_id>{SEG})", send_notice)
