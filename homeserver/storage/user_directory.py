"""The user directory: profiles from member events and the visibility-scoped search."""

from __future__ import annotations

import json
from dataclasses import dataclass

from homeserver.storage.database import Database, Txn


@dataclass(frozen=True)
class DirectoryEntry:
    user_id: str
    display_name: str | None
    avatar_url: str | None
    shares_room: bool


def search_text(user_id: str, display_name: str | None) -> str:
    return f"{user_id} {display_name or ''}".casefold()


def _like_escape(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class UserDirectoryStore:
    db: Database

    async def update_user_directory(self, up_to: int, batch: int = 2000) -> bool:
        """Folds member events up to stream position ``up_to`` into the directory, one
        batch; True if there may be more."""

        def txn_fn(txn: Txn) -> bool:
            pos = txn.select_value("SELECT stream_ordering FROM user_directory_position WHERE id = 1", (), 0)
            rows = txn.select_all(
                "SELECT stream_ordering, state_key, json FROM events WHERE stream_ordering > ? AND stream_ordering <= ?"
                " AND type = 'm.room.member' AND rejected_reason IS NULL AND NOT outlier"
                " ORDER BY stream_ordering LIMIT ?",
                (pos, up_to, batch),
            )
            profiles: dict[str, tuple[str | None, str | None]] = {}
            for _, state_key, raw in rows:
                try:
                    content = json.loads(raw).get("content", {})
                except ValueError:
                    continue
                if not isinstance(content, dict) or content.get("membership") != "join" or not state_key:
                    continue
                name, avatar = content.get("displayname"), content.get("avatar_url")
                profiles[state_key] = (
                    name if isinstance(name, str) else None,
                    avatar if isinstance(avatar, str) else None,
                )
            if profiles:
                # A local user is listed under their profile, not under a name they use in one
                # room (Synapse's directory does the same: a room-specific name stays private
                # to that room's members).
                ids = list(profiles)
                for user_id, name, avatar in txn.select_all(
                    f"SELECT user_id, displayname, avatar_url FROM users WHERE user_id IN ({txn.in_list(ids)})", ids
                ):
                    profiles[user_id] = (name, avatar)
            for user_id, (name, avatar) in profiles.items():
                txn.upsert(
                    "user_directory",
                    {"user_id": user_id},
                    {"display_name": name, "avatar_url": avatar, "search_text": search_text(user_id, name)},
                )
            new_pos = rows[-1][0] if len(rows) == batch else up_to
            if new_pos > pos:
                txn.upsert("user_directory_position", {"id": 1}, {"stream_ordering": new_pos})
            return len(rows) == batch

        return await self.db.write(txn_fn, name="update_user_directory")

    async def get_visibility_state(self) -> list[tuple[str, str, str]]:
        """(room_id, type, event json) of every room's join rules and history visibility."""
        return await self.db.read(
            lambda txn: txn.select_all(
                "SELECT c.room_id, c.type, e.json FROM current_state c JOIN events e ON e.event_id = c.event_id"
                " WHERE c.type IN ('m.room.join_rules', 'm.room.history_visibility') AND c.state_key = ''"
            ),
            name="directory_visibility_state",
        )

    async def search_user_directory(
        self, requester: str, terms: list[str], public_rooms: list[str], max_rows: int
    ) -> list[DirectoryEntry]:
        """Users matching every term whom the requester shares a room with or who are in
        one of ``public_rooms``; local users' profiles come from their account."""

        def txn_fn(txn: Txn) -> list[DirectoryEntry]:
            shared = (
                "SELECT c.state_key FROM current_state c JOIN local_memberships m ON m.room_id = c.room_id"
                " WHERE m.user_id = ? AND m.membership = 'join' AND c.type = 'm.room.member' AND c.membership = 'join'"
            )
            visible = shared
            args: list[str | int] = [requester]
            if public_rooms:
                visible += (
                    " UNION SELECT c.state_key FROM current_state c WHERE c.type = 'm.room.member'"
                    f" AND c.membership = 'join' AND c.room_id IN ({txn.in_list(public_rooms)})"
                )
                args.extend(public_rooms)
            args.append(requester)  # the "shares a room" join
            match = " AND ".join("d.search_text LIKE ? ESCAPE '\\'" for _ in terms) or "1 = 1"
            args.extend(f"%{_like_escape(t)}%" for t in terms)
            args.append(max_rows)
            rows = txn.select_all(
                "SELECT d.user_id, d.display_name, d.avatar_url, u.user_id, u.displayname, u.avatar_url,"
                " CASE WHEN s.state_key IS NULL THEN 0 ELSE 1 END"
                f" FROM user_directory d JOIN (SELECT DISTINCT y.state_key FROM ({visible}) y) v ON v.state_key = d.user_id"
                " LEFT JOIN users u ON u.user_id = d.user_id"
                f" LEFT JOIN (SELECT DISTINCT x.state_key FROM ({shared}) x) s ON s.state_key = d.user_id"
                f" WHERE {match} AND (u.user_id IS NULL OR NOT u.deactivated)"
                " LIMIT ?",
                args,
            )
            out = []
            for user_id, name, avatar, local_id, local_name, local_avatar, shares in rows:
                if local_id is not None:
                    name, avatar = local_name, local_avatar
                out.append(DirectoryEntry(user_id, name, avatar, bool(shares)))
            return out

        return await self.db.read(txn_fn, name="search_user_directory")
