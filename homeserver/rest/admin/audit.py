"""``GET /_wspr/admin/v1/audit_log``: the audit log, for server admins (WSPR's own: Synapse
has none). Paged as Synapse's admin lists (``from``, ``limit``, ``next_token``, ``total``),
newest first unless ``dir=f``; filters ``user_id``, ``actor``, ``event_type`` (a trailing
dot selects a family: ``login.``), ``since``/``until`` (ms, ``until`` exclusive)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.http.errors import InvalidParam
from homeserver.http.request import parse_integer, parse_string
from homeserver.http.server import Router
from homeserver.rest.admin._base import WSPR_ADMIN_V1, parse_paging, require_admin
from homeserver.storage.audit import AuditQuery

if TYPE_CHECKING:
    from homeserver.app import HomeServer

MAX_LIMIT = 1000


def register(hs: HomeServer, router: Router) -> None:
    async def audit_log(request: Request) -> tuple[int, Any]:
        await require_admin(hs, request)
        start, limit = parse_paging(request)
        if limit > MAX_LIMIT:
            raise InvalidParam(f"Query parameter limit must be at most {MAX_LIMIT}.")
        direction = parse_string(request, "dir", "b", allowed=("f", "b"))
        query = AuditQuery(
            user_id=parse_string(request, "user_id"),
            actor=parse_string(request, "actor"),
            event_type=parse_string(request, "event_type"),
            since_ts=parse_integer(request, "since"),
            until_ts=parse_integer(request, "until"),
        )
        entries, total = await hs.audit.entries(query, start, limit, direction == "b")
        out: dict[str, Any] = {"entries": [hs.audit.entry_json(e) for e in entries], "total": total}
        if start + limit < total:
            out["next_token"] = str(start + len(entries))
        return 200, out

    router.register("GET", WSPR_ADMIN_V1 + "/audit_log", audit_log)
