"""Per-user account data, global (room_id '') and per room; tags live here as m.tag."""

from __future__ import annotations

import json
from typing import Any

from homeserver.storage.change_cache import StreamChangeCache
from homeserver.storage.database import Database, Txn


class AccountDataStore:
    db: Database
    account_data_changes: StreamChangeCache  # DataStore's

    async def put_account_data(self, user_id: str, room_id: str, data_type: str, content: dict[str, Any], stream_id: int) -> None:
        await self.db.write(
            lambda txn: txn.upsert(
                "account_data",
                {"user_id": user_id, "room_id": room_id, "type": data_type},
                {"content": json.dumps(content), "stream_id": stream_id},
            ),
            name="put_account_data",
        )
        self.account_data_changes.mark(user_id, stream_id)

    async def get_account_data(self, user_id: str, room_id: str, data_type: str) -> dict[str, Any] | None:
        raw = await self.db.read(
            lambda txn: txn.select_value(
                "SELECT content FROM account_data WHERE user_id = ? AND room_id = ? AND type = ?",
                (user_id, room_id, data_type),
            ),
            name="get_account_data",
        )
        return json.loads(raw) if raw is not None else None

    async def get_account_data_since(self, user_id: str, since: int, up_to: int) -> list[tuple[str, str, dict[str, Any]]]:
        """(room_id, type, content) changed in (since, up_to]."""

        def txn_fn(txn: Txn) -> list[tuple[str, str, dict[str, Any]]]:
            rows = txn.select_all(
                "SELECT room_id, type, content FROM account_data WHERE user_id = ? AND stream_id > ? AND stream_id <= ?",
                (user_id, since, up_to),
            )
            return [(r[0], r[1], json.loads(r[2])) for r in rows]

        return await self.db.read(txn_fn, name="account_data_since")


class FilterStore:
    db: Database

    async def add_filter(self, user_id: str, filter_json: dict[str, Any]) -> int:
        def txn_fn(txn: Txn) -> int:
            next_id = (txn.select_value("SELECT MAX(filter_id) FROM filters WHERE user_id = ?", (user_id,)) or 0) + 1
            txn.execute(
                "INSERT INTO filters (user_id, filter_id, filter_json) VALUES (?, ?, ?)",
                (user_id, next_id, json.dumps(filter_json)),
            )
            return next_id

        return await self.db.write(txn_fn, name="add_filter")

    async def get_filter(self, user_id: str, filter_id: int) -> dict[str, Any] | None:
        if not -(2**63) <= filter_id < 2**63:
            return None  # a client-supplied id no row can have; the driver would raise OverflowError
        raw = await self.db.read(
            lambda txn: txn.select_value(
                "SELECT filter_json FROM filters WHERE user_id = ? AND filter_id = ?", (user_id, filter_id)
            ),
            name="get_filter",
        )
        return json.loads(raw) if raw else None
