"""Synapse's admin API for event reports: list, get, delete (synapse/rest/admin/event_reports.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.http.errors import InvalidParam
from homeserver.http.request import parse_string
from homeserver.http.server import Router
from homeserver.rest.admin._base import ADMIN_V1, SEG, actor, parse_paging, require_admin

if TYPE_CHECKING:
    from homeserver.app import HomeServer


def _report_id(value: str) -> int:
    try:
        report_id = int(value)
    except ValueError:
        report_id = -1
    if report_id < 0:
        raise InvalidParam("The report_id parameter must be a string representing a positive integer.")
    return report_id


def register(hs: HomeServer, router: Router) -> None:
    reports = hs.admin.reports

    async def list_reports(request: Request) -> tuple[int, Any]:
        await require_admin(hs, request)
        start, limit = parse_paging(request)
        direction = parse_string(request, "dir", "b", allowed=("f", "b"))
        found, total = await reports.list(
            start,
            limit,
            direction == "b",
            parse_string(request, "user_id"),
            parse_string(request, "room_id"),
            parse_string(request, "event_sender_user_id"),
        )
        out: dict[str, Any] = {"event_reports": found, "total": total}
        if start + limit < total:
            out["next_token"] = start + len(found)
        return 200, out

    async def get_report(request: Request, report_id: str) -> tuple[int, Any]:
        await require_admin(hs, request)
        return 200, await reports.get(_report_id(report_id))

    async def delete_report(request: Request, report_id: str) -> tuple[int, Any]:
        admin = await require_admin(hs, request)
        await reports.delete(_report_id(report_id), actor(admin, request))
        return 200, {}

    router.register("GET", ADMIN_V1 + "/event_reports", list_reports)
    router.register("GET", f"{ADMIN_V1}/event_reports/(?P<report_id>{SEG})", get_report)
    router.register("DELETE", f"{ADMIN_V1}/event_reports/(?P<report_id>{SEG})", delete_report)
