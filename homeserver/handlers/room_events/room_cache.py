"""The in-memory state of each room (``RoomInfo``) and the mirrors of local memberships.

Building and authorising an event needs the room's version, current state ids,
snapshot id, forward extremities and depth: they live here, loaded once per room, so
the hot path reads no database. The persister brings them up to date after each commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from homeserver.events.event import Event
from homeserver.protocol.room_versions import RoomVersion, get_room_version
from homeserver.storage.events import StateKey, StateMap
from homeserver.util.async_helpers import SharedResult
from homeserver.util.ids import server_of

if TYPE_CHECKING:
    from homeserver.handlers.room_events.pipeline import QueuedWork
    from homeserver.storage import DataStore


@dataclass
class Snapshot:
    """A room state and the state group that holds it (None until it is written;
    then it is written as a delta against ``base`` when there is one)."""

    state: StateMap
    group: int | None = None
    chain_length: int = 0
    base: Snapshot | None = None


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
    # the room's send queue (see pipeline.py)
    queue: list[QueuedWork] = field(default_factory=list)
    processing: bool = False

    def snapshot(self) -> Snapshot:
        """The current state as a snapshot (already written: it has its group)."""
        return Snapshot(self.state, self.state_group, self.chain_length)


class RoomCache:
    def __init__(self, store: DataStore, server_name: str) -> None:
        self.store = store
        self.server_name = server_name
        self._rooms: dict[str, RoomInfo] = {}
        self._loading: dict[str, SharedResult[RoomInfo | None]] = {}
        # local user -> rooms they are joined to (mirror of local_memberships)
        self.user_rooms: dict[str, set[str]] = {}
        # room -> stream position of its latest event; rooms absent may have changed
        self._room_latest: dict[str, int] = {}

    async def load_local_joins(self) -> None:
        for room_id, user_id in await self.store.get_all_local_joined():
            self.user_rooms.setdefault(user_id, set()).add(room_id)

    def local_users_in_room(self, room_id: str) -> set[str]:
        room = self._rooms.get(room_id)
        if room is not None:
            return room.joined_local
        return {u for u, rooms in self.user_rooms.items() if room_id in rooms}

    def joined_rooms(self, user_id: str) -> set[str]:
        return set(self.user_rooms.get(user_id, ()))

    def room_changed_since(self, room_id: str, stream: int) -> bool:
        """Cheap pre-check for /sync: False only when the room surely has nothing new."""
        latest = self._room_latest.get(room_id)
        # Rooms not touched since start: we don't know, so look.
        return latest is None or latest > stream

    def mark_room_changed(self, room_id: str, stream: int) -> None:
        if stream > self._room_latest.get(room_id, 0):
            self._room_latest[room_id] = stream

    # -- rooms ------------------------------------------------------------------------

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
        local_members = [sk for (t, sk) in state if t == "m.room.member" and server_of(sk) == self.server_name]
        members = await self.store.get_events([state[("m.room.member", u)] for u in local_members])
        joined_local = {e.state_key for e in members.values() if e.membership == "join" and e.state_key is not None}
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

    def rename_room(self, room: RoomInfo, room_id: str) -> None:
        """v12: a new room's id is only known once its create event is built."""
        self._rooms.pop(room.room_id, None)
        room.room_id = room_id
        self._rooms[room_id] = room

    def forget_cached_room(self, room_id: str) -> None:
        self._rooms.pop(room_id, None)

    # -- state ------------------------------------------------------------------------

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

    # -- after a commit ----------------------------------------------------------------

    def apply_memberships(self, room: RoomInfo, events: Iterable[Event]) -> None:
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
