"""The audit log of security events (schema 053): append-only rows, read back by admins."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from homeserver.storage.database import Database, Txn


@dataclass(frozen=True)
class AuditEntry:
    id: int
    ts: int
    event_type: str
    user_id: str | None
    actor: str | None
    ip: str
    user_agent: str
    details: dict[str, Any]


@dataclass(frozen=True)
class AuditQuery:
    """Which entries to read: all filters are optional and combine with AND."""

    user_id: str | None = None
    actor: str | None = None
    # An exact type, or a prefix ending in "." ("login." matches every login event).
    event_type: str | None = None
    since_ts: int | None = None
    until_ts: int | None = None


_COLS = "id, ts, event_type, user_id, actor, ip, user_agent, details"


def _entry(r: tuple) -> AuditEntry:
    return AuditEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]))


class AuditStore:
    db: Database

    async def add_audit_entry(
        self,
        ts: int,
        event_type: str,
        user_id: str | None,
        actor: str | None,
        ip: str,
        user_agent: str,
        details: dict[str, Any],
    ) -> None:
        await self.db.write(
            lambda txn: txn.execute(
                f"INSERT INTO audit_log ({_COLS.split(', ', 1)[1]}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (ts, event_type, user_id, actor, ip, user_agent, json.dumps(details, ensure_ascii=False)),
            ),
            name="add_audit_entry",
        )

    async def get_audit_entries(
        self, query: AuditQuery, start: int, limit: int, newest_first: bool
    ) -> tuple[list[AuditEntry], int]:
        """A page of entries and how many match in all."""

        def txn_fn(txn: Txn) -> tuple[list[AuditEntry], int]:
            clauses: list[str] = []
            args: list[Any] = []
            for col, value in (("user_id", query.user_id), ("actor", query.actor)):
                if value is not None:
                    clauses.append(f"{col} = ?")
                    args.append(value)
            if query.event_type is not None:
                if query.event_type.endswith("."):
                    # a prefix: compared as a range, so no LIKE wildcard in it can match more
                    clauses.append("event_type >= ? AND event_type < ?")
                    args += [query.event_type, query.event_type[:-1] + "/"]
                else:
                    clauses.append("event_type = ?")
                    args.append(query.event_type)
            if query.since_ts is not None:
                clauses.append("ts >= ?")
                args.append(query.since_ts)
            if query.until_ts is not None:
                clauses.append("ts < ?")
                args.append(query.until_ts)
            where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
            total = txn.select_value(f"SELECT COUNT(*) FROM audit_log{where}", args, 0)
            order = "DESC" if newest_first else "ASC"
            rows = txn.select_all(
                f"SELECT {_COLS} FROM audit_log{where} ORDER BY id {order} LIMIT ? OFFSET ?", args + [limit, start]
            )
            return [_entry(r) for r in rows], int(total)

        return await self.db.read(txn_fn, name="get_audit_entries")
