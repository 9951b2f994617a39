"""Rooms, local memberships, aliases and the public room directory."""

from __future__ import annotations

from dataclasses import dataclass

from homeserver.storage.database import Database, Txn


@dataclass(frozen=True)
class LocalMembership:
    room_id: str
    membership: str
    event_id: str
    stream_ordering: int
    forgotten: bool


class RoomStore:
    db: Database

    async def get_room_version(self, room_id: str) -> str | None:
        return await self.db.read(
            lambda txn: txn.select_value("SELECT room_version FROM rooms WHERE room_id = ?", (room_id,)),
            name="room_version",
        )

    async def get_local_memberships(self, user_id: str, include_forgotten: bool = False) -> list[LocalMembership]:
        def txn_fn(txn: Txn) -> list[LocalMembership]:
            rows = txn.select_all(
                "SELECT room_id, membership, event_id, stream_ordering, forgotten FROM local_memberships"
                " WHERE user_id = ?",
                (user_id,),
            )
            return [LocalMembership(r[0], r[1], r[2], r[3], bool(r[4])) for r in rows if include_forgotten or not r[4]]

        return await self.db.read(txn_fn, name="local_memberships")

    async def get_local_membership(self, user_id: str, room_id: str) -> LocalMembership | None:
        def txn_fn(txn: Txn) -> LocalMembership | None:
            r = txn.select_one(
                "SELECT room_id, membership, event_id, stream_ordering, forgotten FROM local_memberships"
                " WHERE user_id = ? AND room_id = ?",
                (user_id, room_id),
            )
            return LocalMembership(r[0], r[1], r[2], r[3], bool(r[4])) if r else None

        return await self.db.read(txn_fn, name="local_membership")

    async def get_all_local_joined(self) -> list[tuple[str, str]]:
        """(room_id, user_id) of every local join: loaded once at start into memory."""
        return await self.db.read(
            lambda txn: txn.select_all("SELECT room_id, user_id FROM local_memberships WHERE membership = 'join'"),
            name="all_local_joined",
        )

    async def forget_room(self, user_id: str, room_id: str) -> None:
        await self.db.write(
            lambda txn: txn.execute(
                "UPDATE local_memberships SET forgotten = ? WHERE user_id = ? AND room_id = ?",
                (True, user_id, room_id),
            ),
            name="forget_room",
        )

    async def get_rooms_with_membership(self, user_id: str, membership: str) -> list[str]:
        return await self.db.read(
            lambda txn: [
                r[0]
                for r in txn.select_all(
                    "SELECT room_id FROM local_memberships WHERE user_id = ? AND membership = ?", (user_id, membership)
                )
            ],
            name="rooms_with_membership",
        )

    async def get_members_with_membership(self, room_id: str, membership: str = "join") -> list[str]:
        return await self.db.read(
            lambda txn: [
                r[0]
                for r in txn.select_all(
                    "SELECT state_key FROM current_state WHERE room_id = ? AND type = 'm.room.member' AND membership = ?",
                    (room_id, membership),
                )
            ],
            name="members_with_membership",
        )

    async def get_shared_room_users(self, user_id: str) -> set[str]:
        """Everyone (local or remote) joined to a room the user is joined to."""

        def txn_fn(txn: Txn) -> set[str]:
            rows = txn.select_all(
                "SELECT DISTINCT c.state_key FROM current_state c JOIN local_memberships m ON m.room_id = c.room_id"
                " WHERE m.user_id = ? AND m.membership = 'join' AND c.type = 'm.room.member' AND c.membership = 'join'",
                (user_id,),
            )
            return {r[0] for r in rows}

        return await self.db.read(txn_fn, name="shared_room_users")

    # -- aliases -------------------------------------------------------------

    async def create_alias(self, alias: str, room_id: str, creator: str) -> bool:
        def txn_fn(txn: Txn) -> bool:
            if txn.select_one("SELECT 1 FROM room_aliases WHERE room_alias = ?", (alias,)):
                return False
            txn.execute(
                "INSERT INTO room_aliases (room_alias, room_id, creator) VALUES (?, ?, ?)", (alias, room_id, creator)
            )
            return True

        return await self.db.write(txn_fn, name="create_alias")

    async def get_alias(self, alias: str) -> tuple[str, str] | None:
        def txn_fn(txn: Txn) -> tuple[str, str] | None:
            row = txn.select_one("SELECT room_id, creator FROM room_aliases WHERE room_alias = ?", (alias,))
            return (row[0], row[1]) if row else None

        return await self.db.read(txn_fn, name="get_alias")

    async def delete_alias(self, alias: str) -> None:
        await self.db.write(
            lambda txn: txn.execute("DELETE FROM room_aliases WHERE room_alias = ?", (alias,)), name="delete_alias"
        )

    async def get_aliases_for_room(self, room_id: str) -> list[str]:
        return await self.db.read(
            lambda txn: [
                r[0] for r in txn.select_all("SELECT room_alias FROM room_aliases WHERE room_id = ?", (room_id,))
            ],
            name="aliases_for_room",
        )

    # -- directory -----------------------------------------------------------

    async def set_room_visibility(self, room_id: str, public: bool) -> None:
        await self.db.write(
            lambda txn: txn.execute("UPDATE rooms SET is_public = ? WHERE room_id = ?", (public, room_id)),
            name="set_visibility",
        )

    async def get_room_visibility(self, room_id: str) -> bool | None:
        def txn_fn(txn: Txn) -> bool | None:
            v = txn.select_one("SELECT is_public FROM rooms WHERE room_id = ?", (room_id,))
            return bool(v[0]) if v else None

        return await self.db.read(txn_fn, name="get_visibility")

    async def get_public_room_ids(self) -> list[str]:
        return await self.db.read(
            lambda txn: [r[0] for r in txn.select_all("SELECT room_id FROM rooms WHERE is_public ORDER BY room_id")],
            name="public_rooms",
        )

    async def get_current_state_events_of_type(self, room_ids: list[str], types: list[str]) -> list[tuple[str, str, str, str]]:
        """(room_id, type, state_key, event_id) for the given types in the given rooms."""
        if not room_ids:
            return []

        def txn_fn(txn: Txn) -> list[tuple[str, str, str, str]]:
            return txn.select_all(
                f"SELECT room_id, type, state_key, event_id FROM current_state WHERE room_id IN ({txn.in_list(room_ids)})"
                f" AND type IN ({txn.in_list(types)})",
                list(room_ids) + list(types),
            )

        return await self.db.read(txn_fn, name="state_of_type")

    async def count_joined_members(self, room_ids: list[str]) -> dict[str, int]:
        if not room_ids:
            return {}

        def txn_fn(txn: Txn) -> dict[str, int]:
            return dict(
                txn.select_all(
                    f"SELECT room_id, COUNT(*) FROM current_state WHERE room_id IN ({txn.in_list(room_ids)})"
                    " AND type = 'm.room.member' AND membership = 'join' GROUP BY room_id",
                    room_ids,
                )
            )

        return await self.db.read(txn_fn, name="count_joined")
