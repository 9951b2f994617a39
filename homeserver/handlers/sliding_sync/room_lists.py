"""Which rooms a sliding sync request is about: the user's rooms, filtered per list,
ordered by activity, cut to the list ranges, plus the room subscriptions; and which of
those must be sent (never sent on the connection, missed updates, new activity, or a
config that now asks for more).

The user's memberships are read once and kept until one changes; each room's latest
activity comes from the ``room_activity`` index (storage/sliding_sync.py), so ordering
a few thousand rooms touches no room's events or state.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from homeserver.handlers.sliding_sync.config import (
    ListFilters,
    RoomConfig,
    SlidingSyncRequest,
)
from homeserver.handlers.sliding_sync.connection import ConnectionState, unknown_pos
from homeserver.storage.rooms import LocalMembership
from homeserver.storage.sliding_sync import RoomKind, room_kind_of
from homeserver.util.caches import LruCache

if TYPE_CHECKING:
    from homeserver.app import HomeServer

# An incremental request whose rooms in range have updates in more than this many rooms,
# on a connection unused for an hour, is answered M_UNKNOWN_POS: the client starts again
# with a small range, faster than one huge response (Synapse's NUM_ROOMS_THRESHOLD).
MANY_UPDATED_ROOMS = 100
STALE_CONNECTION_MS = 3600 * 1000


@dataclass(frozen=True, slots=True)
class RoomMembership:
    """The user's membership of a room as of the response's position."""

    room_id: str
    membership: str
    event_id: str
    # the membership event's stream position
    stream: int
    # who sent it (a leave by someone else is a kick)
    sender: str | None


@dataclass
class ListResult:
    count: int
    # (range, room ids in it)
    ops: list[tuple[tuple[int, int], list[str]]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        # Synapse still sends the MSC3575 "SYNC" operation per range.
        return {
            "count": self.count,
            "ops": [{"op": "SYNC", "range": list(r), "room_ids": ids} for r, ids in self.ops],
        }


@dataclass
class InterestedRooms:
    lists: dict[str, ListResult]
    # rooms that match a list range or a subscription, with their combined config
    relevant: dict[str, RoomConfig]
    # the subset that may have something to send
    to_send: dict[str, RoomConfig]
    # rooms any list could show (in range or not), and subscribed rooms
    all_rooms: set[str]
    memberships: dict[str, RoomMembership]
    newly_joined: set[str]
    newly_left: set[str]
    dm_rooms: set[str]

    @staticmethod
    def empty() -> InterestedRooms:
        return InterestedRooms({}, {}, {}, set(), {}, set(), set(), set())

    def list_room_ids(self, names: Iterable[str] | None) -> set[str]:
        """The rooms of the named lists' ranges ("*": every list)."""
        out: set[str] = set()
        if names is None:
            return out
        wanted = list(self.lists) if "*" in names else [n for n in names if n in self.lists]
        for name in wanted:
            for _, ids in self.lists[name].ops:
                out.update(ids)
        return out


@dataclass
class _UserMemberships:
    as_of: int
    rooms: dict[str, RoomMembership]
    # the same as /sync's records (what device_lists reads)
    local: list[LocalMembership]


class RoomLists:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store
        self._memberships: LruCache[str, _UserMemberships] = LruCache(10_000)
        self._account_data: LruCache[tuple[str, str], tuple[int, dict[str, Any]]] = LruCache(20_000)

    # -- the user's rooms ------------------------------------------------------------

    async def memberships(self, user_id: str, up_to: int) -> dict[str, RoomMembership]:
        """Every room the user has a membership of (not forgotten), read again only when
        one of them changed."""
        cached = self._memberships.fetch(user_id)
        if cached is not None and not self.store.membership_changes.changed_since(user_id, cached.as_of):
            return cached.rooms
        as_of = self.hs.streams.current
        rows = await self.store.get_local_memberships(user_id)
        # A leave's sender tells a kick (shown) from the user's own leave (not shown).
        leave_ids = [r.event_id for r in rows if r.membership in ("leave", "ban")]
        senders = {eid: ev.sender for eid, ev in (await self.store.get_events(leave_ids, allow_rejected=True)).items()}
        rooms = {
            r.room_id: RoomMembership(r.room_id, r.membership, r.event_id, r.stream_ordering, senders.get(r.event_id))
            for r in rows
        }
        self._memberships.put(user_id, _UserMemberships(as_of, rooms, rows))
        return rooms

    async def local_memberships(self, user_id: str, up_to: int) -> list[LocalMembership]:
        """Every membership of the user as storage records them (not forgotten)."""
        await self.memberships(user_id, up_to)
        cached = self._memberships.get(user_id)
        return cached.local if cached is not None else await self.store.get_local_memberships(user_id)

    def forget_memberships(self, user_id: str) -> None:
        """The user forgot a room: their room list is read again (forgetting moves no
        stream position, so the cache cannot tell by itself)."""
        self._memberships.pop(user_id)

    async def _account_data_content(self, user_id: str, data_type: str) -> dict[str, Any]:
        """room_id ("" for global) -> content of one account data type, cached until the
        user's account data changes."""
        key = (user_id, data_type)
        cached = self._account_data.fetch(key)
        if cached is not None and not self.store.account_data_changes.changed_since(user_id, cached[0]):
            return cached[1]
        as_of = self.hs.streams.current
        value = await self.store.get_account_data_of_type(user_id, data_type)
        self._account_data.put(key, (as_of, value))
        return value

    async def dm_rooms(self, user_id: str) -> set[str]:
        """Rooms named in the user's m.direct account data (not the invite's is_direct,
        which only the invitee's membership carries), as Synapse does."""
        content = (await self._account_data_content(user_id, "m.direct")).get("")
        out: set[str] = set()
        if isinstance(content, dict):
            for room_ids in content.values():
                if isinstance(room_ids, list):
                    out.update(r for r in room_ids if isinstance(r, str))
        return out

    async def room_tags(self, user_id: str) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for room_id, content in (await self._account_data_content(user_id, "m.tag")).items():
            tags = content.get("tags") if isinstance(content, dict) else None
            if room_id and isinstance(tags, dict):
                out[room_id] = set(tags)
        return out

    # -- the request's rooms -----------------------------------------------------------

    async def interested_rooms(
        self,
        user_id: str,
        request: SlidingSyncRequest,
        previous: ConnectionState,
        from_stream: int | None,
        up_to: int,
        now_ms: int,
    ) -> InterestedRooms:
        all_memberships = await self.memberships(user_id, up_to)
        # Changes after the response's position show up in the next response.
        current = {r: m for r, m in all_memberships.items() if m.stream <= up_to}
        newly_left = {
            r for r, m in current.items() if m.membership == "leave" and from_stream is not None and m.stream > from_stream
        }
        newly_joined = {
            r
            for r, m in current.items()
            if m.membership == "join" and previous.memberships.get(r, "join") != "join"
        }
        # Listed: every membership but the user's own leaves (they know they left), unless
        # they left since the last response. Kicks and bans are listed (Synapse's rule).
        listed = {
            r: m
            for r, m in current.items()
            if m.membership != "leave" or r in newly_left or m.sender not in (user_id, None)
        }
        dm_rooms = await self.dm_rooms(user_id)
        lists: dict[str, ListResult] = {}
        relevant: dict[str, RoomConfig] = {}
        all_rooms: set[str] = set()
        order: dict[str, tuple[int, str]] = {}
        if request.lists:
            activity = await self.store.get_room_activity(listed)
            # Joined rooms by their latest event; others by the membership change (what
            # the user may see of them). The MSC orders by activity, not by bump_stamp.
            for room_id, m in listed.items():
                pos = activity[room_id].last_event if m.membership == "join" else 0
                order[room_id] = (pos or m.stream, room_id)

        for name, list_config in request.lists.items():
            rooms = set(listed)
            if list_config.filters is not None:
                rooms = await self._filter(user_id, listed, rooms, list_config.filters, dm_rooms, previous)
            all_rooms |= rooms
            result = ListResult(len(rooms))
            # A list without ranges sends no room, only its count: Synapse's reading (the
            # MSC's later text says every room of the list).
            if list_config.ranges:
                # Only the top of the list is sorted (most ranges start at 0).
                top = max(end for _, end in list_config.ranges) + 1
                ordered = heapq.nlargest(top, rooms, key=order.__getitem__)
                for start, end in list_config.ranges:
                    ids = ordered[start : end + 1]
                    result.ops.append(((start, end), ids))
                    for room_id in ids:
                        self._add_relevant(relevant, room_id, list_config.room)
            lists[name] = result

        for room_id, config in request.room_subscriptions.items():
            membership = current.get(room_id)
            if membership is None:
                # Not a room of the user (peeking is not part of the MSC): ignored.
                continue
            listed.setdefault(room_id, membership)
            all_rooms.add(room_id)
            self._add_relevant(relevant, room_id, config)

        to_send = await self._rooms_to_send(relevant, listed, previous, from_stream, now_ms)
        return InterestedRooms(lists, relevant, to_send, all_rooms, listed, newly_joined, newly_left, dm_rooms)

    @staticmethod
    def _add_relevant(relevant: dict[str, RoomConfig], room_id: str, config: RoomConfig) -> None:
        existing = relevant.get(room_id)
        relevant[room_id] = config if existing is None else existing.combine(config)

    async def _rooms_to_send(
        self,
        relevant: dict[str, RoomConfig],
        memberships: dict[str, RoomMembership],
        previous: ConnectionState,
        from_stream: int | None,
        now_ms: int,
    ) -> dict[str, RoomConfig]:
        if from_stream is None or not relevant:
            return dict(relevant)
        send: set[str] = set()
        live: list[str] = []
        for room_id, config in relevant.items():
            prev_config = previous.room_configs.get(room_id)
            if prev_config is not None and prev_config.combine(config) != prev_config:
                send.add(room_id)  # the config asks for more than was sent
            elif previous.rooms.is_live(room_id):
                live.append(room_id)
            else:
                send.add(room_id)  # never sent, or updates were missed
        updated = await self.rooms_updated_since(live, memberships, from_stream)
        if (
            len(updated) > MANY_UPDATED_ROOMS
            and previous.last_used_ms is not None
            and now_ms - previous.last_used_ms > STALE_CONNECTION_MS
        ):
            raise unknown_pos()
        send |= updated
        return {r: c for r, c in relevant.items() if r in send}

    async def rooms_updated_since(
        self, room_ids: Iterable[str], memberships: dict[str, RoomMembership], since: int
    ) -> set[str]:
        """Rooms with a new live event, or a change of the user's membership, after
        ``since`` (state changes are events too)."""
        room_ids = list(room_ids)
        activity = await self.store.get_room_activity(room_ids)
        out = set()
        for room_id in room_ids:
            m = memberships.get(room_id)
            if m is not None and m.stream > since:
                out.add(room_id)
            elif (m is None or m.membership == "join") and activity[room_id].last_event > since:
                # A room the user is not in changes for them only with their membership:
                # they see nothing of it after their leave, or before joining.
                out.add(room_id)
        return out

    # -- filters -----------------------------------------------------------------------

    async def _filter(
        self,
        user_id: str,
        memberships: dict[str, RoomMembership],
        rooms: set[str],
        filters: ListFilters,
        dm_rooms: set[str],
        previous: ConnectionState,
    ) -> set[str]:
        if filters.is_dm is not None:
            rooms = rooms & dm_rooms if filters.is_dm else rooms - dm_rooms
        if filters.spaces is not None:
            rooms &= await self._space_children(filters.spaces, memberships)
        if filters.is_invite is not None:
            rooms = {r for r in rooms if (memberships[r].membership == "invite") == filters.is_invite}
        if filters.is_encrypted is not None or filters.room_types is not None or filters.not_room_types is not None:
            kinds = await self._room_kinds(rooms, memberships)
            kept = set()
            for room_id in rooms:
                kind = kinds.get(room_id)
                if kind is None:
                    continue  # what we cannot tell is filtered out, as in Synapse
                if filters.is_encrypted is not None and kind.encrypted != filters.is_encrypted:
                    continue
                if filters.room_types is not None and kind.room_type not in filters.room_types:
                    continue
                if filters.not_room_types is not None and kind.room_type in filters.not_room_types:
                    continue
                kept.add(room_id)
            rooms = kept
        # room_name_like is accepted and not applied: Synapse does not implement it either.
        if filters.tags is not None or filters.not_tags is not None:
            tags = await self.room_tags(user_id)
            if filters.tags is not None:
                wanted = set(filters.tags)
                rooms = {r for r in rooms if tags.get(r, set()) & wanted}
            if filters.not_tags is not None:
                unwanted = set(filters.not_tags)
                rooms = {r for r in rooms if not tags.get(r, set()) & unwanted}
        return rooms

    async def _space_children(self, spaces: Iterable[str], memberships: dict[str, RoomMembership]) -> set[str]:
        """Rooms named by a valid m.space.child event (non-empty ``via``) of the given
        spaces the user is joined to; subspaces are not followed (MSC4186). Synapse does
        not implement this filter (it fails the request)."""
        children: set[str] = set()
        for space_id in spaces:
            m = memberships.get(space_id)
            if m is None or m.membership != "join":
                continue
            room = await self.hs.rooms.get_room(space_id)
            if room is None:
                continue
            ids = {k: eid for k, eid in room.state.items() if k[0] == "m.space.child"}
            events = await self.store.get_events(ids.values())
            for (_, child), eid in ids.items():
                ev = events.get(eid)
                via = ev.content.get("via") if ev is not None else None
                if isinstance(via, list) and via:
                    children.add(child)
        return children

    async def _room_kinds(self, rooms: set[str], memberships: dict[str, RoomMembership]) -> dict[str, RoomKind]:
        kinds = await self.store.get_room_kinds(rooms)
        # Rooms we hold no state of (invites and knocks over federation): their stripped
        # state tells, as it does Synapse.
        unknown = [r for r in rooms if r not in kinds and memberships[r].membership in ("invite", "knock")]
        if unknown:
            events = await self.store.get_events([memberships[r].event_id for r in unknown], allow_rejected=True)
            for room_id in unknown:
                ev = events.get(memberships[room_id].event_id)
                if ev is None:
                    continue
                stripped = stripped_state_of(ev)
                create = next((s for s in stripped if s.get("type") == "m.room.create"), None)
                if create is None or not isinstance(create.get("content"), dict):
                    continue
                encryption = next((s for s in stripped if s.get("type") == "m.room.encryption"), None)
                kinds[room_id] = room_kind_of(
                    create["content"], encryption.get("content") if isinstance(encryption, dict) else None
                )
        return kinds


def stripped_state_of(member_event: Any) -> list[dict[str, Any]]:
    """The stripped state an invite or knock carries (unsigned ``invite_room_state`` /
    ``knock_room_state``)."""
    unsigned = member_event.pdu.get("unsigned", {})
    key = "knock_room_state" if member_event.membership == "knock" else "invite_room_state"
    stripped = unsigned.get(key) if isinstance(unsigned, dict) else None
    return [s for s in stripped if isinstance(s, dict)] if isinstance(stripped, list) else []
