"""Federation storage: remote server keys, the per-destination outbox, destination retry
state and the ids of inbound transactions already answered."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from homeserver.storage.database import Database, Txn


@dataclass(frozen=True)
class StoredServerKey:
    server_name: str
    key_id: str
    verify_key: str  # unpadded base64
    valid_until_ts: int
    expired_ts: int | None
    fetched_ts: int
    key_json: str


@dataclass(frozen=True)
class OutboxItem:
    id: int
    destination: str
    kind: str  # "pdu" | "edu"
    room_id: str | None
    payload: dict[str, Any]


class FederationStore:
    db: Database

    # -- server keys -------------------------------------------------------------

    async def store_server_keys(self, keys: list[StoredServerKey]) -> None:
        def fn(txn: Txn) -> None:
            for k in keys:
                txn.upsert(
                    "server_keys",
                    {"server_name": k.server_name, "key_id": k.key_id},
                    {
                        "verify_key": k.verify_key,
                        "valid_until_ts": k.valid_until_ts,
                        "expired_ts": k.expired_ts,
                        "fetched_ts": k.fetched_ts,
                        "key_json": k.key_json,
                    },
                )

        await self.db.write(fn, name="store_server_keys")

    async def get_server_keys(self, server_name: str) -> list[StoredServerKey]:
        rows = await self.db.read(
            lambda txn: txn.select_all(
                "SELECT server_name, key_id, verify_key, valid_until_ts, expired_ts, fetched_ts, key_json"
                " FROM server_keys WHERE server_name = ?",
                (server_name,),
            ),
            name="get_server_keys",
        )
        return [StoredServerKey(*r) for r in rows]

    # -- outbox -----------------------------------------------------------------

    async def add_to_outbox(self, items: list[tuple[str, str, str | None, dict[str, Any]]], ts: int) -> list[int]:
        """Append (destination, kind, room_id, payload) rows; returns their ids in order."""

        def fn(txn: Txn) -> list[int]:
            ids = []
            for dest, kind, room_id, payload in items:
                # RETURNING works on both engines (SQLite >= 3.35).
                row = txn.select_one(
                    "INSERT INTO federation_outbox (destination, kind, room_id, payload, created_ts)"
                    " VALUES (?, ?, ?, ?, ?) RETURNING id",
                    (dest, kind, room_id, json.dumps(payload), ts),
                )
                assert row is not None  # RETURNING gives the inserted row
                ids.append(int(row[0]))
            return ids

        return await self.db.write(fn, name="add_to_outbox")

    async def get_outbox(self, destination: str, after_id: int, limit: int) -> list[OutboxItem]:
        rows = await self.db.read(
            lambda txn: txn.select_all(
                "SELECT id, destination, kind, room_id, payload FROM federation_outbox"
                " WHERE destination = ? AND id > ? ORDER BY id LIMIT ?",
                (destination, after_id, limit),
            ),
            name="get_outbox",
        )
        return [OutboxItem(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    async def count_outbox(self, destination: str) -> tuple[int, int]:
        """(pending PDUs, pending EDUs) for one destination."""

        def fn(txn: Txn) -> tuple[int, int]:
            rows = dict(
                txn.select_all(
                    "SELECT kind, COUNT(*) FROM federation_outbox WHERE destination = ? GROUP BY kind", (destination,)
                )
            )
            return int(rows.get("pdu", 0)), int(rows.get("edu", 0))

        return await self.db.read(fn, name="count_outbox")

    async def outbox_destinations(self) -> list[str]:
        rows = await self.db.read(
            lambda txn: txn.select_all("SELECT DISTINCT destination FROM federation_outbox"), name="outbox_destinations"
        )
        return [r[0] for r in rows]

    async def delete_from_outbox(self, ids: list[int]) -> None:
        def fn(txn: Txn) -> None:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                txn.execute(f"DELETE FROM federation_outbox WHERE id IN ({txn.in_list(chunk)})", chunk)

        if ids:
            await self.db.write(fn, name="delete_from_outbox")

    async def collapse_outbox_pdus(self, destination: str, keep_per_room: int) -> int:
        """Catch-up after an outage: keep only the newest ``keep_per_room`` PDUs of each
        room for ``destination`` (the remote pulls the gap itself); returns rows dropped."""

        def fn(txn: Txn) -> int:
            rows = txn.select_all(
                "SELECT id, room_id FROM federation_outbox WHERE destination = ? AND kind = 'pdu' ORDER BY id DESC",
                (destination,),
            )
            seen: dict[Any, int] = {}
            drop = []
            for row_id, room_id in rows:
                seen[room_id] = seen.get(room_id, 0) + 1
                if seen[room_id] > keep_per_room:
                    drop.append(row_id)
            for i in range(0, len(drop), 500):
                chunk = drop[i : i + 500]
                txn.execute(f"DELETE FROM federation_outbox WHERE id IN ({txn.in_list(chunk)})", chunk)
            return len(drop)

        return await self.db.write(fn, name="collapse_outbox_pdus")

    # -- destination retry state ---------------------------------------------------

    async def get_destination_retries(self) -> dict[str, tuple[int, int]]:
        rows = await self.db.read(
            lambda txn: txn.select_all("SELECT destination, retry_last_ts, retry_interval_ms FROM federation_destinations"),
            name="get_destination_retries",
        )
        return {r[0]: (int(r[1]), int(r[2])) for r in rows}

    async def set_destination_retry(self, destination: str, retry_last_ts: int, retry_interval_ms: int) -> None:
        def fn(txn: Txn) -> None:
            if retry_interval_ms <= 0:
                txn.execute("DELETE FROM federation_destinations WHERE destination = ?", (destination,))
            else:
                txn.upsert(
                    "federation_destinations",
                    {"destination": destination},
                    {"retry_last_ts": retry_last_ts, "retry_interval_ms": retry_interval_ms},
                )

        await self.db.write(fn, name="set_destination_retry")

    # -- inbound transactions -------------------------------------------------------

    async def get_received_txn(self, origin: str, txn_id: str) -> dict[str, Any] | None:
        raw = await self.db.read(
            lambda txn: txn.select_value(
                "SELECT response FROM federation_received_txns WHERE origin = ? AND txn_id = ?", (origin, txn_id)
            ),
            name="get_received_txn",
        )
        return json.loads(raw) if raw is not None else None

    async def store_received_txn(self, origin: str, txn_id: str, response: dict[str, Any], ts: int) -> None:
        def fn(txn: Txn) -> None:
            txn.upsert(
                "federation_received_txns",
                {"origin": origin, "txn_id": txn_id},
                {"response": json.dumps(response), "received_ts": ts},
            )
            # Senders retry within minutes; a day of history is plenty.
            txn.execute("DELETE FROM federation_received_txns WHERE received_ts < ?", (ts - 86_400_000,))

        await self.db.write(fn, name="store_received_txn")

    # -- helpers for inbound EDUs ------------------------------------------------------

    async def get_local_users_sharing_room(self, user_id: str) -> set[str]:
        """Local users joined to a room in which ``user_id`` (typically remote) is joined."""

        def fn(txn: Txn) -> set[str]:
            rows = txn.select_all(
                "SELECT DISTINCT m.user_id FROM current_state c JOIN local_memberships m ON m.room_id = c.room_id"
                " WHERE c.type = 'm.room.member' AND c.state_key = ? AND c.membership = 'join' AND m.membership = 'join'",
                (user_id,),
            )
            return {r[0] for r in rows}

        return await self.db.read(fn, name="local_users_sharing_room")
