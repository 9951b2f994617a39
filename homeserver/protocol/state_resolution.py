"""State resolution for any room version: v1 for room version 1
(:mod:`state_resolution_v1`), v2 for room versions 2 to 11 and v2.1 for 12
(:mod:`state_resolution_v2`).  Callers that resolve state use this."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from homeserver.protocol import state_resolution_v1, state_resolution_v2
from homeserver.protocol.room_versions import RoomVersion, get_room_version

StateKey = tuple[str, str]

__all__ = ["resolve_state"]


def resolve_state(
    room_version: RoomVersion | str,
    state_sets: Sequence[Mapping[StateKey, str]],
    event_map: Mapping[str, Mapping[str, Any]],
    auth_chain: Callable[[str], Collection[str]] | None = None,
    *,
    rejected_event_ids: Collection[str] = frozenset(),
) -> dict[StateKey, str]:
    """Resolve `state_sets` with the room version's algorithm (arguments as
    :func:`state_resolution_v2.resolve_state`)."""
    rv = get_room_version(room_version)
    algorithm = state_resolution_v1 if rv.state_res_v1 else state_resolution_v2
    return algorithm.resolve_state(rv, state_sets, event_map, auth_chain, rejected_event_ids=rejected_event_ids)
