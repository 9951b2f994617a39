"""Reports of abuse (events, rooms, users) kept for the server's admins, as Synapse's
event_reports, room_reports and user_reports tables (migration *_reports_and_client_ips.sql)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from homeserver.storage.database import Database, Txn
from homeserver.util.ids import now_ms


@dataclass(frozen=True)
class EventReport:
    id: int
    received_ts: int
    room_id: str
    event_id: str
    user_id: str
    reason: str | None
    # the reporter's request body (reason, score and anything else they sent)
    content: dict[str, Any]


@dataclass(frozen=True)
class RoomReport:
    id: int
    received_ts: int
    room_id: str
    user_id: str
    reason: str


@dataclass(frozen=True)
class UserReport:
    id: int
    received_ts: int
    target_user_id: str
    user_id: str
    reason: str


def _page(
    txn: Txn, table: str, cols: str, filters: dict[str, str | None], start: int, limit: int, newest_first: bool
) -> tuple[list[tuple], int]:
    clauses = [f"{col} = ?" for col, value in filters.items() if value is not None]
    args: list[Any] = [value for value in filters.values() if value is not None]
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    total = txn.select_value(f"SELECT COUNT(*) FROM {table}{where}", args, 0)
    order = "DESC" if newest_first else "ASC"
    rows = txn.select_all(
        f"SELECT {cols} FROM {table}{where} ORDER BY received_ts {order}, id {order} LIMIT ? OFFSET ?",
        args + [limit, start],
    )
    return rows, int(total)


class ReportStore:
    db: Database

    async def add_event_report(
        self, room_id: str, event_id: str, user_id: str, reason: str | None, content: dict[str, Any]
    ) -> int:
        def txn_fn(txn: Txn) -> int:
            txn.execute(
                "INSERT INTO event_reports (received_ts, room_id, event_id, user_id, reason, content)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (now_ms(), room_id, event_id, user_id, reason, json.dumps(content, ensure_ascii=False)),
            )
            return int(txn.select_value("SELECT MAX(id) FROM event_reports"))

        return await self.db.write(txn_fn, name="add_event_report")

    async def add_room_report(self, room_id: str, user_id: str, reason: str) -> int:
        def txn_fn(txn: Txn) -> int:
            txn.execute(
                "INSERT INTO room_reports (received_ts, room_id, user_id, reason) VALUES (?, ?, ?, ?)",
                (now_ms(), room_id, user_id, reason),
            )
            return int(txn.select_value("SELECT MAX(id) FROM room_reports"))

        return await self.db.write(txn_fn, name="add_room_report")

    async def add_user_report(self, target_user_id: str, user_id: str, reason: str) -> int:
        def txn_fn(txn: Txn) -> int:
            txn.execute(
                "INSERT INTO user_reports (received_ts, target_user_id, user_id, reason) VALUES (?, ?, ?, ?)",
                (now_ms(), target_user_id, user_id, reason),
            )
            return int(txn.select_value("SELECT MAX(id) FROM user_reports"))

        return await self.db.write(txn_fn, name="add_user_report")

    async def get_event_reports(
        self,
        start: int = 0,
        limit: int = 100,
        *,
        room_id: str | None = None,
        user_id: str | None = None,
        newest_first: bool = True,
    ) -> tuple[list[EventReport], int]:
        """A page of event reports (optionally of one room, or by one reporter) and how
        many there are in all: what Synapse's admin API pages through."""

        def txn_fn(txn: Txn) -> tuple[list[EventReport], int]:
            rows, total = _page(
                txn, "event_reports", "id, received_ts, room_id, event_id, user_id, reason, content",
                {"room_id": room_id, "user_id": user_id}, start, limit, newest_first,
            )
            return [EventReport(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6])) for r in rows], total

        return await self.db.read(txn_fn, name="get_event_reports")

    async def get_event_report(self, report_id: int) -> EventReport | None:
        def txn_fn(txn: Txn) -> EventReport | None:
            r = txn.select_one(
                "SELECT id, received_ts, room_id, event_id, user_id, reason, content FROM event_reports WHERE id = ?",
                (report_id,),
            )
            return EventReport(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6])) if r else None

        return await self.db.read(txn_fn, name="get_event_report")

    async def get_room_reports(
        self, start: int = 0, limit: int = 100, *, room_id: str | None = None, newest_first: bool = True
    ) -> tuple[list[RoomReport], int]:
        def txn_fn(txn: Txn) -> tuple[list[RoomReport], int]:
            rows, total = _page(
                txn, "room_reports", "id, received_ts, room_id, user_id, reason",
                {"room_id": room_id}, start, limit, newest_first,
            )
            return [RoomReport(*r) for r in rows], total

        return await self.db.read(txn_fn, name="get_room_reports")

    async def get_user_reports(
        self, start: int = 0, limit: int = 100, *, target_user_id: str | None = None, newest_first: bool = True
    ) -> tuple[list[UserReport], int]:
        def txn_fn(txn: Txn) -> tuple[list[UserReport], int]:
            rows, total = _page(
                txn, "user_reports", "id, received_ts, target_user_id, user_id, reason",
                {"target_user_id": target_user_id}, start, limit, newest_first,
            )
            return [UserReport(*r) for r in rows], total

        return await self.db.read(txn_fn, name="get_user_reports")
