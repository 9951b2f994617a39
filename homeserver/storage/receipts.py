"""Read receipts (public, private and threaded)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from homeserver.storage.change_cache import StreamChangeCache
from homeserver.storage.database import Database, Txn


@dataclass(frozen=True)
class Receipt:
    room_id: str
    receipt_type: str
    user_id: str
    thread_id: str
    event_id: str
    ts: int
    stream_id: int


class ReceiptStore:
    db: Database
    receipts_changes: StreamChangeCache  # DataStore's

    async def put_receipt(self, receipt: Receipt) -> None:
        await self.db.write(
            lambda txn: txn.upsert(
                "receipts",
                {
                    "room_id": receipt.room_id,
                    "receipt_type": receipt.receipt_type,
                    "user_id": receipt.user_id,
                    "thread_id": receipt.thread_id,
                },
                {"event_id": receipt.event_id, "ts": receipt.ts, "stream_id": receipt.stream_id},
            ),
            name="put_receipt",
        )
        self.receipts_changes.mark(receipt.room_id, receipt.stream_id)

    async def get_receipts_since(self, room_ids: list[str], since: int, up_to: int) -> list[Receipt]:
        if not room_ids:
            return []

        def txn_fn(txn: Txn) -> list[Receipt]:
            clause = "stream_id > ? AND stream_id <= ?" if since > 0 else "stream_id <= ?"
            args = [since, up_to] if since > 0 else [up_to]
            rows = txn.select_all(
                f"SELECT room_id, receipt_type, user_id, thread_id, event_id, ts, stream_id FROM receipts"
                f" WHERE room_id IN ({txn.in_list(room_ids)}) AND {clause}",
                list(room_ids) + args,
            )
            return [Receipt(*r) for r in rows]

        return await self.db.read(txn_fn, name="receipts_since")

    async def get_user_receipt(self, room_id: str, user_id: str, types: tuple[str, ...]) -> list[Receipt]:
        def txn_fn(txn: Txn) -> list[Receipt]:
            rows = txn.select_all(
                f"SELECT room_id, receipt_type, user_id, thread_id, event_id, ts, stream_id FROM receipts"
                f" WHERE room_id = ? AND user_id = ? AND receipt_type IN ({txn.in_list(types)})",
                [room_id, user_id, *types],
            )
            return [Receipt(*r) for r in rows]

        return await self.db.read(txn_fn, name="user_receipt")


class ToDeviceStore:
    db: Database
    to_device_changes: StreamChangeCache  # DataStore's

    async def add_to_device_messages(self, rows: list[tuple[int, str, str, dict]]) -> None:
        """rows: (stream_id, user_id, device_id, message)."""
        await self.db.write(
            lambda txn: txn.executemany(
                "INSERT INTO to_device_messages (stream_id, user_id, device_id, message) VALUES (?, ?, ?, ?)",
                [(s, u, d, json.dumps(m)) for s, u, d, m in rows],
            ),
            name="add_to_device",
        )
        for stream_id, user_id, device_id, _ in rows:
            self.to_device_changes.mark((user_id, device_id), stream_id)

    async def get_to_device_messages(
        self, user_id: str, device_id: str, up_to: int, limit: int = 100, after: int = 0
    ) -> tuple[list[dict], int]:
        """Undelivered messages for the device in order, and the stream id of the last one.
        ``after``: those already sent but not yet acknowledged (a WebSocket stream's frames
        in flight) are left out."""

        def txn_fn(txn: Txn) -> tuple[list[dict], int]:
            rows = txn.select_all(
                "SELECT stream_id, message FROM to_device_messages WHERE user_id = ? AND device_id = ?"
                " AND stream_id > ? AND stream_id <= ? ORDER BY stream_id LIMIT ?",
                (user_id, device_id, after, up_to, limit),
            )
            return [json.loads(r[1]) for r in rows], (rows[-1][0] if rows else 0)

        return await self.db.read(txn_fn, name="get_to_device")

    async def delete_to_device_messages(self, user_id: str, device_id: str, up_to: int) -> None:
        """Called when the device's next sync proves it received them."""
        await self.db.write(
            lambda txn: txn.execute(
                "DELETE FROM to_device_messages WHERE user_id = ? AND device_id = ? AND stream_id <= ?",
                (user_id, device_id, up_to),
            ),
            name="delete_to_device",
        )


class PresenceStore:
    db: Database
    presence_changes: StreamChangeCache  # DataStore's

    async def set_presence(self, user_id: str, state: str, status_msg: str | None, last_active_ts: int, stream_id: int) -> None:
        await self.db.write(
            lambda txn: txn.upsert(
                "presence",
                {"user_id": user_id},
                {"state": state, "status_msg": status_msg, "last_active_ts": last_active_ts, "stream_id": stream_id},
            ),
            name="set_presence",
        )
        self.presence_changes.mark(user_id, stream_id)

    async def get_presence(self, user_ids: list[str]) -> dict[str, tuple[str, str | None, int, int]]:
        if not user_ids:
            return {}

        def txn_fn(txn: Txn) -> dict[str, tuple[str, str | None, int, int]]:
            rows = txn.select_all(
                f"SELECT user_id, state, status_msg, last_active_ts, stream_id FROM presence"
                f" WHERE user_id IN ({txn.in_list(user_ids)})",
                user_ids,
            )
            return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}

        return await self.db.read(txn_fn, name="get_presence")
