"""Event format checks (room versions' "Event format" sections and step 1 of
"Checks performed on receipt of a PDU"), plus Synapse's size limits, and the
readers of `prev_events` / `auth_events` for every format.

Room versions 1 and 2 carry the event id in the PDU and cite other events as
`[event_id, {"sha256": hash}]` pairs; from room version 3 the id is derived
from the event and citations are plain ids.  Everything outside this package
that needs the cited ids uses :func:`prev_event_ids` / :func:`auth_event_ids`.

A PDU failing these checks is *dropped* (not rejected): it never enters the
DAG.  Limits follow Synapse so that we neither accept what it drops (and fork
from it) nor drop what it accepts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from homeserver.protocol.canonical_json import (
    check_canonical_json_values,
    encode_canonical_json,
)
from homeserver.protocol.identifiers import server_name_of
from homeserver.protocol.room_versions import RoomVersion, get_room_version

MAX_PDU_SIZE = 65536  # bytes of canonical JSON
MAX_ID_LENGTH = 255  # bytes, for sender / room_id / type / state_key / event_id
MAX_DEPTH = 2**53 - 1
# Synapse drops events citing more than these many prev / auth events (the
# v12 create event counts as an implicit auth event).
MAX_PREV_EVENTS = 20
MAX_AUTH_EVENTS = 10

# Room version 12 room ids: "!" + URL-safe unpadded base64 of a SHA-256.
_DOMAINLESS_ROOM_ID_RE = re.compile(r"\A![A-Za-z0-9\-_]{43}\Z")
_EVENT_ID_V4_RE = re.compile(r"\A\$[A-Za-z0-9\-_]{43}\Z")
_EVENT_ID_V3_RE = re.compile(r"\A\$[A-Za-z0-9+/]{43}\Z")


class EventFormatError(ValueError):
    """The PDU does not match the room version's event format."""


class EventSizeError(EventFormatError):
    """An id or type is over 255 bytes.

    `persist_as_rejected` is set where Synapse keeps the event, rejected,
    instead of dropping it: a byte (not code point) excess in room versions
    before 11, which earlier Synapses accepted (dropping it would break rooms
    that contain one).
    """

    def __init__(self, message: str, *, persist_as_rejected: bool = False) -> None:
        super().__init__(message)
        self.persist_as_rejected = persist_as_rejected


# --- citations of other events ------------------------------------------------


def _cited_ids(value: Any, rv: RoomVersion) -> list[str]:
    if not isinstance(value, (list, tuple)):
        return []
    if rv.event_id_in_pdu:
        return [
            entry[0]
            for entry in value
            if isinstance(entry, (list, tuple)) and entry and isinstance(entry[0], str)
        ]
    return [entry for entry in value if isinstance(entry, str)]


def prev_event_ids(pdu: Mapping[str, Any], room_version: RoomVersion | str) -> list[str]:
    """The ids in `prev_events`, whatever the room version's format.
    Malformed entries are skipped (the format check drops such PDUs)."""
    return _cited_ids(pdu.get("prev_events"), get_room_version(room_version))


def auth_event_ids(pdu: Mapping[str, Any], room_version: RoomVersion | str) -> list[str]:
    """The ids in `auth_events`, whatever the room version's format (in room
    version 12 the create event is not among them: it is implied by the
    room id)."""
    return _cited_ids(pdu.get("auth_events"), get_room_version(room_version))


def is_valid_room_id(room_id: Any, room_version: RoomVersion | str) -> bool:
    rv = get_room_version(room_version)
    if not isinstance(room_id, str) or not room_id.startswith("!"):
        return False
    if rv.room_id_from_create_event:
        return bool(_DOMAINLESS_ROOM_ID_RE.match(room_id))
    return bool(server_name_of(room_id)) and len(room_id.encode("utf-8")) <= MAX_ID_LENGTH


def is_valid_event_id(event_id: Any, room_version: RoomVersion | str | None = None) -> bool:
    """Whether `event_id` has the room version's event id format (default:
    room versions 4+, "$" + 43 URL-safe base64 characters).

    Room versions 1 and 2: "$opaque:server" -- Synapse checks no more than a
    colon (the server part must then sign the event), nor do we; v3: "$" + 43
    standard base64 characters.
    """
    if not isinstance(event_id, str):
        return False
    rv = get_room_version(room_version) if room_version is not None else None
    if rv is not None and rv.event_id_in_pdu:
        return ":" in event_id and len(event_id) <= MAX_ID_LENGTH
    if rv is not None and not rv.url_safe_event_ids:
        return bool(_EVENT_ID_V3_RE.match(event_id))
    return bool(_EVENT_ID_V4_RE.match(event_id))


def _require(event: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in event:
        raise EventFormatError(f"Missing required key {key!r}")
    value = event[key]
    # bool is an int subclass; JSON `true` is not a number.
    if isinstance(value, bool) and kind is int:
        raise EventFormatError(f"{key!r} must be an integer")
    if not isinstance(value, kind):
        raise EventFormatError(f"{key!r} has the wrong type")
    return value


def check_size_limits(event: Mapping[str, Any], room_version: RoomVersion | str | None = None) -> None:
    """Synapse's `_check_size_limits`: 65536 bytes of canonical JSON, 255
    for ids and types.

    Without a room version (or from room version 11) the limits are in bytes
    and every excess is to be dropped.  Before room version 11 an excess in
    code points is to be dropped, one in bytes only is an EventSizeError
    with `persist_as_rejected` (Synapse's `unpersistable=False`).
    """
    rv = get_room_version(room_version) if room_version is not None else None
    # v1/v2 PDUs carry their event id (and it counts); later ones do not.
    drop_event_id = rv is None or rv.reference_hash_event_ids
    pdu = {k: v for k, v in event.items() if not (k == "event_id" and drop_event_id)}
    if len(encode_canonical_json(pdu)) > MAX_PDU_SIZE:
        raise EventSizeError("Event too large")
    lenient_bytes = rv is not None and not rv.strict_event_byte_limits
    for key in ("sender", "room_id", "type", "state_key", "event_id"):
        value = event.get(key)
        if not isinstance(value, str):
            continue
        if len(value) > MAX_ID_LENGTH:
            raise EventSizeError(f"{key!r} too large")
        if len(value.encode("utf-8")) > MAX_ID_LENGTH:
            raise EventSizeError(f"{key!r} too large", persist_as_rejected=lenient_bytes)


def check_pdu_format(event: Mapping[str, Any], room_version: RoomVersion | str) -> None:
    """Raise EventFormatError unless `event` is a well-formed PDU for the room
    version.  A locally attached `event_id` is tolerated (and checked).

    Strict where Synapse's PDU parsing is strict (so we drop what it drops)
    and lenient where it defers to later checks (missing `hashes.sha256` ->
    redaction; missing signatures -> signature check).
    """
    rv = get_room_version(room_version)
    if not isinstance(event, Mapping):
        raise EventFormatError("PDU is not an object")
    event_type = _require(event, "type", str)
    sender = _require(event, "sender", str)
    if not sender.startswith("@") or ":" not in sender:
        raise EventFormatError("sender is not a user id")
    _require(event, "content", Mapping)
    _require(event, "origin_server_ts", int)
    depth = _require(event, "depth", int)
    if not 0 <= depth <= MAX_DEPTH:
        raise EventFormatError("depth out of range")
    hashes = _require(event, "hashes", Mapping)
    # A missing sha256 is not a format error: the content hash check fails and
    # the event is redacted instead (as Synapse does).  A non-string one is.
    if "sha256" in hashes and not isinstance(hashes["sha256"], str):
        raise EventFormatError("hashes.sha256 must be a string")
    # Missing signatures fail signature verification later; malformed ones
    # are a format error (Synapse cannot parse them either).
    signatures = event.get("signatures", {})
    if not isinstance(signatures, Mapping):
        raise EventFormatError("signatures must be an object")
    for server, sigs in signatures.items():
        if not isinstance(sigs, Mapping) or not all(isinstance(s, str) for s in sigs.values()):
            raise EventFormatError(f"Malformed signatures for {server!r}")
    if "state_key" in event and not isinstance(event["state_key"], str):
        raise EventFormatError("state_key must be a string")
    if "unsigned" in event and not isinstance(event["unsigned"], Mapping):
        raise EventFormatError("unsigned must be an object")

    is_create = event_type == "m.room.create" and event.get("state_key") == ""
    if rv.room_id_from_create_event and is_create:
        if "room_id" in event:
            raise EventFormatError("Create events must not have a room_id in this room version")
    else:
        room_id = _require(event, "room_id", str)
        if not is_valid_room_id(room_id, rv):
            raise EventFormatError(f"Invalid room id {room_id!r}")

    if rv.event_id_in_pdu:
        # Chosen by the origin; its server part must sign the event
        # (signing.required_signing_servers), which is all Synapse checks of it.
        event_id = _require(event, "event_id", str)
        if not server_name_of(event_id):
            raise EventFormatError(f"Invalid event id {event_id!r}")

    for key, limit in (("prev_events", MAX_PREV_EVENTS), ("auth_events", MAX_AUTH_EVENTS)):
        entries = _require(event, key, list)
        if rv.event_id_in_pdu:
            # [event_id, {"sha256": hash}] pairs; Synapse parses the hashes as
            # a string-to-string map and ignores them after that.
            for entry in entries:
                if not (
                    isinstance(entry, list)
                    and len(entry) == 2
                    and isinstance(entry[0], str)
                    and isinstance(entry[1], Mapping)
                    and all(isinstance(h, str) for h in entry[1].values())
                ):
                    raise EventFormatError(f"{key} must be a list of [event_id, hashes] pairs")
            ids = [entry[0] for entry in entries]
        else:
            ids = entries
            if not all(isinstance(i, str) for i in ids):
                raise EventFormatError(f"{key} must be a list of event ids")
        count = len(ids)
        if key == "auth_events" and rv.room_id_from_create_event and not is_create:
            create_id = "$" + event["room_id"][1:]
            if create_id in ids:
                raise EventFormatError("auth_events must not contain the create event")
            count += 1
        if count > limit:
            raise EventFormatError(f"Too many {key}")

    # A malformed `redacts` is not checked here: Synapse accepts such a
    # redaction (it just redacts nothing), so dropping it would fork us off.

    if rv.strict_canonical_json:
        try:
            check_canonical_json_values(event)
        except ValueError as e:
            raise EventFormatError(str(e)) from e
    check_size_limits(event, rv)


def strip_unsigned_for_federation(pdu: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of a received PDU keeping only the `unsigned` keys a remote server
    may legitimately set (Synapse's whitelist): `age`, plus the stripped room
    state of invites and knocks on member events.  Anything else in
    `unsigned` (e.g. a forged `redacted_because`) is dropped."""
    result = dict(pdu)
    if "unsigned" not in result:
        return result
    unsigned = result["unsigned"]
    if not isinstance(unsigned, Mapping):
        result["unsigned"] = {}
        return result
    allowed = ("age", "invite_room_state", "knock_room_state") if pdu.get("type") == "m.room.member" else ("age",)
    result["unsigned"] = {k: v for k, v in unsigned.items() if k in allowed}
    return result
