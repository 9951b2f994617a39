"""The road every local event takes: build → authorise → persist → notify.

Each room has an in-memory ``RoomInfo`` (version, current state ids, snapshot id,
forward extremities, depth, local members) so building and authorising an event needs
no database read. Sends to one room are queued and processed in batches: every event
of a batch is built on top of the previous one and the batch is persisted in a single
transaction (group commit), which is what keeps a busy room fast.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable

from prometheus_client import Counter
from twisted.internet import defer

from homeserver.events.event import Event
from homeserver.http.errors import BadJson, Forbidden, MatrixError, NotFound
from homeserver.protocol import auth_rules
from homeserver.protocol.canonical_json import check_canonical_json_values, encode_canonical_json
from homeserver.protocol.event_hashing import add_content_hash
from homeserver.protocol.event_ids import compute_event_id
from homeserver.protocol.room_versions import RoomVersion, get_room_version
from homeserver.protocol.signing import sign_event
from homeserver.storage.events import MAX_STATE_CHAIN, MembershipChange, NewStateGroup, PersistBatch, StateKey, StateMap
from homeserver.util.async_helpers import SharedResult
from homeserver.util.ids import now_ms, server_of

if TYPE_CHECKING:
    from homeserver.app import HomeServer

logger = logging.getLogger(__name__)

EVENTS_PERSISTED = Counter("wspr_events_persisted_total", "Events persisted", ["origin"])

MAX_PDU_SIZE = 65536
MAX_BATCH = 100
MAX_PREV_EVENTS = 10
MAX_REMEMBERED_TXNS = 1_000_000


@dataclass
class RoomInfo:
    room_id: str
    version: RoomVersion
    state: StateMap
    state_group: int | None
    chain_length: int
    extremities: set[str]
    depth: int
    joined_local: set[str] = field(default_factory=set)
    queue: list["_Pending"] = field(default_factory=list)
    processing: bool = False


@dataclass
class EventSpec:
    """What a local sender asks for; the pipeline fills in the rest."""

    type: str
    sender: str
    content: dict[str, Any]
    state_key: str | None = None
    redacts: str | None = None
    txn_id: str | None = None
    device_id: str | None = None
    # Precomputed fields for special events (e.g. a v12 create event has no room_id).
    extra: dict[str, Any] = field(default_factory=dict)
    # Runs after the event is authorised and before it is persisted, and may return a
    # replacement (a remote invite comes back countersigned by the invitee's server).
    before_persist: Callable[[Event], Awaitable[Event]] | None = None


def _check_no_nul(spec: EventSpec) -> None:
    """Type, state key and relation go into columns of their own, where PostgreSQL refuses
    NUL: one such event would fail the whole persist batch, other senders' events with it."""
    rel = spec.content.get("m.relates_to") if isinstance(spec.content, dict) else None
    columns = [spec.type, spec.state_key or ""]
    if isinstance(rel, dict):
        columns += [v for v in (rel.get("event_id"), rel.get("rel_type")) if isinstance(v, str)]
    if any("\x00" in c for c in columns):
        raise BadJson("Event type, state key and relation cannot contain NUL")


@dataclass
class _Pending:
    spec: EventSpec
    deferred: SharedResult[Event]
    check: Callable[[RoomInfo, StateMap], None] | None = None


PersistHook = Callable[[list[Event], RoomInfo], None]


class RoomEventPipeline:
    def __init__(self, hs: "HomeServer") -> None:
        self.hs = hs
        self.store = hs.store
        self.server_name = hs.config.server_name
        self._rooms: dict[str, RoomInfo] = {}
        self._loading: dict[str, SharedResult[RoomInfo | None]] = {}
        self._inflight_txns: dict[tuple[str, str, str], SharedResult[Event]] = {}
        # Transaction ids sent since start-up (they are also stored): a retried send is
        # answered from memory. Only devices that sent before start-up, or a memory that
        # overflowed, need the database lookup.
        self._sent_txns: dict[tuple[str, str, str], str] = {}
        self._devices_with_older_txns: set[tuple[str, str]] = set()
        self._sent_txns_complete = True
        self.persist_hooks: list[PersistHook] = []
        # local user -> rooms they are joined to (mirror of local_memberships)
        self.user_rooms: dict[str, set[str]] = {}
        # room -> stream position of its latest event; rooms absent may have changed
        self._room_latest: dict[str, int] = {}

    def room_changed_since(self, room_id: str, stream: int) -> bool:
        """Cheap pre-check for /sync: False only when the room surely has nothing new."""
        latest = self._room_latest.get(room_id)
        # Rooms not touched since start: we don't know, so look.
        return latest is None or latest > stream

    def mark_room_changed(self, room_id: str, stream: int) -> None:
        if stream > self._room_latest.get(room_id, 0):
            self._room_latest[room_id] = stream

    def _txn_lookup_needed(self, user_id: str, device_id: str) -> bool:
        return not self._sent_txns_complete or (user_id, device_id) in self._devices_with_older_txns

    def _remember_txn(self, key: tuple[str, str, str], event_id: str) -> None:
        self._sent_txns[key] = event_id
        if len(self._sent_txns) > MAX_REMEMBERED_TXNS:
            self._sent_txns.clear()
            self._sent_txns_complete = False

    async def load_local_joins(self) -> None:
        self._devices_with_older_txns = await self.store.get_devices_with_txns()
        for room_id, user_id in await self.store.get_all_local_joined():
            self.user_rooms.setdefault(user_id, set()).add(room_id)

    def local_users_in_room(self, room_id: str) -> set[str]:
        room = self._rooms.get(room_id)
        if room is not None:
            return room.joined_local
        return {u for u, rooms in self.user_rooms.items() if room_id in rooms}

    def joined_rooms(self, user_id: str) -> set[str]:
        return set(self.user_rooms.get(user_id, ()))

    # -- room info ------------------------------------------------------------

    async def get_room(self, room_id: str) -> RoomInfo | None:
        room = self._rooms.get(room_id)
        if room is not None:
            return room
        loading = self._loading.get(room_id)
        if loading is not None:
            return await loading.wait()
        d: SharedResult[RoomInfo | None] = SharedResult()
        self._loading[room_id] = d
        try:
            room = await self._load_room(room_id)
            if room is not None:
                self._rooms[room_id] = room
            d.callback(room)
            return room
        except BaseException as e:
            d.errback(e)
            raise
        finally:
            del self._loading[room_id]

    async def _load_room(self, room_id: str) -> RoomInfo | None:
        version_id = await self.store.get_room_version(room_id)
        if version_id is None:
            return None
        state = await self.store.get_current_state_ids(room_id)
        state_group, depth = await self.store.get_latest_state_group(room_id)
        chain = await self.store.get_state_group_chain_length(state_group) if state_group is not None else 0
        extremities = await self.store.get_forward_extremities(room_id)
        joined_local = {
            sk
            for (t, sk), _ in state.items()
            if t == "m.room.member" and server_of(sk) == self.server_name
        }
        members = await self.store.get_events([state[("m.room.member", u)] for u in joined_local])
        joined_local = {e.state_key for e in members.values() if e.membership == "join"}  # type: ignore[misc]
        return RoomInfo(
            room_id=room_id,
            version=get_room_version(version_id),
            state=state,
            state_group=state_group,
            chain_length=chain,
            extremities=extremities,
            depth=depth,
            joined_local=joined_local,
        )

    def register_new_room(self, room_id: str, version: RoomVersion) -> RoomInfo:
        room = RoomInfo(room_id, version, {}, None, 0, set(), 0)
        self._rooms[room_id] = room
        return room

    def forget_cached_room(self, room_id: str) -> None:
        self._rooms.pop(room_id, None)

    async def get_state_events(self, room_id: str, state: StateMap | None = None) -> dict[StateKey, Event]:
        if state is None:
            room = await self.get_room(room_id)
            if room is None:
                return {}
            state = room.state
        events = await self.store.get_events(state.values())
        return {k: events[eid] for k, eid in state.items() if eid in events}

    async def get_current_state_event(self, room_id: str, event_type: str, state_key: str = "") -> Event | None:
        room = await self.get_room(room_id)
        if room is None:
            return None
        eid = room.state.get((event_type, state_key))
        return await self.store.get_event(eid) if eid else None

    # -- sending --------------------------------------------------------------

    async def send(
        self,
        room_id: str,
        spec: EventSpec,
        check: Callable[[RoomInfo, StateMap], None] | None = None,
    ) -> Event:
        """Builds, authorises and persists one local event; idempotent per (sender, device, txn_id)."""
        txn_key = None
        if spec.txn_id is not None and spec.device_id is not None:
            txn_key = (spec.sender, spec.device_id, spec.txn_id)
            inflight = self._inflight_txns.get(txn_key)
            if inflight is not None:
                return await inflight.wait()
            existing = self._sent_txns.get(txn_key)
            if existing is None and self._txn_lookup_needed(spec.sender, spec.device_id):
                existing = await self.store.get_event_id_for_txn(*txn_key)
            if existing is not None:
                ev = await self.store.get_event(existing)
                if ev is not None:
                    return ev
        room = await self.get_room(room_id)
        if room is None:
            raise NotFound("Unknown room")
        d: SharedResult[Event] = SharedResult()
        if txn_key is not None:
            self._inflight_txns[txn_key] = d
        room.queue.append(_Pending(spec, d, check))
        if not room.processing:
            defer.ensureDeferred(self._process_queue(room))
        try:
            return await d.wait()
        finally:
            if txn_key is not None:
                self._inflight_txns.pop(txn_key, None)

    async def send_batch(self, room: RoomInfo, specs: list[EventSpec]) -> list[Event]:
        """Several events that must land together in order (room creation)."""
        shared = []
        for spec in specs:
            d: SharedResult[Event] = SharedResult()
            room.queue.append(_Pending(spec, d))
            shared.append(d)
        if not room.processing:
            defer.ensureDeferred(self._process_queue(room))
        return [await d.wait() for d in shared]

    async def _process_queue(self, room: RoomInfo) -> None:
        room.processing = True
        try:
            while room.queue:
                if isinstance(room.queue[0], _Exclusive):
                    # Work on remote events: runs alone, between batches of local sends.
                    job = room.queue.pop(0)
                    await job.run()  # type: ignore[union-attr]
                    continue
                n = 0
                while n < min(len(room.queue), MAX_BATCH) and not isinstance(room.queue[n], _Exclusive):
                    n += 1
                pending, room.queue = room.queue[:n], room.queue[n:]
                await self._process_batch(room, pending)  # type: ignore[arg-type]
        finally:
            room.processing = False

    async def _process_batch(self, room: RoomInfo, pending: list[_Pending]) -> None:
        streams = self.hs.streams
        state = dict(room.state)
        state_group = room.state_group
        chain_length = room.chain_length
        extremities = set(room.extremities)
        depth = room.depth
        batch = PersistBatch()
        accepted: list[tuple[_Pending, Event]] = []
        positions: list[int] = []
        new_room_id = room.room_id
        built: dict[str, Event] = {}  # events of this batch, not yet in storage
        # Changes to the snapshot made by this batch so far, relative to state_group.
        for item in pending:
            try:
                if item.check is not None:
                    item.check(room, state)
                event = await self._build_event(room, item.spec, state, extremities, depth, built)
                await self._authorise(room, event, state, built)
                if item.spec.before_persist is not None:
                    event = await item.spec.before_persist(event)
            except MatrixError as e:
                item.deferred.errback(e)
                continue
            except auth_rules.AuthError as e:
                item.deferred.errback(Forbidden(str(e)))
                continue
            except Exception as e:  # never leave a sender hanging
                logger.exception("failed to build event")
                item.deferred.errback(e)
                continue
            built[event.event_id] = event
            pos = streams.allocate()
            positions.append(pos)
            event.stream_ordering = pos
            if state_group is None and event.type == "m.room.create" and event.room_id != room.room_id:
                # v12: the room id is only known now; later events of the batch need it.
                self._rooms.pop(room.room_id, None)
                room.room_id = new_room_id = event.room_id
                self._rooms[new_room_id] = room
            if state_group is not None:
                batch.state_groups_before[event.event_id] = state_group
                event.state_group = state_group
            if event.is_state:
                key = event.state_pair
                state[key] = event.event_id
                new_group = self.hs.state_group_ids.next()
                if state_group is None or chain_length >= MAX_STATE_CHAIN:
                    entries: dict[StateKey, str | None] = dict(state)
                    prev, chain_length = None, 0
                else:
                    entries = {key: event.event_id}
                    prev, chain_length = state_group, chain_length + 1
                batch.new_state_groups.append(NewStateGroup(new_group, event.room_id, prev, chain_length, entries))
                self.store.cache_state_group(new_group, dict(state))
                if state_group is None:
                    batch.state_groups_before[event.event_id] = new_group
                    event.state_group = new_group
                state_group = new_group
                batch.current_state.setdefault(event.room_id, {})[key] = (event.event_id, event.membership)
                if event.type == "m.room.member" and server_of(event.state_key or "") == self.server_name:
                    batch.local_memberships.append(
                        MembershipChange(event.state_key, event.room_id, event.membership or "leave", event.event_id, pos)  # type: ignore[arg-type]
                    )
            extremities = {event.event_id}
            depth = event.depth
            batch.events.append(event)
            if event.txn_id and event.device_id:
                batch.txn_ids.append((event.sender, event.device_id, event.txn_id, event.event_id, now_ms()))
                self._remember_txn((event.sender, event.device_id, event.txn_id), event.event_id)
            accepted.append((item, event))
        if not accepted:
            return
        if room.state_group is None:
            version = room.version.identifier
            batch.new_rooms.append((new_room_id, version, accepted[0][1].sender, now_ms()))
        batch.forward_extremities[new_room_id] = extremities
        try:
            await self.store.persist_batch(batch)
        except Exception as e:
            logger.exception("persisting %d events failed", len(batch.events))
            for pos in positions:
                streams.complete(pos)
            for item, _ in accepted:
                item.deferred.errback(MatrixError(500, "M_UNKNOWN", "Failed to persist event"))
            return
        # Committed: make it the room's state.
        room.state = state
        room.state_group = state_group
        room.chain_length = chain_length
        room.extremities = extremities
        room.depth = depth
        events = [ev for _, ev in accepted]
        self.apply_persisted(room, events)
        self.mark_room_changed(room.room_id, events[-1].stream_ordering)
        for pos in positions:
            streams.complete(pos)
        EVENTS_PERSISTED.labels("local").inc(len(events))
        for _, ev in accepted:
            if ev.type == "m.room.redaction" and ev.redacts:
                self.store.mark_redacted(ev.redacts, ev.event_id)
        for hook in self.persist_hooks:
            try:
                hook(events, room)
            except Exception:
                logger.exception("persist hook failed")
        self._notify(room, events)
        for item, ev in accepted:
            item.deferred.callback(ev)

    def apply_persisted(self, room: RoomInfo, events: Iterable[Event]) -> None:
        """Updates the membership mirrors after events (local or remote) are persisted."""
        for ev in events:
            if ev.type != "m.room.member" or ev.rejected_reason or ev.outlier:
                continue
            user_id = ev.state_key or ""
            if server_of(user_id) != self.server_name:
                continue
            if room.state.get(ev.state_pair) != ev.event_id:
                continue
            if ev.membership == "join":
                room.joined_local.add(user_id)
                self.user_rooms.setdefault(user_id, set()).add(room.room_id)
            else:
                room.joined_local.discard(user_id)
                rooms = self.user_rooms.get(user_id)
                if rooms is not None:
                    rooms.discard(room.room_id)

    def _notify(self, room: RoomInfo, events: list[Event]) -> None:
        extra = {
            ev.state_key
            for ev in events
            if ev.type == "m.room.member" and server_of(ev.state_key or "") == self.server_name
        }
        self.hs.notifier.notify_room(room.room_id, extra)  # type: ignore[arg-type]

    # -- building ----------------------------------------------------------------

    async def _build_event(
        self, room: RoomInfo, spec: EventSpec, state: StateMap, extremities: set[str], depth: int, built: dict[str, Event]
    ) -> Event:
        _check_no_nul(spec)
        version = room.version
        pdu: dict[str, Any] = {
            "type": spec.type,
            "sender": spec.sender,
            "content": spec.content,
            "origin_server_ts": now_ms(),
        }
        if spec.state_key is not None:
            pdu["state_key"] = spec.state_key
        if spec.redacts is not None:
            # v11 moved `redacts` into content; earlier versions keep it at the top level.
            if version.updated_redaction_rules:
                pdu["content"] = {**spec.content, "redacts": spec.redacts}
            else:
                pdu["redacts"] = spec.redacts
        if not version.updated_redaction_rules:
            pdu["origin"] = self.server_name
        is_create = spec.type == "m.room.create" and spec.state_key == ""
        if is_create:
            if state:
                raise Forbidden("Room already exists")
            pdu["prev_events"] = []
            pdu["auth_events"] = []
            pdu["depth"] = 1
            if not version.room_id_from_create_event:
                pdu["room_id"] = room.room_id
        else:
            pdu["room_id"] = room.room_id
            prev = sorted(extremities)[:MAX_PREV_EVENTS]
            pdu["prev_events"] = prev
            pdu["depth"] = min(depth + 1, 2**63 - 1)
            pdu["auth_events"] = self._select_auth_events(version, pdu, state)
        pdu.update(spec.extra)
        try:
            check_canonical_json_values(pdu)
        except ValueError as e:
            raise MatrixError(400, "M_BAD_JSON", str(e)) from None
        pdu = add_content_hash(pdu)
        pdu = sign_event(pdu, version, self.server_name, self.hs.signing_key)
        if len(encode_canonical_json(pdu)) > MAX_PDU_SIZE:
            raise MatrixError(413, "M_TOO_LARGE", "Event is too large")
        event_id = compute_event_id(pdu, version)
        if spec.state_key is not None:
            replaced = state.get((spec.type, spec.state_key))
            if replaced is not None:
                # Not part of the hashed or signed event: clients use it to render changes.
                prev = built.get(replaced) or await self.store.get_event(replaced)
                unsigned: dict[str, Any] = {"replaces_state": replaced}
                if prev is not None:
                    unsigned["prev_content"] = prev.content
                    unsigned["prev_sender"] = prev.sender
                pdu["unsigned"] = unsigned
        if is_create and version.room_id_from_create_event:
            # v12: the room id is derived from the create event's id.
            pdu_room = "!" + event_id[1:]
            room_id = pdu_room
        else:
            room_id = pdu["room_id"]
        event = Event(event_id=event_id, pdu=pdu, room_version=version.identifier, txn_id=spec.txn_id, device_id=spec.device_id)
        event.room = room_id
        return event

    def _select_auth_events(self, version: RoomVersion, pdu: dict[str, Any], state: StateMap) -> list[str]:
        ids = []
        for key in auth_rules.auth_types_for_event(pdu, version):
            if key == ("m.room.create", "") and version.room_id_from_create_event:
                continue  # v12: the create event is implied by the room id
            eid = state.get(key)
            if eid is not None:
                ids.append(eid)
        return ids

    async def _authorise(self, room: RoomInfo, event: Event, state: StateMap, built: dict[str, Event]) -> None:
        needed = auth_rules.auth_types_for_event(event.pdu, room.version)
        keys = set(needed) | {("m.room.create", "")}
        ids = [state[k] for k in keys if k in state]
        fetched = {i: built[i] for i in ids if i in built}
        fetched.update(await self.store.get_events([i for i in ids if i not in built]))
        auth_events = {k: fetched[state[k]].with_event_id() for k in keys if k in state and state[k] in fetched}
        auth_rules.check_auth_rules(event.with_event_id(), auth_events, room.version)


    # -- external events (received over federation) ------------------------------
    #
    # Everything below is the persistence side of federation: the federation layer
    # (federation/rooms/) validates and authorises remote events and computes the state
    # before each; these methods give them stream positions, write them with the same
    # PersistBatch as local events and bring the in-memory RoomInfo up to date.

    async def run_exclusive(self, room: RoomInfo, fn: Callable[[], Awaitable[Any]]) -> Any:
        """Runs ``fn`` in the room's queue: no local batch is being built or persisted
        meanwhile, so reading and replacing the room's state, extremities and depth is
        safe. Local sends queued behind it wait; sends queued before it finish first."""
        d: SharedResult[Any] = SharedResult()
        room.queue.append(_Exclusive(fn, d))  # type: ignore[arg-type]
        if not room.processing:
            defer.ensureDeferred(self._process_queue(room))
        return await d.wait()

    def current_snapshot(self, room: RoomInfo) -> "Snapshot":
        return Snapshot(room.state, room.state_group, room.chain_length)

    def _ensure_group(self, snap: "Snapshot", room_id: str, batch: PersistBatch) -> int:
        """The state group holding ``snap``: written into ``batch`` as a delta against its
        base (or in full when the chain is long or there is no base) unless it exists."""
        if snap.group is not None:
            return snap.group
        base = snap.base
        if base is not None:
            base_group = self._ensure_group(base, room_id, batch)
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

    async def persist_remote_events(
        self,
        room: RoomInfo,
        events: list["RemoteEvent"],
        *,
        new_state: "Snapshot | None" = None,
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
        as new. ``deoutlier`` names events of ``events`` stored before as outliers.
        Persist hooks run for the new timeline events (push rules and unread counts,
        user directory); the federation sender's hook forwards only our own users'
        events, so a remote event is never echoed back. Backfilled history does not
        run them (it is not new).
        ``outlier_memberships`` are outliers that are a local user's membership of a room
        we are not in (an invite, a knock, a rejected invite): /sync shows them.
        """
        streams = self.hs.streams
        batch = PersistBatch()
        positions: list[int] = []
        deoutlier_ids = set(deoutlier)
        deoutliers: list[Event] = []
        room_id = room.room_id
        notify_users: set[str] = set()
        for ev in outlier_memberships:
            pos = streams.allocate()
            positions.append(pos)
            # A live position (outliers never enter timelines): /sync can show the
            # membership event itself, e.g. a rejected invite in the "leave" section.
            ev.stream_ordering = pos
            user = ev.state_key or ""
            batch.local_memberships.append(MembershipChange(user, room_id, ev.membership or "leave", ev.event_id, pos))
            notify_users.add(user)
        for ev in outliers:
            ev.outlier = True
            if not ev.stream_ordering:
                ev.stream_ordering = self.hs.backfill_stream.next()
            batch.events.append(ev)
        timeline: list[Event] = []
        for item in events:
            ev = item.event
            ev.outlier = False
            if backfilled:
                ev.stream_ordering = self.hs.backfill_stream.next()
            else:
                ev.stream_ordering = streams.allocate()
                positions.append(ev.stream_ordering)
            if item.before is not None:
                ev.state_group = self._ensure_group(item.before, room_id, batch)
                batch.state_groups_before[ev.event_id] = ev.state_group
            (deoutliers if ev.event_id in deoutlier_ids else batch.events).append(ev)
            timeline.append(ev)
        old_state = room.state
        changed_members: list[str] = []
        if new_state is not None:
            new_group = self._ensure_group(new_state, room_id, batch)
            changed = {k for k, v in new_state.state.items() if old_state.get(k) != v}
            removed = {k for k in old_state if k not in new_state.state}
            known = {e.event_id: e for e in list(batch.events) + deoutliers}
            need = [new_state.state[k] for k in changed if new_state.state[k] not in known]
            known.update(await self.store.get_events(need, allow_rejected=True))
            cs = batch.current_state.setdefault(room_id, {})
            last_pos = max(positions) if positions else streams.allocate()
            if not positions:
                positions.append(last_pos)
            for key in changed:
                eid = new_state.state[key]
                ev = known.get(eid)
                cs[key] = (eid, ev.membership if ev is not None else None)
                if key[0] == "m.room.member" and server_of(key[1]) == self.server_name and ev is not None:
                    pos = ev.stream_ordering if ev.stream_ordering > 0 and not ev.outlier else last_pos
                    batch.local_memberships.append(
                        MembershipChange(key[1], room_id, ev.membership or "leave", eid, pos)
                    )
                    changed_members.append(eid)
            for key in removed:
                cs[key] = None
        else:
            new_group = room.state_group
        if extremities is not None:
            batch.forward_extremities[room_id] = set(extremities)
        if new_room:
            create = next((e for e in list(batch.events) + deoutliers if e.type == "m.room.create" and e.state_key == ""), None)
            batch.new_rooms.append((room_id, room.version.identifier, create.sender if create else "", now_ms()))
        try:
            unapplied = [e.event_id for e in timeline if e.internal.get("redaction_not_applied") or e.soft_failed]
            await self.store.persist_remote_batch(batch, deoutliers, unapplied)
        except Exception:
            for pos in positions:
                streams.complete(pos)
            raise
        if new_state is not None:
            room.state = dict(new_state.state)
            room.state_group = new_group
            room.chain_length = new_state.chain_length
        if extremities is not None:
            room.extremities = set(extremities)
        if not backfilled and timeline:
            room.depth = max(room.depth, max(e.depth for e in timeline))
        member_events = await self.store.get_events(changed_members, allow_rejected=True) if changed_members else {}
        self.apply_persisted(room, member_events.values())
        if positions:
            self.mark_room_changed(room_id, max(positions))
        for pos in positions:
            streams.complete(pos)
        EVENTS_PERSISTED.labels("remote").inc(len(timeline))
        for ev in timeline:
            if (
                ev.type == "m.room.redaction" and ev.redacts and not ev.rejected_reason and not ev.soft_failed
                and not ev.internal.get("redaction_not_applied")
            ):
                self.store.mark_redacted(ev.redacts, ev.event_id)
        if timeline and not backfilled:
            for hook in self.persist_hooks:
                try:
                    hook(timeline, room)
                except Exception:
                    logger.exception("persist hook failed")
        if not backfilled and (timeline or changed_members or notify_users):
            extra = {e.state_key for e in member_events.values()} | notify_users
            extra |= {
                ev.state_key for ev in timeline if ev.type == "m.room.member" and server_of(ev.state_key or "") == self.server_name
            }
            self.hs.notifier.notify_room(room_id, extra)  # type: ignore[arg-type]


@dataclass
class _Exclusive:
    fn: Callable[[], Awaitable[Any]]
    deferred: SharedResult[Any]

    async def run(self) -> None:
        try:
            result = await self.fn()
        except BaseException as e:  # handed to the waiter
            self.deferred.errback(e)
        else:
            self.deferred.callback(result)


@dataclass
class Snapshot:
    """A room state and the state group that holds it (None until it is written;
    then it is written as a delta against ``base`` when there is one)."""

    state: StateMap
    group: int | None = None
    chain_length: int = 0
    base: "Snapshot | None" = None


@dataclass
class RemoteEvent:
    event: Event
    # the state before the event; None only for events whose state is unknown
    before: Snapshot | None
