"""State resolution v2 (room versions 2 to 11) and v2.1 (room version 12).

Pure and deterministic: everything comes from `event_map`, nothing is fetched.
The structure follows Synapse's `synapse/state/v2.py` step for step, because
the federation only converges if every server picks the same winners -- in
particular these Synapse behaviours, which the spec text leaves open or words
differently, are reproduced deliberately:

* a key present in only some state sets is conflicted;
* the auth difference includes the state events themselves, not only their
  auth chains;
* `m.room.create` counts as a power event;
* the power-ordering graph only follows auth edges *through* events of the
  full conflicted set;
* the sender's power level for ordering comes from the event's own auth
  events (creators: CREATOR_POWER_LEVEL in v12, 100 without a PL event),
  read by the auth rules' own lookup;
* mainline depth is measured from the oldest power levels event (1) with 0 for
  events that reach none, sorted ascending -- equivalent to the spec's
  "greater mainline position first";
* iterative auth checks take auth events from the event's own `auth_events`
  (ignoring rejected ones) overridden by the partially resolved state for the
  keys the auth rules may consult; rejected events never enter the state.

In room version 12 the create event is an implicit auth event of every other
event (its id is the room id with a "$" sigil), exactly as Synapse models it.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from homeserver.protocol.auth_rules import (
    CREATE_KEY,
    CREATOR_POWER_LEVEL,
    POWER_LEVELS_KEY,
    AuthError,
    auth_state_keys_for_event,
    check_auth_rules,
    get_user_power_level,
)
from homeserver.protocol.event_format import auth_event_ids
from homeserver.protocol.room_versions import RoomVersion, get_room_version

StateKey = tuple[str, str]
EventMap = Mapping[str, Mapping[str, Any]]

__all__ = [
    "CREATOR_POWER_LEVEL",
    "get_auth_chain",
    "is_power_event",
    "lexicographical_topological_sort",
    "resolve_state",
    "separate_state_sets",
]


def is_power_event(event: Mapping[str, Any]) -> bool:
    """Power levels, join rules, create (Synapse), or a kick/ban of someone else."""
    etype = event.get("type")
    state_key = event.get("state_key")
    if state_key == "" and etype in ("m.room.power_levels", "m.room.join_rules", "m.room.create"):
        return True
    if etype == "m.room.member" and state_key is not None:
        content = event.get("content")
        membership = content.get("membership") if isinstance(content, Mapping) else None
        if membership in ("leave", "ban"):
            return event.get("sender") != state_key
    return False


def separate_state_sets(
    state_sets: Sequence[Mapping[StateKey, str]],
) -> tuple[dict[StateKey, str], dict[StateKey, set[str]]]:
    """Split into the unconflicted state map and the conflicted state (key ->
    candidate event ids).  A key missing from some set is conflicted."""
    if not state_sets:
        return {}, {}
    # dict item views support set operations in C: an item present (same key,
    # same value) in every set is exactly an unconflicted entry.
    common = set(state_sets[0].items())
    for state_set in state_sets[1:]:
        common &= state_set.items()
    unconflicted: dict[StateKey, str] = dict(common)
    conflicted: dict[StateKey, set[str]] = {}
    for state_set in state_sets:
        for key in state_set.keys() - unconflicted.keys():
            if key not in conflicted:
                conflicted[key] = {v for s in state_sets if (v := s.get(key)) is not None}
    return unconflicted, conflicted


def lexicographical_topological_sort(
    graph: Mapping[str, Iterable[str]], key: Callable[[str], Any]
) -> list[str]:
    """Kahn's algorithm over `graph` (node -> nodes it points at, i.e. its auth
    events), emitting a node only once everything it points at has been
    emitted, choosing the smallest `key` among the candidates each time."""
    outdegree: dict[str, int] = {}
    reverse: dict[str, list[str]] = {node: [] for node in graph}
    for node, edges in graph.items():
        edge_set = set(edges)
        outdegree[node] = len(edge_set)
        for edge in edge_set:
            reverse.setdefault(edge, []).append(node)
    heap = [(key(node), node) for node, degree in outdegree.items() if degree == 0]
    heapq.heapify(heap)
    result: list[str] = []
    while heap:
        _, node = heapq.heappop(heap)
        result.append(node)
        for parent in reverse.get(node, ()):
            outdegree[parent] -= 1
            if outdegree[parent] == 0:
                heapq.heappush(heap, (key(parent), parent))
    return result


class _Resolver:
    def __init__(
        self,
        rv: RoomVersion,
        event_map: EventMap,
        auth_chain: Callable[[str], Collection[str]] | None,
        rejected_event_ids: Collection[str],
    ) -> None:
        self.rv = rv
        self.event_map = event_map
        self.auth_chain_fn = auth_chain
        self.rejected_event_ids = rejected_event_ids
        self._auth_ids_cache: dict[str, tuple[str, ...]] = {}
        self._chain_cache: dict[str, Collection[str]] = {}

    # -- event graph ----------------------------------------------------------

    def auth_ids(self, event_id: str) -> tuple[str, ...]:
        cached = self._auth_ids_cache.get(event_id)
        if cached is not None:
            return cached
        event = self.event_map.get(event_id)
        if event is None:
            ids: tuple[str, ...] = ()
        else:
            ids = tuple(auth_event_ids(event, self.rv))
            if self.rv.room_id_from_create_event and not (
                event.get("type") == "m.room.create" and event.get("state_key") == ""
            ):
                room_id = event.get("room_id")
                if isinstance(room_id, str) and room_id.startswith("!"):
                    create_id = "$" + room_id[1:]
                    if create_id not in ids:
                        ids = (create_id,) + ids
        self._auth_ids_cache[event_id] = ids
        return ids

    def is_rejected(self, event_id: str) -> bool:
        if event_id in self.rejected_event_ids:
            return True
        event = self.event_map.get(event_id)
        return bool(event is not None and event.get("rejected_reason"))

    def reach(self, start: Iterable[str]) -> set[str]:
        """`start` plus everything reachable from it along auth edges."""
        result: set[str] = set()
        if self.auth_chain_fn is not None:
            for event_id in start:
                if event_id in result:
                    # Already covered, and so is its chain if it was a start
                    # node; otherwise its chain is a subset of a covered one.
                    continue
                result.add(event_id)
                chain = self._chain_cache.get(event_id)
                if chain is None:
                    chain = self.auth_chain_fn(event_id)
                    self._chain_cache[event_id] = chain
                result.update(chain)
            return result
        stack = [e for e in start]
        while stack:
            event_id = stack.pop()
            if event_id in result:
                continue
            result.add(event_id)
            for auth_id in self.auth_ids(event_id):
                if auth_id not in result:
                    stack.append(auth_id)
        return result

    def _pl_auth_event_id(self, event_id: str) -> str | None:
        for auth_id in self.auth_ids(event_id):
            auth_event = self.event_map.get(auth_id)
            if (
                auth_event is not None
                and auth_event.get("type") == "m.room.power_levels"
                and auth_event.get("state_key") == ""
            ):
                return auth_id
        return None

    # -- definitions ------------------------------------------------------------

    def auth_difference(
        self,
        state_sets: Sequence[Mapping[StateKey, str]],
        unconflicted: Mapping[StateKey, str],
        conflicted: Mapping[StateKey, set[str]],
    ) -> set[str]:
        # C_i = reach(S_i) = reach(U) | R_i where U is the unconflicted
        # events (in every set) and R_i = reach(the set's conflicted-key
        # events), so
        #   union(C_i) - intersection(C_i) = (union(R_i) - intersection(R_i)) - reach(U).
        # The R_i are small; reach(U) is only needed where it meets the
        # candidates.
        per_set = [
            self.reach(v for k, v in state_set.items() if k in conflicted) for state_set in state_sets
        ]
        union: set[str] = set().union(*per_set)
        intersection: set[str] = set(per_set[0]).intersection(*per_set[1:]) if per_set else set()
        candidates = union - intersection
        if not candidates:
            return candidates
        # Walk down from U, dropping candidates met on the way.  Every R_i is
        # closed under auth ancestry, so below an event of `intersection`
        # there are no candidates: the walk stops there, and stops entirely
        # once no candidate is left.
        remaining = set(candidates)
        seen: set[str] = set()
        stack = list(unconflicted.values())
        while stack and remaining:
            event_id = stack.pop()
            if event_id in seen:
                continue
            seen.add(event_id)
            remaining.discard(event_id)
            for auth_id in self.auth_ids(event_id):
                if auth_id not in seen and auth_id not in intersection:
                    stack.append(auth_id)
        return remaining

    def conflicted_subgraph(self, conflicted_ids: set[str]) -> set[str]:
        """Events on auth paths between conflicted events (endpoints included)."""
        ancestors = self.reach(conflicted_ids)
        # Walk backwards (auth event -> events citing it) from the conflicted
        # events, staying inside their ancestry.
        citers: dict[str, list[str]] = {}
        for event_id in ancestors:
            for auth_id in self.auth_ids(event_id):
                if auth_id in ancestors:
                    citers.setdefault(auth_id, []).append(event_id)
        result: set[str] = set()
        stack = list(conflicted_ids)
        while stack:
            event_id = stack.pop()
            if event_id in result:
                continue
            result.add(event_id)
            stack.extend(c for c in citers.get(event_id, ()) if c not in result)
        return result

    def sender_power_level(self, event_id: str) -> int:
        event = self.event_map[event_id]
        sender = event.get("sender")
        pl_event: Mapping[str, Any] | None = None
        create_event: Mapping[str, Any] | None = None
        for auth_id in self.auth_ids(event_id):
            auth_event = self.event_map.get(auth_id)
            if auth_event is None or auth_event.get("state_key") != "":
                continue
            if auth_event.get("type") == "m.room.power_levels":
                pl_event = auth_event
            elif auth_event.get("type") == "m.room.create":
                create_event = auth_event
        if not isinstance(sender, str):
            return 0
        auth_state: dict[StateKey, Mapping[str, Any]] = {}
        if create_event is not None:
            auth_state[CREATE_KEY] = create_event
        if pl_event is not None:
            auth_state[POWER_LEVELS_KEY] = pl_event
        return get_user_power_level(sender, auth_state, self.rv)

    def reverse_topological_power_sort(self, event_ids: Iterable[str], full_conflicted: set[str]) -> list[str]:
        graph: dict[str, set[str]] = {}
        for start in event_ids:
            stack = [start]
            while stack:
                event_id = stack.pop()
                edges = graph.setdefault(event_id, set())
                for auth_id in self.auth_ids(event_id):
                    if auth_id in full_conflicted:
                        if auth_id not in graph:
                            stack.append(auth_id)
                        edges.add(auth_id)
        order_key: dict[str, tuple[int, int, str]] = {}
        for event_id in graph:
            ts = self.event_map[event_id].get("origin_server_ts", 0)
            order_key[event_id] = (-self.sender_power_level(event_id), ts if isinstance(ts, int) else 0, event_id)
        return lexicographical_topological_sort(graph, order_key.__getitem__)

    def iterative_auth_checks(self, event_ids: Iterable[str], base_state: Mapping[StateKey, str]) -> dict[StateKey, str]:
        resolved = dict(base_state)
        for event_id in event_ids:
            event = self.event_map[event_id]
            etype, state_key = event.get("type"), event.get("state_key")
            if not isinstance(etype, str) or not isinstance(state_key, str) or self.is_rejected(event_id):
                # Not state (or malformed), or rejected: never admitted.
                continue
            auth_events: dict[StateKey, Mapping[str, Any]] = {}
            for auth_id in self.auth_ids(event_id):
                auth_event = self.event_map.get(auth_id)
                if auth_event is None or self.is_rejected(auth_id):
                    continue
                auth_type, auth_state_key = auth_event.get("type"), auth_event.get("state_key")
                if isinstance(auth_type, str) and isinstance(auth_state_key, str):
                    auth_events[(auth_type, auth_state_key)] = auth_event
            for key in auth_state_keys_for_event(event, self.rv):
                state_id = resolved.get(key)
                if state_id is not None and not self.is_rejected(state_id):
                    state_event = self.event_map.get(state_id)
                    if state_event is not None:
                        auth_events[key] = state_event
            try:
                check_auth_rules(event, auth_events, self.rv, state_dependent_only=True)
            except AuthError:
                continue
            resolved[(etype, state_key)] = event_id
        return resolved

    def mainline_sort(self, event_ids: list[str], resolved_pl_id: str | None) -> list[str]:
        if not event_ids:
            return []
        mainline: list[str] = []
        seen: set[str] = set()
        pl_id = resolved_pl_id
        while pl_id is not None and pl_id not in seen and pl_id in self.event_map:
            seen.add(pl_id)
            mainline.append(pl_id)
            pl_id = self._pl_auth_event_id(pl_id)
        # Oldest power levels event is depth 1; 0 means "reaches none of it".
        depth_of: dict[str, int] = {e: i + 1 for i, e in enumerate(reversed(mainline))}

        def mainline_depth(event_id: str) -> int:
            # Walks the chain of PL events in auth_events.  Every PL event
            # passed on the way gets the same answer, so memoise them all:
            # keeps 10k events citing a long PL history linear.
            path: list[str] = []
            current: str | None = event_id
            depth = 0
            while current is not None:
                known = depth_of.get(current)
                if known is not None:
                    depth = known
                    break
                path.append(current)
                current = self._pl_auth_event_id(current)
                if current in path:
                    break  # a cycle can only come from corrupt data
            for visited in path[1:]:
                depth_of[visited] = depth
            return depth

        order: dict[str, tuple[int, int, str]] = {}
        for event_id in event_ids:
            ts = self.event_map[event_id].get("origin_server_ts", 0)
            order[event_id] = (mainline_depth(event_id), ts if isinstance(ts, int) else 0, event_id)
        return sorted(event_ids, key=order.__getitem__)


def get_auth_chain(
    event_ids: Iterable[str],
    event_map: EventMap,
    room_version: RoomVersion | str,
) -> set[str]:
    """Ids of the auth chains of `event_ids` (not including those events
    themselves unless one is an ancestor of another), e.g. for
    /event_auth and /state responses.  In room version 12 the create event
    counts as an auth event of every other event.  Events missing from
    `event_map` are returned but not walked further."""
    resolver = _Resolver(get_room_version(room_version), event_map, None, frozenset())
    start = list(event_ids)
    result: set[str] = set()
    for event_id in start:
        for auth_id in resolver.auth_ids(event_id):
            result.add(auth_id)
    return resolver.reach(result)


def resolve_state(
    room_version: RoomVersion | str,
    state_sets: Sequence[Mapping[StateKey, str]],
    event_map: EventMap,
    auth_chain: Callable[[str], Collection[str]] | None = None,
    *,
    rejected_event_ids: Collection[str] = frozenset(),
) -> dict[StateKey, str]:
    """Resolve `state_sets` ((type, state_key) -> event id maps) into one.

    `event_map` must hold every event named by the state sets and their auth
    chains, keyed by event id, each dict carrying its own id under
    "event_id".  `auth_chain(event_id)`, if given, returns that event's auth
    chain (ids of all auth ancestors, excluding itself) and replaces walking
    `event_map` (e.g. a database-backed chain index).  Events rejected on
    receipt may be named in `rejected_event_ids` or carry a truthy
    "rejected_reason" key; they never enter the resolved state.
    """
    rv = get_room_version(room_version)
    if rv.state_res_v1:
        raise ValueError(f"Room version {rv.identifier} uses state resolution v1 (see state_resolution.resolve_state)")
    state_sets = [s for s in state_sets]
    if not state_sets:
        return {}
    unconflicted, conflicted = separate_state_sets(state_sets)
    if not conflicted:
        return unconflicted

    resolver = _Resolver(rv, event_map, auth_chain, rejected_event_ids)
    conflicted_ids: set[str] = set().union(*conflicted.values())
    full_conflicted = conflicted_ids | resolver.auth_difference(state_sets, unconflicted, conflicted)
    if rv.state_res_v2_1:
        full_conflicted |= resolver.conflicted_subgraph(conflicted_ids)
    full_conflicted = {e for e in full_conflicted if e in event_map}

    power_events = [e for e in full_conflicted if is_power_event(event_map[e])]
    sorted_power = resolver.reverse_topological_power_sort(power_events, full_conflicted)

    # v2.1 starts from nothing so that unconflicted state cannot prop up a
    # conflicted event it should not (e.g. a state reset re-admitting a ban
    # victim); v2 starts from the unconflicted state.
    base_state: Mapping[StateKey, str] = {} if rv.state_res_v2_1 else unconflicted
    resolved = resolver.iterative_auth_checks(sorted_power, base_state)

    power_set = set(sorted_power)
    leftover = [e for e in full_conflicted if e not in power_set]
    leftover = resolver.mainline_sort(leftover, resolved.get(POWER_LEVELS_KEY))
    resolved = resolver.iterative_auth_checks(leftover, resolved)

    resolved.update(unconflicted)
    return resolved

