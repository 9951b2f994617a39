"""Server-side key backup (/room_keys): backup versions and the encrypted session keys.

session_data is ciphertext the server cannot read; the other columns are the metadata
the spec uses to decide whether an upload replaces what is stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, overload

from homeserver.storage.database import Database, Txn


@dataclass(frozen=True)
class BackupVersion:
    version: str
    algorithm: str
    auth_data: Any
    etag: int
    count: int


@dataclass(frozen=True)
class UploadOutcome:
    status: str  # "ok", "not_found" or "wrong_version"
    etag: int = 0
    count: int = 0
    current_version: str | None = None


@overload
def _parse_version(version: str) -> int: ...


@overload
def _parse_version(version: str | None) -> int | None: ...


def _parse_version(version: str | None) -> int | None:
    if version is None:
        return None
    try:
        return int(version)
    except ValueError:
        return -1  # matches nothing: an unparseable version is simply unknown


def _count(txn: Txn, user_id: str, version: int) -> int:
    return int(
        txn.select_value("SELECT COUNT(*) FROM e2e_room_keys WHERE user_id = ? AND version = ?", (user_id, version), 0)
    )


def _version_row(txn: Txn, user_id: str, version: int | None) -> tuple | None:
    if version is None:
        return txn.select_one(
            "SELECT version, algorithm, auth_data, etag FROM e2e_room_keys_versions"
            " WHERE user_id = ? AND deleted = ? ORDER BY version DESC LIMIT 1",
            (user_id, False),
        )
    return txn.select_one(
        "SELECT version, algorithm, auth_data, etag FROM e2e_room_keys_versions"
        " WHERE user_id = ? AND version = ? AND deleted = ?",
        (user_id, version, False),
    )


def _key_filter(room_id: str | None, session_id: str | None) -> tuple[str, list[Any]]:
    clause, args = "", []
    if room_id is not None:
        clause += " AND room_id = ?"
        args.append(room_id)
        if session_id is not None:
            clause += " AND session_id = ?"
            args.append(session_id)
    return clause, args


class E2ERoomKeysStore:
    db: Database

    async def room_keys_create_version(self, user_id: str, algorithm: str, auth_data: Any) -> str:
        def txn_fn(txn: Txn) -> str:
            # Versions are never reused, even after a delete (clients compare them).
            current = txn.select_value("SELECT MAX(version) FROM e2e_room_keys_versions WHERE user_id = ?", (user_id,))
            new = int(current or 0) + 1
            txn.execute(
                "INSERT INTO e2e_room_keys_versions (user_id, version, algorithm, auth_data, etag, deleted)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (user_id, new, algorithm, json.dumps(auth_data), 0, False),
            )
            return str(new)

        return await self.db.write(txn_fn, name="room_keys_create_version")

    async def room_keys_get_version(self, user_id: str, version: str | None) -> BackupVersion | None:
        """The given version, or the newest one; None if it does not exist or was deleted."""
        v = _parse_version(version)

        def txn_fn(txn: Txn) -> BackupVersion | None:
            row = _version_row(txn, user_id, v)
            if row is None:
                return None
            return BackupVersion(str(row[0]), row[1], json.loads(row[2]), int(row[3]), _count(txn, user_id, row[0]))

        return await self.db.read(txn_fn, name="room_keys_get_version")

    async def room_keys_update_version(self, user_id: str, version: str, auth_data: Any) -> None:
        v = _parse_version(version)
        await self.db.write(
            lambda txn: txn.execute(
                "UPDATE e2e_room_keys_versions SET auth_data = ? WHERE user_id = ? AND version = ?",
                (json.dumps(auth_data), user_id, v),
            ),
            name="room_keys_update_version",
        )

    async def room_keys_delete_version(self, user_id: str, version: str | None) -> bool:
        """Marks the version deleted and drops its keys; False if there was no such version."""
        v = _parse_version(version)

        def txn_fn(txn: Txn) -> bool:
            row = _version_row(txn, user_id, v)
            if row is None:
                return False
            txn.execute("DELETE FROM e2e_room_keys WHERE user_id = ? AND version = ?", (user_id, row[0]))
            txn.execute(
                "UPDATE e2e_room_keys_versions SET deleted = ? WHERE user_id = ? AND version = ?", (True, user_id, row[0])
            )
            return True

        return await self.db.write(txn_fn, name="room_keys_delete_version")

    async def room_keys_upload(
        self,
        user_id: str,
        version: str,
        sessions: list[tuple[str, str, dict[str, Any]]],
        should_replace: Callable[[dict[str, Any], dict[str, Any]], bool],
    ) -> UploadOutcome:
        """Merges (room_id, session_id, key) into the user's current backup in one
        transaction. ``should_replace(old, new)`` decides for existing sessions."""
        v = _parse_version(version)

        def txn_fn(txn: Txn) -> UploadOutcome:
            current = _version_row(txn, user_id, None)
            if current is None:
                return UploadOutcome("not_found")
            if current[0] != v:
                if _version_row(txn, user_id, v) is None:
                    return UploadOutcome("not_found")
                return UploadOutcome("wrong_version", current_version=str(current[0]))
            changed = False
            for room_id, session_id, key in sessions:
                row = txn.select_one(
                    "SELECT first_message_index, forwarded_count, is_verified FROM e2e_room_keys"
                    " WHERE user_id = ? AND version = ? AND room_id = ? AND session_id = ?",
                    (user_id, v, room_id, session_id),
                )
                values = {
                    "first_message_index": key["first_message_index"],
                    "forwarded_count": key["forwarded_count"],
                    "is_verified": bool(key["is_verified"]),
                    "session_data": json.dumps(key["session_data"]),
                }
                if row is not None:
                    old = {"first_message_index": row[0], "forwarded_count": row[1], "is_verified": bool(row[2])}
                    if not should_replace(old, key):
                        continue
                txn.upsert(
                    "e2e_room_keys",
                    {"user_id": user_id, "version": v, "room_id": room_id, "session_id": session_id},
                    values,
                )
                changed = True
            etag = int(current[3])
            if changed:
                etag += 1
                txn.execute(
                    "UPDATE e2e_room_keys_versions SET etag = ? WHERE user_id = ? AND version = ?", (etag, user_id, v)
                )
            return UploadOutcome("ok", etag, _count(txn, user_id, v))

        return await self.db.write(txn_fn, name="room_keys_upload")

    async def room_keys_get(
        self, user_id: str, version: str, room_id: str | None, session_id: str | None
    ) -> dict[str, dict[str, dict[str, Any]]] | None:
        """room -> session -> key data; None if the version does not exist."""
        v = _parse_version(version)

        def txn_fn(txn: Txn) -> dict[str, dict[str, dict[str, Any]]] | None:
            if _version_row(txn, user_id, v) is None:
                return None
            clause, args = _key_filter(room_id, session_id)
            rows = txn.select_all(
                "SELECT room_id, session_id, first_message_index, forwarded_count, is_verified, session_data"
                " FROM e2e_room_keys WHERE user_id = ? AND version = ?" + clause,
                [user_id, v, *args],
            )
            out: dict[str, dict[str, dict[str, Any]]] = {}
            for r_id, s_id, fmi, fc, verified, data in rows:
                out.setdefault(r_id, {})[s_id] = {
                    "first_message_index": int(fmi),
                    "forwarded_count": int(fc),
                    "is_verified": bool(verified),
                    "session_data": json.loads(data),
                }
            return out

        return await self.db.read(txn_fn, name="room_keys_get")

    async def room_keys_delete(
        self, user_id: str, version: str, room_id: str | None, session_id: str | None
    ) -> UploadOutcome:
        v = _parse_version(version)

        def txn_fn(txn: Txn) -> UploadOutcome:
            row = _version_row(txn, user_id, v)
            if row is None:
                return UploadOutcome("not_found")
            clause, args = _key_filter(room_id, session_id)
            txn.execute("DELETE FROM e2e_room_keys WHERE user_id = ? AND version = ?" + clause, [user_id, v, *args])
            # Synapse bumps the etag on every delete, whether or not anything was removed.
            etag = int(row[3]) + 1
            txn.execute(
                "UPDATE e2e_room_keys_versions SET etag = ? WHERE user_id = ? AND version = ?", (etag, user_id, v)
            )
            return UploadOutcome("ok", etag, _count(txn, user_id, v))

        return await self.db.write(txn_fn, name="room_keys_delete")
