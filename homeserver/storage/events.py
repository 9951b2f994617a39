"""Events, their graph, state snapshots (as deltas) and the current state of rooms.

``persist_batch`` writes a whole batch of events with their state changes in one
transaction: a crash leaves either all of it or none of it.
"""

from __future__ import annotations

import bisect
import fnmatch
import json
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from homeserver.events.event import Event
from homeserver.storage.change_cache import StreamChangeCache
from homeserver.storage.database import Database, Txn
from homeserver.util.caches import LruCache

StateKey = tuple[str, str]
StateMap = dict[StateKey, str]

# A snapshot whose delta chain reaches this length is written out in full instead, so
# reading any snapshot touches at most this many small rows.
MAX_STATE_CHAIN = 32


@dataclass
class NewStateGroup:
    id: int
    room_id: str
    prev_group: int | None
    chain_length: int
    # The entries relative to prev_group (all of them when prev_group is None);
    # a None value removes the key.
    entries: dict[StateKey, str | None]


@dataclass
class MembershipChange:
    user_id: str
    room_id: str
    membership: str
    event_id: str
    stream_ordering: int


@dataclass
class PersistBatch:
    events: list[Event] = field(default_factory=list)
    # the snapshot each event was authorised against
    state_groups_before: dict[str, int] = field(default_factory=dict)
    new_state_groups: list[NewStateGroup] = field(default_factory=list)
    # room_id -> (type, state_key) -> (event_id, membership) or None to remove
    current_state: dict[str, dict[StateKey, tuple[str, str | None] | None]] = field(default_factory=dict)
    forward_extremities: dict[str, set[str]] = field(default_factory=dict)
    local_memberships: list[MembershipChange] = field(default_factory=list)
    new_rooms: list[tuple[str, str, str, int]] = field(default_factory=list)
    # (room_id, user_id, device_id, txn_id, event_id, inserted_ts)
    txn_ids: list[tuple[str, str, str, str, str, int]] = field(default_factory=list)


class RelatedEvent(NamedTuple):
    """An event relating to another (``m.relates_to``), with what deciding whether it
    counts, and whether a user may see it, needs: no event body. A row as read (a tuple:
    a thread can have thousands)."""

    event_id: str
    relates_to: str
    rel_type: str
    type: str
    sender: str
    is_state: bool  # truthy
    # the snapshot the event was authorised against (history visibility is judged on it)
    state_group: int | None
    origin_server_ts: int
    room_id: str


# Only these relations are bundled into events (spec "Aggregations of child events");
# annotations are left to /relations, as Synapse does.
BUNDLED_REL_TYPES = ("m.replace", "m.thread", "m.reference")

# A relation counts only between two events of one room (a relation naming an event of
# another room is ignored, as Synapse's relation queries join the parent on room_id), and
# only from an event that is in the room's timeline: not rejected, not soft-failed, not
# an outlier, not redacted (Synapse deletes a redacted event's relation row).
# ``c`` is the relating event. The parent's room is a correlated lookup rather than a
# join: joined, SQLite drives the query from the parent and then scans the whole room.
_IN_TIMELINE = (
    "WHERE c.rejected_reason IS NULL AND NOT c.soft_failed AND NOT c.outlier"
    " AND NOT EXISTS (SELECT 1 FROM redactions x WHERE x.redacts = c.event_id)"
)
_COUNTED_RELATION = _IN_TIMELINE + " AND c.room_id = (SELECT p.room_id FROM events p WHERE p.event_id = c.relates_to)"

_RELATED_COLS = (
    "c.event_id, c.relates_to, c.rel_type, c.type, c.sender, c.state_key IS NOT NULL, c.state_group,"
    " c.origin_server_ts, c.room_id"
)


# /relations?recurse=true follows relations this many levels down (Synapse's query: a
# depth counter from 0 while it is <= 3).
RELATION_RECURSION_LEVELS = 5

# Bounds of the in-memory caches, by entries and by estimated bytes.
EVENT_CACHE_ENTRIES = 50_000
EVENT_CACHE_BYTES = 64 * 1024 * 1024
STATE_GROUP_CACHE_ENTRIES = 2_000
STATE_GROUP_CACHE_BYTES = 64 * 1024 * 1024
# Recent-event windows (below) are kept for the rooms written to most recently, this many
# events in all (about 140 bytes each).
MAX_RECENT_EVENTS = 100_000


def event_size(ev: Event) -> int:
    """Rough bytes an Event holds in memory (measured: ~3.5 KB of dicts, ids, hashes and
    signatures for any event) plus its content and unsigned, counted as JSON text."""
    size = 3584
    for key in ("content", "unsigned"):
        value = ev.pdu.get(key)
        if value:
            size += len(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    return size


def state_map_size(state: Mapping[Any, Any]) -> int:
    """Rough bytes of a state map (measured: ~250 per (type, state_key) -> event id entry)."""
    return 256 + 256 * len(state)


class RecentRoomEvents:
    """The latest live-timeline events of one room, in stream order, kept in memory so an
    incremental /sync (the hot path) reads no database. Every event of the room with a
    position above ``covered_after`` is here once persisted."""

    __slots__ = ("positions", "event_ids", "covered_after")
    MAX = 256

    def __init__(self, covered_after: int) -> None:
        self.positions: list[int] = []
        self.event_ids: list[str] = []
        self.covered_after = covered_after

    def add(self, position: int, event_id: str) -> None:
        i = bisect.bisect_right(self.positions, position)
        self.positions.insert(i, position)
        self.event_ids.insert(i, event_id)
        if len(self.positions) > self.MAX:
            drop = len(self.positions) - self.MAX
            self.covered_after = self.positions[drop - 1]
            del self.positions[:drop]
            del self.event_ids[:drop]

    def last_at_or_before(self, position: int) -> str | None:
        """The room's last event at or before ``position`` when this window holds it
        (every event above ``covered_after`` is here), else None: unknown."""
        i = bisect.bisect_right(self.positions, position)
        return self.event_ids[i - 1] if i > 0 else None

    def between(self, after: int, up_to: int | None) -> list[str]:
        """Event ids in (after, up_to], oldest first."""
        lo = bisect.bisect_right(self.positions, after)
        hi = len(self.positions) if up_to is None else bisect.bisect_right(self.positions, up_to)
        return self.event_ids[lo:hi]


def _type_matches(patterns: list[str], value: str) -> bool:
    return any(fnmatch.fnmatchcase(value, p) if "*" in p else p == value for p in patterns)


_EVENT_COLS = (
    "e.event_id, e.json, r.room_version, e.stream_ordering, e.rejected_reason, e.outlier, e.soft_failed,"
    " e.txn_id, e.device_id, e.room_id, e.state_group"
)


def _row_to_event(row: tuple) -> Event:
    return Event(
        event_id=row[0],
        pdu=json.loads(row[1]),
        room_version=row[2],
        stream_ordering=row[3],
        rejected_reason=row[4],
        outlier=bool(row[5]),
        soft_failed=bool(row[6]),
        txn_id=row[7],
        device_id=row[8],
        room=row[9],
        state_group=row[10],
    )


class EventsStore:
    db: Database
    # DataStore's, and other stores' (SearchStore, SlidingSyncStore) that a persist updates.
    membership_changes: StreamChangeCache
    room_member_changes: StreamChangeCache
    _update_search_index_txn: Callable[[Txn, PersistBatch], None]
    _update_room_activity_txn: Callable[[Txn, PersistBatch], None]
    _room_activity_persisted: Callable[[PersistBatch], None]

    def _init_event_caches(self) -> None:
        self._event_cache: LruCache[str, Event] = LruCache(
            EVENT_CACHE_ENTRIES, max_bytes=EVENT_CACHE_BYTES, sizeof=event_size
        )
        self._state_group_cache: LruCache[int, StateMap] = LruCache(
            STATE_GROUP_CACHE_ENTRIES, max_bytes=STATE_GROUP_CACHE_BYTES, sizeof=state_map_size
        )
        # Events that something relates to, among those persisted since start-up; events at
        # or before relations_floor (older, or backfilled with negative positions) may have
        # relations we have not seen, and are looked up.
        self.relation_targets: set[str] = set()
        self.relations_floor = 2**62
        # Least recently written room first; max_recent_events events in all.
        self._recent: OrderedDict[str, RecentRoomEvents] = OrderedDict()
        self._recent_events = 0
        self.max_recent_events = MAX_RECENT_EVENTS
        # Events above this position were all persisted since start-up (set at start), or
        # since the last window was dropped: a window made later covers no earlier event.
        self.recent_floor = 2**62

    # -- writing -------------------------------------------------------------

    async def persist_batch(self, batch: PersistBatch) -> None:
        await self.db.write(self._persist_batch_txn, batch, name="persist_events")
        self._room_activity_persisted(batch)
        for ev in batch.events:
            self._event_cache.put(ev.event_id, ev)
        for m in batch.local_memberships:
            self.membership_changes.mark(m.user_id, m.stream_ordering)
        for ev in batch.events:
            rel = ev.relation()
            if rel is not None:
                self.relation_targets.add(rel[0])
            if ev.stream_ordering > 0 and not ev.outlier and not ev.rejected_reason and not ev.soft_failed:
                recent = self._recent.get(ev.room_id)
                if recent is None:
                    recent = self._recent[ev.room_id] = RecentRoomEvents(self.recent_floor)
                else:
                    self._recent.move_to_end(ev.room_id)
                held = len(recent.positions)
                recent.add(ev.stream_ordering, ev.event_id)
                self._recent_events += len(recent.positions) - held
        self._drop_old_recent_windows()
        if len(self.relation_targets) > 200_000:
            # Bound the memory: forget, and look up everything persisted so far instead.
            self.relation_targets.clear()
            self.relations_floor = max((e.stream_ordering for e in batch.events), default=self.relations_floor)
        for room_id, changes in batch.current_state.items():
            if any(t == "m.room.member" for t, _ in changes):
                top = max((e.stream_ordering for e in batch.events if e.room_id == room_id), default=0)
                self.room_member_changes.mark(room_id, top)

    def _persist_batch_txn(self, txn: Txn, batch: PersistBatch) -> None:
        for room_id, version, creator, ts in batch.new_rooms:
            txn.execute(
                "INSERT INTO rooms (room_id, room_version, creator, created_ts) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (room_id) DO NOTHING",
                (room_id, version, creator, ts),
            )
        for sg in batch.new_state_groups:
            txn.execute(
                "INSERT INTO state_groups (id, room_id, prev_group, chain_length) VALUES (?, ?, ?, ?)",
                (sg.id, sg.room_id, sg.prev_group, sg.chain_length),
            )
            txn.executemany(
                "INSERT INTO state_group_entries (state_group, type, state_key, event_id) VALUES (?, ?, ?, ?)",
                [(sg.id, t, sk, eid) for (t, sk), eid in sg.entries.items()],
            )
        rows = []
        edges: list[tuple[str, str]] = []
        auth: list[tuple[str, str]] = []
        redactions = []
        for ev in batch.events:
            rel = ev.relation()
            rows.append(
                (
                    ev.stream_ordering,
                    ev.depth,
                    ev.event_id,
                    ev.room_id,
                    ev.type,
                    ev.state_key,
                    ev.sender,
                    ev.origin_server_ts,
                    json.dumps(ev.pdu, separators=(",", ":"), ensure_ascii=False),
                    batch.state_groups_before.get(ev.event_id),
                    ev.outlier,
                    ev.rejected_reason,
                    ev.soft_failed,
                    rel[0] if rel else None,
                    rel[1] if rel else None,
                    ev.txn_id,
                    ev.device_id,
                )
            )
            edges.extend((ev.event_id, p) for p in ev.prev_event_ids)
            auth.extend((ev.event_id, a) for a in ev.auth_event_ids)
            if ev.type == "m.room.redaction" and ev.redacts and not ev.rejected_reason:
                redactions.append((ev.redacts, ev.event_id))
        txn.executemany(
            "INSERT INTO events (stream_ordering, topological_ordering, event_id, room_id, type, state_key, sender,"
            " origin_server_ts, json, state_group, outlier, rejected_reason, soft_failed, relates_to, rel_type,"
            " txn_id, device_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        txn.executemany("INSERT INTO event_edges (event_id, prev_event_id) VALUES (?, ?) ON CONFLICT DO NOTHING", edges)
        txn.executemany("INSERT INTO event_auth (event_id, auth_event_id) VALUES (?, ?) ON CONFLICT DO NOTHING", auth)
        txn.executemany("INSERT INTO redactions (redacts, event_id) VALUES (?, ?) ON CONFLICT DO NOTHING", redactions)
        for room_id, changes in batch.current_state.items():
            for (t, sk), value in changes.items():
                if value is None:
                    txn.execute(
                        "DELETE FROM current_state WHERE room_id = ? AND type = ? AND state_key = ?", (room_id, t, sk)
                    )
                else:
                    txn.upsert(
                        "current_state",
                        {"room_id": room_id, "type": t, "state_key": sk},
                        {"event_id": value[0], "membership": value[1]},
                    )
        for room_id, extremities in batch.forward_extremities.items():
            txn.execute("DELETE FROM forward_extremities WHERE room_id = ?", (room_id,))
            txn.executemany(
                "INSERT INTO forward_extremities (room_id, event_id) VALUES (?, ?)",
                [(room_id, e) for e in sorted(extremities)],
            )
        for m in batch.local_memberships:
            txn.upsert(
                "local_memberships",
                {"user_id": m.user_id, "room_id": m.room_id},
                {"membership": m.membership, "event_id": m.event_id, "stream_ordering": m.stream_ordering, "forgotten": False},
            )
        txn.executemany(
            "INSERT INTO event_txn_ids (room_id, user_id, device_id, txn_id, event_id, inserted_ts)"
            " VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            batch.txn_ids,
        )
        # The full-text index (storage/search.py) changes with the events, in this transaction.
        self._update_search_index_txn(txn, batch)
        # So do each room's latest positions (storage/sliding_sync.py).
        self._update_room_activity_txn(txn, batch)

    # -- reading events ------------------------------------------------------

    async def get_events(self, event_ids: Iterable[str], allow_rejected: bool = False) -> dict[str, Event]:
        """Events by id (missing ones are absent from the result), redaction status filled in."""
        result: dict[str, Event] = {}
        missing = []
        for eid in event_ids:
            ev = self._event_cache.fetch(eid)
            if ev is not None:
                result[eid] = ev
            else:
                missing.append(eid)
        if missing:
            fetched = await self.db.read(self._get_events_txn, missing, name="get_events")
            for ev in fetched:
                self._event_cache.put(ev.event_id, ev)
                result[ev.event_id] = ev
        if not allow_rejected:
            result = {k: v for k, v in result.items() if not v.rejected_reason}
        return result

    def _get_events_txn(self, txn: Txn, event_ids: list[str]) -> list[Event]:
        out: list[Event] = []
        for i in range(0, len(event_ids), 500):
            chunk = event_ids[i : i + 500]
            rows = txn.select_all(
                f"SELECT {_EVENT_COLS} FROM events e JOIN rooms r ON r.room_id = e.room_id"
                f" WHERE e.event_id IN ({txn.in_list(chunk)})",
                chunk,
            )
            events = [_row_to_event(r) for r in rows]
            redactions = txn.select_all(
                f"SELECT redacts, event_id FROM redactions WHERE redacts IN ({txn.in_list(chunk)})", chunk
            )
            redacted: dict[str, str] = {}
            for target, redaction_id in redactions:
                redacted.setdefault(target, redaction_id)
            for ev in events:
                ev.redacted_by = redacted.get(ev.event_id)
            out.extend(events)
        return out

    async def get_event(self, event_id: str, allow_rejected: bool = False) -> Event | None:
        return (await self.get_events([event_id], allow_rejected)).get(event_id)

    def _drop_old_recent_windows(self) -> None:
        while self._recent_events > self.max_recent_events and len(self._recent) > 1:
            _, window = self._recent.popitem(last=False)
            self._recent_events -= len(window.positions)
            if window.positions:
                # The room's next window must not claim the events this one held.
                self.recent_floor = max(self.recent_floor, window.positions[-1])

    def forget_room_events(self, room_id: str, event_ids: Iterable[str]) -> None:
        """After a room is purged (storage/admin.py): its events leave the caches."""
        window = self._recent.pop(room_id, None)
        if window is not None:
            self._recent_events -= len(window.positions)
            if window.positions:
                self.recent_floor = max(self.recent_floor, window.positions[-1])
        for event_id in event_ids:
            self._event_cache.pop(event_id)

    def mark_redacted(self, target_id: str, redaction_id: str) -> None:
        ev = self._event_cache.fetch(target_id)
        if ev is not None and ev.redacted_by is None:
            ev.redacted_by = redaction_id

    async def have_events(self, event_ids: Iterable[str]) -> set[str]:
        ids = list(event_ids)
        known = {e for e in ids if e in self._event_cache}
        rest = [e for e in ids if e not in known]
        if rest:

            def txn_fn(txn: Txn) -> set[str]:
                return {
                    r[0]
                    for r in txn.select_all(
                        f"SELECT event_id FROM events WHERE event_id IN ({txn.in_list(rest)})", rest
                    )
                }

            known |= await self.db.read(txn_fn, name="have_events")
        return known

    async def get_event_id_for_txn(
        self, room_id: str, user_id: str, device_id: str, txn_id: str, sent_after: int = 0
    ) -> str | None:
        """The event a send with this transaction id made, if it was sent after ``sent_after`` (ms)."""
        return await self.db.read(
            lambda txn: txn.select_value(
                "SELECT event_id FROM event_txn_ids WHERE room_id = ? AND user_id = ? AND device_id = ? AND txn_id = ?"
                " AND inserted_ts >= ?",
                (room_id, user_id, device_id, txn_id, sent_after),
            ),
            name="get_txn_id",
        )

    async def prune_event_txn_ids(self, sent_before: int) -> int:
        """Forgets the transaction ids of sends older than ``sent_before`` (ms); how many."""

        def txn_fn(txn: Txn) -> int:
            txn.execute("DELETE FROM event_txn_ids WHERE inserted_ts < ?", (sent_before,))
            return int(txn.rowcount)

        return await self.db.write(txn_fn, name="prune_txn_ids")

    async def get_devices_with_txns(self) -> set[tuple[str, str]]:
        """(user, device) pairs with stored send transaction ids (read once at start)."""
        return await self.db.read(
            lambda txn: {(r[0], r[1]) for r in txn.select_all("SELECT DISTINCT user_id, device_id FROM event_txn_ids")},
            name="devices_with_txns",
        )

    async def get_state_group_for_event(self, event_id: str) -> int | None:
        return await self.db.read(
            lambda txn: txn.select_value("SELECT state_group FROM events WHERE event_id = ?", (event_id,)),
            name="state_group_for_event",
        )

    async def get_room_events(
        self,
        room_id: str,
        *,
        after: int | None = None,
        up_to: int | None = None,
        limit: int,
        newest_first: bool = True,
        types: list[str] | None = None,
        not_types: list[str] | None = None,
        senders: list[str] | None = None,
        not_senders: list[str] | None = None,
        contains_url: bool | None = None,
    ) -> list[Event]:
        """Events of the room's live timeline (positive stream positions) in (after, up_to]."""
        recent = self._recent.get(room_id)
        if recent is not None and after is not None and after >= recent.covered_after and contains_url is None:
            ids = recent.between(after, up_to)
            events = await self.get_events(ids)
            out = []
            for eid in ids if not newest_first else reversed(ids):
                ev = events.get(eid)
                if ev is None:
                    continue
                if types is not None and not _type_matches(types, ev.type):
                    continue
                if not_types and _type_matches(not_types, ev.type):
                    continue
                if senders is not None and ev.sender not in senders:
                    continue
                if not_senders and ev.sender in not_senders:
                    continue
                out.append(ev)
                if len(out) >= limit:
                    break
            return out

        def txn_fn(txn: Txn) -> list[str]:
            clauses = ["room_id = ?", "NOT outlier", "rejected_reason IS NULL", "NOT soft_failed"]
            args: list[Any] = [room_id]
            if after is not None:
                clauses.append("stream_ordering > ?")
                args.append(after)
            if up_to is not None:
                clauses.append("stream_ordering <= ?")
                args.append(up_to)
            _filter_clauses(clauses, args, types, not_types, senders, not_senders, contains_url)
            order = "DESC" if newest_first else "ASC"
            return [
                r[0]
                for r in txn.select_all(
                    f"SELECT event_id FROM events WHERE {' AND '.join(clauses)}"
                    f" ORDER BY stream_ordering {order} LIMIT ?",
                    args + [limit],
                )
            ]

        ids = await self.db.read(txn_fn, name="get_room_events")
        events = await self.get_events(ids)
        return [events[i] for i in ids if i in events]

    async def get_last_room_event_id(self, room_id: str, position: int) -> str | None:
        """The id of the room's last live-timeline event at or before a stream position
        (what a /sync token saw last), from memory when the room's window covers it."""
        recent = self._recent.get(room_id)
        if recent is not None:
            found = recent.last_at_or_before(position)
            if found is not None:
                return found
        events = await self.get_room_events(room_id, up_to=position, limit=1)
        return events[0].event_id if events else None

    async def get_event_id_for_timestamp(self, room_id: str, ts: int, direction: str) -> str | None:
        """The room's event closest to ``ts`` (inclusive) going forwards ("f") or backwards
        ("b"), as Synapse picks it: by timestamp, then by depth and arrival for events of
        the same timestamp. Outliers and rejected events are not in the timeline."""
        op, order = ("<=", "DESC") if direction == "b" else (">=", "ASC")
        return await self.db.read(
            lambda txn: txn.select_value(
                f"SELECT event_id FROM events WHERE room_id = ? AND origin_server_ts {op} ?"
                " AND NOT outlier AND rejected_reason IS NULL"
                f" ORDER BY origin_server_ts {order}, topological_ordering {order}, stream_ordering {order} LIMIT 1",
                (room_id, ts),
            ),
            name="event_id_for_timestamp",
        )

    async def paginate_room_events(
        self,
        room_id: str,
        from_key: tuple[int, int] | int,
        direction: str,
        limit: int,
        to_key: tuple[int, int] | None = None,
        **filters: Any,
    ) -> list[Event]:
        """/messages order: by (depth, stream) so backfilled history interleaves correctly.

        A (depth, stream) ``from_key`` is exclusive of events already returned: backwards
        returns events strictly before it, forwards strictly after. A stream position
        (an int: a sync token) bounds by stream alone, as Synapse's stream tokens do:
        backwards every event at or before it, forwards every event after it, still in
        (depth, stream) order. (Turned into a (depth, stream) key it would cut off, on a
        forked room, events of greater depth that arrived earlier.)"""

        def txn_fn(txn: Txn) -> list[str]:
            clauses = ["room_id = ?", "NOT outlier", "rejected_reason IS NULL", "NOT soft_failed"]
            args: list[Any] = [room_id]
            order = "DESC" if direction == "b" else "ASC"
            if isinstance(from_key, int):
                clauses.append("stream_ordering <= ?" if direction == "b" else "stream_ordering > ?")
                args.append(from_key)
            else:
                topo, stream = from_key
                if direction == "b":
                    clauses.append("(topological_ordering < ? OR (topological_ordering = ? AND stream_ordering < ?))")
                else:
                    clauses.append("(topological_ordering > ? OR (topological_ordering = ? AND stream_ordering > ?))")
                args += [topo, topo, stream]
            if to_key is not None:
                ttopo, tstream = to_key
                if direction == "b":
                    clauses.append(
                        "(topological_ordering > ? OR (topological_ordering = ? AND stream_ordering >= ?))"
                    )
                else:
                    clauses.append(
                        "(topological_ordering < ? OR (topological_ordering = ? AND stream_ordering <= ?))"
                    )
                args += [ttopo, ttopo, tstream]
            _filter_clauses(clauses, args, **filters)
            return [
                r[0]
                for r in txn.select_all(
                    f"SELECT event_id FROM events WHERE {' AND '.join(clauses)}"
                    f" ORDER BY topological_ordering {order}, stream_ordering {order} LIMIT ?",
                    args + [limit],
                )
            ]

        ids = await self.db.read(txn_fn, name="paginate_room_events")
        events = await self.get_events(ids)
        return [events[i] for i in ids if i in events]

    async def get_topological_key(self, event_id: str) -> tuple[int, int] | None:
        def txn_fn(txn: Txn) -> tuple[int, int] | None:
            row = txn.select_one(
                "SELECT topological_ordering, stream_ordering FROM events WHERE event_id = ?", (event_id,)
            )
            return (row[0], row[1]) if row else None

        return await self.db.read(txn_fn, name="topo_key")

    async def get_topological_key_at_stream(self, room_id: str, stream: int) -> tuple[int, int]:
        """The (depth, stream) key of the latest event at or before a stream position."""

        def txn_fn(txn: Txn) -> tuple[int, int]:
            row = txn.select_one(
                "SELECT topological_ordering, stream_ordering FROM events WHERE room_id = ? AND stream_ordering <= ?"
                " AND NOT outlier ORDER BY stream_ordering DESC LIMIT 1",
                (room_id, stream),
            )
            return (row[0], row[1] + 1) if row else (0, 0)

        return await self.db.read(txn_fn, name="topo_key_at_stream")

    async def get_relations(
        self,
        event_id: str,
        room_id: str,
        rel_type: str | None = None,
        event_type: str | None = None,
        limit: int = 50,
        from_stream: int | None = None,
        direction: str = "b",
        recurse: bool = False,
    ) -> list[Event]:
        """Events of ``room_id`` relating to ``event_id`` that count (see _COUNTED_RELATION),
        newest first (``direction`` "b") or oldest first, after ``from_stream``. With
        ``recurse`` (MSC3981), also the events relating to those, five levels down as
        Synapse's query goes (it advertises three), the filters applying at every level."""

        def txn_fn(txn: Txn) -> list[str]:
            if recurse:
                source = (
                    "WITH RECURSIVE related (event_id, depth) AS ("
                    f" SELECT c.event_id, 0 FROM events c {_COUNTED_RELATION} AND c.relates_to = ? AND c.room_id = ?"
                    " UNION ALL SELECT c.event_id, r.depth + 1 FROM related r"
                    f" JOIN events c ON c.relates_to = r.event_id {_COUNTED_RELATION}"
                    f" AND c.room_id = ? AND r.depth < {RELATION_RECURSION_LEVELS - 1})"
                    " SELECT c.event_id FROM related r JOIN events c ON c.event_id = r.event_id WHERE"
                )
                clauses: list[str] = []
                args: list[Any] = [event_id, room_id, room_id]
            else:
                source = f"SELECT c.event_id FROM events c {_COUNTED_RELATION} AND"
                clauses = ["c.relates_to = ?", "c.room_id = ?"]
                args = [event_id, room_id]
            if rel_type:
                clauses.append("c.rel_type = ?")
                args.append(rel_type)
            if event_type:
                clauses.append("c.type = ?")
                args.append(event_type)
            if from_stream is not None:
                clauses.append("c.stream_ordering < ?" if direction == "b" else "c.stream_ordering > ?")
                args.append(from_stream)
            order = "DESC" if direction == "b" else "ASC"
            return [
                r[0]
                for r in txn.select_all(
                    f"{source} {' AND '.join(clauses or ['TRUE'])}"
                    f" ORDER BY c.stream_ordering {order} LIMIT ?",
                    args + [limit],
                )
            ]

        ids = await self.db.read(txn_fn, name="get_relations")
        events = await self.get_events(ids)
        return [events[i] for i in ids if i in events]

    def may_have_relations(self, event: Event) -> bool:
        """False only when no event relating to this one can exist: it was persisted after
        start-up (so every relation to it went through ``relation_targets``) and has none."""
        return event.stream_ordering <= self.relations_floor or event.event_id in self.relation_targets

    async def get_relation_summaries(
        self, targets: dict[str, str], rel_types: tuple[str, ...] = BUNDLED_REL_TYPES
    ) -> dict[str, list[RelatedEvent]]:
        """For each event (id -> its room), the events relating to it that count (see
        _COUNTED_RELATION), in topological order (Synapse's order for the latest thread
        event)."""
        if not targets:
            return {}
        ids = list(targets)
        types = list(rel_types)

        def txn_fn(txn: Txn) -> dict[str, list[RelatedEvent]]:
            out: dict[str, list[RelatedEvent]] = {}
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                rows = txn.select_all(
                    # the parents' rooms are known: compared below rather than looked up per row
                    f"SELECT {_RELATED_COLS} FROM events c {_IN_TIMELINE}"
                    f" AND c.relates_to IN ({txn.in_list(chunk)}) AND c.rel_type IN ({txn.in_list(types)})"
                    " ORDER BY c.topological_ordering, c.stream_ordering",
                    chunk + types,
                )
                for rel in map(RelatedEvent._make, rows):
                    if rel.room_id == targets[rel.relates_to]:
                        out.setdefault(rel.relates_to, []).append(rel)
            return out

        return await self.db.read(txn_fn, name="relation_summaries")

    async def event_is_target_of_relation(self, event_id: str) -> bool:
        """Whether some stored, non-rejected event relates to this one (Synapse lets a
        client relate to an event it does not hold when others already do)."""
        return bool(
            await self.db.read(
                lambda txn: txn.select_value(
                    "SELECT 1 FROM events WHERE relates_to = ? AND rejected_reason IS NULL LIMIT 1", (event_id,)
                ),
                name="is_relation_target",
            )
        )

    async def get_annotations_by(self, event_id: str, event_type: str, sender: str) -> list[Event]:
        """The sender's annotations of an event with that event type, unredacted (to refuse
        the same reaction twice, as Synapse does; the key is in the content)."""

        def txn_fn(txn: Txn) -> list[str]:
            return [
                r[0]
                for r in txn.select_all(
                    "SELECT c.event_id FROM events c WHERE c.relates_to = ? AND c.rel_type = 'm.annotation'"
                    " AND c.type = ? AND c.sender = ? AND c.rejected_reason IS NULL"
                    " AND NOT EXISTS (SELECT 1 FROM redactions x WHERE x.redacts = c.event_id)",
                    (event_id, event_type, sender),
                )
            ]

        ids = await self.db.read(txn_fn, name="annotations_by")
        return list((await self.get_events(ids)).values())

    # -- state ---------------------------------------------------------------

    async def get_state_group(self, group: int) -> StateMap:
        cached = self._state_group_cache.fetch(group)
        if cached is not None:
            return cached
        state = await self.db.read(self._get_state_group_txn, group, name="get_state_group")
        self._state_group_cache.put(group, state)
        return state

    async def get_state_groups(self, groups: Iterable[int]) -> dict[int, StateMap]:
        """Several snapshots at once: those not cached are read in one transaction (e.g. the
        snapshots of every event on a page, for history visibility)."""
        out: dict[int, StateMap] = {}
        missing = []
        for group in set(groups):
            cached = self._state_group_cache.fetch(group)
            if cached is not None:
                out[group] = cached
            else:
                missing.append(group)
        if missing:

            def txn_fn(txn: Txn) -> dict[int, StateMap]:
                # Oldest first: a later snapshot's chain often stops at an earlier one.
                read: dict[int, StateMap] = {}
                for group in sorted(missing):
                    read[group] = self._get_state_group_txn(txn, group, read)
                return read

            for group, state in (await self.db.read(txn_fn, name="get_state_groups")).items():
                self._state_group_cache.put(group, state)
                out[group] = state
        return out

    def cache_state_group(self, group: int, state: StateMap) -> None:
        self._state_group_cache.put(group, state)

    def _get_state_group_txn(self, txn: Txn, group: int, known: dict[int, StateMap] | None = None) -> StateMap:
        chain = []
        current: int | None = group
        while current is not None:
            cached = known.get(current) if known else None
            if cached is None:
                cached = self._state_group_cache.get(current)
            if cached is not None:
                base = dict(cached)
                break
            chain.append(current)
            current = txn.select_value("SELECT prev_group FROM state_groups WHERE id = ?", (current,))
        else:
            base = {}
        for g in reversed(chain):
            for t, sk, eid in txn.select_all(
                "SELECT type, state_key, event_id FROM state_group_entries WHERE state_group = ?", (g,)
            ):
                if eid is None:
                    base.pop((t, sk), None)
                else:
                    base[(t, sk)] = eid
        return base

    async def get_state_group_chain_length(self, group: int) -> int:
        return await self.db.read(
            lambda txn: txn.select_value("SELECT chain_length FROM state_groups WHERE id = ?", (group,), 0),
            name="chain_length",
        )

    async def get_current_state_ids(self, room_id: str) -> StateMap:
        return await self.db.read(
            lambda txn: {
                (t, sk): eid
                for t, sk, eid in txn.select_all(
                    "SELECT type, state_key, event_id FROM current_state WHERE room_id = ?", (room_id,)
                )
            },
            name="current_state",
        )

    async def get_forward_extremities(self, room_id: str) -> set[str]:
        return await self.db.read(
            lambda txn: {
                r[0] for r in txn.select_all("SELECT event_id FROM forward_extremities WHERE room_id = ?", (room_id,))
            },
            name="forward_extremities",
        )

    async def get_latest_state_group(self, room_id: str) -> tuple[int | None, int]:
        """The newest snapshot of the room and the depth of its latest event."""

        def txn_fn(txn: Txn) -> tuple[int | None, int]:
            depth = txn.select_value(
                "SELECT MAX(topological_ordering) FROM events WHERE room_id = ? AND NOT outlier", (room_id,), 0
            )
            return txn.select_value("SELECT MAX(id) FROM state_groups WHERE room_id = ?", (room_id,)), depth or 0

        return await self.db.read(txn_fn, name="latest_state_group")

    async def get_max_ids(self) -> dict[str, int]:
        """Counters restored at start: stream positions and snapshot ids."""

        def txn_fn(txn: Txn) -> dict[str, int]:
            stream = 0
            for table, col in (
                ("events", "stream_ordering"),
                ("account_data", "stream_id"),
                ("receipts", "stream_id"),
                ("to_device_messages", "stream_id"),
                ("presence", "stream_id"),
                ("device_list_changes", "stream_id"),
                ("local_memberships", "stream_ordering"),
            ):
                stream = max(stream, txn.select_value(f"SELECT MAX({col}) FROM {table}", (), 0) or 0)
            return {
                "stream": stream,
                "min_stream": txn.select_value("SELECT MIN(stream_ordering) FROM events", (), 0) or 0,
                "state_group": txn.select_value("SELECT MAX(id) FROM state_groups", (), 0) or 0,
            }

        return await self.db.read(txn_fn, name="max_ids")

    async def get_room_versions(self, room_ids: list[str]) -> dict[str, str]:
        def txn_fn(txn: Txn) -> dict[str, str]:
            return dict(
                txn.select_all(
                    f"SELECT room_id, room_version FROM rooms WHERE room_id IN ({txn.in_list(room_ids)})", room_ids
                )
            )

        return await self.db.read(txn_fn, name="room_versions")


def _filter_clauses(
    clauses: list[str],
    args: list[Any],
    types: list[str] | None = None,
    not_types: list[str] | None = None,
    senders: list[str] | None = None,
    not_senders: list[str] | None = None,
    contains_url: bool | None = None,
) -> None:
    def like_or_eq(values: list[str]) -> str:
        parts = []
        for v in values:
            if "*" in v:
                parts.append("type LIKE ? ESCAPE '\\'")
                args.append(v.replace("%", "").replace("_", "\\_").replace("*", "%"))
            else:
                parts.append("type = ?")
                args.append(v)
        return "(" + " OR ".join(parts) + ")"

    if types is not None:
        clauses.append(like_or_eq(types) if types else "1 = 0")
    if not_types:
        clauses.append("NOT " + like_or_eq(not_types))
    if senders is not None:
        clauses.append(f"sender IN ({','.join('?' * len(senders))})" if senders else "1 = 0")
        args.extend(senders)
    if not_senders:
        clauses.append(f"sender NOT IN ({','.join('?' * len(not_senders))})")
        args.extend(not_senders)
    if contains_url is True:
        clauses.append("json LIKE ?")
        args.append('%"url":%')


class ThreadStore:
    db: Database

    async def get_thread_roots(
        self, room_id: str, limit: int, before_stream: int | None, up_to_stream: int | None = None
    ) -> list[tuple[str, int]]:
        """Thread roots of the room by latest activity: (root event id, latest reply position).

        Only replies that count (see _COUNTED_RELATION: the root is in the same room) make a
        thread; with ``up_to_stream``, only replies at or before that position (what a user
        who left saw)."""

        def txn_fn(txn: Txn) -> list[tuple[str, int]]:
            args: list[Any] = [room_id]
            bound = ""
            if up_to_stream is not None:
                bound = "AND c.stream_ordering <= ?"
                args.append(up_to_stream)
            args.append(room_id)
            clause = ""
            if before_stream is not None:
                clause = "AND latest < ?"
                args.append(before_stream)
            # The root's room is checked once per thread rather than per reply.
            return [
                (r[0], r[1])
                for r in txn.select_all(
                    "SELECT relates_to, latest FROM (SELECT c.relates_to, MAX(c.stream_ordering) AS latest"
                    f" FROM events c {_IN_TIMELINE} AND c.room_id = ? AND c.rel_type = 'm.thread' {bound}"
                    " GROUP BY c.relates_to) t"
                    " WHERE EXISTS (SELECT 1 FROM events p WHERE p.event_id = t.relates_to AND p.room_id = ?)"
                    f" {clause} ORDER BY latest DESC LIMIT ?",
                    args + [limit],
                )
            ]

        return await self.db.read(txn_fn, name="thread_roots")

    async def get_threads_participated(self, root_ids: list[str], user_id: str) -> set[str]:
        """The roots among ``root_ids`` with a counted thread reply from ``user_id``."""
        if not root_ids:
            return set()

        def txn_fn(txn: Txn) -> set[str]:
            return {
                r[0]
                for r in txn.select_all(
                    f"SELECT DISTINCT c.relates_to FROM events c {_COUNTED_RELATION}"
                    f" AND c.relates_to IN ({txn.in_list(root_ids)}) AND c.rel_type = 'm.thread' AND c.sender = ?",
                    list(root_ids) + [user_id],
                )
            }

        return await self.db.read(txn_fn, name="threads_participated")
