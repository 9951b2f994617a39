"""Simplified sliding sync (MSC4186), the sync Element X and every matrix-rust-sdk app
use: ``POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync``.

The client names lists (filters plus ranges over the user's rooms ordered by activity)
and room subscriptions; each response carries the rooms in range that are new to the
connection or have changed since, and the extensions (to-device, e2ee, account data,
receipts, typing). Wire format and behaviour follow Synapse, which serves MSC4186's
first form; where the MSC and Synapse differ, the module doing it says so.

* ``config.py``: the parsed request, and the ``pos`` token;
* ``connection.py``: per-connection state (what each room was last sent with) by
  position, ``M_UNKNOWN_POS``;
* ``room_lists.py``: the user's rooms, list filters, ordering from the activity index,
  ranges, subscriptions, which rooms to send;
* ``rooms.py``: one room's entry (timeline, required state deltas, name, heroes...);
* ``required_state.py``: required_state filters and changes between requests (pure);
* ``extensions.py``: the extensions.

``current_sync`` computes one response from a position; ``wait_for_sync`` long-polls on
the notifier /sync uses. A WebSocket stream can drive ``current_sync`` itself: it keeps
a connection's last ``pos`` and calls it each time the notifier wakes the user, sending
each non-empty result as a frame (the connection store and room lists are shared).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from prometheus_client import Histogram
from twisted.internet import defer
from twisted.python.failure import Failure

from homeserver.handlers.sliding_sync.config import SlidingSyncRequest, SlidingSyncToken
from homeserver.handlers.sliding_sync.connection import (
    ConnectionState,
    ConnectionStateBuilder,
    ConnectionStore,
)
from homeserver.handlers.sliding_sync.extensions import (
    ExtensionsHandler,
    ExtensionsResult,
    SyncContext,
)
from homeserver.handlers.sliding_sync.room_lists import (
    InterestedRooms,
    ListResult,
    RoomLists,
)
from homeserver.handlers.sliding_sync.rooms import RoomResult, RoomResultBuilder
from homeserver.handlers.sync import MAX_TIMEOUT_MS
from homeserver.util.ids import now_ms

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester

logger = logging.getLogger(__name__)

SLIDING_SYNC_SECONDS = Histogram(
    "wspr_sliding_sync_seconds", "Time to compute a sliding sync response (waits excluded)", ["initial"]
)

# Rooms of one response computed at once.
ROOM_CONCURRENCY = 10


def _raise_first_error(failure: Failure) -> None:
    """gatherResults(consumeErrors=True) fails with a FirstError: raises the room's own error."""
    cast(defer.FirstError, failure.value).subFailure.raiseException()


@dataclass
class SlidingSyncResult:
    pos: SlidingSyncToken
    lists: dict[str, ListResult]
    rooms: dict[str, RoomResult]
    extensions: ExtensionsResult

    @property
    def has_updates(self) -> bool:
        """Whether a waiting request returns it: rooms or extension data (the lists alone
        do not count: anything reordering them brings its room along)."""
        return bool(self.rooms) or self.extensions.has_updates

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pos": str(self.pos)}
        if self.lists:
            out["lists"] = {name: result.to_json() for name, result in self.lists.items()}
        out["rooms"] = {room_id: room.to_json() for room_id, room in self.rooms.items()}
        out["extensions"] = self.extensions.body
        return out


class SlidingSyncHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.connections = ConnectionStore()
        self.room_lists = RoomLists(hs)
        self.rooms = RoomResultBuilder(hs)
        self.extensions = ExtensionsHandler(hs, self.room_lists)

    def parse_pos(self, pos: str | None) -> SlidingSyncToken | None:
        """The request's ``pos``, bounded by what this server has reached (a token from
        the future, or a typing serial from before a restart, reads as now)."""
        if pos is None:
            return None
        token = SlidingSyncToken.parse(pos)
        stream = min(token.stream, self.hs.streams.current)
        typing = token.typing if token.typing <= self.hs.typing.serial else 0
        return SlidingSyncToken(token.connection_position, stream, typing)

    async def wait_for_sync(
        self, requester: Requester, request: SlidingSyncRequest, pos: str | None, timeout_ms: int
    ) -> dict[str, Any]:
        from_token = self.parse_pos(pos)
        timeout_ms = max(0, min(timeout_ms, MAX_TIMEOUT_MS))
        deadline = self.hs.reactor.seconds() + timeout_ms / 1000
        while True:
            up_to = self.hs.streams.current
            typing_serial = self.hs.typing.serial
            result = await self.current_sync(requester, request, from_token, up_to, typing_serial)
            # A first request, or one whose config changed, answers at once (Synapse).
            if result.has_updates or timeout_ms == 0 or from_token is None:
                return result.to_json()
            remaining = deadline - self.hs.reactor.seconds()
            if remaining <= 0:
                return result.to_json()
            if self.hs.streams.current != up_to or self.hs.typing.serial != typing_serial:
                continue  # something arrived while computing
            await self.hs.notifier.wait_for_user(requester.user_id, int(remaining * 1000))
            nothing_new = self.hs.streams.current == up_to and self.hs.typing.serial == typing_serial
            if nothing_new and self.hs.reactor.seconds() >= deadline:
                return result.to_json()

    async def current_sync(
        self,
        requester: Requester,
        request: SlidingSyncRequest,
        from_token: SlidingSyncToken | None,
        up_to: int,
        typing_serial: int,
    ) -> SlidingSyncResult:
        """One response: what changed for the connection between ``from_token`` and
        ``up_to``, and the connection's new position."""
        started = self.hs.reactor.seconds()
        now = now_ms()
        key = (requester.user_id, requester.device_id, request.conn_id or "")
        previous = (
            self.connections.get(key, from_token.connection_position, now) if from_token is not None else ConnectionState()
        )
        state = ConnectionStateBuilder(previous)
        from_stream = from_token.stream if from_token is not None else None
        has_rooms = bool(request.lists or request.room_subscriptions)
        interested = (
            await self.room_lists.interested_rooms(requester.user_id, request, previous, from_stream, up_to, now)
            if has_rooms
            else InterestedRooms.empty()
        )

        rooms: dict[str, RoomResult] = {}

        async def one(room_id: str) -> None:
            result = await self.rooms.build(
                requester,
                room_id,
                interested.to_send[room_id],
                interested.memberships[room_id],
                from_token=from_token,
                previous=previous,
                state=state,
                up_to=up_to,
                newly_joined=room_id in interested.newly_joined,
                newly_left=room_id in interested.newly_left,
                is_dm=room_id in interested.dm_rooms,
            )
            if from_token is None or result.has_updates():
                rooms[room_id] = result

        to_send = list(interested.to_send)
        for i in range(0, len(to_send), ROOM_CONCURRENCY):
            await defer.gatherResults(
                [defer.ensureDeferred(one(r)) for r in to_send[i : i + ROOM_CONCURRENCY]], consumeErrors=True
            ).addErrback(_raise_first_error)
        # Keep the order rooms were listed in (most active first).
        rooms = {r: rooms[r] for r in to_send if r in rooms}

        ctx = SyncContext(requester, interested, rooms, previous, state, from_token, up_to)
        extensions = await self.extensions.response(request.extensions, ctx)

        if has_rooms:
            if from_stream is not None:
                # Rooms sent before and out of this response that changed meanwhile: their
                # updates since from_token are owed when they come back.
                unseen = [r for r in previous.rooms.live_rooms() if r not in interested.relevant]
                missed = await self.room_lists.rooms_updated_since(unseen, interested.memberships, from_stream)
                state.rooms = state.rooms.with_unsent(missed, from_stream)
            state.rooms = state.rooms.with_sent(interested.to_send)
            position = self.connections.record(
                key, state, from_token.connection_position if from_token is not None else None, now
            )
        else:
            position = from_token.connection_position if from_token is not None else 0
        SLIDING_SYNC_SECONDS.labels(str(from_token is None).lower()).observe(self.hs.reactor.seconds() - started)
        return SlidingSyncResult(SlidingSyncToken(position, up_to, typing_serial), interested.lists, rooms, extensions)
