"""Room versions supported by WSPR and the behaviour switches they imply.

Only the room versions that a modern homeserver has to create and join are
supported (10, 11 and 12).  Every algorithm in :mod:`homeserver.protocol`
branches on the feature flags below rather than on the identifier, so adding
a version means adding one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass


class UnsupportedRoomVersion(KeyError):
    """Raised for a room version identifier this server does not implement."""

    def __init__(self, identifier: object) -> None:
        super().__init__(identifier)
        self.identifier = identifier

    def __str__(self) -> str:
        return f"Unsupported room version: {self.identifier!r}"


@dataclass(frozen=True)
class RoomVersion:
    identifier: str
    # v11+: the creator is the create event's `sender`; `content.creator` is gone.
    implicit_room_creator: bool
    # v11+: the v11 redaction algorithm (MSC2176/MSC3821/MSC3989).
    updated_redaction_rules: bool
    # v12: room id is "!" + the create event's reference hash; the create event
    # has no room_id and is never listed in `auth_events`.
    room_id_from_create_event: bool
    # v12: the create event's sender and `additional_creators` outrank everyone
    # and may not appear in `m.room.power_levels` `users`.
    creators_have_infinite_power: bool
    # v12: state resolution v2.1 (empty initial state, conflicted subgraph).
    state_res_v2_1: bool
    # All supported versions have these; kept as flags so the algorithms say why
    # they branch.
    restricted_join_rule: bool = True
    knock_join_rule: bool = True
    knock_restricted_join_rule: bool = True
    enforce_int_power_levels: bool = True
    strict_canonical_json: bool = True
    limit_notifications_power_levels: bool = True

    @property
    def create_event_in_auth_events(self) -> bool:
        """Whether events must list the create event in `auth_events`."""
        return not self.room_id_from_create_event


ROOM_VERSION_10 = RoomVersion(
    identifier="10",
    implicit_room_creator=False,
    updated_redaction_rules=False,
    room_id_from_create_event=False,
    creators_have_infinite_power=False,
    state_res_v2_1=False,
)
ROOM_VERSION_11 = RoomVersion(
    identifier="11",
    implicit_room_creator=True,
    updated_redaction_rules=True,
    room_id_from_create_event=False,
    creators_have_infinite_power=False,
    state_res_v2_1=False,
)
ROOM_VERSION_12 = RoomVersion(
    identifier="12",
    implicit_room_creator=True,
    updated_redaction_rules=True,
    room_id_from_create_event=True,
    creators_have_infinite_power=True,
    state_res_v2_1=True,
)

KNOWN_ROOM_VERSIONS: dict[str, RoomVersion] = {
    v.identifier: v for v in (ROOM_VERSION_10, ROOM_VERSION_11, ROOM_VERSION_12)
}

DEFAULT_ROOM_VERSION = "11"

# Every room version the spec defines.  Auth rule "content.room_version is not a
# recognised version" is checked against this set (as Synapse does against its
# own full list), not against what we can join, so that a v10+ create event
# naming an older version is not spuriously rejected.
SPEC_ROOM_VERSION_IDENTIFIERS: frozenset[str] = frozenset(
    str(n) for n in range(1, 13)
)


def get_room_version(identifier: str | RoomVersion) -> RoomVersion:
    """Look up a supported room version; raise UnsupportedRoomVersion otherwise.

    Accepts an already-resolved RoomVersion so that every function in this
    package can take either form.
    """
    if isinstance(identifier, RoomVersion):
        return identifier
    try:
        return KNOWN_ROOM_VERSIONS[identifier]
    except (KeyError, TypeError):
        raise UnsupportedRoomVersion(identifier) from None
