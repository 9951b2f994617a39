"""``POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync`` (MSC4186).

The body is validated as Synapse's pydantic model does (SlidingSyncBody): unknown keys
are ignored (clients send ``unsubscribe_rooms``, ``txn_id``, ``sort``...; MSC3575's
per-list ``bump_event_types`` too: the bump types are Synapse's defaults, see
storage/sliding_sync.py), the types are
strict, and the error code follows from what is wrong — one missing field is
``M_MISSING_PARAM``, one bad value ``M_INVALID_PARAM``, anything else (a wrong type,
several errors) ``M_BAD_JSON``, all with status 400.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.web.server import Request

from homeserver.handlers.sliding_sync.config import (
    ExtensionConfig,
    ExtensionsConfig,
    ListConfig,
    ListFilters,
    RoomConfig,
    SlidingSyncRequest,
    required_state_map,
)
from homeserver.http.errors import MatrixError
from homeserver.http.request import parse_integer, parse_json_body, parse_string
from homeserver.http.server import Router

if TYPE_CHECKING:
    from homeserver.app import HomeServer

PATH = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
MAX_LISTS = 100
MAX_LIST_KEY_LENGTH = 64
MAX_TIMELINE_LIMIT = 1000


class _Errors:
    """Collects every problem of the body, as pydantic does, then answers with the code
    Synapse would pick."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []  # (kind, message)

    def add(self, kind: str, message: str) -> None:
        self.items.append((kind, message))

    def raise_any(self) -> None:
        if not self.items:
            return
        errcode = "M_BAD_JSON"
        if len(self.items) == 1:
            errcode = {"missing": "M_MISSING_PARAM", "value": "M_INVALID_PARAM"}.get(self.items[0][0], "M_BAD_JSON")
        raise MatrixError(400, errcode, "; ".join(m for _, m in self.items))


def _bool(errors: _Errors, obj: dict[str, Any], key: str, where: str) -> bool | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, bool):
        errors.add("type", f"{where}.{key} must be a boolean")
        return None
    return value


def _int(errors: _Errors, obj: dict[str, Any], key: str, where: str, default: int) -> int:
    value = obj.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        errors.add("type", f"{where}.{key} must be an integer")
        return default
    return value


def _strings(errors: _Errors, obj: dict[str, Any], key: str, where: str, nullable_items: bool = False) -> tuple | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) or (nullable_items and v is None) for v in value):
        errors.add("type", f"{where}.{key} must be a list of strings")
        return None
    return tuple(value)


def _room_config(errors: _Errors, obj: Any, where: str) -> RoomConfig | None:
    if not isinstance(obj, dict):
        errors.add("type", f"{where} must be an object")
        return None
    pairs: list[tuple[str, str]] = []
    if "required_state" not in obj:
        errors.add("missing", f"{where}.required_state is required")
    else:
        raw = obj["required_state"]
        if not isinstance(raw, list):
            errors.add("type", f"{where}.required_state must be a list")
        else:
            for item in raw:
                if not (isinstance(item, list) and len(item) == 2 and all(isinstance(v, str) for v in item)):
                    errors.add("type", f"{where}.required_state entries must be [type, state_key] pairs of strings")
                    break
                pairs.append((item[0], item[1]))
    limit = 0
    if "timeline_limit" not in obj:
        errors.add("missing", f"{where}.timeline_limit is required")
    else:
        limit = _int(errors, obj, "timeline_limit", where, 0)
        if limit > MAX_TIMELINE_LIMIT:
            errors.add("range", f"{where}.timeline_limit must be at most {MAX_TIMELINE_LIMIT}")
        # A negative limit is accepted and sends no timeline, as in Synapse.
        limit = max(0, min(limit, MAX_TIMELINE_LIMIT))
    return RoomConfig(limit, required_state_map(pairs))


def _filters(errors: _Errors, obj: Any, where: str) -> ListFilters | None:
    if obj is None:
        return None
    if not isinstance(obj, dict):
        errors.add("type", f"{where} must be an object")
        return None
    name_like = obj.get("room_name_like")
    if name_like is not None and not isinstance(name_like, str):
        errors.add("type", f"{where}.room_name_like must be a string")
        name_like = None
    return ListFilters(
        is_dm=_bool(errors, obj, "is_dm", where),
        spaces=_strings(errors, obj, "spaces", where),
        is_encrypted=_bool(errors, obj, "is_encrypted", where),
        is_invite=_bool(errors, obj, "is_invite", where),
        room_types=_strings(errors, obj, "room_types", where, nullable_items=True),
        not_room_types=_strings(errors, obj, "not_room_types", where, nullable_items=True),
        room_name_like=name_like,
        tags=_strings(errors, obj, "tags", where),
        not_tags=_strings(errors, obj, "not_tags", where),
    )


def _ranges(errors: _Errors, value: Any, where: str) -> tuple[tuple[int, int], ...] | None:
    if value is None:
        return None
    ok = isinstance(value, list) and all(
        isinstance(r, list) and len(r) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in r)
        for r in value
    )
    if not ok:
        errors.add("type", f"{where}.ranges must be a list of [start, end] integer pairs")
        return None
    if any(v < 0 for r in value for v in r):
        errors.add("range", f"{where}.ranges must not be negative")
        return None
    return tuple((r[0], r[1]) for r in value)


def _extension(errors: _Errors, obj: Any, where: str, *, rooms: bool = False, to_device: bool = False) -> ExtensionConfig | None:
    if obj is None:
        return None
    if not isinstance(obj, dict):
        errors.add("type", f"{where} must be an object")
        return None
    config = ExtensionConfig(enabled=bool(_bool(errors, obj, "enabled", where)))
    if rooms:
        lists = _strings(errors, obj, "lists", where) if "lists" in obj else ExtensionConfig.lists
        subs = _strings(errors, obj, "rooms", where) if "rooms" in obj else ExtensionConfig.rooms
        config = ExtensionConfig(enabled=config.enabled, lists=lists, rooms=subs)
    if to_device:
        limit = _int(errors, obj, "limit", where, 100)
        since = obj.get("since")
        if since is not None:
            if not isinstance(since, str):
                errors.add("type", f"{where}.since must be a string")
                since = None
            else:
                try:
                    int(since)
                except ValueError:
                    errors.add("value", f"'{where}.since' is invalid (should look like an int)")
                    since = None
        config = ExtensionConfig(enabled=config.enabled, limit=limit, since=since)
    return config


def parse_request(body: dict[str, Any]) -> SlidingSyncRequest:
    errors = _Errors()
    conn_id = body.get("conn_id")
    if conn_id is not None and not isinstance(conn_id, str):
        errors.add("type", "conn_id must be a string")
        conn_id = None
    lists: dict[str, ListConfig] = {}
    raw_lists = body.get("lists")
    if raw_lists is not None:
        if not isinstance(raw_lists, dict):
            errors.add("type", "lists must be an object")
        else:
            if len(raw_lists) > MAX_LISTS:
                errors.add("limit", f"Max lists: {MAX_LISTS} but saw {len(raw_lists)}")
            for name, raw in raw_lists.items():
                where = f"lists.{name}"
                if len(name) > MAX_LIST_KEY_LENGTH:
                    errors.add("length", f"list keys are at most {MAX_LIST_KEY_LENGTH} characters")
                room = _room_config(errors, raw, where)
                if room is None:
                    continue
                lists[name] = ListConfig(
                    room, _ranges(errors, raw.get("ranges"), where), _filters(errors, raw.get("filters"), f"{where}.filters")
                )
    subscriptions: dict[str, RoomConfig] = {}
    raw_subs = body.get("room_subscriptions")
    if raw_subs is not None:
        if not isinstance(raw_subs, dict):
            errors.add("type", "room_subscriptions must be an object")
        else:
            for room_id, raw in raw_subs.items():
                room = _room_config(errors, raw, f"room_subscriptions.{room_id}")
                if room is not None:
                    subscriptions[room_id] = room
    extensions = ExtensionsConfig()
    raw_ext = body.get("extensions")
    if raw_ext is not None:
        if not isinstance(raw_ext, dict):
            errors.add("type", "extensions must be an object")
        else:
            extensions = ExtensionsConfig(
                to_device=_extension(errors, raw_ext.get("to_device"), "extensions.to_device", to_device=True),
                e2ee=_extension(errors, raw_ext.get("e2ee"), "extensions.e2ee"),
                account_data=_extension(errors, raw_ext.get("account_data"), "extensions.account_data", rooms=True),
                receipts=_extension(errors, raw_ext.get("receipts"), "extensions.receipts", rooms=True),
                typing=_extension(errors, raw_ext.get("typing"), "extensions.typing", rooms=True),
            )
    errors.raise_any()
    return SlidingSyncRequest(conn_id, lists, subscriptions, extensions)


def register(hs: HomeServer, router: Router) -> None:
    async def sliding_sync(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        timeout = parse_integer(request, "timeout", 0) or 0
        pos = parse_string(request, "pos")
        body = parse_request(parse_json_body(request))
        d = defer.ensureDeferred(hs.sliding_sync.wait_for_sync(requester, body, pos, timeout))
        # A client that cancels its request (Element X does, to change its lists) must
        # not leave a wait parked: cancel it, as /sync does.
        request.notifyFinish().addErrback(lambda _: d.cancel())
        return 200, await d

    router.register("POST", PATH, sliding_sync)
