"""Accounts, devices and tokens."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from canonicaljson import encode_canonical_json

from homeserver.storage.change_cache import StreamChangeCache
from homeserver.storage.database import Database, Txn
from homeserver.storage.sign_in_factors import remove_user_sign_in_factors_txn
from homeserver.util.ids import now_ms


@dataclass(frozen=True)
class UserRecord:
    user_id: str
    password_hash: str | None
    is_admin: bool
    is_guest: bool
    deactivated: bool
    displayname: str | None
    avatar_url: str | None


@dataclass(frozen=True)
class TokenRecord:
    user_id: str
    device_id: str
    expires_ts: int | None
    is_guest: bool
    token_hash: str


@dataclass(frozen=True)
class DeviceRecord:
    user_id: str
    device_id: str
    display_name: str | None
    last_seen_ts: int | None
    last_seen_ip: str | None


_USER_COLS = "user_id, password_hash, is_admin, is_guest, deactivated, displayname, avatar_url"


def _user(row: tuple | None) -> UserRecord | None:
    if row is None:
        return None
    return UserRecord(row[0], row[1], bool(row[2]), bool(row[3]), bool(row[4]), row[5], row[6])


def _token_valid_txn(txn: Txn, token: str) -> bool:
    row = txn.select_one(
        "SELECT uses_allowed, pending, completed, expiry_time FROM registration_tokens WHERE token = ?", (token,)
    )
    if row is None:
        return False
    uses_allowed, pending, completed, expiry = row
    if expiry is not None and expiry < now_ms():
        return False
    return uses_allowed is None or pending + completed < uses_allowed


def create_user_txn(
    txn: Txn, user_id: str, password_hash: str | None, is_admin: bool, is_guest: bool, displayname: str | None
) -> bool:
    """Creates the account; False if the id is taken (ids are unique case-insensitively)."""
    if txn.select_one("SELECT 1 FROM users WHERE lower(user_id) = lower(?)", (user_id,)):
        return False
    txn.execute(
        "INSERT INTO users (user_id, password_hash, is_admin, is_guest, created_ts, displayname)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (user_id, password_hash, is_admin, is_guest, now_ms(), displayname),
    )
    return True


class UserStore:
    db: Database

    async def create_user(
        self,
        user_id: str,
        password_hash: str | None,
        *,
        is_admin: bool = False,
        is_guest: bool = False,
        displayname: str | None = None,
    ) -> bool:
        try:
            return await self.db.write(
                create_user_txn, user_id, password_hash, is_admin, is_guest, displayname, name="create_user"
            )
        except Exception as e:
            # Two registrations of one name at once both pass the SELECT; on PostgreSQL the
            # second INSERT then hits the primary key. That is "taken", not a server error.
            if type(e).__name__ in ("IntegrityError", "UniqueViolation"):
                return False
            raise

    async def get_user(self, user_id: str) -> UserRecord | None:
        return await self.db.read(
            lambda txn: _user(txn.select_one(f"SELECT {_USER_COLS} FROM users WHERE user_id = ?", (user_id,))),
            name="get_user",
        )

    async def get_user_case_insensitive(self, user_id: str) -> UserRecord | None:
        def txn_fn(txn: Txn) -> UserRecord | None:
            row = txn.select_one(f"SELECT {_USER_COLS} FROM users WHERE user_id = ?", (user_id,))
            if row is None:
                row = txn.select_one(f"SELECT {_USER_COLS} FROM users WHERE lower(user_id) = lower(?)", (user_id,))
            return _user(row)

        return await self.db.read(txn_fn, name="get_user_ci")

    async def set_password_hash(self, user_id: str, password_hash: str | None) -> None:
        await self.db.write(
            lambda txn: txn.execute("UPDATE users SET password_hash = ? WHERE user_id = ?", (password_hash, user_id)),
            name="set_password",
        )

    async def set_profile_field(self, user_id: str, field: str, value: str | None) -> None:
        assert field in ("displayname", "avatar_url")
        await self.db.write(
            lambda txn: txn.execute(f"UPDATE users SET {field} = ? WHERE user_id = ?", (value, user_id)),
            name="set_profile",
        )

    async def get_custom_profile_fields(self, user_id: str) -> dict[str, Any]:
        """The user's extended profile fields (all but displayname and avatar_url)."""
        rows = await self.db.read(
            lambda txn: txn.select_all(
                "SELECT field_name, value FROM profile_fields WHERE user_id = ? ORDER BY field_name", (user_id,)
            ),
            name="get_custom_profile_fields",
        )
        return {name: json.loads(value) for name, value in rows}

    async def set_custom_profile_field(self, user_id: str, field: str, value: Any) -> None:
        def txn_fn(txn: Txn) -> None:
            txn.execute("DELETE FROM profile_fields WHERE user_id = ? AND field_name = ?", (user_id, field))
            txn.execute(
                "INSERT INTO profile_fields (user_id, field_name, value) VALUES (?, ?, ?)",
                (user_id, field, encode_canonical_json(value).decode("utf-8")),
            )

        await self.db.write(txn_fn, name="set_custom_profile_field")

    async def delete_custom_profile_field(self, user_id: str, field: str) -> None:
        await self.db.write(
            lambda txn: txn.execute("DELETE FROM profile_fields WHERE user_id = ? AND field_name = ?", (user_id, field)),
            name="delete_custom_profile_field",
        )

    async def upgrade_guest(self, user_id: str, password_hash: str | None) -> bool:
        """A guest becomes a full account (same id); the guest's opaque access tokens end
        with the guest, as Synapse refuses them afterwards. False if the account is not a
        guest (any more)."""

        def txn_fn(txn: Txn) -> bool:
            txn.execute(
                "UPDATE users SET is_guest = ?, password_hash = ? WHERE user_id = ? AND is_guest = ?",
                (False, password_hash, user_id, True),
            )
            if txn.rowcount != 1:
                return False
            txn.execute("DELETE FROM access_tokens WHERE user_id = ?", (user_id,))
            return True

        return await self.db.write(txn_fn, name="upgrade_guest")

    async def deactivate_user(self, user_id: str) -> None:
        def txn_fn(txn: Txn) -> None:
            txn.execute(
                "UPDATE users SET deactivated = ?, password_hash = NULL, displayname = NULL, avatar_url = NULL"
                " WHERE user_id = ?",
                (True, user_id),
            )
            txn.execute("DELETE FROM access_tokens WHERE user_id = ?", (user_id,))
            txn.execute("DELETE FROM refresh_tokens WHERE user_id = ?", (user_id,))
            txn.execute("DELETE FROM devices WHERE user_id = ?", (user_id,))
            txn.execute("DELETE FROM to_device_messages WHERE user_id = ?", (user_id,))
            txn.execute("DELETE FROM profile_fields WHERE user_id = ?", (user_id,))
            # Its OPAQUE record, TOTP, passkeys and recovery codes go with the password.
            remove_user_sign_in_factors_txn(txn, user_id)

        await self.db.write(txn_fn, name="deactivate_user")

    async def count_users(self) -> int:
        return await self.db.read(lambda txn: txn.select_value("SELECT COUNT(*) FROM users", (), 0))

    # -- devices and tokens -------------------------------------------------

    async def create_device_and_token(
        self,
        user_id: str,
        device_id: str,
        display_name: str | None,
        token_hash: str,
        expires_ts: int | None,
        refresh_token_hash: str | None,
    ) -> bool:
        """Creates (or reuses) the device and adds a token; returns True if the device is new."""

        def txn_fn(txn: Txn) -> bool:
            ts = now_ms()
            new = txn.select_one(
                "SELECT 1 FROM devices WHERE user_id = ? AND device_id = ?", (user_id, device_id)
            ) is None
            if new:
                txn.execute(
                    "INSERT INTO devices (user_id, device_id, display_name, last_seen_ts) VALUES (?, ?, ?, ?)",
                    (user_id, device_id, display_name, ts),
                )
            else:
                # Logging in again with an existing device id replaces its old sessions.
                txn.execute(
                    "DELETE FROM access_tokens WHERE user_id = ? AND device_id = ?", (user_id, device_id)
                )
                txn.execute(
                    "DELETE FROM refresh_tokens WHERE user_id = ? AND device_id = ?", (user_id, device_id)
                )
            txn.execute(
                "INSERT INTO access_tokens (token_hash, user_id, device_id, expires_ts, refresh_token_hash, created_ts)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (token_hash, user_id, device_id, expires_ts, refresh_token_hash, ts),
            )
            if refresh_token_hash:
                txn.execute(
                    "INSERT INTO refresh_tokens (token_hash, user_id, device_id, created_ts) VALUES (?, ?, ?, ?)",
                    (refresh_token_hash, user_id, device_id, ts),
                )
            return new

        return await self.db.write(txn_fn, name="create_device")

    async def get_token(self, token_hash: str) -> TokenRecord | None:
        def txn_fn(txn: Txn) -> TokenRecord | None:
            row = txn.select_one(
                "SELECT t.user_id, t.device_id, t.expires_ts, u.is_guest FROM access_tokens t"
                " JOIN users u ON u.user_id = t.user_id WHERE t.token_hash = ? AND NOT u.deactivated",
                (token_hash,),
            )
            return TokenRecord(row[0], row[1], row[2], bool(row[3]), token_hash) if row else None

        return await self.db.read(txn_fn, name="get_token")

    async def rotate_refresh_token(
        self, old_refresh_hash: str, new_access_hash: str, new_refresh_hash: str, expires_ts: int | None
    ) -> tuple[str, str] | None:
        """Swaps a refresh token for a new access+refresh pair; None if unknown (or already used)."""

        def txn_fn(txn: Txn) -> tuple[str, str] | None:
            row = txn.select_one(
                "SELECT user_id, device_id FROM refresh_tokens WHERE token_hash = ?", (old_refresh_hash,)
            )
            if row is None:
                return None
            user_id, device_id = row
            ts = now_ms()
            txn.execute("DELETE FROM refresh_tokens WHERE token_hash = ?", (old_refresh_hash,))
            txn.execute("DELETE FROM access_tokens WHERE refresh_token_hash = ?", (old_refresh_hash,))
            txn.execute(
                "INSERT INTO access_tokens (token_hash, user_id, device_id, expires_ts, refresh_token_hash, created_ts)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (new_access_hash, user_id, device_id, expires_ts, new_refresh_hash, ts),
            )
            txn.execute(
                "INSERT INTO refresh_tokens (token_hash, user_id, device_id, created_ts) VALUES (?, ?, ?, ?)",
                (new_refresh_hash, user_id, device_id, ts),
            )
            return user_id, device_id

        return await self.db.write(txn_fn, name="refresh_token")

    async def delete_access_token(self, token_hash: str) -> None:
        await self.db.write(
            lambda txn: txn.execute("DELETE FROM access_tokens WHERE token_hash = ?", (token_hash,)),
            name="delete_token",
        )

    async def delete_devices(self, user_id: str, device_ids: list[str]) -> None:
        """Removes devices with their tokens and undelivered to-device messages."""

        def txn_fn(txn: Txn) -> None:
            for device_id in device_ids:
                for table in ("access_tokens", "refresh_tokens", "devices", "to_device_messages"):
                    txn.execute(f"DELETE FROM {table} WHERE user_id = ? AND device_id = ?", (user_id, device_id))

        await self.db.write(txn_fn, name="delete_devices")

    async def delete_other_tokens(self, user_id: str, device_id: str, keep_token_hash: str | None) -> None:
        def txn_fn(txn: Txn) -> None:
            txn.execute(
                "DELETE FROM access_tokens WHERE user_id = ? AND device_id = ? AND token_hash != ?",
                (user_id, device_id, keep_token_hash or ""),
            )

        await self.db.write(txn_fn, name="delete_other_tokens")

    async def get_devices(self, user_id: str) -> list[DeviceRecord]:
        return await self.db.read(
            lambda txn: [
                DeviceRecord(*row)
                for row in txn.select_all(
                    "SELECT user_id, device_id, display_name, last_seen_ts, last_seen_ip FROM devices"
                    " WHERE user_id = ? ORDER BY device_id",
                    (user_id,),
                )
            ],
            name="get_devices",
        )

    async def get_device(self, user_id: str, device_id: str) -> DeviceRecord | None:
        def txn_fn(txn: Txn) -> DeviceRecord | None:
            row = txn.select_one(
                "SELECT user_id, device_id, display_name, last_seen_ts, last_seen_ip FROM devices"
                " WHERE user_id = ? AND device_id = ?",
                (user_id, device_id),
            )
            return DeviceRecord(*row) if row else None

        return await self.db.read(txn_fn, name="get_device")

    async def set_device_display_name(self, user_id: str, device_id: str, name: str | None) -> bool:
        def txn_fn(txn: Txn) -> bool:
            txn.execute(
                "UPDATE devices SET display_name = ? WHERE user_id = ? AND device_id = ?", (name, user_id, device_id)
            )
            return txn.rowcount > 0

        return await self.db.write(txn_fn, name="rename_device")

    async def update_device_last_seen(self, user_id: str, device_id: str, ip: str, ts: int) -> None:
        await self.db.write(
            lambda txn: txn.execute(
                "UPDATE devices SET last_seen_ts = ?, last_seen_ip = ? WHERE user_id = ? AND device_id = ?",
                (ts, ip, user_id, device_id),
            ),
            name="device_last_seen",
        )

    # -- registration tokens -------------------------------------------------

    async def registration_token_valid(self, token: str) -> bool:
        return await self.db.read(lambda txn: _token_valid_txn(txn, token), name="registration_token_valid")

    async def hold_registration_token(self, token: str) -> bool:
        """Counts a registration in progress against the token (``pending``), if it is
        valid; False if not."""

        def txn_fn(txn: Txn) -> bool:
            if not _token_valid_txn(txn, token):
                return False
            txn.execute("UPDATE registration_tokens SET pending = pending + 1 WHERE token = ?", (token,))
            return True

        return await self.db.write(txn_fn, name="hold_registration_token")

    async def release_registration_token(self, token: str) -> None:
        """A held use whose registration never completed."""
        await self.db.write(
            lambda txn: txn.execute(
                "UPDATE registration_tokens SET pending = pending - 1 WHERE token = ? AND pending > 0", (token,)
            ),
            name="release_registration_token",
        )

    async def use_registration_token(self, token: str) -> None:
        """A held use completed: pending becomes completed."""
        await self.db.write(
            lambda txn: txn.execute(
                "UPDATE registration_tokens SET completed = completed + 1,"
                " pending = CASE WHEN pending > 0 THEN pending - 1 ELSE 0 END WHERE token = ?",
                (token,),
            ),
            name="use_registration_token",
        )

    async def create_registration_token(self, token: str, uses_allowed: int | None, expiry_time: int | None) -> None:
        await self.db.write(
            lambda txn: txn.execute(
                "INSERT INTO registration_tokens (token, uses_allowed, expiry_time) VALUES (?, ?, ?)",
                (token, uses_allowed, expiry_time),
            ),
            name="create_registration_token",
        )

    # -- openid ------------------------------------------------------------

    async def store_openid_token(self, token_hash: str, user_id: str, expires_ts: int) -> None:
        await self.db.write(
            lambda txn: txn.execute(
                "INSERT INTO openid_tokens (token_hash, user_id, expires_ts) VALUES (?, ?, ?)",
                (token_hash, user_id, expires_ts),
            ),
            name="store_openid",
        )

    async def get_openid_user(self, token_hash: str) -> str | None:
        return await self.db.read(
            lambda txn: txn.select_value(
                "SELECT user_id FROM openid_tokens WHERE token_hash = ? AND expires_ts > ?", (token_hash, now_ms())
            ),
            name="get_openid",
        )


class DeviceListStore:
    db: Database
    device_list_changes: StreamChangeCache  # DataStore's

    async def add_device_list_change(self, user_id: str, stream_id: int) -> None:
        await self.db.write(
            lambda txn: txn.execute(
                "INSERT INTO device_list_changes (stream_id, user_id) VALUES (?, ?)", (stream_id, user_id)
            ),
            name="device_list_change",
        )
        self.device_list_changes.mark(user_id, stream_id)

    async def get_device_list_changes(self, user_ids: set[str] | None, since: int, up_to: int) -> set[str]:
        """Users (of those given, or all) whose device lists changed in (since, up_to]."""

        def txn_fn(txn: Txn) -> set[str]:
            rows = txn.select_all(
                "SELECT DISTINCT user_id FROM device_list_changes WHERE stream_id > ? AND stream_id <= ?",
                (since, up_to),
            )
            changed = {r[0] for r in rows}
            return changed if user_ids is None else changed & user_ids

        return await self.db.read(txn_fn, name="device_list_changes")
