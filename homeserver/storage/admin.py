"""What the admin API reads and changes (Synapse's /_synapse/admin): accounts across the
server, rooms with their statistics, whole-room purges, blocked rooms, media quarantine
and deletion, registration tokens, event reports and asynchronous room deletions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from homeserver.storage.database import Database, Txn
from homeserver.storage.reports import EventReport
from homeserver.storage.search import delete_from_search_index_txn
from homeserver.storage.threepids import remove_user_threepids_txn

# The order_by values of GET /_synapse/admin/v2/users and their columns. Synapse's
# shadow_banned and locked are never set here (no such states): ordering by them is
# ordering by name.
USER_ORDER = {
    "name": "u.user_id",
    "displayname": "u.displayname",
    "is_guest": "u.is_guest",
    "admin": "u.is_admin",
    "deactivated": "u.deactivated",
    "user_type": "u.user_type",
    "avatar_url": "u.avatar_url",
    "shadow_banned": "u.user_id",
    "creation_ts": "u.created_ts",
    "last_seen_ts": "last_seen_ts",
    "locked": "u.user_id",
}

# GET /_synapse/admin/v1/users/{userId}/media order_by values and their columns. There is
# no access tracking here: ordering by last_access_ts is by creation time, which is what
# Synapse compares for media never accessed.
MEDIA_ORDER = {
    "media_id": "media_id",
    "upload_name": "upload_name",
    "created_ts": "created_ts",
    "last_access_ts": "created_ts",
    "media_length": "size",
    "media_type": "content_type",
    "quarantined_by": "quarantined_by",
    "safe_from_quarantine": "safe_from_quarantine",
}

# The state events a room's listing is made of (Synapse's room_stats_state).
ROOM_STATS_TYPES = (
    "m.room.create",
    "m.room.name",
    "m.room.canonical_alias",
    "m.room.join_rules",
    "m.room.history_visibility",
    "m.room.guest_access",
    "m.room.encryption",
    "m.room.avatar",
    "m.room.topic",
    "m.room.tombstone",
)

# Tables with a room_id that a purge keeps: reports are for abuse management (as in
# Synapse), and a blocked room must stay blocked.
_KEPT_ON_PURGE = frozenset({"event_reports", "room_reports", "blocked_rooms"})


@dataclass(frozen=True)
class AdminUser:
    name: str
    user_type: str | None
    is_guest: bool
    admin: bool
    deactivated: bool
    displayname: str | None
    avatar_url: str | None
    creation_ts: int
    erased: bool
    last_seen_ts: int | None


@dataclass(frozen=True)
class UserQuery:
    """The filters of the user list (None: no filter on that)."""

    user_id: str | None = None
    name: str | None = None
    guests: bool = True
    deactivated: bool | None = False
    admins: bool | None = None
    not_user_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoomOverview:
    """A room as the admin API lists it, before its state events are read."""

    room_id: str
    version: str
    creator: str | None
    is_public: bool
    state_events: int
    joined_members: int
    joined_local_members: int
    # event id of each ROOM_STATS_TYPES state event the room has (state key "")
    state_ids: dict[str, str]


@dataclass(frozen=True)
class AdminMedia:
    media_id: str
    media_type: str | None
    media_length: int | None
    upload_name: str | None
    created_ts: int
    quarantined_by: str | None
    safe_from_quarantine: bool
    user_id: str | None
    authenticated: bool
    sha256: str | None


@dataclass(frozen=True)
class RegistrationToken:
    token: str
    uses_allowed: int | None
    pending: int
    completed: int
    expiry_time: int | None


@dataclass(frozen=True)
class ReportedEvent:
    report: EventReport
    # the reported event's sender (None once the event is gone)
    sender: str | None


@dataclass(frozen=True)
class DeleteTask:
    delete_id: str
    room_id: str
    status: str
    params: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    created_ts: int


_USER_FROM = (
    " FROM users u"
    " LEFT JOIN (SELECT user_id, MAX(last_seen_ts) AS ts FROM devices GROUP BY user_id) lsd ON lsd.user_id = u.user_id"
    " LEFT JOIN (SELECT user_id, MAX(last_seen) AS ts FROM user_ips GROUP BY user_id) lsi ON lsi.user_id = u.user_id"
)
_USER_COLS = (
    "u.user_id, u.user_type, u.is_guest, u.is_admin, u.deactivated, u.displayname, u.avatar_url, u.created_ts,"
    " u.erased, COALESCE(lsd.ts, lsi.ts) AS last_seen_ts"
)


def _admin_user(r: tuple) -> AdminUser:
    return AdminUser(r[0], r[1], bool(r[2]), bool(r[3]), bool(r[4]), r[5], r[6], r[7], bool(r[8]), r[9])


_MEDIA_COLS = (
    "media_id, content_type, size, upload_name, created_ts, quarantined_by, safe_from_quarantine, user_id,"
    " authenticated, sha256, pending"
)


def _admin_media(r: tuple) -> AdminMedia:
    # A reserved id without content yet has no length (Synapse's NULL media_length).
    return AdminMedia(r[0], r[1], None if r[10] else r[2], r[3], r[4], r[5], bool(r[6]), r[7], bool(r[8]), r[9])


def _token(r: tuple) -> RegistrationToken:
    return RegistrationToken(r[0], r[1], r[2], r[3], r[4])


def _task(r: tuple) -> DeleteTask:
    return DeleteTask(r[0], r[1], r[2], json.loads(r[3]), json.loads(r[4]) if r[4] else None, r[5], r[6])


def _chunks(items: list[str], size: int = 500) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _tables_with_room_id(txn: Txn) -> list[str]:
    if txn.dialect == "sqlite":
        names = [r[0] for r in txn.select_all("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return [n for n in names if any(c[1] == "room_id" for c in txn.select_all(f"PRAGMA table_info({n})"))]
    return [
        r[0]
        for r in txn.select_all(
            "SELECT c.table_name FROM information_schema.columns c JOIN information_schema.tables t"
            " ON t.table_name = c.table_name AND t.table_schema = c.table_schema"
            " WHERE c.column_name = 'room_id' AND c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'"
        )
    ]


def mxc_media_in_content(content: Any) -> list[str]:
    """The mxc URIs an event's content points at (Synapse's: url and info.thumbnail_url)."""
    if not isinstance(content, dict):
        return []
    info = content.get("info")
    urls = [content.get("url"), info.get("thumbnail_url") if isinstance(info, dict) else None]
    return [u for u in urls if isinstance(u, str) and u.startswith("mxc://")]


class AdminStore:
    db: Database

    # -- users -----------------------------------------------------------------------------

    async def list_users(
        self, query: UserQuery, start: int, limit: int, order_by: str, descending: bool
    ) -> tuple[list[AdminUser], int]:
        def txn_fn(txn: Txn) -> tuple[list[AdminUser], int]:
            clauses: list[str] = []
            args: list[Any] = []
            if query.name:
                clauses.append("(LOWER(u.user_id) LIKE ? OR LOWER(u.displayname) LIKE ?)")
                args += ["@%" + query.name.lower() + "%:%", "%" + query.name.lower() + "%"]
            elif query.user_id:
                clauses.append("LOWER(u.user_id) LIKE ?")
                args.append("%" + query.user_id.lower() + "%")
            if not query.guests:
                clauses.append("NOT u.is_guest")
            if query.deactivated is not None:
                clauses.append("u.deactivated" if query.deactivated else "NOT u.deactivated")
            if query.admins is not None:
                clauses.append("u.is_admin" if query.admins else "NOT u.is_admin")
            types = [t for t in query.not_user_types if t]
            if types:
                clause = f"u.user_type NOT IN ({txn.in_list(types)})"
                # "" in the list excludes users without a type too
                clauses.append(clause if "" in query.not_user_types else f"({clause} OR u.user_type IS NULL)")
                args += types
            elif "" in query.not_user_types:
                clauses.append("u.user_type IS NOT NULL")
            where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
            total = txn.select_value(f"SELECT COUNT(*){_USER_FROM}{where}", args, 0)
            order = "DESC" if descending else "ASC"
            rows = txn.select_all(
                f"SELECT {_USER_COLS}{_USER_FROM}{where} ORDER BY {USER_ORDER[order_by]} {order}, u.user_id ASC"
                " LIMIT ? OFFSET ?",
                args + [limit, start],
            )
            return [_admin_user(r) for r in rows], int(total)

        return await self.db.read(txn_fn, name="admin_list_users")

    async def get_admin_user(self, user_id: str) -> AdminUser | None:
        def txn_fn(txn: Txn) -> AdminUser | None:
            row = txn.select_one(f"SELECT {_USER_COLS}{_USER_FROM} WHERE u.user_id = ?", (user_id,))
            return _admin_user(row) if row else None

        return await self.db.read(txn_fn, name="admin_get_user")

    async def set_user_admin(self, user_id: str, admin: bool) -> None:
        await self.db.write(
            lambda txn: txn.execute("UPDATE users SET is_admin = ? WHERE user_id = ?", (admin, user_id)),
            name="set_user_admin",
        )

    async def set_user_type(self, user_id: str, user_type: str | None) -> None:
        await self.db.write(
            lambda txn: txn.execute("UPDATE users SET user_type = ? WHERE user_id = ?", (user_type, user_id)),
            name="set_user_type",
        )

    async def deactivate_account(self, user_id: str, erase: bool) -> None:
        """The stored half of Synapse's deactivation (the caller has ended the devices):
        no password, no tokens, threepids, pushers, account data or key backups. The
        profile stays unless ``erase`` (which also marks the account erased)."""

        def txn_fn(txn: Txn) -> None:
            if erase:
                txn.execute(
                    "UPDATE users SET deactivated = ?, password_hash = NULL, displayname = NULL, avatar_url = NULL,"
                    " erased = ? WHERE user_id = ?",
                    (True, True, user_id),
                )
                txn.execute("DELETE FROM profile_fields WHERE user_id = ?", (user_id,))
            else:
                txn.execute("UPDATE users SET deactivated = ?, password_hash = NULL WHERE user_id = ?", (True, user_id))
            for table in ("access_tokens", "refresh_tokens", "to_device_messages", "pushers", "account_data",
                          "e2e_room_keys", "e2e_room_keys_versions"):
                txn.execute(f"DELETE FROM {table} WHERE user_id = ?", (user_id,))
            remove_user_threepids_txn(txn, user_id)

        await self.db.write(txn_fn, name="admin_deactivate")

    async def reactivate_account(self, user_id: str) -> None:
        await self.db.write(
            lambda txn: txn.execute(
                "UPDATE users SET deactivated = ?, erased = ? WHERE user_id = ?", (False, False, user_id)
            ),
            name="reactivate_account",
        )

    async def create_puppet_token(self, user_id: str, token_hash: str, expires_ts: int | None, created_ts: int) -> None:
        """An access token for the user on no device (Synapse's admin login as a user)."""
        await self.db.write(
            lambda txn: txn.execute(
                "INSERT INTO access_tokens (token_hash, user_id, device_id, expires_ts, created_ts)"
                " VALUES (?, ?, '', ?, ?)",
                (token_hash, user_id, expires_ts, created_ts),
            ),
            name="create_puppet_token",
        )

    async def ensure_device(self, user_id: str, device_id: str) -> bool:
        """Creates the device (with no token) unless it exists; whether it is new."""

        def txn_fn(txn: Txn) -> bool:
            if txn.select_one("SELECT 1 FROM devices WHERE user_id = ? AND device_id = ?", (user_id, device_id)):
                return False
            txn.execute(
                "INSERT INTO devices (user_id, device_id, display_name, last_seen_ts) VALUES (?, ?, NULL, NULL)",
                (user_id, device_id),
            )
            return True

        return await self.db.write(txn_fn, name="ensure_device")

    async def get_last_connection_by_device(self, user_id: str) -> dict[str, tuple[str, str, int]]:
        """device_id -> (ip, user agent, last seen) of each device's latest request."""

        def txn_fn(txn: Txn) -> dict[str, tuple[str, str, int]]:
            out: dict[str, tuple[str, str, int]] = {}
            for device_id, ip, ua, ts in txn.select_all(
                "SELECT device_id, ip, user_agent, last_seen FROM user_ips WHERE user_id = ? AND device_id IS NOT NULL"
                " ORDER BY last_seen",
                (user_id,),
            ):
                out[device_id] = (ip, ua, ts)
            return out

        return await self.db.read(txn_fn, name="last_connection_by_device")

    async def count_devices_of_users(self, user_ids: list[str]) -> int:
        def txn_fn(txn: Txn) -> int:
            total = 0
            for chunk in _chunks(user_ids):
                total += txn.select_value(
                    f"SELECT COUNT(*) FROM devices WHERE user_id IN ({txn.in_list(chunk)})", chunk, 0
                )
            return int(total)

        return await self.db.read(txn_fn, name="count_devices_of_users")

    # -- rooms -----------------------------------------------------------------------------

    async def get_room_overviews(self, room_id: str | None = None) -> list[RoomOverview]:
        """Every room this server knows (or the one named), with its counts and the ids of
        its listing's state events."""

        def txn_fn(txn: Txn) -> list[RoomOverview]:
            where, args = (" WHERE room_id = ?", [room_id]) if room_id is not None else ("", [])
            rooms = txn.select_all(f"SELECT room_id, room_version, creator, is_public FROM rooms{where}", args)
            if not rooms:
                return []
            and_room = " AND room_id = ?" if room_id is not None else ""
            state_count = dict(
                txn.select_all(f"SELECT room_id, COUNT(*) FROM current_state{where} GROUP BY room_id", args)
            )
            joined = dict(
                txn.select_all(
                    "SELECT room_id, COUNT(*) FROM current_state WHERE type = 'm.room.member' AND membership = 'join'"
                    f"{and_room} GROUP BY room_id",
                    args,
                )
            )
            local = dict(
                txn.select_all(
                    f"SELECT room_id, COUNT(*) FROM local_memberships WHERE membership = 'join'{and_room} GROUP BY room_id",
                    args,
                )
            )
            ids: dict[str, dict[str, str]] = {}
            for rid, etype, eid in txn.select_all(
                f"SELECT room_id, type, event_id FROM current_state WHERE state_key = ''"
                f" AND type IN ({txn.in_list(ROOM_STATS_TYPES)}){and_room}",
                list(ROOM_STATS_TYPES) + args,
            ):
                ids.setdefault(rid, {})[etype] = eid
            return [
                RoomOverview(
                    rid, version, creator, bool(public), int(state_count.get(rid, 0)), int(joined.get(rid, 0)),
                    int(local.get(rid, 0)), ids.get(rid, {}),
                )
                for rid, version, creator, public in rooms
            ]

        return await self.db.read(txn_fn, name="room_overviews")

    async def room_forgotten_by_all(self, room_id: str) -> bool:
        """True when local users were in the room and all of them forgot it (Synapse's
        is_locally_forgotten_room)."""

        def txn_fn(txn: Txn) -> bool:
            rows = txn.select_all("SELECT forgotten FROM local_memberships WHERE room_id = ?", (room_id,))
            return bool(rows) and all(bool(r[0]) for r in rows)

        return await self.db.read(txn_fn, name="room_forgotten")

    async def get_local_users_related_to_room(self, room_id: str) -> list[tuple[str, str]]:
        """(user, membership) of every local user with a membership of the room."""
        return await self.db.read(
            lambda txn: [
                (r[0], r[1])
                for r in txn.select_all(
                    "SELECT user_id, membership FROM local_memberships WHERE room_id = ? ORDER BY user_id", (room_id,)
                )
            ],
            name="local_users_related_to_room",
        )

    async def block_room(self, room_id: str, user_id: str) -> None:
        await self.db.write(
            lambda txn: txn.upsert("blocked_rooms", {"room_id": room_id}, {"user_id": user_id}), name="block_room"
        )

    async def unblock_room(self, room_id: str) -> None:
        await self.db.write(
            lambda txn: txn.execute("DELETE FROM blocked_rooms WHERE room_id = ?", (room_id,)), name="unblock_room"
        )

    async def room_blocked_by(self, room_id: str) -> str | None:
        return await self.db.read(
            lambda txn: txn.select_value("SELECT user_id FROM blocked_rooms WHERE room_id = ?", (room_id,)),
            name="room_blocked_by",
        )

    async def move_room_aliases(self, old_room_id: str, new_room_id: str, creator: str) -> list[str]:
        """Points the room's aliases at another room; the aliases moved."""

        def txn_fn(txn: Txn) -> list[str]:
            aliases = [r[0] for r in txn.select_all("SELECT room_alias FROM room_aliases WHERE room_id = ?", (old_room_id,))]
            txn.execute(
                "UPDATE room_aliases SET room_id = ?, creator = ? WHERE room_id = ?", (new_room_id, creator, old_room_id)
            )
            return aliases

        return await self.db.write(txn_fn, name="move_room_aliases")

    async def purge_room(self, room_id: str) -> list[str]:
        """Removes every trace of the room but its reports and its block (as Synapse's
        purge_room); the ids of the events removed."""

        def txn_fn(txn: Txn) -> list[str]:
            event_ids = [r[0] for r in txn.select_all("SELECT event_id FROM events WHERE room_id = ?", (room_id,))]
            delete_from_search_index_txn(
                txn, [r[0] for r in txn.select_all("SELECT event_id FROM event_search WHERE room_id = ?", (room_id,))]
            )
            for chunk in _chunks(event_ids):
                marks = txn.in_list(chunk)
                for table in ("event_auth", "event_edges", "event_txn_ids"):
                    txn.execute(f"DELETE FROM {table} WHERE event_id IN ({marks})", chunk)
                txn.execute(f"DELETE FROM redactions WHERE event_id IN ({marks}) OR redacts IN ({marks})", chunk + chunk)
            txn.execute(
                "DELETE FROM state_group_entries WHERE state_group IN (SELECT id FROM state_groups WHERE room_id = ?)",
                (room_id,),
            )
            # Every other table with a room_id, whoever added it, except the kept ones; the
            # rooms row last.
            for table in _tables_with_room_id(txn):
                if table not in _KEPT_ON_PURGE and table not in ("rooms", "event_search"):
                    txn.execute(f"DELETE FROM {table} WHERE room_id = ?", (room_id,))
            txn.execute("DELETE FROM rooms WHERE room_id = ?", (room_id,))
            return event_ids

        return await self.db.write(txn_fn, name="purge_room")

    # -- asynchronous room deletions ---------------------------------------------------

    async def add_delete_task(self, task: DeleteTask) -> None:
        await self.db.write(
            lambda txn: txn.execute(
                "INSERT INTO room_delete_tasks (delete_id, target_room, status, params, result, error, created_ts)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    task.delete_id,
                    task.room_id,
                    task.status,
                    json.dumps(task.params),
                    json.dumps(task.result) if task.result is not None else None,
                    task.error,
                    task.created_ts,
                ),
            ),
            name="add_delete_task",
        )

    async def update_delete_task(
        self, delete_id: str, status: str, result: dict[str, Any] | None, error: str | None = None
    ) -> None:
        await self.db.write(
            lambda txn: txn.execute(
                "UPDATE room_delete_tasks SET status = ?, result = ?, error = ? WHERE delete_id = ?",
                (status, json.dumps(result) if result is not None else None, error, delete_id),
            ),
            name="update_delete_task",
        )

    async def get_delete_task(self, delete_id: str) -> DeleteTask | None:
        def txn_fn(txn: Txn) -> DeleteTask | None:
            row = txn.select_one(
                "SELECT delete_id, target_room, status, params, result, error, created_ts FROM room_delete_tasks"
                " WHERE delete_id = ?",
                (delete_id,),
            )
            return _task(row) if row else None

        return await self.db.read(txn_fn, name="get_delete_task")

    async def get_delete_tasks(self, room_id: str | None = None, statuses: tuple[str, ...] = ()) -> list[DeleteTask]:
        def txn_fn(txn: Txn) -> list[DeleteTask]:
            clauses, args = [], []
            if room_id is not None:
                clauses.append("target_room = ?")
                args.append(room_id)
            if statuses:
                clauses.append(f"status IN ({txn.in_list(statuses)})")
                args += list(statuses)
            where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
            rows = txn.select_all(
                "SELECT delete_id, target_room, status, params, result, error, created_ts FROM room_delete_tasks"
                f"{where} ORDER BY created_ts, delete_id",
                args,
            )
            return [_task(r) for r in rows]

        return await self.db.read(txn_fn, name="get_delete_tasks")

    # -- media ---------------------------------------------------------------------------

    async def list_user_media(
        self, user_id: str, start: int, limit: int, order_by: str, descending: bool
    ) -> tuple[list[AdminMedia], int]:
        def txn_fn(txn: Txn) -> tuple[list[AdminMedia], int]:
            total = txn.select_value("SELECT COUNT(*) FROM media WHERE user_id = ?", (user_id,), 0)
            order = "DESC" if descending else "ASC"
            rows = txn.select_all(
                f"SELECT {_MEDIA_COLS} FROM media WHERE user_id = ?"
                f" ORDER BY {MEDIA_ORDER[order_by]} {order}, media_id ASC LIMIT ? OFFSET ?",
                (user_id, limit, start),
            )
            return [_admin_media(r) for r in rows], int(total)

        return await self.db.read(txn_fn, name="list_user_media")

    async def get_admin_media(self, media_id: str) -> AdminMedia | None:
        def txn_fn(txn: Txn) -> AdminMedia | None:
            row = txn.select_one(f"SELECT {_MEDIA_COLS} FROM media WHERE media_id = ?", (media_id,))
            return _admin_media(row) if row else None

        return await self.db.read(txn_fn, name="get_admin_media")

    async def quarantine_media(
        self, local_ids: list[str], remote: list[tuple[str, str]], quarantined_by: str | None
    ) -> int:
        """(Un)quarantines media, and every copy of the same content (by SHA-256), local
        or remote, as Synapse does; protected media is left alone. How many items changed."""

        def txn_fn(txn: Txn) -> int:
            return _quarantine_txn(txn, local_ids, remote, quarantined_by)

        return await self.db.write(txn_fn, name="quarantine_media")

    async def quarantine_room_media(self, room_id: str, server_name: str, quarantined_by: str) -> int:
        """Quarantines everything the room's events point at."""

        def txn_fn(txn: Txn) -> int:
            local, remote = _media_in_room_txn(txn, room_id, server_name)
            return _quarantine_txn(txn, local, remote, quarantined_by)

        return await self.db.write(txn_fn, name="quarantine_room_media")

    async def get_room_media(self, room_id: str, server_name: str) -> tuple[list[str], list[tuple[str, str]]]:
        return await self.db.read(lambda txn: _media_in_room_txn(txn, room_id, server_name), name="room_media")

    async def quarantine_user_media(self, user_id: str, quarantined_by: str) -> int:
        def txn_fn(txn: Txn) -> int:
            ids = [r[0] for r in txn.select_all("SELECT media_id FROM media WHERE user_id = ?", (user_id,))]
            return _quarantine_txn(txn, ids, [], quarantined_by)

        return await self.db.write(txn_fn, name="quarantine_user_media")

    async def set_media_protected(self, media_id: str, protected: bool) -> None:
        await self.db.write(
            lambda txn: txn.execute(
                "UPDATE media SET safe_from_quarantine = ? WHERE media_id = ?", (protected, media_id)
            ),
            name="protect_media",
        )

    async def old_local_media_ids(self, before_ts: int, size_gt: int, keep_avatars: set[str] | None) -> list[str]:
        """Local media created before ``before_ts`` and larger than ``size_gt``, neither
        quarantined nor protected, nor (when given) among ``keep_avatars``."""

        def txn_fn(txn: Txn) -> list[str]:
            rows = txn.select_all(
                "SELECT media_id FROM media WHERE created_ts < ? AND size > ? AND NOT pending"
                " AND quarantined_by IS NULL AND NOT safe_from_quarantine ORDER BY media_id",
                (before_ts, size_gt),
            )
            return [r[0] for r in rows if keep_avatars is None or r[0] not in keep_avatars]

        return await self.db.read(txn_fn, name="old_local_media")

    async def local_avatar_media_urls(self) -> set[str]:
        """mxc URIs in use as avatars: profiles, the user directory, room avatars and
        members' per-room avatars."""

        def txn_fn(txn: Txn) -> set[str]:
            urls = {r[0] for r in txn.select_all("SELECT avatar_url FROM users WHERE avatar_url IS NOT NULL")}
            urls |= {r[0] for r in txn.select_all("SELECT avatar_url FROM user_directory WHERE avatar_url IS NOT NULL")}
            for (raw,) in txn.select_all(
                "SELECT e.json FROM current_state c JOIN events e ON e.event_id = c.event_id"
                " WHERE c.type IN ('m.room.avatar', 'm.room.member') AND e.json LIKE '%mxc://%'"
            ):
                content = json.loads(raw).get("content")
                if isinstance(content, dict):
                    for key in ("url", "avatar_url"):
                        if isinstance(content.get(key), str):
                            urls.add(content[key])
            return urls

        return await self.db.read(txn_fn, name="avatar_media")

    async def delete_local_media_rows(self, media_ids: list[str]) -> None:
        def txn_fn(txn: Txn) -> None:
            for chunk in _chunks(media_ids):
                txn.execute(f"DELETE FROM media WHERE media_id IN ({txn.in_list(chunk)})", chunk)

        await self.db.write(txn_fn, name="delete_local_media")

    # -- registration tokens ----------------------------------------------------------

    async def list_registration_tokens(self, valid: bool | None, now: int) -> list[RegistrationToken]:
        def txn_fn(txn: Txn) -> list[RegistrationToken]:
            condition = (
                "(uses_allowed IS NULL OR pending + completed < uses_allowed)"
                " AND (expiry_time IS NULL OR expiry_time > ?)"
            )
            where, args = "", []
            if valid is not None:
                where, args = (f" WHERE {condition}" if valid else f" WHERE NOT ({condition})"), [now]
            rows = txn.select_all(
                f"SELECT token, uses_allowed, pending, completed, expiry_time FROM registration_tokens{where}"
                " ORDER BY token",
                args,
            )
            return [_token(r) for r in rows]

        return await self.db.read(txn_fn, name="list_registration_tokens")

    async def get_registration_token(self, token: str) -> RegistrationToken | None:
        def txn_fn(txn: Txn) -> RegistrationToken | None:
            row = txn.select_one(
                "SELECT token, uses_allowed, pending, completed, expiry_time FROM registration_tokens WHERE token = ?",
                (token,),
            )
            return _token(row) if row else None

        return await self.db.read(txn_fn, name="get_registration_token")

    async def update_registration_token(self, token: str, changes: dict[str, int | None]) -> RegistrationToken | None:
        assert set(changes) <= {"uses_allowed", "expiry_time"}

        def txn_fn(txn: Txn) -> RegistrationToken | None:
            sets = ", ".join(f"{k} = ?" for k in changes)
            txn.execute(f"UPDATE registration_tokens SET {sets} WHERE token = ?", list(changes.values()) + [token])
            row = txn.select_one(
                "SELECT token, uses_allowed, pending, completed, expiry_time FROM registration_tokens WHERE token = ?",
                (token,),
            )
            return _token(row) if row else None

        return await self.db.write(txn_fn, name="update_registration_token")

    async def delete_registration_token(self, token: str) -> bool:
        def txn_fn(txn: Txn) -> bool:
            txn.execute("DELETE FROM registration_tokens WHERE token = ?", (token,))
            return txn.rowcount > 0

        return await self.db.write(txn_fn, name="delete_registration_token")

    async def add_registration_token(self, token: str, uses_allowed: int | None, expiry_time: int | None) -> bool:
        """False if the token exists."""

        def txn_fn(txn: Txn) -> bool:
            if txn.select_one("SELECT 1 FROM registration_tokens WHERE token = ?", (token,)):
                return False
            txn.execute(
                "INSERT INTO registration_tokens (token, uses_allowed, expiry_time) VALUES (?, ?, ?)",
                (token, uses_allowed, expiry_time),
            )
            return True

        return await self.db.write(txn_fn, name="add_registration_token")

    # -- event reports --------------------------------------------------------------

    async def list_reported_events(
        self,
        start: int,
        limit: int,
        newest_first: bool,
        user_id: str | None,
        room_id: str | None,
        event_sender: str | None,
    ) -> tuple[list[ReportedEvent], int]:
        """Synapse's listing: reporter and room match as substrings, the sender exactly;
        reports of rooms this server no longer has (purged) are not listed."""

        def txn_fn(txn: Txn) -> tuple[list[ReportedEvent], int]:
            clauses, args = [], []
            if user_id:
                clauses.append("er.user_id LIKE ?")
                args.append(f"%{user_id}%")
            if room_id:
                clauses.append("er.room_id LIKE ?")
                args.append(f"%{room_id}%")
            if event_sender:
                clauses.append("e.sender = ?")
                args.append(event_sender)
            where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
            base = (
                " FROM event_reports er LEFT JOIN events e ON e.event_id = er.event_id"
                f" JOIN rooms r ON r.room_id = er.room_id{where}"
            )
            total = txn.select_value(f"SELECT COUNT(*){base}", args, 0)
            order = "DESC" if newest_first else "ASC"
            rows = txn.select_all(
                "SELECT er.id, er.received_ts, er.room_id, er.event_id, er.user_id, er.reason, er.content, e.sender"
                f"{base} ORDER BY er.received_ts {order}, er.id {order} LIMIT ? OFFSET ?",
                args + [limit, start],
            )
            return [_reported(r) for r in rows], int(total)

        return await self.db.read(txn_fn, name="list_reported_events")

    async def get_reported_event(self, report_id: int) -> ReportedEvent | None:
        def txn_fn(txn: Txn) -> ReportedEvent | None:
            row = txn.select_one(
                "SELECT er.id, er.received_ts, er.room_id, er.event_id, er.user_id, er.reason, er.content, e.sender"
                " FROM event_reports er JOIN events e ON e.event_id = er.event_id"
                " JOIN rooms r ON r.room_id = er.room_id WHERE er.id = ?",
                (report_id,),
            )
            return _reported(row) if row else None

        return await self.db.read(txn_fn, name="get_reported_event")

    async def delete_event_report(self, report_id: int) -> bool:
        def txn_fn(txn: Txn) -> bool:
            txn.execute("DELETE FROM event_reports WHERE id = ?", (report_id,))
            return txn.rowcount > 0

        return await self.db.write(txn_fn, name="delete_event_report")

    # -- server notices -------------------------------------------------------------

    async def get_notice_room(self, user_id: str, notices_user: str) -> str | None:
        """The room the user is joined or invited to that the notices user is joined to."""
        return await self.db.read(
            lambda txn: txn.select_value(
                "SELECT m.room_id FROM local_memberships m JOIN local_memberships n ON n.room_id = m.room_id"
                " WHERE m.user_id = ? AND m.membership IN ('join', 'invite') AND n.user_id = ? AND n.membership = 'join'"
                " ORDER BY m.stream_ordering DESC LIMIT 1",
                (user_id, notices_user),
            ),
            name="get_notice_room",
        )


def _reported(r: tuple) -> ReportedEvent:
    return ReportedEvent(EventReport(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6])), r[7])


def _media_in_room_txn(txn: Txn, room_id: str, server_name: str) -> tuple[list[str], list[tuple[str, str]]]:
    local: list[str] = []
    remote: list[tuple[str, str]] = []
    for (raw,) in txn.select_all(
        "SELECT json FROM events WHERE room_id = ? AND NOT outlier AND json LIKE '%mxc://%' ORDER BY stream_ordering DESC",
        (room_id,),
    ):
        for url in mxc_media_in_content(json.loads(raw).get("content")):
            server, _, media_id = url[len("mxc://") :].partition("/")
            if not server or not media_id or "/" in media_id:
                continue
            if server == server_name:
                local.append(media_id)
            else:
                remote.append((server, media_id))
    return list(dict.fromkeys(local)), list(dict.fromkeys(remote))


def _quarantine_txn(txn: Txn, local_ids: list[str], remote: list[tuple[str, str]], by: str | None) -> int:
    hashes: set[str] = set()
    ids: set[str] = set()
    protect = " AND NOT safe_from_quarantine" if by is not None else ""
    for chunk in _chunks(local_ids):
        for sha256, media_id in txn.select_all(
            f"SELECT sha256, media_id FROM media WHERE media_id IN ({txn.in_list(chunk)}){protect}", chunk
        ):
            if sha256:
                hashes.add(sha256)
            else:
                ids.add(media_id)
    for server, media_id in remote:
        row = txn.select_one(
            "SELECT sha256 FROM remote_media_cache WHERE server_name = ? AND media_id = ?", (server, media_id)
        )
        if row is not None and row[0]:
            hashes.add(row[0])
    changed = 0
    # "changed" as Synapse counts it: rows whose quarantine state this call set
    state = "quarantined_by IS NULL" if by is not None else "quarantined_by IS NOT NULL"
    for chunk in _chunks(sorted(ids)):
        txn.execute(
            f"UPDATE media SET quarantined_by = ? WHERE media_id IN ({txn.in_list(chunk)}){protect} AND {state}",
            [by] + chunk,
        )
        changed += max(txn.rowcount, 0)
    for chunk in _chunks(sorted(hashes)):
        marks = txn.in_list(chunk)
        txn.execute(f"UPDATE media SET quarantined_by = ? WHERE sha256 IN ({marks}){protect} AND {state}", [by] + chunk)
        changed += max(txn.rowcount, 0)
        txn.execute(f"UPDATE remote_media_cache SET quarantined_by = ? WHERE sha256 IN ({marks}) AND {state}", [by] + chunk)
        changed += max(txn.rowcount, 0)
    for server, media_id in remote:
        txn.execute(
            f"UPDATE remote_media_cache SET quarantined_by = ? WHERE server_name = ? AND media_id = ? AND {state}",
            (by, server, media_id),
        )
        changed += max(txn.rowcount, 0)
    return changed
