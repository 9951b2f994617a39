"""End-to-end encryption keys: device keys, one-time and fallback keys, cross-signing
keys and signatures, the remote-key cache, the outbound device-list stream, and the
to-device transaction ids.

Everything stored here is public key material or signatures: private keys never reach
the server. Key JSON is stored as the client sent it (canonical re-encoding would break
nothing, but keeping it verbatim keeps signatures trivially valid).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from homeserver.storage.change_cache import StreamChangeCache
from homeserver.storage.database import Database, Txn
from homeserver.util.ids import now_ms

TXN_ID_LIFETIME_MS = 7 * 24 * 3600 * 1000

@dataclass(frozen=True)
class ClaimResult:
    # user -> device -> {"alg:key_id": key}
    one_time_keys: dict[str, dict[str, dict[str, Any]]]


def _add_signature(key: dict[str, Any], signer: str, key_id: str, signature: str) -> None:
    sigs = key.setdefault("signatures", {})
    if not isinstance(sigs, dict):
        sigs = key["signatures"] = {}
    sigs.setdefault(signer, {})[key_id] = signature


def _key_pubkey(key: dict[str, Any]) -> str | None:
    """The public key of a cross-signing key ('ed25519:<pub>' -> '<pub>')."""
    keys = key.get("keys")
    if isinstance(keys, dict) and len(keys) == 1:
        value = next(iter(keys.values()))
        return value if isinstance(value, str) else None
    return None


class E2EKeysStore:
    db: Database
    to_device_changes: StreamChangeCache  # DataStore's

    # -- device keys -------------------------------------------------------------

    async def e2e_set_device_keys(self, user_id: str, device_id: str, keys: dict[str, Any]) -> bool:
        """Stores the device's identity keys; True if they are new or changed."""
        new_json = json.dumps(keys, sort_keys=True)

        def txn_fn(txn: Txn) -> bool:
            old = txn.select_value(
                "SELECT key_json FROM e2e_device_keys WHERE user_id = ? AND device_id = ?", (user_id, device_id)
            )
            if old == new_json:
                return False
            txn.upsert(
                "e2e_device_keys",
                {"user_id": user_id, "device_id": device_id},
                {"key_json": new_json, "ts": now_ms()},
            )
            return True

        return await self.db.write(txn_fn, name="e2e_set_device_keys")

    async def e2e_get_devices_with_keys(
        self, query: dict[str, list[str]]
    ) -> dict[str, dict[str, tuple[dict[str, Any] | None, str | None]]]:
        """user -> device -> (device keys with the owner's cross-signing signatures merged
        in, or None if the device uploaded none; display name). An empty device list means
        every device. Only devices that still exist are returned."""
        if not query:
            return {}

        def txn_fn(txn: Txn) -> dict[str, dict[str, tuple[dict[str, Any] | None, str | None]]]:
            out: dict[str, dict[str, tuple[dict[str, Any] | None, str | None]]] = {}
            for user_id, device_ids in query.items():
                args: list[Any] = [user_id]
                clause = ""
                if device_ids:
                    clause = f" AND d.device_id IN ({txn.in_list(device_ids)})"
                    args += list(device_ids)
                rows = txn.select_all(
                    "SELECT d.device_id, d.display_name, k.key_json FROM devices d"
                    " LEFT JOIN e2e_device_keys k ON k.user_id = d.user_id AND k.device_id = d.device_id"
                    " WHERE d.user_id = ?" + clause,
                    args,
                )
                devices: dict[str, tuple[dict[str, Any] | None, str | None]] = {}
                for device_id, display_name, key_json in rows:
                    devices[device_id] = (json.loads(key_json) if key_json else None, display_name)
                if devices:
                    # Signatures the owner made on their devices with their self-signing key.
                    sig_rows = txn.select_all(
                        "SELECT target_device_id, key_id, signature FROM e2e_cross_signing_signatures"
                        " WHERE user_id = ? AND target_user_id = ?",
                        (user_id, user_id),
                    )
                    for target, key_id, sig in sig_rows:
                        entry = devices.get(target)
                        if entry is not None and entry[0] is not None:
                            _add_signature(entry[0], user_id, key_id, sig)
                out[user_id] = devices
            return out

        return await self.db.read(txn_fn, name="e2e_get_devices_with_keys")

    async def e2e_get_device_key(self, user_id: str, device_id: str) -> dict[str, Any] | None:
        raw = await self.db.read(
            lambda txn: txn.select_value(
                "SELECT key_json FROM e2e_device_keys WHERE user_id = ? AND device_id = ?", (user_id, device_id)
            ),
            name="e2e_get_device_key",
        )
        return json.loads(raw) if raw else None

    # -- one-time and fallback keys --------------------------------------------

    async def e2e_add_one_time_keys(
        self, user_id: str, device_id: str, keys: list[tuple[str, str, Any]]
    ) -> list[str]:
        """Adds (algorithm, key_id, key) rows. A re-upload of an identical key is a no-op;
        a different key under an existing id is refused: returns those ids and stores nothing."""

        def txn_fn(txn: Txn) -> list[str]:
            conflicts: list[str] = []
            new_rows = []
            ts = now_ms()
            for algorithm, key_id, key in keys:
                encoded = json.dumps(key, sort_keys=True)
                old = txn.select_value(
                    "SELECT key_json FROM e2e_one_time_keys"
                    " WHERE user_id = ? AND device_id = ? AND algorithm = ? AND key_id = ?",
                    (user_id, device_id, algorithm, key_id),
                )
                if old is None:
                    new_rows.append((user_id, device_id, algorithm, key_id, encoded, ts))
                elif old != encoded:
                    conflicts.append(f"{algorithm}:{key_id}")
            if conflicts:
                return conflicts
            # ON CONFLICT: the same key uploaded twice in one request, or by a retried request.
            for row in new_rows:
                txn.execute(
                    "INSERT INTO e2e_one_time_keys (user_id, device_id, algorithm, key_id, key_json, ts)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    row,
                )
            return []

        return await self.db.write(txn_fn, name="e2e_add_otks")

    async def e2e_set_fallback_keys(self, user_id: str, device_id: str, keys: dict[str, tuple[str, Any]]) -> None:
        """algorithm -> (key_id, key). Replaces the device's fallback key per algorithm; the
        same key uploaded again keeps its 'used' flag."""

        def txn_fn(txn: Txn) -> None:
            for algorithm, (key_id, key) in keys.items():
                encoded = json.dumps(key, sort_keys=True)
                old = txn.select_one(
                    "SELECT key_id, key_json FROM e2e_fallback_keys WHERE user_id = ? AND device_id = ? AND algorithm = ?",
                    (user_id, device_id, algorithm),
                )
                if old is not None and old[0] == key_id and old[1] == encoded:
                    continue
                txn.upsert(
                    "e2e_fallback_keys",
                    {"user_id": user_id, "device_id": device_id, "algorithm": algorithm},
                    {"key_id": key_id, "key_json": encoded, "used": False},
                )

        await self.db.write(txn_fn, name="e2e_set_fallback_keys")

    async def e2e_key_counts(self, user_id: str, device_id: str) -> tuple[dict[str, int], list[str]]:
        """(one-time key count per algorithm, algorithms with an unused fallback key)."""

        def txn_fn(txn: Txn) -> tuple[dict[str, int], list[str]]:
            rows = txn.select_all(
                "SELECT algorithm, COUNT(*) FROM e2e_one_time_keys WHERE user_id = ? AND device_id = ? GROUP BY algorithm",
                (user_id, device_id),
            )
            fallback = txn.select_all(
                "SELECT algorithm FROM e2e_fallback_keys WHERE user_id = ? AND device_id = ? AND used = ?",
                (user_id, device_id, False),
            )
            return {r[0]: int(r[1]) for r in rows}, sorted(r[0] for r in fallback)

        return await self.db.read(txn_fn, name="e2e_key_counts")

    async def e2e_claim_keys(self, wanted: list[tuple[str, str, str]]) -> ClaimResult:
        """Claims one key per (user, device, algorithm): a one-time key (deleted as it is
        handed out) or else the fallback key (kept, marked used).

        All claims run in one transaction. A one-time key is removed with a DELETE whose
        row count is checked: if a concurrent claim took it first (PostgreSQL re-checks the
        row after the other transaction commits and deletes nothing), we pick another, so
        no key is ever handed out twice. SQLite serialises writers anyway.
        """

        def txn_fn(txn: Txn) -> ClaimResult:
            out: dict[str, dict[str, dict[str, Any]]] = {}
            for user_id, device_id, algorithm in wanted:
                claimed: tuple[str, str] | None = None
                # Keys left behind by a device that no longer exists (e.g. a deactivated
                # account) are never handed out.
                if txn.select_one("SELECT 1 FROM devices WHERE user_id = ? AND device_id = ?", (user_id, device_id)) is None:
                    continue
                while True:
                    # Oldest upload first (MSC4225, as Synapse): a client that replaced its
                    # keys expects the ones it uploaded first to be used up first.
                    row = txn.select_one(
                        "SELECT key_id, key_json FROM e2e_one_time_keys"
                        " WHERE user_id = ? AND device_id = ? AND algorithm = ? ORDER BY ts, key_id LIMIT 1",
                        (user_id, device_id, algorithm),
                    )
                    if row is None:
                        break
                    txn.execute(
                        "DELETE FROM e2e_one_time_keys"
                        " WHERE user_id = ? AND device_id = ? AND algorithm = ? AND key_id = ?",
                        (user_id, device_id, algorithm, row[0]),
                    )
                    if txn.rowcount == 1:
                        claimed = (row[0], row[1])
                        break
                if claimed is None:
                    row = txn.select_one(
                        "SELECT key_id, key_json FROM e2e_fallback_keys WHERE user_id = ? AND device_id = ? AND algorithm = ?",
                        (user_id, device_id, algorithm),
                    )
                    if row is not None:
                        txn.execute(
                            "UPDATE e2e_fallback_keys SET used = ? WHERE user_id = ? AND device_id = ? AND algorithm = ?",
                            (True, user_id, device_id, algorithm),
                        )
                        claimed = (row[0], row[1])
                if claimed is not None:
                    out.setdefault(user_id, {}).setdefault(device_id, {})[f"{algorithm}:{claimed[0]}"] = json.loads(
                        claimed[1]
                    )
            return ClaimResult(out)

        return await self.db.write(txn_fn, name="e2e_claim_keys")

    async def e2e_delete_device_keys(self, user_id: str, device_ids: list[str]) -> None:
        """Everything E2EE about these devices: identity keys, one-time and fallback keys,
        signatures on them."""

        def txn_fn(txn: Txn) -> None:
            for device_id in device_ids:
                for table in ("e2e_device_keys", "e2e_one_time_keys", "e2e_fallback_keys", "to_device_txns"):
                    txn.execute(f"DELETE FROM {table} WHERE user_id = ? AND device_id = ?", (user_id, device_id))
                txn.execute(
                    "DELETE FROM e2e_cross_signing_signatures WHERE target_user_id = ? AND target_device_id = ?",
                    (user_id, device_id),
                )
                txn.execute(
                    "DELETE FROM e2e_dehydrated_devices WHERE user_id = ? AND device_id = ?", (user_id, device_id)
                )

        await self.db.write(txn_fn, name="e2e_delete_device_keys")

    # -- cross-signing -----------------------------------------------------------

    async def e2e_set_cross_signing_keys(self, user_id: str, keys: dict[str, dict[str, Any]], stream_id: int) -> None:
        def txn_fn(txn: Txn) -> None:
            for keytype, key in keys.items():
                txn.upsert(
                    "e2e_cross_signing_keys",
                    {"user_id": user_id, "keytype": keytype},
                    {"key_json": json.dumps(key, sort_keys=True), "stream_id": stream_id},
                )

        await self.db.write(txn_fn, name="e2e_set_cross_signing_keys")

    async def e2e_get_cross_signing_keys(
        self, user_ids: Iterable[str], from_user_id: str | None = None
    ) -> dict[str, dict[str, dict[str, Any]]]:
        """user -> keytype -> key. Signatures uploaded separately are merged in only when
        made by ``from_user_id`` (as Synapse does: a user sees their own signatures, e.g.
        their user-signing key's signature of someone's master key, and nobody else's)."""
        users = list(user_ids)
        if not users:
            return {}

        def txn_fn(txn: Txn) -> dict[str, dict[str, dict[str, Any]]]:
            rows = txn.select_all(
                f"SELECT user_id, keytype, key_json FROM e2e_cross_signing_keys WHERE user_id IN ({txn.in_list(users)})",
                users,
            )
            out: dict[str, dict[str, dict[str, Any]]] = {}
            for user_id, keytype, key_json in rows:
                out.setdefault(user_id, {})[keytype] = json.loads(key_json)
            if from_user_id is not None and out:
                sig_rows = txn.select_all(
                    "SELECT target_user_id, target_device_id, key_id, signature FROM e2e_cross_signing_signatures"
                    f" WHERE user_id = ? AND target_user_id IN ({txn.in_list(list(out))})",
                    [from_user_id, *out],
                )
                for target_user, target_key, key_id, sig in sig_rows:
                    for key in out.get(target_user, {}).values():
                        if _key_pubkey(key) == target_key:
                            _add_signature(key, from_user_id, key_id, sig)
            return out

        return await self.db.read(txn_fn, name="e2e_get_cross_signing_keys")

    async def e2e_store_signatures(self, signer: str, rows: list[tuple[str, str, str, str]]) -> None:
        """rows: (key_id, target_user_id, target_device_id_or_pubkey, signature)."""

        def txn_fn(txn: Txn) -> None:
            for key_id, target_user, target, sig in rows:
                txn.upsert(
                    "e2e_cross_signing_signatures",
                    {"user_id": signer, "key_id": key_id, "target_user_id": target_user, "target_device_id": target},
                    {"signature": sig},
                )

        await self.db.write(txn_fn, name="e2e_store_signatures")

    # -- remote users ------------------------------------------------------------

    async def e2e_get_remote_cache(self, user_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Cached keys of remote users, skipping any whose membership changed (a newer
        m.room.member in current state) after the keys were fetched."""
        if not user_ids:
            return {}

        def txn_fn(txn: Txn) -> dict[str, dict[str, Any]]:
            rows = txn.select_all(
                "SELECT user_id, keys_json, stream_id FROM e2e_remote_keys_cache"
                f" WHERE user_id IN ({txn.in_list(user_ids)})",
                user_ids,
            )
            latest = dict(
                txn.select_all(
                    "SELECT c.state_key, MAX(e.stream_ordering) FROM current_state c"
                    " JOIN events e ON e.event_id = c.event_id"
                    f" WHERE c.type = 'm.room.member' AND c.state_key IN ({txn.in_list(user_ids)})"
                    " GROUP BY c.state_key",
                    user_ids,
                )
            )
            return {r[0]: json.loads(r[1]) for r in rows if (latest.get(r[0]) or 0) <= r[2]}

        return await self.db.read(txn_fn, name="e2e_get_remote_cache")

    async def e2e_set_remote_cache(self, entries: dict[str, dict[str, Any]], stream_id: int) -> None:
        """``stream_id``: the stream position when the fetch started."""

        def txn_fn(txn: Txn) -> None:
            for user_id, keys in entries.items():
                txn.upsert(
                    "e2e_remote_keys_cache",
                    {"user_id": user_id},
                    {"keys_json": json.dumps(keys), "ts": now_ms(), "stream_id": stream_id},
                )

        await self.db.write(txn_fn, name="e2e_set_remote_cache")

    async def e2e_drop_remote_cache(self, user_id: str) -> None:
        await self.db.write(
            lambda txn: txn.execute("DELETE FROM e2e_remote_keys_cache WHERE user_id = ?", (user_id,)),
            name="e2e_drop_remote_cache",
        )

    async def e2e_users_sharing_room_with_local(self, user_ids: list[str]) -> set[str]:
        """Which of these users is joined to a room some local user is joined to."""
        if not user_ids:
            return set()

        def txn_fn(txn: Txn) -> set[str]:
            rows = txn.select_all(
                "SELECT DISTINCT c.state_key FROM current_state c"
                " JOIN local_memberships m ON m.room_id = c.room_id AND m.membership = 'join'"
                f" WHERE c.type = 'm.room.member' AND c.membership = 'join' AND c.state_key IN ({txn.in_list(user_ids)})",
                user_ids,
            )
            return {r[0] for r in rows}

        return await self.db.read(txn_fn, name="e2e_users_sharing_room")

    async def e2e_local_users_sharing_room(self, user_id: str) -> set[str]:
        """Local users joined to a room the (local or remote) user is joined to."""

        def txn_fn(txn: Txn) -> set[str]:
            rows = txn.select_all(
                "SELECT DISTINCT m.user_id FROM current_state c"
                " JOIN local_memberships m ON m.room_id = c.room_id AND m.membership = 'join'"
                " WHERE c.type = 'm.room.member' AND c.state_key = ? AND c.membership = 'join'",
                (user_id,),
            )
            return {r[0] for r in rows}

        return await self.db.read(txn_fn, name="e2e_local_users_sharing_room")

    # -- outbound device-list stream ----------------------------------------------

    async def e2e_get_outbound_state(self, user_id: str) -> tuple[int, dict[str, str]]:
        def txn_fn(txn: Txn) -> tuple[int, dict[str, str]]:
            stream_id = txn.select_value(
                "SELECT stream_id FROM e2e_device_list_outbound_stream WHERE user_id = ?", (user_id,), 0
            )
            rows = txn.select_all(
                "SELECT device_id, content_hash FROM e2e_device_list_outbound WHERE user_id = ?", (user_id,)
            )
            return int(stream_id), {r[0]: r[1] for r in rows}

        return await self.db.read(txn_fn, name="e2e_get_outbound_state")

    async def e2e_set_outbound_state(self, user_id: str, stream_id: int, changes: dict[str, str | None]) -> None:
        """device_id -> new content hash, or None when the device is gone."""

        def txn_fn(txn: Txn) -> None:
            txn.upsert("e2e_device_list_outbound_stream", {"user_id": user_id}, {"stream_id": stream_id})
            for device_id, digest in changes.items():
                if digest is None:
                    txn.execute(
                        "DELETE FROM e2e_device_list_outbound WHERE user_id = ? AND device_id = ?", (user_id, device_id)
                    )
                else:
                    txn.upsert(
                        "e2e_device_list_outbound",
                        {"user_id": user_id, "device_id": device_id},
                        {"content_hash": digest},
                    )

        await self.db.write(txn_fn, name="e2e_set_outbound_state")

    async def e2e_outbound_stream_id(self, user_id: str) -> int:
        return int(
            await self.db.read(
                lambda txn: txn.select_value(
                    "SELECT stream_id FROM e2e_device_list_outbound_stream WHERE user_id = ?", (user_id,), 0
                ),
                name="e2e_outbound_stream_id",
            )
        )

    # -- to-device -----------------------------------------------------------------

    async def to_device_device_ids(self, user_ids: list[str]) -> dict[str, list[str]]:
        if not user_ids:
            return {}

        def txn_fn(txn: Txn) -> dict[str, list[str]]:
            rows = txn.select_all(
                f"SELECT user_id, device_id FROM devices WHERE user_id IN ({txn.in_list(user_ids)}) ORDER BY device_id",
                user_ids,
            )
            out: dict[str, list[str]] = {}
            for user_id, device_id in rows:
                out.setdefault(user_id, []).append(device_id)
            return out

        return await self.db.read(txn_fn, name="to_device_device_ids")

    async def to_device_add_with_txn(
        self, txn_key: tuple[str, str, str] | None, rows: list[tuple[int, str, str, dict[str, Any]]]
    ) -> bool:
        """Queues messages (stream_id, user_id, device_id, message) and records the
        transaction id in the same transaction; False (nothing queued) if that id was
        already used."""

        def txn_fn(txn: Txn) -> bool:
            if txn_key is not None:
                ts = now_ms()
                # Transaction ids only guard against retries: a week is plenty.
                txn.execute(
                    "DELETE FROM to_device_txns WHERE user_id = ? AND device_id = ? AND ts < ?",
                    (txn_key[0], txn_key[1], ts - TXN_ID_LIFETIME_MS),
                )
                txn.execute(
                    "INSERT INTO to_device_txns (user_id, device_id, txn_id, ts) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (*txn_key, ts),
                )
                if txn.rowcount != 1:
                    return False
            txn.executemany(
                "INSERT INTO to_device_messages (stream_id, user_id, device_id, message) VALUES (?, ?, ?, ?)",
                [(s, u, d, json.dumps(m)) for s, u, d, m in rows],
            )
            return True

        queued = await self.db.write(txn_fn, name="to_device_add")
        if queued:
            # /sync skips the to-device query for devices with nothing new (storage/change_cache.py).
            for stream_id, user_id, device_id, _ in rows:
                self.to_device_changes.mark((user_id, device_id), stream_id)
        return queued

    async def to_device_txn_seen(self, txn_key: tuple[str, str, str]) -> bool:
        return (
            await self.db.read(
                lambda txn: txn.select_one(
                    "SELECT 1 FROM to_device_txns WHERE user_id = ? AND device_id = ? AND txn_id = ?", txn_key
                ),
                name="to_device_txn_seen",
            )
            is not None
        )

    # -- dehydrated devices (MSC3814) -------------------------------------------------

    async def dehydrated_get(self, user_id: str) -> tuple[str, dict[str, Any]] | None:
        row = await self.db.read(
            lambda txn: txn.select_one(
                "SELECT device_id, device_data FROM e2e_dehydrated_devices WHERE user_id = ?", (user_id,)
            ),
            name="dehydrated_get",
        )
        return (row[0], json.loads(row[1])) if row else None

    async def dehydrated_set(
        self, user_id: str, device_id: str, device_data: dict[str, Any], display_name: str | None
    ) -> str | None:
        """Registers the device (no access token: nobody logs in as it) and makes it the
        user's dehydrated device; returns the previous one's id, if any."""

        def txn_fn(txn: Txn) -> str | None:
            old = txn.select_value("SELECT device_id FROM e2e_dehydrated_devices WHERE user_id = ?", (user_id,))
            if txn.select_one("SELECT 1 FROM devices WHERE user_id = ? AND device_id = ?", (user_id, device_id)) is None:
                txn.execute(
                    "INSERT INTO devices (user_id, device_id, display_name, last_seen_ts) VALUES (?, ?, ?, ?)",
                    (user_id, device_id, display_name, now_ms()),
                )
            txn.upsert(
                "e2e_dehydrated_devices",
                {"user_id": user_id},
                {"device_id": device_id, "device_data": json.dumps(device_data), "ts": now_ms()},
            )
            return old if old != device_id else None

        return await self.db.write(txn_fn, name="dehydrated_set")

    async def dehydrated_forget(self, user_id: str, device_id: str) -> bool:
        def txn_fn(txn: Txn) -> bool:
            txn.execute("DELETE FROM e2e_dehydrated_devices WHERE user_id = ? AND device_id = ?", (user_id, device_id))
            return txn.rowcount > 0

        return await self.db.write(txn_fn, name="dehydrated_forget")

    async def dehydrated_messages(
        self, user_id: str, device_id: str, since: int, up_to: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """To-device messages for the dehydrated device after ``since`` (those up to
        ``since`` were received by the client and are deleted), and the last stream id."""

        def txn_fn(txn: Txn) -> tuple[list[dict[str, Any]], int]:
            if since > 0:
                txn.execute(
                    "DELETE FROM to_device_messages WHERE user_id = ? AND device_id = ? AND stream_id <= ?",
                    (user_id, device_id, since),
                )
            rows = txn.select_all(
                "SELECT stream_id, message FROM to_device_messages WHERE user_id = ? AND device_id = ?"
                " AND stream_id > ? AND stream_id <= ? ORDER BY stream_id LIMIT ?",
                (user_id, device_id, since, up_to, limit),
            )
            return [json.loads(r[1]) for r in rows], (rows[-1][0] if rows else max(since, 0))

        return await self.db.write(txn_fn, name="dehydrated_messages")
