"""Which state events a room's ``required_state`` asks for, and what to send when the
client changes it between requests. Pure functions: no I/O.

The rules are Synapse's (handlers/sliding_sync/__init__.py, ``_required_state_changes``),
which the MSC leaves open: a state key dropped from the request stays "sent" until that
state changes, so asking for it again does not resend an unchanged event; ``$LAZY``
members are remembered per connection and sent once; ``["*", "*"]`` (or any wildcard
type) returns all state, lazy or not.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import TypeVar

from homeserver.events.event import Event
from homeserver.handlers.sliding_sync.config import (
    LAZY,
    ME,
    MEMBER,
    WILDCARD,
    RequiredStateMap,
)
from homeserver.storage.events import StateKey

V = TypeVar("V")

# How many state keys of one type a connection remembers having sent (Synapse's bound).
MAX_REMEMBERED_STATE_KEYS = 100


@dataclass(frozen=True)
class StateFilter:
    """A set of state keys: ``types`` maps a type to its keys (None: every key);
    ``include_others`` takes every type not named in ``types`` as well."""

    types: Mapping[str, frozenset[str] | None] = field(default_factory=dict)
    include_others: bool = False

    @staticmethod
    def all() -> StateFilter:
        return StateFilter({}, True)

    @staticmethod
    def none() -> StateFilter:
        return StateFilter({}, False)

    @staticmethod
    def from_types(pairs: Iterable[tuple[str, str | None]]) -> StateFilter:
        types: dict[str, set[str] | None] = {}
        for state_type, state_key in pairs:
            if state_key is None:
                types[state_type] = None
            elif state_type not in types:
                types[state_type] = {state_key}
            elif (keys := types[state_type]) is not None:
                keys.add(state_key)
        return StateFilter({t: frozenset(k) if k is not None else None for t, k in types.items()}, False)

    @property
    def is_all(self) -> bool:
        return self.include_others and not self.types

    @property
    def is_none(self) -> bool:
        return not self.include_others and not self.types

    def with_types(self, pairs: Iterable[tuple[str, str | None]]) -> StateFilter:
        """This filter plus the given keys."""
        if self.is_all:
            return self
        merged = StateFilter.from_types(itertools.chain(pairs, self.to_types()))
        return StateFilter(merged.types, self.include_others)

    def to_types(self) -> list[tuple[str, str | None]]:
        out: list[tuple[str, str | None]] = []
        for state_type, keys in self.types.items():
            if keys is None:
                out.append((state_type, None))
            else:
                out.extend((state_type, k) for k in keys)
        return out

    def matches(self, key: StateKey) -> bool:
        if key[0] not in self.types:
            return self.include_others
        keys = self.types[key[0]]
        return keys is None or key[1] in keys

    def filter_state(self, state: Mapping[StateKey, V]) -> dict[StateKey, V]:
        if self.is_all:
            return dict(state)
        return {k: v for k, v in state.items() if self.matches(k)}


@dataclass
class RequestedState:
    """What a room's required_state asks for in this response."""

    filter: StateFilter
    lazy_members: bool = False
    # users whose membership lazy-loading needs (timeline senders and targets, and with
    # an unlimited incremental timeline every member whose membership changed)
    lazy_user_ids: set[str] = field(default_factory=set)
    # users whose membership is asked for by name (``$ME`` resolved)
    explicit_user_ids: set[str] = field(default_factory=set)


def requested_state(
    required: RequiredStateMap,
    user_id: str,
    timeline: list[Event],
    *,
    limited: bool | None,
    initial: bool,
    state_deltas: Iterable[StateKey],
) -> RequestedState:
    """The state filter of a joined (or left) room's required_state for this response."""
    wildcard_keys = required.get(WILDCARD)
    if wildcard_keys is not None:
        # ["*", "*"] and ["*", key] both return all state, as in Synapse (returning more
        # than asked is allowed; a wildcard type cannot be looked up by type).
        return RequestedState(StateFilter.all())
    pairs: list[tuple[str, str | None]] = []
    out = RequestedState(StateFilter.none())
    for state_type, keys in required.items():
        for state_key in keys:
            if state_key == WILDCARD:
                pairs.append((state_type, None))
            elif state_type == MEMBER and state_key == LAZY:
                out.lazy_members = True
                in_timeline = {e.sender for e in timeline} | {
                    e.state_key for e in timeline if e.type == MEMBER and e.state_key is not None
                }
                out.lazy_user_ids |= in_timeline
                if limited or initial:
                    pairs.extend((MEMBER, u) for u in in_timeline)
                else:
                    # A gapless incremental timeline carries every membership change, so a
                    # client that holds the member list can keep it up to date.
                    pairs.append((MEMBER, None))
                    out.lazy_user_ids |= {k for t, k in state_deltas if t == MEMBER}
            else:
                resolved = user_id if state_key == ME else state_key
                if state_type == MEMBER:
                    out.explicit_user_ids.add(resolved)
                pairs.append((state_type, resolved))
    out.filter = StateFilter.from_types(pairs)
    out.lazy_user_ids -= out.explicit_user_ids
    return out


@dataclass
class RequiredStateChanges:
    # the required-state map to remember for the room, None when unchanged
    new_map: dict[str, frozenset[str]] | None
    # current state to send on top of the deltas (keys newly asked for)
    added: StateFilter
    # members sent before as explicit state that now count as lazily sent
    extra_lazy_user_ids: set[str] = field(default_factory=set)
    # lazily sent members whose membership changed and is not sent now
    invalidated_lazy_user_ids: set[str] = field(default_factory=set)


def required_state_changes(
    user_id: str,
    *,
    previous: RequiredStateMap,
    request: RequiredStateMap,
    previously_lazy: AbstractSet[str],
    request_lazy: AbstractSet[str],
    state_deltas: AbstractSet[StateKey],
) -> RequiredStateChanges:
    """Compares the room's required_state remembered for the connection with the one of
    this request: what to fetch beyond the deltas, and what to remember now.

    ``previously_lazy``: members already sent lazily (among those this response cares
    about); ``request_lazy``: members lazy-loading needs now; ``state_deltas``: state keys
    that changed since the room was last sent."""
    invalidated = {
        k for t, k in state_deltas if t == MEMBER and k not in request_lazy and k in previously_lazy
    }
    if previous == request:
        new_lazy = request_lazy - previously_lazy
        fetch = StateFilter.from_types((MEMBER, u) for u in new_lazy) if new_lazy else StateFilter.none()
        return RequiredStateChanges(None, fetch, invalidated_lazy_user_ids=invalidated)

    prev_wild = previous.get(WILDCARD, frozenset())
    req_wild = request.get(WILDCARD, frozenset())
    if WILDCARD in prev_wild:
        # Everything was sent already: narrowing needs nothing new.
        return RequiredStateChanges(dict(request), StateFilter.none(), invalidated_lazy_user_ids=invalidated)
    if req_wild - prev_wild:
        return RequiredStateChanges(dict(request), StateFilter.all(), invalidated_lazy_user_ids=invalidated)
    if prev_wild - req_wild:
        return RequiredStateChanges(dict(request), StateFilter.none(), invalidated_lazy_user_ids=invalidated)

    changed_keys: dict[str, set[str]] = {}
    for state_type, state_key in state_deltas:
        changed_keys.setdefault(state_type, set()).add(state_key)

    changes: dict[str, frozenset[str]] = {}
    added: list[tuple[str, str | None]] = []
    # Keys asked for now and not before.
    for state_type in previous.keys() | request.keys():
        old = previous.get(state_type, frozenset())
        new = request.get(state_type, frozenset())
        if old == new or not new - old:
            continue
        if state_type == MEMBER and LAZY not in old and LAZY in new:
            changes[state_type] = new
            continue
        # A key dropped from the request is forgotten only once its state changed: asked
        # for again while unchanged, it is not sent twice.
        dropped_and_changed = (old - new) & changed_keys.get(state_type, set())
        inherited = (old - {WILDCARD, LAZY}) - dropped_and_changed
        remembered = new | inherited
        if len(remembered) > MAX_REMEMBERED_STATE_KEYS:
            room_left = max(0, MAX_REMEMBERED_STATE_KEYS - len(new))
            remembered = new | frozenset(itertools.islice(sorted(inherited - new), room_left))
        changes[state_type] = remembered
        if WILDCARD in old:
            continue
        if WILDCARD in new:
            added.append((state_type, None))
            continue
        for state_key in new - old:
            if state_key == ME:
                added.append((state_type, user_id))
            elif state_key == LAZY:
                continue  # lazy members are handled below
            elif state_type == MEMBER and state_key in previously_lazy:
                continue  # sent before as a lazy member
            else:
                added.append((state_type, state_key))

    previously_named = set(previous.get(MEMBER, ()))
    if ME in previously_named:
        previously_named.add(user_id)
    added.extend((MEMBER, u) for u in request_lazy - previously_lazy - previously_named)

    # Keys only dropped from the request.
    for state_type, changed in changed_keys.items():
        old = previous.get(state_type, frozenset())
        new = request.get(state_type, frozenset())
        if old == new or new - old:
            continue
        changed_here = set(changed)
        if user_id in changed_here:
            changed_here.add(ME)
        dropped_and_changed = (old - new) & changed_here
        if (WILDCARD in old) != (WILDCARD in new):
            changes[state_type] = new
            continue
        if state_type == MEMBER:
            lazy_before, lazy_now = LAZY in old, LAZY in new
            if lazy_before != lazy_now or ((lazy_before or lazy_now) and dropped_and_changed):
                changes[state_type] = new
                continue
        if dropped_and_changed:
            changes[state_type] = old - dropped_and_changed

    # Members once asked for by name and now lazily loaded count as lazily sent, unless
    # their membership changed since.
    extra_lazy: set[str] = set()
    if changes.get(MEMBER) and LAZY in request.get(MEMBER, ()):
        for state_key in previous.get(MEMBER, ()):
            if state_key in (WILDCARD, LAZY):
                continue
            resolved = user_id if state_key == ME else state_key
            if (MEMBER, resolved) not in state_deltas:
                extra_lazy.add(resolved)

    new_map: dict[str, frozenset[str]] | None = None
    if changes:
        new_map = dict(previous)
        for state_type, keys in changes.items():
            if keys:
                new_map[state_type] = keys
            else:
                new_map.pop(state_type, None)
    return RequiredStateChanges(new_map, StateFilter.from_types(added), extra_lazy, invalidated)
