"""Sync and room event filters (spec "Filtering"), parsed once and applied in SQL where possible."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

from homeserver.events.event import Event
from homeserver.http.errors import BadJson

DEFAULT_TIMELINE_LIMIT = 10


def _str_list(obj: dict[str, Any], key: str) -> list[str] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadJson(f"filter field {key!r} must be a list of strings")
    return value


def _bool(obj: dict[str, Any], key: str) -> bool:
    value = obj.get(key, False)
    if not isinstance(value, bool):
        raise BadJson(f"filter field {key!r} must be a boolean")
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
    def parse(cls, obj: Any) -> "EventFilter":
        if obj is None:
            return cls()
        if not isinstance(obj, dict):
            raise BadJson("filter must be an object")
        limit = obj.get("limit")
        # Bounded to JSON's safe integer range: a larger one overflows the SQL drivers.
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or not 0 <= limit < 2**53):
            raise BadJson("filter limit must be a non-negative integer")
        return cls(
            types=_str_list(obj, "types"),
            not_types=_str_list(obj, "not_types") or [],
            senders=_str_list(obj, "senders"),
            not_senders=_str_list(obj, "not_senders") or [],
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
    def parse(cls, obj: Any) -> "RoomEventFilter":
        base = EventFilter.parse(obj)
        obj = obj or {}
        contains_url = obj.get("contains_url")
        if contains_url is not None and not isinstance(contains_url, bool):
            raise BadJson("contains_url must be a boolean")
        return cls(
            types=base.types,
            not_types=base.not_types,
            senders=base.senders,
            not_senders=base.not_senders,
            limit=base.limit,
            rooms=_str_list(obj, "rooms"),
            not_rooms=_str_list(obj, "not_rooms") or [],
            contains_url=contains_url,
            lazy_load_members=_bool(obj, "lazy_load_members"),
            include_redundant_members=_bool(obj, "include_redundant_members"),
            unread_thread_notifications=_bool(obj, "unread_thread_notifications"),
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

    @classmethod
    def parse(cls, obj: Any) -> "SyncFilter":
        if obj is None:
            obj = {}
        if not isinstance(obj, dict):
            raise BadJson("filter must be an object")
        room = obj.get("room") or {}
        if not isinstance(room, dict):
            raise BadJson("filter.room must be an object")
        include_leave = room.get("include_leave", False)
        if not isinstance(include_leave, bool):
            raise BadJson("include_leave must be a boolean")
        event_fields = _str_list(obj, "event_fields")
        if obj.get("event_format", "client") not in ("client", "federation"):
            raise BadJson("event_format must be client or federation")
        return cls(
            timeline=RoomEventFilter.parse(room.get("timeline")),
            state=RoomEventFilter.parse(room.get("state")),
            ephemeral=RoomEventFilter.parse(room.get("ephemeral")),
            room_account_data=RoomEventFilter.parse(room.get("account_data")),
            presence=EventFilter.parse(obj.get("presence")),
            account_data=EventFilter.parse(obj.get("account_data")),
            rooms=_str_list(room, "rooms"),
            not_rooms=_str_list(room, "not_rooms") or [],
            include_leave=include_leave,
            event_fields=event_fields,
        )

    def allows_room(self, room_id: str) -> bool:
        if room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms

    @property
    def timeline_limit(self) -> int:
        return self.timeline.limit if self.timeline.limit is not None else DEFAULT_TIMELINE_LIMIT


def validate_filter_json(obj: Any) -> None:
    """Raises M_BAD_JSON for a filter the server could not apply."""
    SyncFilter.parse(obj)
