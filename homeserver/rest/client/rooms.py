"""Room endpoints: create, join/leave/invite/kick/ban/knock, state, members, typing,
receipts, read markers, upgrades."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.events.client_format import client_event
from homeserver.http.errors import BadJson, Forbidden, MatrixError, NotFound
from homeserver.http.request import parse_json_body, parse_string, parse_strings, require_str
from homeserver.http.server import CLIENT_V3, Router
from homeserver.util.ids import is_valid_room_id, now_ms

if TYPE_CHECKING:
    from homeserver.app import HomeServer

ROOM = "/rooms/(?P<room_id>[^/]+)"


def _check_room_id(room_id: str) -> None:
    if not is_valid_room_id(room_id):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid room id")


def register(hs: "HomeServer", router: Router) -> None:
    async def create_room(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        body = parse_json_body(request, allow_empty=True)
        return 200, await hs.room_creation.create_room(requester, body)

    async def join(request: Request, room_id_or_alias: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        body = parse_json_body(request, allow_empty=True)
        via = parse_strings(request, "via") or parse_strings(request, "server_name")
        extra = {}
        if isinstance(body.get("reason"), str):
            extra["reason"] = body["reason"]
        if requester.is_guest:
            await _check_guest_can_join(room_id_or_alias)
        room_id = await hs.membership.join(requester, room_id_or_alias, via, extra)
        return 200, {"room_id": room_id}

    async def _check_guest_can_join(room_id_or_alias: str) -> None:
        room_id, _ = await hs.membership.resolve_room(room_id_or_alias)
        ev = await hs.rooms.get_current_state_event(room_id, "m.room.guest_access")
        if ev is None or ev.content.get("guest_access") != "can_join":
            raise MatrixError(403, "M_GUEST_ACCESS_FORBIDDEN", "Guest access is not allowed in this room")

    async def membership(request: Request, room_id: str, action: str) -> tuple[int, Any]:
        _check_room_id(room_id)
        requester = await hs.auth.get_user_by_req(request, allow_guest=action in ("join", "leave"))
        body = parse_json_body(request, allow_empty=True)
        reason = body.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise BadJson("reason must be a string")
        if action == "join":
            if requester.is_guest:
                await _check_guest_can_join(room_id)
            extra = {"reason": reason} if reason else {}
            await hs.membership.join(requester, room_id, [], extra)
            return 200, {"room_id": room_id}
        if action in ("leave", "forget"):
            target = requester.user_id
        else:
            target = require_str(body, "user_id")  # type: ignore[assignment]
        if action == "forget":
            await hs.membership.forget(requester, room_id)
            return 200, {}
        await hs.membership.update_membership(requester, room_id, target, action, reason=reason)
        return 200, {}

    async def knock(request: Request, room_id_or_alias: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        body = parse_json_body(request, allow_empty=True)
        room_id, servers = await hs.membership.resolve_room(room_id_or_alias)
        reason = body.get("reason") if isinstance(body.get("reason"), str) else None
        # Servers to knock through: v12 room ids name none.
        via = (parse_strings(request, "via") or parse_strings(request, "server_name")) + servers
        await hs.membership.update_membership(requester, room_id, requester.user_id, "knock", reason=reason, via=via)
        return 200, {"room_id": room_id}

    async def get_state(request: Request, room_id: str) -> tuple[int, Any]:
        _check_room_id(room_id)
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        events = await hs.messages.get_state(requester, room_id)
        now = now_ms()
        return 200, [client_event(e, now) for e in sorted(events, key=lambda e: e.stream_ordering)]

    async def get_state_event(request: Request, room_id: str, event_type: str, state_key: str = "") -> tuple[int, Any]:
        _check_room_id(room_id)
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        ev = await hs.messages.get_state_event(requester, room_id, event_type, state_key)
        if parse_string(request, "format") == "event":
            return 200, client_event(ev, now_ms())
        if ev.redacted_by:
            return 200, (await hs.messages.serialize(requester, [ev]))[0]["content"]
        return 200, ev.content

    async def put_state_event(request: Request, room_id: str, event_type: str, state_key: str = "") -> tuple[int, Any]:
        _check_room_id(room_id)
        requester = await hs.auth.get_user_by_req(request)
        content = parse_json_body(request, allow_empty=False)
        ev = await hs.messages.send_event(requester, room_id, event_type, content, state_key=state_key)
        return 200, {"event_id": ev.event_id}

    async def members(request: Request, room_id: str) -> tuple[int, Any]:
        _check_room_id(room_id)
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        events = await hs.messages.get_state(requester, room_id)
        membership_filter = parse_string(request, "membership")
        not_membership = parse_string(request, "not_membership")
        now = now_ms()
        chunk = []
        for e in events:
            if e.type != "m.room.member":
                continue
            if membership_filter and e.membership != membership_filter:
                continue
            if not_membership and e.membership == not_membership:
                continue
            chunk.append(client_event(e, now))
        return 200, {"chunk": chunk}

    async def joined_members(request: Request, room_id: str) -> tuple[int, Any]:
        _check_room_id(room_id)
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        await hs.membership.require_joined(room_id, requester.user_id)
        joined = {}
        for key, ev in (await hs.rooms.get_state_events(room_id)).items():
            if key[0] == "m.room.member" and ev.membership == "join":
                # Optional strings in the spec: leave out what is unset or not a string
                # (member content is client-controlled) rather than send nulls.
                profile = {"display_name": ev.content.get("displayname"), "avatar_url": ev.content.get("avatar_url")}
                joined[key[1]] = {k: v for k, v in profile.items() if isinstance(v, str)}
        return 200, {"joined": joined}

    async def joined_rooms(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        return 200, {"joined_rooms": sorted(hs.rooms.joined_rooms(requester.user_id))}

    async def typing(request: Request, room_id: str, user_id: str) -> tuple[int, Any]:
        _check_room_id(room_id)
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        if requester.user_id != user_id:
            raise Forbidden("Cannot set another user's typing state")
        body = parse_json_body(request)
        is_typing = body.get("typing")
        if not isinstance(is_typing, bool):
            raise BadJson("typing must be a boolean")
        await hs.typing.set_typing(user_id, room_id, is_typing, body.get("timeout", 30000) if is_typing else None)
        return 200, {}

    async def receipt(request: Request, room_id: str, receipt_type: str, event_id: str) -> tuple[int, Any]:
        _check_room_id(room_id)
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        body = parse_json_body(request, allow_empty=True)
        await hs.receipts.post_receipt(requester, room_id, receipt_type, event_id, body.get("thread_id"))
        return 200, {}

    async def read_markers(request: Request, room_id: str) -> tuple[int, Any]:
        _check_room_id(room_id)
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        body = parse_json_body(request)
        await hs.receipts.read_markers(requester, room_id, body)
        return 200, {}

    async def upgrade(request: Request, room_id: str) -> tuple[int, Any]:
        _check_room_id(room_id)
        requester = await hs.auth.get_user_by_req(request)
        body = parse_json_body(request)
        version = require_str(body, "new_version")
        new_room_id = await hs.room_creation.upgrade_room(requester, room_id, version)  # type: ignore[arg-type]
        return 200, {"replacement_room": new_room_id}

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

    router.register_prefixes("POST", CLIENT_V3, "/createRoom", create_room)
    router.register_prefixes("POST", CLIENT_V3, "/join/(?P<room_id_or_alias>[^/]+)", join)
    router.register_prefixes("POST", CLIENT_V3, "/knock/(?P<room_id_or_alias>[^/]+)", knock)
    router.register_prefixes(
        "POST", CLIENT_V3, ROOM + "/(?P<action>join|leave|invite|kick|ban|unban|forget)", membership
    )
    router.register_prefixes("GET", CLIENT_V3, ROOM + "/state", get_state)
    router.register_prefixes("GET", CLIENT_V3, ROOM + "/state/(?P<event_type>[^/]+)/?", get_state_event)
    router.register_prefixes("GET", CLIENT_V3, ROOM + "/state/(?P<event_type>[^/]+)/(?P<state_key>[^/]*)", get_state_event)
    router.register_prefixes("PUT", CLIENT_V3, ROOM + "/state/(?P<event_type>[^/]+)/?", put_state_event)
    router.register_prefixes("PUT", CLIENT_V3, ROOM + "/state/(?P<event_type>[^/]+)/(?P<state_key>[^/]*)", put_state_event)
    router.register_prefixes("GET", CLIENT_V3, ROOM + "/members", members)
    router.register_prefixes("GET", CLIENT_V3, ROOM + "/joined_members", joined_members)
    router.register_prefixes("GET", CLIENT_V3, "/joined_rooms", joined_rooms)
    router.register_prefixes("PUT", CLIENT_V3, ROOM + "/typing/(?P<user_id>[^/]+)", typing)
    router.register_prefixes("POST", CLIENT_V3, ROOM + "/receipt/(?P<receipt_type>[^/]+)/(?P<event_id>[^/]+)", receipt)
    router.register_prefixes("POST", CLIENT_V3, ROOM + "/read_markers", read_markers)
    router.register_prefixes("POST", CLIENT_V3, ROOM + "/upgrade", upgrade)
    router.register(
        "GET", "/_matrix/client/unstable/im.nheko.summary/rooms/(?P<room_id_or_alias>[^/]+)/summary", room_summary
    )
    router.register("GET", "/_matrix/client/v1/room_summary/(?P<room_id_or_alias>[^/]+)", room_summary)
