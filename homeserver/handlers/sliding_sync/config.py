"""A sliding sync request, as the handler sees it once rest/client/sliding_sync.py has
parsed and validated the body (the shape Synapse accepts, MSC4186's first version:
``required_state`` as ``[type, state_key]`` pairs, ``ranges``, ``timeline``...)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

WILDCARD = "*"
LAZY = "$LAZY"
ME = "$ME"
MEMBER = "m.room.member"

# type -> state keys (which may be "*", "$LAZY" or "$ME")
RequiredStateMap = Mapping[str, frozenset[str]]


def required_state_map(pairs: Iterable[tuple[str, str]]) -> dict[str, frozenset[str]]:
    """The request's ``required_state`` pairs folded into one map, with what a wildcard
    already covers left out (the same reduction as Synapse's RoomSyncConfig)."""
    out: dict[str, set[str]] = {}
    for state_type, state_key in pairs:
        if state_key in out.get(WILDCARD, ()) or WILDCARD in out.get(state_type, ()):
            continue
        if state_type == WILDCARD and state_key == WILDCARD:
            out = {WILDCARD: {WILDCARD}}
            break
        if state_type == WILDCARD:
            # ["*", key] covers this key under every type.
            for other_type in list(out):
                out[other_type].discard(state_key)
                if not out[other_type]:
                    del out[other_type]
        if state_key == WILDCARD:
            out[state_type] = {WILDCARD}
        else:
            out.setdefault(state_type, set()).add(state_key)
    return {t: frozenset(keys) for t, keys in out.items()}


def combine_required_state(a: RequiredStateMap, b: RequiredStateMap) -> dict[str, frozenset[str]]:
    """The union of two required-state maps, wildcards absorbing what they cover."""
    if WILDCARD in a.get(WILDCARD, ()) or WILDCARD in b.get(WILDCARD, ()):
        return {WILDCARD: frozenset({WILDCARD})}
    pairs = [(t, k) for t, keys in a.items() for k in sorted(keys)] + [(t, k) for t, keys in b.items() for k in sorted(keys)]
    return required_state_map(pairs)


@dataclass(frozen=True)
class RoomConfig:
    """What to send of one room: how many timeline events and which state."""

    timeline_limit: int
    required_state: RequiredStateMap = field(default_factory=dict)

    def combine(self, other: RoomConfig) -> RoomConfig:
        """The superset of two configs (a room matched by several lists/subscriptions)."""
        if other == self:
            return self
        return RoomConfig(
            max(self.timeline_limit, other.timeline_limit),
            combine_required_state(self.required_state, other.required_state),
        )


@dataclass(frozen=True)
class ListFilters:
    """A list's filters; None means "not filtered on this"."""

    is_dm: bool | None = None
    spaces: tuple[str, ...] | None = None
    is_encrypted: bool | None = None
    is_invite: bool | None = None
    # None entries stand for "a room without a type"
    room_types: tuple[str | None, ...] | None = None
    not_room_types: tuple[str | None, ...] | None = None
    room_name_like: str | None = None
    tags: tuple[str, ...] | None = None
    not_tags: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ListConfig:
    room: RoomConfig
    ranges: tuple[tuple[int, int], ...] | None = None
    filters: ListFilters | None = None


@dataclass(frozen=True)
class ExtensionConfig:
    """One extension's request. ``lists``/``rooms`` (account data, receipts, typing) pick
    the rooms of the response it covers; "*" means all. ``limit``/``since``: to-device."""

    enabled: bool = False
    lists: tuple[str, ...] | None = (WILDCARD,)
    rooms: tuple[str, ...] | None = (WILDCARD,)
    limit: int = 100
    since: str | None = None


@dataclass(frozen=True)
class ExtensionsConfig:
    to_device: ExtensionConfig | None = None
    e2ee: ExtensionConfig | None = None
    account_data: ExtensionConfig | None = None
    receipts: ExtensionConfig | None = None
    typing: ExtensionConfig | None = None


@dataclass(frozen=True)
class SlidingSyncRequest:
    conn_id: str | None = None
    lists: Mapping[str, ListConfig] = field(default_factory=dict)
    room_subscriptions: Mapping[str, RoomConfig] = field(default_factory=dict)
    extensions: ExtensionsConfig = field(default_factory=ExtensionsConfig)


@dataclass(frozen=True)
class SlidingSyncToken:
    """A response's ``pos``: the connection position, then the stream positions as in a
    /sync token (``3/s120_4_0``: Synapse's ``<connection position>/<stream token>``)."""

    connection_position: int
    stream: int
    typing: int = 0

    @classmethod
    def parse(cls, value: str) -> SlidingSyncToken:
        from homeserver.handlers.sync import SyncToken
        from homeserver.http.errors import MatrixError

        try:
            position, stream_token = value.split("/", 1)
            token = SyncToken.parse(stream_token)
            return cls(int(position), token.stream, token.typing)
        except (ValueError, MatrixError):
            # Synapse's answer to a token it cannot read (M_UNKNOWN, not M_UNKNOWN_POS).
            raise MatrixError(400, "M_UNKNOWN", "Invalid stream token") from None

    def __str__(self) -> str:
        from homeserver.handlers.sync import SyncToken

        return f"{self.connection_position}/{SyncToken(self.stream, self.typing, 0)}"
