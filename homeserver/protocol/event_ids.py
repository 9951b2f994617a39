"""Reference hashes and event ids (room versions' "Event IDs" sections; v12
room ids).

* Room versions 1 and 2: the origin server chooses the id ("$opaque:origin")
  and sends it in the PDU, where the reference hash covers it too.
* Room version 3: "$" + unpadded standard base64 of the reference hash.
* Room versions 4+: the same in URL-safe base64.
* Room version 12: the room id is the create event's id with a "!" sigil.

The reference hash is the SHA-256 of the canonical JSON of the redacted event
without `signatures` and `unsigned`.  Hash the PDU exactly as on the wire.
In room versions 3+ a locally attached `event_id` is ignored (those PDUs
never carry one), but a `room_id` attached to a v12 create event is *not*:
it would be hashed, giving a different (and, by the auth rules, rejected)
event -- a received create event with a room_id must not share the id of the
real one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from unpaddedbase64 import encode_base64

from homeserver.protocol.canonical_json import encode_canonical_json
from homeserver.protocol.redaction import redact_event
from homeserver.protocol.room_versions import (
    ROOM_VERSION_12,
    RoomVersion,
    get_room_version,
)

__all__ = [
    "compute_event_id",
    "compute_reference_hash",
    "compute_room_id_from_create_event",
    "create_event_id_from_room_id",
    "event_reference",
    "make_legacy_event_id",
]


def compute_reference_hash(event: Mapping[str, Any], room_version: RoomVersion | str) -> bytes:
    """The raw SHA-256 reference hash of `event`."""
    rv = get_room_version(room_version)
    redacted = redact_event(event, rv)
    redacted.pop("signatures", None)
    redacted.pop("unsigned", None)
    if rv.reference_hash_event_ids:
        # The id is derived from the event, so a PDU never carries it;
        # callers often attach it locally, and it must not feed back into its
        # own hash.  (In v1/v2 it is part of the PDU and of the hash.)
        redacted.pop("event_id", None)
    # Synapse also strips the legacy top-level `age_ts`: redaction keeps no
    # such key in any version, so nothing further is needed here.
    return hashlib.sha256(encode_canonical_json(redacted)).digest()


def compute_event_id(event: Mapping[str, Any], room_version: RoomVersion | str) -> str:
    """The event's id: its `event_id` in room versions 1 and 2, else "$" +
    the unpadded base64 reference hash (URL-safe from room version 4)."""
    rv = get_room_version(room_version)
    if rv.event_id_in_pdu:
        event_id = event.get("event_id")
        if not isinstance(event_id, str):
            raise ValueError(f"Room version {rv.identifier} events carry their event_id")
        return event_id
    return "$" + encode_base64(compute_reference_hash(event, rv), urlsafe=rv.url_safe_event_ids)


def make_legacy_event_id(opaque_id: str, server_name: str) -> str:
    """A room version 1/2 event id chosen by `server_name` ("$opaque:server").

    The caller picks an `opaque_id` unique on its server (Synapse uses the
    time in seconds, a counter and five random letters).
    """
    if not opaque_id or ":" in opaque_id:
        raise ValueError(f"Bad opaque event id part: {opaque_id!r}")
    return f"${opaque_id}:{server_name}"


def event_reference(event: Mapping[str, Any], room_version: RoomVersion | str) -> str | list[Any]:
    """How `event` is cited in another event's `prev_events` / `auth_events`:
    its id, or in room versions 1 and 2 the pair `[event_id, {"sha256":
    reference hash}]` (standard unpadded base64, as Synapse writes it)."""
    rv = get_room_version(room_version)
    event_id = compute_event_id(event, rv)
    if rv.event_id_in_pdu:
        return [event_id, {"sha256": encode_base64(compute_reference_hash(event, rv))}]
    return event_id


def compute_room_id_from_create_event(
    create_event: Mapping[str, Any], room_version: RoomVersion | str = ROOM_VERSION_12
) -> str:
    """Room id of a room version 12 room: its create event's id with a "!" sigil."""
    rv = get_room_version(room_version)
    if not rv.room_id_from_create_event:
        raise ValueError(f"Room version {rv.identifier} does not derive room ids from create events")
    return "!" + encode_base64(compute_reference_hash(create_event, rv), urlsafe=True)


def create_event_id_from_room_id(room_id: str) -> str:
    """Inverse of compute_room_id_from_create_event (no hashing involved)."""
    if not room_id.startswith("!"):
        raise ValueError(f"Not a room id: {room_id!r}")
    return "$" + room_id[1:]
