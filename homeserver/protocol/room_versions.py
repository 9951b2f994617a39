"""Room versions 1 to 12 and the behaviour switches they imply (the spec's
room version pages, `content/rooms/v1.md` ... `v12.md`).

Every algorithm in :mod:`homeserver.protocol` branches on the feature flags
below rather than on the identifier, so adding a version means adding one
entry here.  The flags are Synapse's (`synapse.api.room_versions`) under
names that say what they change; `tests/homeserver/protocol/test_basics.py`
checks them against Synapse's table.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


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
    # v8+: the `restricted` join rule and `join_authorised_via_users_server`
    # (auth rules, auth events selection, signatures); redaction keeps
    # `allow` in join rules.
    restricted_join_rule: bool = True
    # v9+: redaction keeps `join_authorised_via_users_server` in member
    # content (v8 dropped it, so redacting a restricted join broke its
    # signature check).
    restricted_join_rule_fix: bool = True
    # v7+: the `knock` membership and join rule.
    knock_join_rule: bool = True
    # v10+: the `knock_restricted` join rule.
    knock_restricted_join_rule: bool = True
    # v10+: power levels must be integers (no "50" strings, no floats).
    enforce_int_power_levels: bool = True
    # v6+: PDUs must be valid canonical JSON (no floats, integers within
    # +/-(2**53-1)).
    strict_canonical_json: bool = True
    # v6+: changes to `notifications` in power levels are checked like
    # `events`.
    limit_notifications_power_levels: bool = True
    # v5+: a signing key must be valid (`valid_until_ts`) at the event's
    # `origin_server_ts` for its signature to count.
    enforce_key_validity: bool = True
    # v1-v5: `m.room.aliases` has its own auth rule (state_key must be the
    # sender's server) and its `aliases` survive redaction.
    special_case_aliases_auth: bool = False
    # v1, v2: the origin chooses the event id ("$opaque:origin") and sends it
    # in the PDU; `prev_events` / `auth_events` are `[event_id, {"sha256":
    # hash}]` pairs; the event id's server must sign the event; redaction
    # auth compares event id domains.  From v3 the id is the reference hash.
    event_id_in_pdu: bool = False
    # v4+: reference-hash event ids use URL-safe base64 (v3: standard).
    url_safe_event_ids: bool = True
    # v1: state resolution v1 (v2 from room version 2).
    state_res_v1: bool = False
    # v11+: the 255 limits on ids and types are in bytes; earlier versions
    # only enforce them in code points (Synapse keeps byte-oversized events
    # of those, as rejected, so as not to break rooms).
    strict_event_byte_limits: bool = True

    @property
    def create_event_in_auth_events(self) -> bool:
        """Whether events must list the create event in `auth_events`."""
        return not self.room_id_from_create_event

    @property
    def reference_hash_event_ids(self) -> bool:
        """Whether the event id is derived from the event (v3+)."""
        return not self.event_id_in_pdu


ROOM_VERSION_1 = RoomVersion(
    identifier="1",
    implicit_room_creator=False,
    updated_redaction_rules=False,
    room_id_from_create_event=False,
    creators_have_infinite_power=False,
    state_res_v2_1=False,
    restricted_join_rule=False,
    restricted_join_rule_fix=False,
    knock_join_rule=False,
    knock_restricted_join_rule=False,
    enforce_int_power_levels=False,
    strict_canonical_json=False,
    limit_notifications_power_levels=False,
    enforce_key_validity=False,
    special_case_aliases_auth=True,
    event_id_in_pdu=True,
    url_safe_event_ids=False,
    state_res_v1=True,
    strict_event_byte_limits=False,
)
# Each version is its predecessor plus what its spec page says changed.
ROOM_VERSION_2 = replace(ROOM_VERSION_1, identifier="2", state_res_v1=False)
ROOM_VERSION_3 = replace(ROOM_VERSION_2, identifier="3", event_id_in_pdu=False)
ROOM_VERSION_4 = replace(ROOM_VERSION_3, identifier="4", url_safe_event_ids=True)
ROOM_VERSION_5 = replace(ROOM_VERSION_4, identifier="5", enforce_key_validity=True)
ROOM_VERSION_6 = replace(
    ROOM_VERSION_5,
    identifier="6",
    special_case_aliases_auth=False,
    strict_canonical_json=True,
    limit_notifications_power_levels=True,
)
ROOM_VERSION_7 = replace(ROOM_VERSION_6, identifier="7", knock_join_rule=True)
ROOM_VERSION_8 = replace(ROOM_VERSION_7, identifier="8", restricted_join_rule=True)
ROOM_VERSION_9 = replace(ROOM_VERSION_8, identifier="9", restricted_join_rule_fix=True)
ROOM_VERSION_10 = RoomVersion(
    identifier="10",
    implicit_room_creator=False,
    updated_redaction_rules=False,
    room_id_from_create_event=False,
    creators_have_infinite_power=False,
    state_res_v2_1=False,
    strict_event_byte_limits=False,
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
    v.identifier: v
    for v in (
        ROOM_VERSION_1,
        ROOM_VERSION_2,
        ROOM_VERSION_3,
        ROOM_VERSION_4,
        ROOM_VERSION_5,
        ROOM_VERSION_6,
        ROOM_VERSION_7,
        ROOM_VERSION_8,
        ROOM_VERSION_9,
        ROOM_VERSION_10,
        ROOM_VERSION_11,
        ROOM_VERSION_12,
    )
}

DEFAULT_ROOM_VERSION = "11"

# Every room version the spec defines.  Auth rule "content.room_version is not a
# recognised version" is checked against this set (as Synapse does against its
# own full list), not against what we can join.
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
