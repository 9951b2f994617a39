"""Building events for a room version: the fields that place an event in the room
(prev_events, depth, auth_events), then the content hash, our signature and the id.

``new_pdu`` is the unsigned skeleton every new event starts from: local sends, and
the templates a resident server hands out to joining, leaving and knocking servers
(``make_join`` and friends, in ``federation/rooms/membership.py``), so both place an
event in the room the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from signedjson.key import SigningKey

from homeserver.events.event import Event
from homeserver.http.errors import BadJson, Forbidden, MatrixError
from homeserver.protocol import auth_rules
from homeserver.protocol.canonical_json import check_canonical_json_values, encode_canonical_json
from homeserver.protocol.event_hashing import add_content_hash
from homeserver.protocol.event_ids import compute_event_id, event_reference, make_legacy_event_id
from homeserver.protocol.room_versions import RoomVersion
from homeserver.protocol.signing import sign_event
from homeserver.storage.events import StateMap
from homeserver.util.ids import now_ms, random_string

if TYPE_CHECKING:
    from homeserver.handlers.room_events.room_cache import RoomInfo
    from homeserver.storage import DataStore

MAX_PDU_SIZE = 65536
MAX_PREV_EVENTS = 10
MAX_DEPTH = 2**63 - 1


@dataclass
class EventSpec:
    """What a local sender asks for; the pipeline fills in the rest."""

    type: str
    sender: str
    content: dict[str, Any]
    state_key: str | None = None
    redacts: str | None = None
    txn_id: str | None = None
    device_id: str | None = None
    # Precomputed fields for special events (e.g. a v12 create event has no room_id).
    extra: dict[str, Any] = field(default_factory=dict)
    # Runs after the event is authorised and before it is persisted, and may return a
    # replacement (a remote invite comes back countersigned by the invitee's server).
    before_persist: Callable[[Event], Awaitable[Event]] | None = None


def prev_events_for(extremities: Iterable[str]) -> list[str]:
    """The prev_events of a new event: the room's forward extremities, at most
    MAX_PREV_EVENTS of them (Synapse's limit too)."""
    return sorted(extremities)[:MAX_PREV_EVENTS]


# select_auth_events(pdu, state, version): the auth_events of a new event sent into
# ``state`` (v12: the create event is implied by the room id and not listed).
select_auth_events = auth_rules.select_auth_event_ids


_INT_POWER_LEVELS = ("ban", "events_default", "invite", "kick", "redact", "state_default", "users_default")
_POWER_LEVEL_MAPS = ("events", "notifications", "users")
_CANONICAL_JSON_MAX_INT = 2**53 - 1


def check_power_levels_content(content: dict[str, Any]) -> None:
    """Synapse's check of a new local m.room.power_levels event (EventValidator's
    POWER_LEVELS_SCHEMA): 400 M_BAD_JSON unless every level is an integer in canonical
    JSON's range -- in every room version, though the auth rules of versions before 10
    take "50" and 50.0 in events from other servers (from 10 they refuse them, as 403)."""

    def is_level(value: Any) -> bool:
        return type(value) is int and -_CANONICAL_JSON_MAX_INT <= value <= _CANONICAL_JSON_MAX_INT

    for key in _INT_POWER_LEVELS:
        if key in content and not is_level(content[key]):
            raise BadJson(f"{key!r}: {content[key]!r} is not an integer in range")
    for key in _POWER_LEVEL_MAPS:
        if key not in content:
            continue
        section = content[key]
        if not isinstance(section, dict):
            raise BadJson(f"{key!r}: {section!r} is not an object")
        for name, value in section.items():
            if not is_level(value):
                raise BadJson(f"{key!r}: {name!r}: {value!r} is not an integer in range")


def _check_no_nul(spec: EventSpec) -> None:
    """Type, state key and relation go into columns of their own, where PostgreSQL refuses
    NUL: one such event would fail the whole persist batch, other senders' events with it."""
    rel = spec.content.get("m.relates_to") if isinstance(spec.content, dict) else None
    columns = [spec.type, spec.state_key or ""]
    if isinstance(rel, dict):
        columns += [v for v in (rel.get("event_id"), rel.get("rel_type")) if isinstance(v, str)]
    if any("\x00" in c for c in columns):
        raise BadJson("Event type, state key and relation cannot contain NUL")


def new_legacy_event_id(server_name: str) -> str:
    """A room version 1/2 event id chosen by ``server_name`` (Synapse makes its own of
    the time, a counter and random letters; 18 random letters are as unique)."""
    return make_legacy_event_id(random_string(18), server_name)


class EventBuilder:
    def __init__(self, store: DataStore, server_name: str, signing_key: SigningKey) -> None:
        self.store = store
        self.server_name = server_name
        self.signing_key = signing_key

    async def new_pdu(
        self,
        room: RoomInfo,
        event_type: str,
        sender: str,
        content: dict[str, Any],
        *,
        state_key: str | None,
        state: StateMap,
        extremities: Iterable[str],
        depth: int,
        origin: str,
        built: Mapping[str, Event] | None = None,
    ) -> dict[str, Any]:
        """The unsigned PDU of a new event (not a create event) on top of
        ``extremities``, with the auth events ``state`` gives it. ``origin`` is the
        sender's server (room versions before 11 carry it). ``built`` holds cited
        events not stored yet.

        Room versions 1 and 2: the PDU carries an event id of ours (a make_join
        template too, as Synapse's does; the joining server replaces it with its own)
        and cites events as ``[event_id, {"sha256": reference hash}]``."""
        version = room.version
        pdu: dict[str, Any] = {
            "type": event_type,
            "room_id": room.room_id,
            "sender": sender,
            "content": content,
            "origin_server_ts": now_ms(),
            "prev_events": prev_events_for(extremities),
            "depth": min(depth + 1, MAX_DEPTH),
        }
        if state_key is not None:
            pdu["state_key"] = state_key
        if not version.updated_redaction_rules:
            pdu["origin"] = origin
        pdu["auth_events"] = select_auth_events(pdu, state, version)
        if version.event_id_in_pdu:
            pdu["event_id"] = new_legacy_event_id(self.server_name)
            pdu["prev_events"] = await self.cite(pdu["prev_events"], version, built)
            pdu["auth_events"] = await self.cite(pdu["auth_events"], version, built)
        return pdu

    async def cite(
        self, event_ids: list[str], version: RoomVersion, built: Mapping[str, Event] | None = None
    ) -> list[Any]:
        """``event_ids`` as another event of the room cites them: plain ids, or in room
        versions 1 and 2 ``[event_id, {"sha256": reference hash}]`` pairs (the hashes
        are computed from the events, as Synapse does since it dropped its table of
        them)."""
        if not version.event_id_in_pdu:
            return list(event_ids)
        found = {i: built[i] for i in event_ids if built and i in built}
        missing = [i for i in event_ids if i not in found]
        if missing:
            found.update(await self.store.get_events(missing, allow_rejected=True))
        cited: list[Any] = []
        for event_id in event_ids:
            ev = found.get(event_id)
            if ev is None:
                raise MatrixError(500, "M_UNKNOWN", f"Cannot cite unknown event {event_id}")
            cited.append(event_reference(ev.with_event_id(), version))
        return cited

    async def build(
        self, room: RoomInfo, spec: EventSpec, state: StateMap, extremities: set[str], depth: int, built: dict[str, Event]
    ) -> Event:
        """A local event, signed, on top of ``state``/``extremities``/``depth`` (the room
        as the events before it in the same batch leave it; ``built`` holds those)."""
        _check_no_nul(spec)
        if spec.type == "m.room.power_levels" and spec.state_key == "":
            check_power_levels_content(spec.content)
        version = room.version
        content = spec.content
        if spec.redacts is not None and version.updated_redaction_rules:
            # v11 moved `redacts` into content; earlier versions keep it at the top level.
            content = {**spec.content, "redacts": spec.redacts}
        is_create = spec.type == "m.room.create" and spec.state_key == ""
        if is_create:
            pdu = self._create_pdu(room, spec.sender, content, state)
        else:
            pdu = await self.new_pdu(
                room, spec.type, spec.sender, content, state_key=spec.state_key, state=state,
                extremities=extremities, depth=depth, origin=self.server_name, built=built,
            )
        if spec.redacts is not None and not version.updated_redaction_rules:
            pdu["redacts"] = spec.redacts
        pdu.update(spec.extra)
        if version.strict_canonical_json:
            # Room versions 1-5 take floats and integers beyond 2**53 (as Synapse does:
            # its validate_canonicaljson runs only where the version asks for it).
            try:
                check_canonical_json_values(pdu)
            except ValueError as e:
                raise MatrixError(400, "M_BAD_JSON", str(e)) from None
        pdu = add_content_hash(pdu)
        pdu = sign_event(pdu, version, self.server_name, self.signing_key)
        if len(encode_canonical_json(pdu)) > MAX_PDU_SIZE:
            raise MatrixError(413, "M_TOO_LARGE", "Event is too large")
        event_id = compute_event_id(pdu, version)
        if spec.state_key is not None:
            await self._add_replaced_state(pdu, state.get((spec.type, spec.state_key)), built)
        if is_create and version.room_id_from_create_event:
            # v12: the room id is derived from the create event's id.
            room_id = "!" + event_id[1:]
        else:
            room_id = pdu["room_id"]
        event = Event(event_id=event_id, pdu=pdu, room_version=version.identifier, txn_id=spec.txn_id, device_id=spec.device_id)
        event.room = room_id
        return event

    def _create_pdu(self, room: RoomInfo, sender: str, content: dict[str, Any], state: StateMap) -> dict[str, Any]:
        if state:
            raise Forbidden("Room already exists")
        pdu: dict[str, Any] = {
            "type": "m.room.create",
            "sender": sender,
            "content": content,
            "origin_server_ts": now_ms(),
            "state_key": "",
            "prev_events": [],
            "auth_events": [],
            "depth": 1,
        }
        if not room.version.updated_redaction_rules:
            pdu["origin"] = self.server_name
        if not room.version.room_id_from_create_event:
            pdu["room_id"] = room.room_id
        if room.version.event_id_in_pdu:
            pdu["event_id"] = new_legacy_event_id(self.server_name)
        return pdu

    async def _add_replaced_state(self, pdu: dict[str, Any], replaced: str | None, built: dict[str, Event]) -> None:
        """Not part of the hashed or signed event: clients use it to render changes."""
        if replaced is None:
            return
        prev = built.get(replaced) or await self.store.get_event(replaced)
        unsigned: dict[str, Any] = {"replaces_state": replaced}
        if prev is not None:
            unsigned["prev_content"] = prev.content
            unsigned["prev_sender"] = prev.sender
        pdu["unsigned"] = unsigned
