"""Room endpoints: create, join/leave/invite/kick/ban/knock, state, members, typing,
receipts, read markers, upgrades."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.handlers.room_creation import ALIAS_FORBIDDEN_CHARS, RoomRequest
from homeserver.http.errors import BadJson, Forbidden, MatrixError, MissingParam, NotFound
from homeserver.http.request import (
    parse_boolean,
    parse_integer,
    parse_json_body,
    parse_string,
    parse_strings,
    require_bool,
    require_dict,
    require_list,
    require_str,
)
from homeserver.http.server import CLIENT_V1, CLIENT_V3, Router
from homeserver.util.ids import is_valid_room_id, is_valid_user_id

if TYPE_CHECKING:
    from homeserver.app import HomeServer

ROOM = "/rooms/(?P<room_id>[^/]+)"


def _check_room_id(room_id: str) -> None:
    if not is_valid_room_id(room_id):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid room id")


def parse_create_room(body: dict[str, Any]) -> RoomRequest:
    """The shapes of a /createRoom body. Statuses are Synapse's; where Synapse gives no
    errcode (M_UNKNOWN) or fails (500) the spec's code for the case is used instead."""
    room_version = body.get("room_version")
    if room_version is not None and not isinstance(room_version, str):
        raise BadJson("room_version must be a string")
    visibility = body.get("visibility", "private")
    if visibility not in ("public", "private"):
        raise BadJson("visibility must be public or private")
    preset = body.get("preset")
    if preset is not None and not isinstance(preset, str):
        raise BadJson(f"{preset!r} is not a valid preset")
    alias_name = require_str(body, "room_alias_name", required=False)
    if alias_name and any(c in ALIAS_FORBIDDEN_CHARS for c in alias_name):
        raise MatrixError(
            400, "M_INVALID_PARAM", "room_alias_name is a local part ('wombat', not '#wombat:example.com'): no whitespace or ':'"
        )
    invite = require_list(body, "invite", str) or []
    for user_id in invite:
        if not is_valid_user_id(user_id):
            raise MatrixError(400, "M_INVALID_PARAM", f"Invalid user_id: {user_id!r}")
    for entry in require_list(body, "invite_3pid", dict) or []:
        if not all(k in entry for k in ("medium", "address", "id_server", "id_access_token")):
            raise MissingParam("a 3pid invite needs all of medium, address, id_server and id_access_token")
    initial_state = []
    for ev in require_list(body, "initial_state", dict) or []:
        etype, state_key, content = ev.get("type"), ev.get("state_key", ""), ev.get("content")
        if not isinstance(etype, str) or not isinstance(state_key, str) or not isinstance(content, dict):
            raise BadJson("initial_state entries need a string type, a string state_key (if any) and a content object")
        if "\x00" in etype or "\x00" in state_key:
            raise BadJson("initial_state type and state_key cannot contain NUL")
        initial_state.append({"type": etype, "state_key": state_key, "content": content})
    return RoomRequest(
        room_version=room_version,
        visibility=visibility,
        preset=preset,
        name=require_str(body, "name", required=False),
        topic=require_str(body, "topic", required=False),
        room_alias_name=alias_name,
        invite=invite,
        initial_state=initial_state,
        creation_content=require_dict(body, "creation_content") or {},
        power_level_content_override=require_dict(body, "power_level_content_override"),
        is_direct=require_bool(body, "is_direct", False),
    )


def register(hs: HomeServer, router: Router) -> None:
    _register_membership(hs, router)
    _register_state(hs, router)
    _register_ephemeral(hs, router)
    _register_summaries(hs, router)


def _register_membership(hs: HomeServer, router: Router) -> None:
    """Creating, joining, knocking, leaving and upgrading rooms."""
    async def create_room(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        body = parse_create_room(parse_json_body(request, allow_empty=True))
        return 200, await hs.room_creation.create_room(requester, body)

    async def join(request: Request, room_id_or_alias: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        body = parse_json_body(request, allow_empty=True)
        via = parse_strings(request, "via") or parse_strings(request, "server_name")
        # The member event carries what the client sent (a reason, a per-room display
        # name, anything else), as Synapse's /join does; /rooms/{id}/join keeps only the
        # reason. The server alone names a restricted join's authoriser.
        extra = {k: v for k, v in body.items() if k not in ("membership", "join_authorised_via_users_server")}
        if not isinstance(extra.get("reason", ""), str):
            del extra["reason"]
        room_id = await hs.membership.join(requester, room_id_or_alias, via, extra)
        return 200, {"room_id": room_id}

    async def knock(request: Request, room_id_or_alias: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        body = parse_json_body(request, allow_empty=True)
        room_id, servers = await hs.membership.resolve_room(room_id_or_alias)
        reason = body.get("reason") if isinstance(body.get("reason"), str) else None
        # Servers to knock through: v12 room ids name none.
        via = (parse_strings(request, "via") or parse_strings(request, "server_name")) + servers
        await hs.membership.update_membership(requester, room_id, requester.user_id, "knock", reason=reason, via=via)
        return 200, {"room_id": room_id}

    async def membership(request: Request, room_id: str, action: str) -> tuple[int, Any]:
        _check_room_id(room_id)
        # As Synapse: guests may join and leave (a join only where the room allows guests,
        # checked by the membership handler); forgetting is M_GUEST_ACCESS_FORBIDDEN, the
        # other actions a plain M_FORBIDDEN.
        requester = await hs.auth.get_user_by_req(request, allow_guest=action != "forget")
        if requester.is_guest and action not in ("join", "leave"):
            raise Forbidden("Guest access not allowed")
        body = parse_json_body(request, allow_empty=True)
        reason = body.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise BadJson("reason must be a string")
        if action == "join":
            extra = {"reason": reason} if reason else {}
            await hs.membership.join(requester, room_id, [], extra)
            return 200, {"room_id": room_id}
        if action in ("leave", "forget"):
            target = requester.user_id
        else:
            target = require_str(body, "user_id")
        if action == "forget":
            await hs.membership.forget(requester, room_id)
            return 200, {}
        await hs.membership.update_membership(requester, room_id, target, action, reason=reason)
        return 200, {}

    async def upgrade(request: Request, room_id: str) -> tuple[int, Any]:
        _check_room_id(room_id)
        requester = await hs.auth.get_user_by_req(request)
        body = parse_json_body(request)
        version = require_str(body, "new_version")
        new_room_id = await hs.room_creation.upgrade_room(
            requester, room_id, version, body.get("additional_creators")
        )
        return 200, {"replacement_room": new_room_id}

    router.register_prefixes("POST", CLIENT_V3, "/createRoom", create_room)
    router.register_prefixes("POST", CLIENT_V3, "/join/(?P<room_id_or_alias>[^/]+)", join)
    router.register_prefixes("POST", CLIENT_V3, "/knock/(?P<room_id_or_alias>[^/]+)", knock)
    router.register_prefixes(
        "POST", CLIENT_V3, ROOM + "/(?P<action>join|leave|invite|kick|ban|unban|forget)", membership
    )
    router.register_prefixes("POST", CLIENT_V3, ROOM + "/upgrade", upgrade)


def _register_state(hs: HomeServer, router: Router) -> None:
    """Room state and members."""
    async def get_state(request: Request, room_id: str) -> tuple[int, Any]:
        _check_room_id(room_id)
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        events = await hs.messages.get_state(requester, room_id)
        ordered = sorted(events, key=lambda e: e.stream_ordering)
        return 200, await hs.messages.serialize(requester, ordered, bundle=False, legacy_fields=True)

    async def get_state_event(request: Request, room_id: str, event_type: str, state_key: str = "") -> tuple[int, Any]:
        _check_room_id(room_id)
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        ev = await hs.messages.get_state_event(requester, room_id, event_type, state_key)
        if parse_string(request, "format") == "event":
            # As Synapse: the client event, with the redaction in redacted_because.
            return 200, (await hs.messages.serialize(requester, [ev], bundle=False))[0]
        if ev.redacted_by:
            return 200, (await hs.messages.serialize(requester, [ev]))[0]["content"]
        return 200, ev.content

    async def put_state_event(request: Request, room_id: str, event_type: str, state_key: str = "") -> tuple[int, Any]:
        _check_room_id(room_id)
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        content = parse_json_body(request, allow_empty=False)
        ev = await hs.messages.send_event(requester, room_id, event_type, content, state_key=state_key)
        if event_type == "m.room.guest_access":
            # Guests the change shuts out are gone before the answer, as on Synapse.
            await hs.guests.settled(room_id)
        return 200, {"event_id": ev.event_id}

    async def members(request: Request, room_id: str) -> tuple[int, Any]:
        _check_room_id(room_id)
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        events = await hs.messages.get_members(requester, room_id, parse_string(request, "at"))
        membership_filter = parse_string(request, "membership")
        not_membership = parse_string(request, "not_membership")
        chosen = [
            e
            for e in events
            if e.type == "m.room.member"
            and (not membership_filter or e.membership == membership_filter)
            and (not not_membership or e.membership != not_membership)
        ]
        return 200, {"chunk": await hs.messages.serialize(requester, chosen, bundle=False, legacy_fields=True)}

    async def joined_members(request: Request, room_id: str) -> tuple[int, Any]:
        _check_room_id(room_id)
        requester = await hs.auth.get_user_by_req(request)
        await hs.membership.require_joined(room_id, requester.user_id)
        joined = {}
        for key, ev in (await hs.rooms.get_state_events(room_id)).items():
            if key[0] == "m.room.member" and ev.membership == "join":
                # Both keys always, null when unset or not a string (member content is
                # client-controlled), as Synapse answers and Complement expects.
                profile = {"display_name": ev.content.get("displayname"), "avatar_url": ev.content.get("avatar_url")}
                joined[key[1]] = {k: v if isinstance(v, str) else None for k, v in profile.items()}
        return 200, {"joined": joined}

    async def joined_rooms(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        return 200, {"joined_rooms": sorted(hs.rooms.joined_rooms(requester.user_id))}

    router.register_prefixes("GET", CLIENT_V3, ROOM + "/state", get_state)
    router.register_prefixes("GET", CLIENT_V3, ROOM + "/state/(?P<event_type>[^/]+)/?", get_state_event)
    router.register_prefixes("GET", CLIENT_V3, ROOM + "/state/(?P<event_type>[^/]+)/(?P<state_key>[^/]*)", get_state_event)
    router.register_prefixes("PUT", CLIENT_V3, ROOM + "/state/(?P<event_type>[^/]+)/?", put_state_event)
    router.register_prefixes("PUT", CLIENT_V3, ROOM + "/state/(?P<event_type>[^/]+)/(?P<state_key>[^/]*)", put_state_event)
    router.register_prefixes("GET", CLIENT_V3, ROOM + "/members", members)
    router.register_prefixes("GET", CLIENT_V3, ROOM + "/joined_members", joined_members)
    router.register_prefixes("GET", CLIENT_V3, "/joined_rooms", joined_rooms)


def _register_ephemeral(hs: HomeServer, router: Router) -> None:
    """Typing, receipts and read markers."""
    async def typing(request: Request, room_id: str, user_id: str) -> tuple[int, Any]:
        _check_room_id(room_id)
        requester = await hs.auth.get_user_by_req(request)
        if requester.user_id != user_id:
            # Synapse answers 400 (with M_FORBIDDEN).
            raise MatrixError(400, "M_FORBIDDEN", "Cannot set another user's typing state")
        body = parse_json_body(request)
        is_typing = body.get("typing")
        if not isinstance(is_typing, bool):
            raise BadJson("typing must be a boolean")
        await hs.typing.set_typing(user_id, room_id, is_typing, body.get("timeout", 30000) if is_typing else None)
        return 200, {}

    async def receipt(request: Request, room_id: str, receipt_type: str, event_id: str) -> tuple[int, Any]:
        _check_room_id(room_id)
        requester = await hs.auth.get_user_by_req(request)
        body = parse_json_body(request, allow_empty=True)
        await hs.receipts.post_receipt(requester, room_id, receipt_type, event_id, body.get("thread_id"))
        return 200, {}

    async def read_markers(request: Request, room_id: str) -> tuple[int, Any]:
        _check_room_id(room_id)
        requester = await hs.auth.get_user_by_req(request)
        body = parse_json_body(request)
        await hs.receipts.read_markers(requester, room_id, body)
        return 200, {}

    router.register_prefixes("PUT", CLIENT_V3, ROOM + "/typing/(?P<user_id>[^/]+)", typing)
    router.register_prefixes("POST", CLIENT_V3, ROOM + "/receipt/(?P<receipt_type>[^/]+)/(?P<event_id>[^/]+)", receipt)
    router.register_prefixes("POST", CLIENT_V3, ROOM + "/read_markers", read_markers)


def _register_summaries(hs: HomeServer, router: Router) -> None:
    """Spaces and room summaries (MSC3266)."""
    async def hierarchy(request: Request, room_id: str) -> tuple[int, Any]:
        _check_room_id(room_id)
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        return 200, await hs.room_hierarchy.get_hierarchy(
            requester.user_id,
            room_id,
            suggested_only=parse_boolean(request, "suggested_only", False),
            max_depth=parse_integer(request, "max_depth"),
            limit=parse_integer(request, "limit"),
            from_token=parse_string(request, "from"),
        )

    async def room_summary(request: Request, room_id_or_alias: str) -> tuple[int, Any]:
        requester = None
        try:
            requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        except MatrixError:
            pass
        room_id, _ = await hs.membership.resolve_room(room_id_or_alias)
        summary = await hs.directory.room_summary(room_id)
        membership = await hs.membership.get_membership(room_id, requester.user_id) if requester else None
        if membership is None and summary["join_rule"] not in ("public", "knock", "knock_restricted") and not summary["world_readable"]:
            raise NotFound("Room not found")
        if membership:
            summary["membership"] = membership
        return 200, summary

    router.register_prefixes("GET", CLIENT_V1, ROOM + "/hierarchy", hierarchy)
    router.register(
        "GET", "/_matrix/client/unstable/im.nheko.summary/rooms/(?P<room_id_or_alias>[^/]+)/summary", room_summary
    )
    router.register("GET", "/_matrix/client/v1/room_summary/(?P<room_id_or_alias>[^/]+)", room_summary)
