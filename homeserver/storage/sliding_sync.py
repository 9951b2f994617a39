"""What simplified sliding sync (MSC4186) reads beyond the event store: each room's
latest activity and latest "bump" event, the facts its list filters need, member
summaries and receipts by event.

``room_activity`` holds, per room, the stream position of its latest live timeline
event (the room list's order) and of its latest event of a bump type (the room's
``bump_stamp``). It is written in the transaction that persists the events
(``_update_room_activity_txn``, called by ``EventsStore._persist_batch_txn``) and
mirrored in memory, so a user's room list is sorted from an index, never by reading
every room's events.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from homeserver.storage.database import Database, Txn
from homeserver.storage.receipts import Receipt

# Synapse's SLIDING_SYNC_DEFAULT_BUMP_EVENT_TYPES (the MSC lists the same types). The
# migration that created room_activity (schema/051_room_activity.sql) lists them too.
BUMP_EVENT_TYPES = frozenset(
    {
        "m.room.create",
        "m.room.message",
        "m.room.encrypted",
        "m.sticker",
        "m.call.invite",
        "m.poll.start",
        "m.beacon_info",
    }
)


@dataclass(slots=True)
class RoomActivity:
    """Stream positions of a room's latest live event and latest bump event (0: none).
    ``complete`` once merged with the table: entries made from commits alone cover only
    what was persisted since start-up."""

    last_event: int = 0
    last_bump: int = 0
    complete: bool = False


@dataclass(frozen=True, slots=True)
class RoomKind:
    """What the list filters ask of a room: its type (from m.room.create) and whether it
    is encrypted (an m.room.encryption event with an algorithm)."""

    room_type: str | None
    encrypted: bool
    known: bool = True


@dataclass(frozen=True, slots=True)
class MemberSummary:
    joined: int
    invited: int
    # Up to six members, joined first, then invited, then left/banned, each group in the
    # order of their membership events (Synapse's get_room_summary).
    members: list[tuple[str, str]]


def _counts_in_timeline(ev: Any) -> bool:
    return ev.stream_ordering > 0 and not ev.outlier and not ev.rejected_reason and not ev.soft_failed


class SlidingSyncStore:
    db: Database

    def _init_sliding_sync_caches(self) -> None:
        self._room_activity: dict[str, RoomActivity] = {}
        self._room_kinds: dict[str, RoomKind] = {}

    # -- written with the events ------------------------------------------------------

    def _update_room_activity_txn(self, txn: Txn, batch: Any) -> None:
        """Raises each room's positions to those of its new live events (never lowers
        them: batches of one room may commit out of order)."""
        for room_id, (last, bump) in self._activity_of_batch(batch).items():
            txn.execute(
                "INSERT INTO room_activity (room_id, last_event_stream, last_bump_stream) VALUES (?, ?, ?)"
                " ON CONFLICT (room_id) DO UPDATE SET"
                " last_event_stream = CASE WHEN excluded.last_event_stream > room_activity.last_event_stream"
                "   THEN excluded.last_event_stream ELSE room_activity.last_event_stream END,"
                " last_bump_stream = CASE WHEN excluded.last_bump_stream > room_activity.last_bump_stream"
                "   THEN excluded.last_bump_stream ELSE room_activity.last_bump_stream END",
                (room_id, last, bump),
            )

    def _room_activity_persisted(self, batch: Any) -> None:
        """After the commit: the same positions in memory, and the filters' facts of rooms
        whose create or encryption state changed forgotten."""
        for room_id, (last, bump) in self._activity_of_batch(batch).items():
            entry = self._room_activity.get(room_id)
            if entry is None:
                # Not read from the table yet: what we know since start-up, merged later.
                entry = self._room_activity[room_id] = RoomActivity()
            entry.last_event = max(entry.last_event, last)
            entry.last_bump = max(entry.last_bump, bump)
        for room_id, changes in batch.current_state.items():
            if ("m.room.encryption", "") in changes or ("m.room.create", "") in changes:
                self._room_kinds.pop(room_id, None)

    @staticmethod
    def _activity_of_batch(batch: Any) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for ev in batch.events:
            if not _counts_in_timeline(ev):
                continue
            last, bump = out.get(ev.room_id, (0, 0))
            pos = ev.stream_ordering
            out[ev.room_id] = (max(last, pos), max(bump, pos) if ev.type in BUMP_EVENT_TYPES else bump)
        return out

    # -- reading ----------------------------------------------------------------------

    async def get_room_activity(self, room_ids: Iterable[str]) -> dict[str, RoomActivity]:
        """Each room's latest positions: from memory, the rooms not read yet in one query."""
        out: dict[str, RoomActivity] = {}
        missing = []
        for room_id in room_ids:
            entry = self._room_activity.get(room_id)
            if entry is not None and entry.complete:
                out[room_id] = entry
            else:
                missing.append(room_id)
        if missing:

            def txn_fn(txn: Txn) -> dict[str, tuple[int, int]]:
                rows: dict[str, tuple[int, int]] = {}
                for i in range(0, len(missing), 500):
                    chunk = missing[i : i + 500]
                    for room_id, last, bump in txn.select_all(
                        "SELECT room_id, last_event_stream, last_bump_stream FROM room_activity"
                        f" WHERE room_id IN ({txn.in_list(chunk)})",
                        chunk,
                    ):
                        rows[room_id] = (last, bump)
                return rows

            stored = await self.db.read(txn_fn, name="room_activity")
            for room_id in missing:
                last, bump = stored.get(room_id, (0, 0))
                # Commits made while the query ran are in memory: positions only grow.
                entry = self._room_activity.get(room_id)
                if entry is None:
                    entry = self._room_activity[room_id] = RoomActivity()
                entry.last_event = max(entry.last_event, last)
                entry.last_bump = max(entry.last_bump, bump)
                entry.complete = True
                out[room_id] = entry
        return out

    async def get_last_bump_before(self, room_id: str, up_to: int) -> int | None:
        """The position of the room's latest live bump event at or before ``up_to`` (for a
        response computed at a position older than what the index already holds)."""
        types = sorted(BUMP_EVENT_TYPES)
        return await self.db.read(
            lambda txn: txn.select_value(
                "SELECT MAX(stream_ordering) FROM events WHERE room_id = ? AND stream_ordering > 0"
                " AND stream_ordering <= ? AND NOT outlier AND rejected_reason IS NULL AND NOT soft_failed"
                f" AND type IN ({txn.in_list(types)})",
                [room_id, up_to] + types,
            ),
            name="last_bump_before",
        )

    async def get_state_keys_changed(self, room_id: str, after: int, up_to: int) -> set[tuple[str, str]]:
        """State keys of the room's live state events in (after, up_to]."""

        def txn_fn(txn: Txn) -> set[tuple[str, str]]:
            return {
                (r[0], r[1])
                for r in txn.select_all(
                    "SELECT DISTINCT type, state_key FROM events WHERE room_id = ? AND stream_ordering > ?"
                    " AND stream_ordering <= ? AND state_key IS NOT NULL AND NOT outlier"
                    " AND rejected_reason IS NULL AND NOT soft_failed",
                    (room_id, after, up_to),
                )
            }

        return await self.db.read(txn_fn, name="state_keys_changed")

    async def get_room_kinds(self, room_ids: Iterable[str]) -> dict[str, RoomKind]:
        """Room type and encryption of rooms whose state this server holds (rooms absent
        from the answer are unknown here, e.g. a remote room we are only invited to)."""
        out: dict[str, RoomKind] = {}
        missing = []
        for room_id in room_ids:
            kind = self._room_kinds.get(room_id)
            if kind is not None:
                out[room_id] = kind
            else:
                missing.append(room_id)
        if missing:

            def txn_fn(txn: Txn) -> dict[str, dict[str, dict[str, Any]]]:
                found: dict[str, dict[str, dict[str, Any]]] = {}
                for i in range(0, len(missing), 500):
                    chunk = missing[i : i + 500]
                    for room_id, etype, raw in txn.select_all(
                        "SELECT c.room_id, c.type, e.json FROM current_state c JOIN events e ON e.event_id = c.event_id"
                        f" WHERE c.room_id IN ({txn.in_list(chunk)}) AND c.state_key = ''"
                        " AND c.type IN ('m.room.create', 'm.room.encryption')",
                        chunk,
                    ):
                        found.setdefault(room_id, {})[etype] = json.loads(raw).get("content") or {}
                return found

            found = await self.db.read(txn_fn, name="room_kinds")
            for room_id, contents in found.items():
                create = contents.get("m.room.create")
                if create is None:
                    continue
                kind = room_kind_of(create, contents.get("m.room.encryption"))
                self._room_kinds[room_id] = kind
                out[room_id] = kind
        return out

    async def get_member_summary(self, room_id: str) -> MemberSummary:
        def txn_fn(txn: Txn) -> MemberSummary:
            counts = dict(
                txn.select_all(
                    "SELECT membership, COUNT(*) FROM current_state WHERE room_id = ? AND type = 'm.room.member'"
                    " AND membership IS NOT NULL GROUP BY membership",
                    (room_id,),
                )
            )
            members = txn.select_all(
                "SELECT c.state_key, c.membership FROM current_state c JOIN events e ON e.event_id = c.event_id"
                " WHERE c.room_id = ? AND c.type = 'm.room.member' AND c.membership IS NOT NULL"
                " ORDER BY CASE c.membership WHEN 'join' THEN 1 WHEN 'invite' THEN 2 WHEN 'leave' THEN 3 ELSE 4 END,"
                " e.stream_ordering LIMIT 6",
                (room_id,),
            )
            return MemberSummary(counts.get("join", 0), counts.get("invite", 0), [(r[0], r[1]) for r in members])

        return await self.db.read(txn_fn, name="member_summary")

    async def get_receipts_for_events(self, events_by_room: dict[str, list[str]]) -> list[Receipt]:
        """Every receipt pointing at one of these events, by room (what a room sent from
        scratch gets: the receipts of its timeline only, as MSC3960 asks)."""
        rooms = [r for r, ids in events_by_room.items() if ids]
        if not rooms:
            return []

        def txn_fn(txn: Txn) -> list[Receipt]:
            out: list[Receipt] = []
            for room_id in rooms:
                ids = events_by_room[room_id]
                out += [
                    Receipt(*r)
                    for r in txn.select_all(
                        "SELECT room_id, receipt_type, user_id, thread_id, event_id, ts, stream_id FROM receipts"
                        f" WHERE room_id = ? AND event_id IN ({txn.in_list(ids)})",
                        [room_id] + ids,
                    )
                ]
            return out

        return await self.db.read(txn_fn, name="receipts_for_events")

    async def get_user_receipts_in_rooms(self, user_id: str, room_ids: list[str]) -> list[Receipt]:
        if not room_ids:
            return []

        def txn_fn(txn: Txn) -> list[Receipt]:
            return [
                Receipt(*r)
                for r in txn.select_all(
                    "SELECT room_id, receipt_type, user_id, thread_id, event_id, ts, stream_id FROM receipts"
                    f" WHERE user_id = ? AND room_id IN ({txn.in_list(room_ids)})",
                    [user_id] + list(room_ids),
                )
            ]

        return await self.db.read(txn_fn, name="user_receipts_in_rooms")

    async def get_room_account_data(
        self, user_id: str, room_ids: list[str], since: int, up_to: int
    ) -> dict[str, dict[str, dict[str, Any]]]:
        """room_id -> type -> content of the user's account data in these rooms changed in
        (since, up_to] (``since`` 0: all of it)."""
        if not room_ids:
            return {}

        def txn_fn(txn: Txn) -> dict[str, dict[str, dict[str, Any]]]:
            out: dict[str, dict[str, dict[str, Any]]] = {}
            for i in range(0, len(room_ids), 500):
                chunk = room_ids[i : i + 500]
                for room_id, data_type, content in txn.select_all(
                    "SELECT room_id, type, content FROM account_data WHERE user_id = ?"
                    f" AND room_id IN ({txn.in_list(chunk)}) AND stream_id > ? AND stream_id <= ?",
                    [user_id] + chunk + [since, up_to],
                ):
                    out.setdefault(room_id, {})[data_type] = json.loads(content)
            return out

        return await self.db.read(txn_fn, name="room_account_data")

    async def get_account_data_of_type(self, user_id: str, data_type: str) -> dict[str, dict[str, Any]]:
        """room_id ("" for global) -> content, of one account data type (e.g. every
        room's m.tag for the tag filters)."""

        def txn_fn(txn: Txn) -> dict[str, dict[str, Any]]:
            return {
                r[0]: json.loads(r[1])
                for r in txn.select_all(
                    "SELECT room_id, content FROM account_data WHERE user_id = ? AND type = ?", (user_id, data_type)
                )
            }

        return await self.db.read(txn_fn, name="account_data_of_type")


def room_kind_of(create_content: dict[str, Any], encryption_content: dict[str, Any] | None) -> RoomKind:
    room_type = create_content.get("type")
    encrypted = encryption_content is not None and encryption_content.get("algorithm") is not None
    return RoomKind(room_type if isinstance(room_type, str) else None, encrypted)
