"""Reference hashes and event ids (room versions 4+ event ids; v12 room ids).

The event id is "$" + URL-safe unpadded base64 of the reference hash, which is
the SHA-256 of the canonical JSON of the redacted event without `signatures`
and `unsigned`.  In room version 12 the room id is the create event's id with
a "!" sigil.

Hash the PDU exactly as on the wire.  A locally attached `event_id` is
ignored (v4+ PDUs never carry one), but a `room_id` attached to a v12 create
event is *not*: it would be hashed, giving a different (and, by the auth
rules, rejected) event -- a received create event with a room_id must not
share the id of the real one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from unpaddedbase64 import encode_base64

from homeserver.protocol.canonical_json import encode_canonical_json
from homeserver.protocol.redaction import redact_event
from homeserver.protocol.room_versions import ROOM_VERSION_12, RoomVersion, get_room_version


def compute_reference_hash(event: Mapping[str, Any], room_version: RoomVersion | str) -> bytes:
    """The raw SHA-256 reference hash of `event`."""
    rv = get_room_version(room_version)
    redacted = redact_event(event, rv)
    redacted.pop("signatures", None)
    redacted.pop("unsigned", None)
    # In every supported version the id is derived from the event, so a PDU
    # never carries it; callers often attach it locally, and it must not feed
    # back into its own hash.
    redacted.pop("event_id", None)
    # Synapse also strips the legacy top-level `age_ts` (pre-v11 rules keep no
    # such key anyway, v11 drops it) -- nothing further needed here.
    return hashlib.sha256(encode_canonical_json(redacted)).digest()


def _urlsafe_unpadded_base64(data: bytes) -> str:
    return encode_base64(data, urlsafe=True)


def compute_event_id(event: Mapping[str, Any], room_version: RoomVersion | str) -> str:
    """The event id ("$" + URL-safe unpadded base64 reference hash)."""
    return "$" + _urlsafe_unpadded_base64(compute_reference_hash(event, room_version))


def compute_room_id_from_create_event(
    create_event: Mapping[str, Any], room_version: RoomVersion | str = ROOM_VERSION_12
) -> str:
    """Room id of a room version 12 room: its create event's id with a "!" sigil."""
    rv = get_room_version(room_version)
    if not rv.room_id_from_create_event:
        raise ValueError(f"Room version {rv.identifier} does not derive room ids from create events")
    return "!" + _urlsafe_unpadded_base64(compute_reference_hash(create_event, rv))


def create_event_id_from_room_id(room_id: str) -> str:
    """Inverse of compute_room_id_from_create_event (no hashing involved)."""
    if not room_id.startswith("!"):
        raise ValueError(f"Not a room id: {room_id!r}")
    return "$" + room_id[1:]
