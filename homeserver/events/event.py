"""The event record: a PDU (federation form) plus what the server knows about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from homeserver.protocol import event_format


@dataclass(slots=True, eq=False)
class Event:
    event_id: str
    pdu: dict[str, Any]
    room_version: str
    stream_ordering: int = 0
    rejected_reason: str | None = None
    outlier: bool = False
    soft_failed: bool = False
    # Set when a redaction of this event has been accepted (holds the redaction event id).
    redacted_by: str | None = None
    # Transaction id and device of the local sender, echoed to that device in unsigned.
    txn_id: str | None = None
    device_id: str | None = None
    # The state snapshot the event was authorised against (the state before it).
    state_group: int | None = None
    # The room id from storage: a v12 create event carries none in its PDU.
    room: str = ""
    internal: dict[str, Any] = field(default_factory=dict)

    @property
    def type(self) -> str:
        return self.pdu["type"]

    @property
    def state_key(self) -> str | None:
        return self.pdu.get("state_key")

    @property
    def is_state(self) -> bool:
        return "state_key" in self.pdu

    @property
    def sender(self) -> str:
        return self.pdu["sender"]

    @property
    def room_id(self) -> str:
        return self.pdu.get("room_id") or self.room

    @property
    def content(self) -> dict[str, Any]:
        return self.pdu.get("content", {})

    @property
    def depth(self) -> int:
        return self.pdu.get("depth", 0)

    @property
    def origin_server_ts(self) -> int:
        return self.pdu.get("origin_server_ts", 0)

    @property
    def prev_event_ids(self) -> list[str]:
        """The ids in `prev_events`, whatever the room version's format (room
        versions 1 and 2 cite `[event_id, hashes]` pairs)."""
        return event_format.prev_event_ids(self.pdu, self.room_version)

    @property
    def auth_event_ids(self) -> list[str]:
        """The ids in `auth_events`, whatever the room version's format."""
        return event_format.auth_event_ids(self.pdu, self.room_version)

    @property
    def redacts(self) -> str | None:
        # Room v11 moved `redacts` into content; accept both.
        return self.content.get("redacts") or self.pdu.get("redacts")

    @property
    def membership(self) -> str | None:
        if self.type != "m.room.member":
            return None
        m = self.content.get("membership")
        return m if isinstance(m, str) else None

    @property
    def state_pair(self) -> tuple[str, str]:
        return (self.type, self.pdu["state_key"])

    def with_event_id(self) -> dict[str, Any]:
        """The PDU plus its event id: the form state resolution and auth work on."""
        d = dict(self.pdu)
        d["event_id"] = self.event_id
        return d

    def relation(self) -> tuple[str, str] | None:
        rel = self.content.get("m.relates_to")
        if isinstance(rel, dict):
            target, rel_type = rel.get("event_id"), rel.get("rel_type")
            if isinstance(target, str) and isinstance(rel_type, str):
                return target, rel_type
        return None
