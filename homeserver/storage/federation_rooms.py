"""Queries federation of rooms needs: auth chains, DAG walks for backfill and
get_missing_events, and persisting events received from other servers (which may
turn a stored outlier into a timeline event)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from homeserver.events.event import Event
from homeserver.protocol.identifiers import server_name_of
from homeserver.storage.database import Database, Txn
from homeserver.storage.events import PersistBatch


@dataclass
class RemotePersistBatch(PersistBatch):
    replace_outliers: list[str] = field(default_factory=list)
    unapplied_redactions: list[str] = field(default_factory=list)


class FederationRoomStore:
    db: Database
    persist_batch: Callable[[PersistBatch], Coroutine[Any, Any, None]]  # EventsStore's

    async def get_auth_chain_ids(self, event_ids: Iterable[str]) -> set[str]:
        """Every auth ancestor of the given events (excluding the events themselves
        unless one is an ancestor of another)."""
        start = list(dict.fromkeys(event_ids))

        def txn_fn(txn: Txn) -> set[str]:
            result: set[str] = set()
            frontier = start
            while frontier:
                nxt: list[str] = []
                for i in range(0, len(frontier), 500):
                    chunk = frontier[i : i + 500]
                    for (auth_id,) in txn.select_all(
                        f"SELECT DISTINCT auth_event_id FROM event_auth WHERE event_id IN ({txn.in_list(chunk)})",
                        chunk,
                    ):
                        if auth_id not in result:
                            result.add(auth_id)
                            nxt.append(auth_id)
                frontier = nxt
            return result

        return await self.db.read(txn_fn, name="auth_chain_ids")

    async def get_outlier_ids(self, event_ids: Iterable[str]) -> set[str]:
        ids = list(event_ids)
        if not ids:
            return set()

        def txn_fn(txn: Txn) -> set[str]:
            out: set[str] = set()
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                out.update(
                    r[0]
                    for r in txn.select_all(
                        f"SELECT event_id FROM events WHERE outlier AND event_id IN ({txn.in_list(chunk)})", chunk
                    )
                )
            return out

        return await self.db.read(txn_fn, name="outlier_ids")

    async def walk_prev_events(
        self, room_id: str, start: list[str], limit: int, stop: Iterable[str] = (), min_depth: int = 0
    ) -> list[str]:
        """Breadth-first walk backwards along prev_events from ``start`` (excluded),
        never past ``stop``; deepest first, at most ``limit`` ids of this room."""
        stop_set = set(stop)

        def txn_fn(txn: Txn) -> list[str]:
            seen = set(start) | stop_set
            found: list[tuple[int, str]] = []
            frontier = list(start)
            while frontier and len(found) < limit:
                chunk = frontier[:500]
                frontier = frontier[500:]
                rows = txn.select_all(
                    "SELECT e.event_id, e.topological_ordering FROM event_edges g"
                    " JOIN events e ON e.event_id = g.prev_event_id"
                    f" WHERE g.event_id IN ({txn.in_list(chunk)}) AND e.room_id = ?"
                    " AND e.topological_ordering >= ?",
                    chunk + [room_id, min_depth],
                )
                rows.sort(key=lambda r: -r[1])
                for eid, depth in rows:
                    if eid in seen:
                        continue
                    seen.add(eid)
                    found.append((depth, eid))
                    frontier.append(eid)
                    if len(found) >= limit:
                        break
            found.sort(key=lambda r: -r[0])
            return [eid for _, eid in found]

        return await self.db.read(txn_fn, name="walk_prev_events")

    async def get_oldest_events_in_room(self, room_id: str, limit: int = 5) -> list[str]:
        """Timeline events of the room whose prev_events we do not have as timeline
        events: where backfilling continues from."""

        def txn_fn(txn: Txn) -> list[str]:
            rows = txn.select_all(
                "SELECT e.event_id FROM events e WHERE e.room_id = ? AND NOT e.outlier"
                " AND EXISTS (SELECT 1 FROM event_edges g WHERE g.event_id = e.event_id AND NOT EXISTS"
                "   (SELECT 1 FROM events p WHERE p.event_id = g.prev_event_id AND NOT p.outlier))"
                " ORDER BY e.topological_ordering ASC LIMIT ?",
                (room_id, limit),
            )
            return [r[0] for r in rows]

        return await self.db.read(txn_fn, name="oldest_events")

    async def persist_remote_batch(
        self, batch: PersistBatch, deoutliers: list[Event], unapplied_redactions: Iterable[str] = ()
    ) -> None:
        """persist_batch (same transaction, same in-memory caches afterwards), plus:
        stored outliers in ``deoutliers`` become timeline events (an event first received
        as part of a join's state and later as history), and redactions named in
        ``unapplied_redactions`` are stored without redacting anything (the redacter had
        neither the power nor the original sender's server)."""
        remote = RemotePersistBatch(**{f.name: getattr(batch, f.name) for f in fields(PersistBatch)})
        remote.events = list(batch.events) + list(deoutliers)
        remote.replace_outliers = [e.event_id for e in deoutliers]
        remote.unapplied_redactions = list(unapplied_redactions)
        await self.persist_batch(remote)

    def _persist_batch_txn(self, txn: Txn, batch: PersistBatch) -> None:
        # Comes before EventsStore in DataStore's bases: wraps its transaction.
        replace = batch.replace_outliers if isinstance(batch, RemotePersistBatch) else []
        for i in range(0, len(replace), 500):
            chunk = replace[i : i + 500]
            txn.execute(f"DELETE FROM events WHERE outlier AND event_id IN ({txn.in_list(chunk)})", chunk)
        super()._persist_batch_txn(txn, batch)  # type: ignore[misc]  # EventsStore's: next in DataStore's MRO
        unapplied = batch.unapplied_redactions if isinstance(batch, RemotePersistBatch) else []
        if unapplied:
            txn.execute(f"DELETE FROM redactions WHERE event_id IN ({txn.in_list(unapplied)})", unapplied)

    async def get_room_server_names(self, room_id: str) -> set[str]:
        def txn_fn(txn: Txn) -> set[str]:
            servers = {
                server_name_of(r[0])
                for r in txn.select_all(
                    "SELECT state_key FROM current_state WHERE room_id = ? AND type = 'm.room.member'"
                    " AND membership = 'join'",
                    (room_id,),
                )
            }
            servers.discard("")
            return servers

        return await self.db.read(txn_fn, name="room_servers")
