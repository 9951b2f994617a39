"""Per-connection state: what a sliding sync connection has already been sent.

A connection is (user, device, ``conn_id``). Its state records, per room, whether the
room was sent and up to where (``RoomStatuses``: never / live / "previously, with
updates since position N"), the same for receipts and room account data, the room
config each room was last sent with, the members sent by lazy-loading, and the
membership each room was last sent with. Unchanged rooms and unchanged state are then
not sent again.

Each response carries a connection position in its ``pos``; the state is stored under
it. A request names the position it continues from: the states of every other position
of the connection are dropped then (the client has shown which response it processed),
so a retried request (same ``pos``) gets the same answer, and a client never sees a
room as sent when it did not process that response. An unknown position answers
``M_UNKNOWN_POS`` (400): the client starts the connection again.

The state lives in memory (Synapse keeps it in its database): after a restart every
connection is unknown and clients start again, as they did with the sliding sync
proxy. The WebSocket stream reuses this store: a socket is one connection, and each
frame it sends advances the connection's position like a response does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace

from homeserver.handlers.sliding_sync.config import RoomConfig
from homeserver.http.errors import MatrixError

# Connections unused for this long are forgotten (Synapse: 7 days).
CONNECTION_EXPIRY_MS = 7 * 24 * 3600 * 1000
# Bounds on memory: connections per device (the MSC asks servers to limit them), and
# positions kept per connection (requests that were never continued from).
MAX_CONNECTIONS_PER_DEVICE = 10
MAX_POSITIONS_PER_CONNECTION = 5

_NEVER = "never"
_LIVE = "live"
_PREVIOUSLY = "previously"


def unknown_pos() -> MatrixError:
    return MatrixError(400, "M_UNKNOWN_POS", "Unknown position")


class RoomStatuses:
    """Per room: never sent (absent), sent and up to date ("live": everything up to the
    request's position was sent), or sent with updates missed since a position."""

    __slots__ = ("_statuses",)

    def __init__(self, statuses: Mapping[str, int | None] | None = None) -> None:
        # room -> None when live, else the position since which updates were not sent
        self._statuses: dict[str, int | None] = dict(statuses or {})

    def status(self, room_id: str) -> tuple[str, int | None]:
        if room_id not in self._statuses:
            return _NEVER, None
        last = self._statuses[room_id]
        return (_LIVE, None) if last is None else (_PREVIOUSLY, last)

    def is_never(self, room_id: str) -> bool:
        return room_id not in self._statuses

    def is_live(self, room_id: str) -> bool:
        return room_id in self._statuses and self._statuses[room_id] is None

    def live_rooms(self) -> list[str]:
        return [r for r, last in self._statuses.items() if last is None]

    def with_sent(self, room_ids: Iterable[str]) -> RoomStatuses:
        """These rooms were sent up to the response's position."""
        out = RoomStatuses()
        out._statuses = dict(self._statuses)
        for room_id in room_ids:
            out._statuses[room_id] = None
        return out

    def with_unsent(self, room_ids: Iterable[str], since: int) -> RoomStatuses:
        """These live rooms had updates after ``since`` that were not sent."""
        out = RoomStatuses()
        out._statuses = dict(self._statuses)
        for room_id in room_ids:
            if out._statuses.get(room_id, 0) is None:
                out._statuses[room_id] = since
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RoomStatuses) and self._statuses == other._statuses

    def __len__(self) -> int:
        return len(self._statuses)


@dataclass(frozen=True)
class ConnectionState:
    """What the connection was sent, as of one position. Never mutated: the next
    position's state is a copy with the changes (``ConnectionStateBuilder``)."""

    rooms: RoomStatuses = field(default_factory=RoomStatuses)
    receipts: RoomStatuses = field(default_factory=RoomStatuses)
    account_data: RoomStatuses = field(default_factory=RoomStatuses)
    # the config each room was last sent with (a change that asks for more is sent)
    room_configs: Mapping[str, RoomConfig] = field(default_factory=dict)
    # members each room's lazy-loading already sent
    lazy_members: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # the user's membership each room was last sent with (a join after anything else
    # sends the room from scratch)
    memberships: Mapping[str, str] = field(default_factory=dict)
    # when a request last continued from this connection (ms)
    last_used_ms: int | None = None


class ConnectionStateBuilder:
    """The state being recorded by one response, on top of the previous one."""

    def __init__(self, previous: ConnectionState) -> None:
        self.previous = previous
        self.rooms = previous.rooms
        self.receipts = previous.receipts
        self.account_data = previous.account_data
        self.room_configs: dict[str, RoomConfig] = {}
        self.lazy_members: dict[str, frozenset[str]] = {}
        self.memberships: dict[str, str] = {}

    def set_room_config(self, room_id: str, config: RoomConfig) -> None:
        if self.previous.room_configs.get(room_id) != config:
            self.room_configs[room_id] = config

    def set_lazy_members(self, room_id: str, users: AbstractSet[str]) -> None:
        users = frozenset(users)
        if self.previous.lazy_members.get(room_id, frozenset()) != users:
            self.lazy_members[room_id] = users

    def set_membership(self, room_id: str, membership: str) -> None:
        if self.previous.memberships.get(room_id) != membership:
            self.memberships[room_id] = membership

    def has_updates(self) -> bool:
        prev = self.previous
        return bool(
            self.rooms is not prev.rooms and self.rooms != prev.rooms
            or self.receipts is not prev.receipts and self.receipts != prev.receipts
            or self.account_data is not prev.account_data and self.account_data != prev.account_data
            or self.room_configs
            or self.lazy_members
            or self.memberships
        )

    def build(self, now_ms: int) -> ConnectionState:
        prev = self.previous
        return ConnectionState(
            rooms=self.rooms,
            receipts=self.receipts,
            account_data=self.account_data,
            room_configs={**prev.room_configs, **self.room_configs} if self.room_configs else prev.room_configs,
            lazy_members={**prev.lazy_members, **self.lazy_members} if self.lazy_members else prev.lazy_members,
            memberships={**prev.memberships, **self.memberships} if self.memberships else prev.memberships,
            last_used_ms=now_ms,
        )


@dataclass
class _Connection:
    positions: dict[int, ConnectionState] = field(default_factory=dict)
    last_used_ms: int = 0


ConnectionKey = tuple[str, str, str]  # (user_id, device_id, conn_id)


class ConnectionStore:
    """Every live connection's states by position, in memory."""

    def __init__(self) -> None:
        self._connections: dict[ConnectionKey, _Connection] = {}
        self._by_device: dict[tuple[str, str], list[str]] = {}
        # Positions are unique across connections: a position of another connection (or
        # of a connection forgotten since) is never mistaken for one of this connection.
        self._next_position = 1
        self._last_sweep_ms = 0

    def get(self, key: ConnectionKey, position: int, now_ms: int) -> ConnectionState:
        """The state the client continues from; the connection's other positions are
        dropped. Position 0 is a connection that was never sent rooms."""
        if position == 0:
            return ConnectionState()
        conn = self._connections.get(key)
        state = conn.positions.get(position) if conn is not None else None
        if conn is None or state is None or now_ms - conn.last_used_ms > CONNECTION_EXPIRY_MS:
            raise unknown_pos()
        conn.positions = {position: state}
        previous_use, conn.last_used_ms = conn.last_used_ms, now_ms
        return replace(state, last_used_ms=previous_use)

    def record(self, key: ConnectionKey, builder: ConnectionStateBuilder, from_position: int | None, now_ms: int) -> int:
        """Stores the state a response leads to and returns its position (the one it
        continued from when nothing changed)."""
        if not builder.has_updates():
            return from_position or 0
        conn = self._connections.get(key)
        if conn is None or (from_position is None or from_position == 0):
            # A new connection (or a restart of this one): its older states are void.
            if conn is None:
                self._add_connection(key, now_ms)
            conn = self._connections[key]
            conn.positions.clear()
        position = self._next_position
        self._next_position += 1
        conn.positions[position] = builder.build(now_ms)
        conn.last_used_ms = now_ms
        while len(conn.positions) > MAX_POSITIONS_PER_CONNECTION:
            # Oldest first, but never the one this response continued from.
            oldest = min(p for p in conn.positions if p != from_position)
            del conn.positions[oldest]
        return position

    def _add_connection(self, key: ConnectionKey, now_ms: int) -> None:
        self._expire(now_ms)
        device = (key[0], key[1])
        conn_ids = self._by_device.setdefault(device, [])
        while len(conn_ids) >= MAX_CONNECTIONS_PER_DEVICE:
            # The least recently used connection of the device goes.
            victim = min(conn_ids, key=lambda c: self._connections[(key[0], key[1], c)].last_used_ms)
            conn_ids.remove(victim)
            del self._connections[(key[0], key[1], victim)]
        conn_ids.append(key[2])
        self._connections[key] = _Connection(last_used_ms=now_ms)

    def _expire(self, now_ms: int) -> None:
        if now_ms - self._last_sweep_ms < 3600 * 1000:
            return
        self._last_sweep_ms = now_ms
        stale = [k for k, c in self._connections.items() if now_ms - c.last_used_ms > CONNECTION_EXPIRY_MS]
        for key in stale:
            self._drop(key)

    def _drop(self, key: ConnectionKey) -> None:
        self._connections.pop(key, None)
        conn_ids = self._by_device.get((key[0], key[1]))
        if conn_ids is not None and key[2] in conn_ids:
            conn_ids.remove(key[2])
            if not conn_ids:
                del self._by_device[(key[0], key[1])]

    def forget_device(self, user_id: str, device_id: str) -> None:
        """A deleted device's connections go with it."""
        for conn_id in list(self._by_device.get((user_id, device_id), ())):
            self._drop((user_id, device_id, conn_id))

    def __len__(self) -> int:
        return len(self._connections)
