"""The checks every PDU from another server goes through before anything uses it
(server-server API, "Checks performed on receipt of a PDU", steps 1-3):

1. it is a well-formed event of the room's version (format, sizes: 65536 bytes of
   canonical JSON), else it is dropped;
2. it carries valid signatures of every server that must sign it (the sender's server
   and, for restricted joins, the authorising server), else it is dropped;
3. its content hash matches, else it is redacted and only the redacted form is used.

The auth checks (steps 4-6) need the room's state and live in ``ingest``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from homeserver.events.event import Event
from homeserver.protocol.event_format import EventFormatError, check_pdu_format
from homeserver.protocol.event_hashing import check_content_hash
from homeserver.protocol.event_ids import compute_event_id
from homeserver.protocol.redaction import redact_event
from homeserver.protocol.room_versions import RoomVersion
from homeserver.protocol.signing import key_validity_ts, required_signing_servers

logger = logging.getLogger(__name__)


class Keyring(Protocol):
    async def verify_json_for_server(
        self, server_name: str, obj: Mapping[str, Any], valid_at_ts: int | None = None
    ) -> None: ...


class InvalidPdu(Exception):
    """The PDU fails the format or signature checks: it must not be used at all."""


def parse_pdu(pdu: Any, version: RoomVersion) -> Event:
    """Step 1: a well-formed PDU of ``version`` as an Event (with its computed id).

    Whatever the sender put in ``unsigned`` is dropped (it is not covered by the
    signatures) except what a server legitimately passes on: nothing, for PDUs. An
    ``event_id`` is dropped too from room version 3 (the id is the event's hash), and
    kept in versions 1 and 2, where the origin chose it and it is part of the event."""
    if not isinstance(pdu, dict):
        raise InvalidPdu("PDU is not an object")
    dropped = ("unsigned",) if version.event_id_in_pdu else ("unsigned", "event_id")
    pdu = {k: v for k, v in pdu.items() if k not in dropped}
    try:
        check_pdu_format(pdu, version)
        event_id = compute_event_id(pdu, version)
    except (EventFormatError, ValueError, TypeError, KeyError) as e:
        raise InvalidPdu(f"Invalid PDU: {e}") from None
    ev = Event(event_id=event_id, pdu=pdu, room_version=version.identifier)
    if version.room_id_from_create_event and pdu.get("type") == "m.room.create" and pdu.get("state_key") == "":
        ev.room = "!" + event_id[1:]
    return ev


async def check_signatures_and_hash(keyring: Keyring, event: Event, version: RoomVersion) -> Event:
    """Steps 2 and 3. Raises InvalidPdu on a missing or bad signature; returns the event,
    redacted (with ``internal["bad_hash"]``) when its content hash does not match."""
    redacted = redact_event(event.pdu, version)
    try:
        servers = required_signing_servers(event.pdu, version)
    except Exception as e:
        raise InvalidPdu(f"Cannot tell who must sign the event: {e}") from None
    # From room version 5 the key must have been valid when the event was made; before,
    # any key the server ever had will do (0), as Synapse asks its keyring.
    valid_at = key_validity_ts(event.pdu, version)
    for server in sorted(servers):
        try:
            await keyring.verify_json_for_server(server, redacted, valid_at_ts=valid_at)
        except Exception as e:
            raise InvalidPdu(f"Signature check for {server} failed: {e}") from None
    if not check_content_hash(event.pdu):
        # Spec: "If the hash check fails, the event is redacted before being processed
        # further" -- the signatures cover the redacted form, which is all we can trust.
        logger.info("content hash mismatch on %s: using its redacted form", event.event_id)
        event = Event(event_id=event.event_id, pdu=redacted, room_version=event.room_version, room=event.room)
        event.internal["bad_hash"] = True
    return event


async def validate_pdu(keyring: Keyring, pdu: Any, version: RoomVersion) -> Event:
    """Steps 1-3 in one call."""
    return await check_signatures_and_hash(keyring, parse_pdu(pdu, version), version)
