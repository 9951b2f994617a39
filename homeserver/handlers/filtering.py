"""Sync and room event filters (spec "Filtering"), parsed once and applied in SQL where possible.

Validation follows Synapse's filter schema, since that is what clients have been written
against: unknown keys are allowed (forward compatibility), ``limit`` is any number, user
and room ids must look like ids. A bad sync filter (stored or inline) is a 400 with
Synapse's ``M_UNKNOWN`` (the spec names no error code for it); a bad event filter
elsewhere (/messages, /search) stays ``M_BAD_JSON``.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

from homeserver.events.event import Event
from homeserver.http.errors import BadJson, MatrixError

DEFAULT_TIMELINE_LIMIT = 10
# Synapse's filter_timeline_limit: a stored or inline filter asking for more gets this.
MAX_TIMELINE_LIMIT = 100


def InvalidFilter(message: str) -> MatrixError:
    return BadJson(message)


def _str_list(obj: dict[str, Any], key: str, kind: str | None = None) -> list[str] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidFilter(f"filter field {key!r} must be a list of strings")
    if kind == "user" and not all(_is_user_id(v) for v in value):
        raise InvalidFilter(f"filter field {key!r} must be a list of user ids")
    if kind == "room" and not all(v.startswith("!") and len(v) > 1 for v in value):
        # Synapse wants "!x:server"; room version 12 ids have no server part, and a filter
        # naming such a room must work.
        raise InvalidFilter(f"filter field {key!r} must be a list of room ids")
    return value


def _is_user_id(value: str) -> bool:
    return value.startswith("@") and ":" in value and bool(value.split(":", 1)[1])


def _bool(obj: dict[str, Any], key: str) -> bool:
    value = obj.get(key, False)
    if not isinstance(value, bool):
        raise InvalidFilter(f"filter field {key!r} must be a boolean")
    return value


def _object(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidFilter(f"filter field {key!r} must be an object")
    return value


def _matches(patterns: list[str], value: str) -> bool:
    return any(fnmatch.fnmatchcase(value, p) if "*" in p else p == value for p in patterns)


@dataclass(frozen=True)
class EventFilter:
    types: list[str] | None = None
    not_types: list[str] = field(default_factory=list)
    senders: list[str] | None = None
    not_senders: list[str] = field(default_factory=list)
    limit: int | None = None

    @classmethod
    def parse(cls, obj: Any) -> EventFilter:
        if obj is None:
            return cls()
        if not isinstance(obj, dict):
            raise InvalidFilter("filter must be an object")
        limit = obj.get("limit")
        if limit is not None:
            # Any JSON number, as in Synapse's schema; used as a count.
            if not isinstance(limit, (int, float)) or isinstance(limit, bool) or limit != limit:
                raise InvalidFilter("filter limit must be a number")
            limit = max(0, int(min(limit, 2**53)))
        return cls(
            types=_str_list(obj, "types"),
            not_types=_str_list(obj, "not_types") or [],
            senders=_str_list(obj, "senders", "user"),
            not_senders=_str_list(obj, "not_senders", "user") or [],
            limit=limit,
        )

    def check(self, event_type: str, sender: str | None) -> bool:
        if self.not_types and _matches(self.not_types, event_type):
            return False
        if self.types is not None and not _matches(self.types, event_type):
            return False
        if sender is not None:
            if sender in self.not_senders:
                return False
            if self.senders is not None and sender not in self.senders:
                return False
        return True


@dataclass(frozen=True)
class RoomEventFilter(EventFilter):
    rooms: list[str] | None = None
    not_rooms: list[str] = field(default_factory=list)
    contains_url: bool | None = None
    lazy_load_members: bool = False
    include_redundant_members: bool = False
    unread_thread_notifications: bool = False

    @classmethod
    def parse(cls, obj: Any) -> RoomEventFilter:
        base = EventFilter.parse(obj)
        obj = obj or {}
        contains_url = obj.get("contains_url")
        if contains_url is not None and not isinstance(contains_url, bool):
            raise InvalidFilter("contains_url must be a boolean")
        return cls(
            types=base.types,
            not_types=base.not_types,
            senders=base.senders,
            not_senders=base.not_senders,
            limit=base.limit,
            rooms=_str_list(obj, "rooms", "room"),
            not_rooms=_str_list(obj, "not_rooms", "room") or [],
            contains_url=contains_url,
            lazy_load_members=_bool(obj, "lazy_load_members"),
            include_redundant_members=_bool(obj, "include_redundant_members"),
            unread_thread_notifications=_bool(obj, "unread_thread_notifications")
            or _bool(obj, "org.matrix.msc3773.unread_thread_notifications"),
        )

    def sql_kwargs(self) -> dict[str, Any]:
        return {
            "types": self.types,
            "not_types": self.not_types or None,
            "senders": self.senders,
            "not_senders": self.not_senders or None,
            "contains_url": self.contains_url,
        }

    def filter_events(self, events: list[Event]) -> list[Event]:
        out = [e for e in events if self.check(e.type, e.sender)]
        if self.contains_url is not None:
            out = [e for e in out if ("url" in e.content) == self.contains_url]
        return out

    def allows_room(self, room_id: str) -> bool:
        if room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms


@dataclass(frozen=True)
class SyncFilter:
    timeline: RoomEventFilter
    state: RoomEventFilter
    ephemeral: RoomEventFilter
    room_account_data: RoomEventFilter
    presence: EventFilter
    account_data: EventFilter
    rooms: list[str] | None = None
    not_rooms: list[str] = field(default_factory=list)
    include_leave: bool = False
    event_fields: list[str] | None = None
    event_format: str = "client"

    @classmethod
    def parse(cls, obj: Any) -> SyncFilter:
        try:
            return cls._parse(obj)
        except MatrixError as e:
            if e.errcode != "M_BAD_JSON":
                raise
            raise MatrixError(400, "M_UNKNOWN", e.msg) from None

    @classmethod
    def _parse(cls, obj: Any) -> SyncFilter:
        if obj is None:
            obj = {}
        if not isinstance(obj, dict):
            raise InvalidFilter("filter must be an object")
        room = _object(obj, "room")
        event_format = obj.get("event_format", "client")
        if event_format not in ("client", "federation"):
            raise InvalidFilter("event_format must be client or federation")
        return cls(
            timeline=RoomEventFilter.parse(_object(room, "timeline")),
            state=RoomEventFilter.parse(_object(room, "state")),
            ephemeral=RoomEventFilter.parse(_object(room, "ephemeral")),
            room_account_data=RoomEventFilter.parse(_object(room, "account_data")),
            presence=EventFilter.parse(_object(obj, "presence")),
            account_data=EventFilter.parse(_object(obj, "account_data")),
            rooms=_str_list(room, "rooms", "room"),
            not_rooms=_str_list(room, "not_rooms", "room") or [],
            include_leave=_bool(room, "include_leave"),
            event_fields=_str_list(obj, "event_fields"),
            event_format=event_format,
        )

    def allows_room(self, room_id: str) -> bool:
        if room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms

    @property
    def timeline_limit(self) -> int:
        if self.timeline.limit is None:
            return DEFAULT_TIMELINE_LIMIT
        return min(self.timeline.limit, MAX_TIMELINE_LIMIT)


def validate_filter_json(obj: Any) -> None:
    """Raises a 400 for a filter the server could not apply."""
    SyncFilter.parse(obj)


def cap_timeline_limit(obj: dict[str, Any]) -> dict[str, Any]:
    """A stored filter keeps at most Synapse's timeline limit (it answers the capped
    filter when read back)."""
    timeline = obj.get("room", {}).get("timeline") if isinstance(obj.get("room"), dict) else None
    if isinstance(timeline, dict) and isinstance(timeline.get("limit"), (int, float)) and not isinstance(
        timeline.get("limit"), bool
    ):
        if timeline["limit"] > MAX_TIMELINE_LIMIT:
            timeline["limit"] = MAX_TIMELINE_LIMIT
    return obj


_UNESCAPED_DOT = re.compile(r"(?<!\\)\.")


def only_fields(event: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """A sync filter's ``event_fields``: only the listed dot-separated paths of the event
    (``\\.`` is a literal dot in a key), as Synapse serves them."""
    out: dict[str, Any] = {}
    for path in fields:
        keys = [k.replace("\\.", ".") for k in _UNESCAPED_DOT.split(path)]
        source: Any = event
        for key in keys[:-1]:
            if not isinstance(source, dict) or key not in source:
                source = None
                break
            source = source[key]
        if not isinstance(source, dict) or keys[-1] not in source:
            continue
        target = out
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        target[keys[-1]] = source[keys[-1]]
    return out
