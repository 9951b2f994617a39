"""Event reports for the admin API (Synapse's /_synapse/admin/v1/event_reports), over the
reports users make (handlers/reports.py, storage/reports.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeserver.handlers.audit import Actor, AuditEvent
from homeserver.http.errors import NotFound
from homeserver.storage.admin import ReportedEvent

if TYPE_CHECKING:
    from homeserver.app import HomeServer


class AdminReportsHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store

    async def _room_names(self, room_ids: set[str]) -> dict[str, tuple[str | None, str | None]]:
        """room -> (canonical alias, name), as the reports listing shows them."""
        out: dict[str, tuple[str | None, str | None]] = {}
        for room_id in room_ids:
            details = await self.hs.admin.rooms.details(room_id)
            out[room_id] = (details["canonical_alias"], details["name"]) if details else (None, None)
        return out

    @staticmethod
    def _json(r: ReportedEvent, names: dict[str, tuple[str | None, str | None]]) -> dict[str, Any]:
        report = r.report
        alias, name = names.get(report.room_id, (None, None))
        return {
            "id": report.id,
            "received_ts": report.received_ts,
            "room_id": report.room_id,
            "event_id": report.event_id,
            "user_id": report.user_id,
            "score": report.content.get("score"),
            "reason": report.content.get("reason"),
            "sender": r.sender,
            "canonical_alias": alias,
            "name": name,
        }

    async def list(
        self, start: int, limit: int, newest_first: bool, user_id: str | None, room_id: str | None, sender: str | None
    ) -> tuple[list[dict[str, Any]], int]:
        reports, total = await self.store.list_reported_events(start, limit, newest_first, user_id, room_id, sender)
        names = await self._room_names({r.report.room_id for r in reports})
        return [self._json(r, names) for r in reports], total

    async def get(self, report_id: int) -> dict[str, Any]:
        r = await self.store.get_reported_event(report_id)
        if r is None:
            raise NotFound("Event report not found")
        out = self._json(r, await self._room_names({r.report.room_id}))
        event = await self.store.get_event(r.report.event_id, allow_rejected=True)
        # the event as stored (federation format), as Synapse shows it
        out["event_json"] = dict(event.pdu) if event is not None else None
        return out

    async def delete(self, report_id: int, by: Actor) -> None:
        if not await self.store.delete_event_report(report_id):
            raise NotFound("Event report not found")
        await self.hs.audit.record_by(AuditEvent.ADMIN_EVENT_REPORT_DELETED, None, by, {"report_id": report_id})
