"""Persisting events, local and remote, and the one step that follows every commit.

Local events are staged one by one into a ``LocalBatch`` (stream position, state
snapshot as a delta against the previous one, current state, local memberships) and
written in one transaction (group commit). Remote events arrive already authorised by
the federation layer with the state before each (``RemoteEvent``); they are written the
same way with ``persist_remote_events``.

After a commit, for both: the room's in-memory state and the membership mirrors are
brought up to date, stream positions are released, redactions marked, the
``PersistedEventsListener``s run (push counts, user directory, federation fan-out;
wired in ``app.py``) and ``/sync`` is woken.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from prometheus_client import Counter

from homeserver.events.event import Event
from homeserver.handlers.room_events.room_cache import RoomCache, RoomInfo, Snapshot
from homeserver.storage.events import MAX_STATE_CHAIN, MembershipChange, NewStateGroup, PersistBatch, StateKey, StateMap
from homeserver.util.ids import now_ms, server_of

if TYPE_CHECKING:
    from homeserver.app import HomeServer

logger = logging.getLogger(__name__)

EVENTS_PERSISTED = Counter("wspr_events_persisted_total", "Events persisted", ["origin"])


class PersistedEventsListener(Protocol):
    def on_events_persisted(self, events: list[Event], room: RoomInfo) -> None:
        """New timeline events of ``room`` were committed (never backfilled history).
        Runs synchronously in the persister: schedule any slow work."""


class OutlierMembershipsListener(Protocol):
    def on_outlier_memberships(self, events: list[Event], room: RoomInfo) -> None:
        """Local users' memberships of a room this server is not in (invites and knocks
        from other servers, rejections) were committed as outliers: they have a live
        stream position but no place in a timeline, so ``on_events_persisted`` never
        sees them. Runs synchronously in the persister: schedule any slow work."""


@dataclass
class RemoteEvent:
    event: Event
    # the state before the event; None only for events whose state is unknown
    before: Snapshot | None


@dataclass
class LocalBatch:
    """Local events of one group commit: each is built on top of the room as the
    events before it leave it (state, snapshot, extremities, depth)."""

    state: StateMap
    state_group: int | None
    chain_length: int
    extremities: set[str]
    depth: int
    new_room: bool
    batch: PersistBatch = field(default_factory=PersistBatch)
    events: list[Event] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    # events of this batch, not yet in storage
    built: dict[str, Event] = field(default_factory=dict)


@dataclass
class _RemoteBatch:
    batch: PersistBatch = field(default_factory=PersistBatch)
    positions: list[int] = field(default_factory=list)
    timeline: list[Event] = field(default_factory=list)
    deoutliers: list[Event] = field(default_factory=list)
    # local members whose current membership changes
    changed_members: list[str] = field(default_factory=list)
    notify_users: set[str] = field(default_factory=set)


class EventPersister:
    def __init__(self, hs: HomeServer, cache: RoomCache) -> None:
        self.hs = hs
        self.store = hs.store
        self.server_name = hs.config.server_name
        self.cache = cache
        self.listeners: list[PersistedEventsListener] = []
        self.outlier_membership_listeners: list[OutlierMembershipsListener] = []

    # -- local events ------------------------------------------------------------------

    def start_local_batch(self, room: RoomInfo) -> LocalBatch:
        return LocalBatch(
            state=dict(room.state),
            state_group=room.state_group,
            chain_length=room.chain_length,
            extremities=set(room.extremities),
            depth=room.depth,
            new_room=room.state_group is None,
        )

    def stage_local(self, room: RoomInfo, staged: LocalBatch, event: Event) -> None:
        """Adds an authorised event to the batch: its stream position, the snapshot before
        it, and what it changes (state, local memberships, extremities, depth)."""
        batch = staged.batch
        staged.built[event.event_id] = event
        pos = self.hs.streams.allocate()
        staged.positions.append(pos)
        event.stream_ordering = pos
        if staged.state_group is None and event.type == "m.room.create" and event.room_id != room.room_id:
            # v12: the room id is only known now; later events of the batch need it.
            self.cache.rename_room(room, event.room_id)
        if staged.state_group is not None:
            batch.state_groups_before[event.event_id] = staged.state_group
            event.state_group = staged.state_group
        if event.is_state:
            self._stage_local_state(staged, event, pos)
        staged.extremities = {event.event_id}
        staged.depth = event.depth
        batch.events.append(event)
        staged.events.append(event)
        if event.txn_id and event.device_id:
            batch.txn_ids.append((event.room_id, event.sender, event.device_id, event.txn_id, event.event_id, now_ms()))

    def _stage_local_state(self, staged: LocalBatch, event: Event, pos: int) -> None:
        batch = staged.batch
        key = event.state_pair
        staged.state[key] = event.event_id
        new_group = self.hs.state_group_ids.next()
        entries: dict[StateKey, str | None]
        if staged.state_group is None or staged.chain_length >= MAX_STATE_CHAIN:
            entries = dict(staged.state)
            prev, staged.chain_length = None, 0
        else:
            entries = {key: event.event_id}
            prev, staged.chain_length = staged.state_group, staged.chain_length + 1
        batch.new_state_groups.append(NewStateGroup(new_group, event.room_id, prev, staged.chain_length, entries))
        self.store.cache_state_group(new_group, dict(staged.state))
        if staged.state_group is None:
            batch.state_groups_before[event.event_id] = new_group
            event.state_group = new_group
        staged.state_group = new_group
        batch.current_state.setdefault(event.room_id, {})[key] = (event.event_id, event.membership)
        user_id = event.state_key or ""
        if event.type == "m.room.member" and server_of(user_id) == self.server_name:
            batch.local_memberships.append(
                MembershipChange(user_id, event.room_id, event.membership or "leave", event.event_id, pos)
            )

    async def commit_local(self, room: RoomInfo, staged: LocalBatch) -> None:
        """Writes the batch in one transaction, then runs the after-commit step. On
        failure the stream positions are released and the error raised."""
        batch = staged.batch
        if staged.new_room:
            batch.new_rooms.append((room.room_id, room.version.identifier, staged.events[0].sender, now_ms()))
        batch.forward_extremities[room.room_id] = staged.extremities
        try:
            await self.store.persist_batch(batch)
        except Exception:
            for pos in staged.positions:
                self.hs.streams.complete(pos)
            raise
        # Committed: make it the room's state.
        room.state = staged.state
        room.state_group = staged.state_group
        room.chain_length = staged.chain_length
        room.extremities = staged.extremities
        room.depth = staged.depth
        self._after_commit(room, staged.events, staged.events, staged.positions, "local", live=True)

    # -- remote events -------------------------------------------------------------------

    async def persist_remote_events(
        self,
        room: RoomInfo,
        events: list[RemoteEvent],
        *,
        new_state: Snapshot | None = None,
        extremities: set[str] | None = None,
        outliers: Iterable[Event] = (),
        backfilled: bool = False,
        new_room: bool = False,
        deoutlier: Iterable[str] = (),
        outlier_memberships: Iterable[Event] = (),
    ) -> None:
        """Persists events from other servers in one transaction.

        Call inside ``run_exclusive(room, ...)``. ``events`` are timeline events with the
        snapshot of the state before each (already authorised: rejected / soft-failed
        ones carry the flag). ``outliers`` are events without a place in the timeline
        (auth chains, a join's state, invites to rooms we are not in). ``new_state`` and
        ``extremities`` replace the room's current state and forward extremities.
        ``backfilled`` history takes negative stream positions so /sync never shows it
        as new, and runs no listeners (it is not new). ``deoutlier`` names events of
        ``events`` stored before as outliers. The federation fan-out listener forwards
        only our own users' events, so a remote event is never echoed back.
        ``outlier_memberships`` are outliers that are a local user's membership of a room
        we are not in (an invite, a knock, a rejected invite): /sync shows them.
        """
        staged = _RemoteBatch()
        outlier_memberships = list(outlier_memberships)
        self._stage_outlier_memberships(staged, room, outlier_memberships)
        self._stage_outliers(staged, outliers)
        self._stage_timeline(staged, room, events, set(deoutlier), backfilled)
        new_group = room.state_group
        if new_state is not None:
            new_group = await self._stage_new_state(staged, room, new_state)
        if extremities is not None:
            staged.batch.forward_extremities[room.room_id] = set(extremities)
        if new_room:
            self._stage_new_room(staged, room)
        try:
            unapplied = [
                e.event_id for e in staged.timeline if e.internal.get("redaction_not_applied") or e.soft_failed
            ]
            await self.store.persist_remote_batch(staged.batch, staged.deoutliers, unapplied)
        except Exception:
            for pos in staged.positions:
                self.hs.streams.complete(pos)
            raise
        if new_state is not None:
            room.state = dict(new_state.state)
            room.state_group = new_group
            room.chain_length = new_state.chain_length
        if extremities is not None:
            room.extremities = set(extremities)
        if not backfilled and staged.timeline:
            room.depth = max(room.depth, max(e.depth for e in staged.timeline))
        members: list[Event] = []
        if staged.changed_members:
            members = list((await self.store.get_events(staged.changed_members, allow_rejected=True)).values())
        self._after_commit(
            room, staged.timeline, members, staged.positions, "remote", live=not backfilled,
            notify_users=staged.notify_users,
        )
        if outlier_memberships and not backfilled:
            for listener in self.outlier_membership_listeners:
                try:
                    listener.on_outlier_memberships(outlier_memberships, room)
                except Exception:
                    logger.exception("listener of outlier memberships failed")

    def _stage_outlier_memberships(self, staged: _RemoteBatch, room: RoomInfo, events: Iterable[Event]) -> None:
        for ev in events:
            pos = self.hs.streams.allocate()
            staged.positions.append(pos)
            # A live position (outliers never enter timelines): /sync can show the
            # membership event itself, e.g. a rejected invite in the "leave" section.
            ev.stream_ordering = pos
            user = ev.state_key or ""
            staged.batch.local_memberships.append(
                MembershipChange(user, room.room_id, ev.membership or "leave", ev.event_id, pos)
            )
            staged.notify_users.add(user)

    def _stage_outliers(self, staged: _RemoteBatch, events: Iterable[Event]) -> None:
        for ev in events:
            ev.outlier = True
            if not ev.stream_ordering:
                ev.stream_ordering = self.hs.backfill_stream.next()
            staged.batch.events.append(ev)

    def _stage_timeline(
        self, staged: _RemoteBatch, room: RoomInfo, events: list[RemoteEvent], deoutlier: set[str], backfilled: bool
    ) -> None:
        for item in events:
            ev = item.event
            ev.outlier = False
            if backfilled:
                ev.stream_ordering = self.hs.backfill_stream.next()
            else:
                ev.stream_ordering = self.hs.streams.allocate()
                staged.positions.append(ev.stream_ordering)
            if item.before is not None:
                ev.state_group = self.ensure_group(item.before, room.room_id, staged.batch)
                staged.batch.state_groups_before[ev.event_id] = ev.state_group
            (staged.deoutliers if ev.event_id in deoutlier else staged.batch.events).append(ev)
            staged.timeline.append(ev)

    async def _stage_new_state(self, staged: _RemoteBatch, room: RoomInfo, new_state: Snapshot) -> int:
        """The room's new current state: its snapshot, the changed current_state rows and
        the local memberships they change. Returns the snapshot's group."""
        batch = staged.batch
        new_group = self.ensure_group(new_state, room.room_id, batch)
        old_state = room.state
        changed = {k for k, v in new_state.state.items() if old_state.get(k) != v}
        removed = {k for k in old_state if k not in new_state.state}
        known = {e.event_id: e for e in list(batch.events) + staged.deoutliers}
        need = [new_state.state[k] for k in changed if new_state.state[k] not in known]
        known.update(await self.store.get_events(need, allow_rejected=True))
        cs = batch.current_state.setdefault(room.room_id, {})
        positions = staged.positions
        last_pos = max(positions) if positions else self.hs.streams.allocate()
        if not positions:
            positions.append(last_pos)
        for key in changed:
            eid = new_state.state[key]
            ev = known.get(eid)
            cs[key] = (eid, ev.membership if ev is not None else None)
            if key[0] == "m.room.member" and server_of(key[1]) == self.server_name and ev is not None:
                pos = ev.stream_ordering if ev.stream_ordering > 0 and not ev.outlier else last_pos
                batch.local_memberships.append(MembershipChange(key[1], room.room_id, ev.membership or "leave", eid, pos))
                staged.changed_members.append(eid)
        for key in removed:
            cs[key] = None
        return new_group

    def _stage_new_room(self, staged: _RemoteBatch, room: RoomInfo) -> None:
        events = list(staged.batch.events) + staged.deoutliers
        create = next((e for e in events if e.type == "m.room.create" and e.state_key == ""), None)
        staged.batch.new_rooms.append((room.room_id, room.version.identifier, create.sender if create else "", now_ms()))

    def ensure_group(self, snap: Snapshot, room_id: str, batch: PersistBatch) -> int:
        """The state group holding ``snap``: written into ``batch`` as a delta against its
        base (or in full when the chain is long or there is no base) unless it exists."""
        if snap.group is not None:
            return snap.group
        base = snap.base
        if base is not None:
            base_group = self.ensure_group(base, room_id, batch)
            delta: dict[StateKey, str | None] = {k: v for k, v in snap.state.items() if base.state.get(k) != v}
            delta.update({k: None for k in base.state if k not in snap.state})
            # Once written the snapshot no longer needs its base: dropping the link keeps a
            # long run of state events from holding every earlier snapshot in memory.
            snap.base = None
            if not delta:
                snap.group, snap.chain_length = base_group, base.chain_length
                return base_group
            if base.chain_length < MAX_STATE_CHAIN:
                gid = self.hs.state_group_ids.next()
                batch.new_state_groups.append(NewStateGroup(gid, room_id, base_group, base.chain_length + 1, delta))
                snap.group, snap.chain_length = gid, base.chain_length + 1
                self.store.cache_state_group(gid, dict(snap.state))
                return gid
        gid = self.hs.state_group_ids.next()
        batch.new_state_groups.append(NewStateGroup(gid, room_id, None, 0, dict(snap.state)))
        snap.group, snap.chain_length = gid, 0
        self.store.cache_state_group(gid, dict(snap.state))
        return gid

    # -- after a commit (local and remote) ------------------------------------------------

    def _after_commit(
        self,
        room: RoomInfo,
        timeline: list[Event],
        members: list[Event],
        positions: list[int],
        origin: str,
        *,
        live: bool,
        notify_users: Iterable[str] = (),
    ) -> None:
        """``timeline``: the new timeline events; ``members``: membership events that may
        have changed a local user's current membership. The room's in-memory state is
        already the committed one."""
        self.cache.apply_memberships(room, members)
        if positions:
            self.cache.mark_room_changed(room.room_id, max(positions))
        for pos in positions:
            self.hs.streams.complete(pos)
        EVENTS_PERSISTED.labels(origin).inc(len(timeline))
        for ev in timeline:
            if (
                ev.type == "m.room.redaction" and ev.redacts and not ev.rejected_reason and not ev.soft_failed
                and not ev.internal.get("redaction_not_applied")
            ):
                self.store.mark_redacted(ev.redacts, ev.event_id)
        if not live:
            return
        if timeline:
            for listener in self.listeners:
                try:
                    listener.on_events_persisted(timeline, room)
                except Exception:
                    logger.exception("listener of persisted events failed")
        extra = set(notify_users)
        if timeline or members or extra:
            for ev in timeline if members is timeline else timeline + members:
                user_id = ev.state_key
                if ev.type == "m.room.member" and user_id and server_of(user_id) == self.server_name:
                    extra.add(user_id)
            self.hs.notifier.notify_room(room.room_id, extra)
