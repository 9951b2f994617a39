"""``POST /search``: the request is validated here, searched by handlers/search.py.

Synapse answers a malformed request with 400 ``M_UNKNOWN`` ("Invalid search query",
"Invalid batch"); we give the same status with the spec's codes, ``M_BAD_JSON`` for the
body and ``M_INVALID_PARAM`` for the ``next_batch`` parameter. Where Synapse would fail
with a 500 (a search term that is not a string, a non-integer context limit) we answer
400 too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.handlers.filtering import RoomEventFilter
from homeserver.handlers.search import (
    DEFAULT_KEYS,
    MAX_CONTEXT,
    Batch,
    EventContextRequest,
    SearchHandler,
    SearchRequest,
)
from homeserver.http.errors import BadJson
from homeserver.http.request import parse_json_body, parse_string
from homeserver.http.server import CLIENT_V3, Router

if TYPE_CHECKING:
    from homeserver.app import HomeServer

GROUP_KEYS = ("room_id", "sender")


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadJson(f"Invalid search query: {what} must be an object")
    return value


def _int(value: Any, what: str) -> int:
    # Synapse takes int(value): a numeric string too.
    if isinstance(value, bool):
        raise BadJson(f"{what} must be an integer")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadJson(f"{what} must be an integer") from None


def parse_search_request(body: dict[str, Any]) -> SearchRequest:
    categories = _object(body.get("search_categories"), "search_categories")
    room_cat = _object(categories.get("room_events"), "search_categories.room_events")
    term = room_cat.get("search_term")
    if not isinstance(term, str):
        raise BadJson("Invalid search query: search_term must be a string")
    term = term.replace("\x00", " ")  # no engine takes NUL in a query, and no text has one
    keys = room_cat.get("keys", list(DEFAULT_KEYS))
    # Unknown keys match nothing, as in Synapse.
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise BadJson("keys must be a list of strings")
    event_filter = RoomEventFilter.parse(room_cat.get("filter"))
    order_by = room_cat.get("order_by", "rank")
    if order_by not in ("rank", "recent"):
        raise BadJson(f"Invalid order by: {order_by!r}")
    include_state = room_cat.get("include_state", False)
    if not isinstance(include_state, bool):
        raise BadJson("include_state must be a boolean")
    context = None
    if room_cat.get("event_context") is not None:
        ctx = _object(room_cat["event_context"], "event_context")
        include_profile = ctx.get("include_profile", False)
        if not isinstance(include_profile, bool):
            raise BadJson("include_profile must be a boolean")
        context = EventContextRequest(
            before_limit=max(0, min(_int(ctx.get("before_limit", 5), "before_limit"), MAX_CONTEXT)),
            after_limit=max(0, min(_int(ctx.get("after_limit", 5), "after_limit"), MAX_CONTEXT)),
            include_profile=include_profile,
        )
    groupings = _object(room_cat.get("groupings", {}), "groupings")
    group_by = groupings.get("group_by", [])
    if not isinstance(group_by, list) or not all(isinstance(g, dict) and "key" in g for g in group_by):
        raise BadJson("Invalid search query: group_by must be a list of {key}")
    group_keys = tuple(g["key"] for g in group_by)
    unknown = set(group_keys) - set(GROUP_KEYS)
    if unknown:
        raise BadJson(f"Invalid group by keys: {sorted(map(str, unknown))}")
    return SearchRequest(
        search_term=term,
        keys=tuple(keys),
        filter=event_filter,
        order_by=order_by,
        include_state=include_state,
        event_context=context,
        group_keys=group_keys,
    )


def register(hs: HomeServer, router: Router) -> None:
    handler = SearchHandler(hs)

    async def search(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        body = parse_json_body(request)
        req = parse_search_request(body)
        raw_batch = parse_string(request, "next_batch")
        batch = Batch.parse(raw_batch) if raw_batch else None
        return 200, await handler.search(requester, req, batch)

    router.register_prefixes("POST", CLIENT_V3, "/search", search)
