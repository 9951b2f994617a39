"""State resolution v1 (room version 1, "State resolution" in `rooms/v1.md`).

Pure and deterministic: everything comes from `event_map`, nothing is fetched.
Room version 1 is known to reset state (the spec's warning); what matters is
that every server resets it the same way, so the structure follows Synapse's
`synapse/state/v1.py`, including where it reads the spec its own way:

* a key is conflicted only when the state sets hold different events for it;
  a key missing from some sets is not (unlike v2);
* the events used to authorise the conflicted events are taken from the
  unconflicted state only, for the auth event types of the conflicted events;
* conflicts are settled by type: `m.room.power_levels` first, then every
  `m.room.join_rules` key, then every `m.room.member` key -- each of these
  by walking its events from the lowest `depth` (ties: the greater
  `sha1(event_id)` first), taking each next event while it passes the auth
  rules in the state built so far and stopping at the first that fails --
  then every other key by the highest `depth` (ties: the smaller sha1) that
  passes the auth rules, or the last one tried if none does;
* events unknown or rejected (Synapse fetches them without rejected ones)
  take no part: a conflicted key with one known event gets that event, a key
  with none is left out of the result.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from homeserver.protocol.auth_rules import (
    POWER_LEVELS_KEY,
    AuthError,
    auth_types_for_event,
    check_auth_rules,
)
from homeserver.protocol.room_versions import RoomVersion, get_room_version

StateKey = tuple[str, str]
EventMap = Mapping[str, Mapping[str, Any]]

__all__ = ["resolve_state", "separate_state_sets"]


def separate_state_sets(
    state_sets: Sequence[Mapping[StateKey, str]],
) -> tuple[dict[StateKey, str], dict[StateKey, set[str]]]:
    """Split into the unconflicted state (keys whose sets agree, including
    keys only some sets have) and the conflicted state (key -> the distinct
    event ids the sets hold for it)."""
    values: dict[StateKey, set[str]] = {}
    for state_set in state_sets:
        for key, event_id in state_set.items():
            values.setdefault(key, set()).add(event_id)
    unconflicted: dict[StateKey, str] = {}
    conflicted: dict[StateKey, set[str]] = {}
    for key, ids in values.items():
        if len(ids) == 1:
            unconflicted[key] = next(iter(ids))
        else:
            conflicted[key] = ids
    return unconflicted, conflicted


class _Resolver:
    def __init__(self, rv: RoomVersion, event_map: EventMap, rejected_event_ids: Collection[str]) -> None:
        self.rv = rv
        self.event_map = event_map
        self.rejected_event_ids = rejected_event_ids

    def known(self, event_id: str) -> Mapping[str, Any] | None:
        """The state event, unless it is unknown or rejected."""
        event = self.event_map.get(event_id)
        if event is None or event_id in self.rejected_event_ids or event.get("rejected_reason"):
            return None
        if not isinstance(event.get("type"), str) or not isinstance(event.get("state_key"), str):
            return None
        return event

    def ordered(self, event_ids: Iterable[str]) -> list[str]:
        """Highest depth first, ties broken by the smaller sha1 of the id."""

        def key(event_id: str) -> tuple[int, str]:
            depth = self.event_map[event_id].get("depth")
            return (-(depth if type(depth) is int else 0), hashlib.sha1(event_id.encode("utf-8")).hexdigest())

        return sorted(event_ids, key=key)

    def allowed(self, event_id: str, auth_events: Mapping[StateKey, Mapping[str, Any]]) -> bool:
        try:
            check_auth_rules(self.event_map[event_id], auth_events, self.rv, state_dependent_only=True)
        except AuthError:
            return False
        return True

    def resolve_auth_events(self, key: StateKey, event_ids: list[str], auth_events: Mapping[StateKey, Mapping[str, Any]]) -> str:
        """Power levels, join rules, members: the longest run from the oldest
        event of which each next event is allowed by the state so far."""
        ascending = list(reversed(self.ordered(event_ids)))
        needed = {k for event_id in event_ids for k in auth_types_for_event(self.event_map[event_id], self.rv)}
        state = {k: auth_events[k] for k in needed if k in auth_events}
        accepted = ascending[0]
        for event_id in ascending[1:]:
            state[key] = self.event_map[accepted]
            if not self.allowed(event_id, state):
                return accepted
            accepted = event_id
        return accepted

    def resolve_normal_events(self, event_ids: list[str], auth_events: Mapping[StateKey, Mapping[str, Any]]) -> str:
        """Any other key: the newest event allowed by the state, else the
        oldest (the last one tried)."""
        ordered = self.ordered(event_ids)
        for event_id in ordered:
            if self.allowed(event_id, auth_events):
                return event_id
        return ordered[-1]


def resolve_state(
    room_version: RoomVersion | str,
    state_sets: Sequence[Mapping[StateKey, str]],
    event_map: EventMap,
    auth_chain: Callable[[str], Collection[str]] | None = None,
    *,
    rejected_event_ids: Collection[str] = frozenset(),
) -> dict[StateKey, str]:
    """Resolve `state_sets` ((type, state_key) -> event id maps) into one.

    `event_map` must hold the conflicted events and the unconflicted state
    events that authorise them, keyed by event id.  Events rejected on
    receipt may be named in `rejected_event_ids` or carry a truthy
    "rejected_reason" key.  `auth_chain` is accepted for the signature of
    :func:`state_resolution_v2.resolve_state` and not needed.
    """
    rv = get_room_version(room_version)
    state_sets = list(state_sets)
    if not state_sets:
        return {}
    if len(state_sets) == 1:
        return dict(state_sets[0])
    resolver = _Resolver(rv, event_map, rejected_event_ids)
    unconflicted, conflicted_ids = separate_state_sets(state_sets)

    # Authorise the conflicted events against the unconflicted state only.
    auth_events: dict[StateKey, Mapping[str, Any]] = {}
    for candidates in conflicted_ids.values():
        for event_id in candidates:
            event = resolver.known(event_id)
            if event is None:
                continue
            for key in auth_types_for_event(event, rv):
                auth_event = resolver.known(unconflicted[key]) if key in unconflicted else None
                if auth_event is not None:
                    auth_events[key] = auth_event

    resolved = dict(unconflicted)
    conflicted: dict[StateKey, list[str]] = {}
    for key, candidates in conflicted_ids.items():
        known = [i for i in candidates if resolver.known(i) is not None]
        if len(known) > 1:
            conflicted[key] = known
        elif known:
            resolved[key] = known[0]

    winners: dict[StateKey, str] = {}
    if POWER_LEVELS_KEY in conflicted:
        winners[POWER_LEVELS_KEY] = resolver.resolve_auth_events(
            POWER_LEVELS_KEY, conflicted[POWER_LEVELS_KEY], auth_events
        )
    auth_events.update((key, event_map[event_id]) for key, event_id in winners.items())
    # Then join rules, then members; the keys of one type are settled
    # against the same state, so their order does not matter.
    for event_type in ("m.room.join_rules", "m.room.member"):
        for key, ids in conflicted.items():
            if key[0] == event_type:
                winners[key] = resolver.resolve_auth_events(key, ids, auth_events)
        auth_events.update((key, event_map[event_id]) for key, event_id in winners.items())
    for key, ids in conflicted.items():
        if key not in winners:
            winners[key] = resolver.resolve_normal_events(ids, auth_events)

    resolved.update(winners)
    return resolved
