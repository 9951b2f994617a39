"""Federation queries, both directions: the endpoints other servers call (directory,
profile, public rooms, device and key queries, openid userinfo, version, hierarchy) and
the client-side hooks that send the same queries to other servers for our users."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from federation.server_acl import check_server_acl
from federation.transport.server import authenticated, json_body, unauthenticated
from homeserver.http.errors import BadJson, Forbidden, InvalidParam, MatrixError, MissingParam, NotFound, UnknownToken
from homeserver.http.request import parse_boolean, parse_integer, parse_string
from homeserver.util.ids import is_valid_alias, is_valid_user_id, server_of

if TYPE_CHECKING:
    from homeserver.app import HomeServer

logger = logging.getLogger(__name__)

V1 = "/_matrix/federation/v1"
SERVER_VERSION = "0.1.0"
PROFILE_FIELDS = ("displayname", "avatar_url")


def register_queries(hs: "HomeServer") -> None:
    router = hs.federation_router

    # -- server side ----------------------------------------------------------------

    async def query_directory(request: Request, origin: str) -> tuple[int, Any]:
        alias = parse_string(request, "room_alias")
        if not alias:
            raise MissingParam("Missing room_alias")
        if not is_valid_alias(alias):
            raise InvalidParam("Invalid room alias")
        if not hs.is_mine(alias):
            raise NotFound(f"Room alias {alias} not found")
        found = await hs.store.get_alias(alias)
        if found is None:
            raise NotFound(f"Room alias {alias} not found")
        room_id = found[0]
        return 200, {"room_id": room_id, "servers": await hs.directory.servers_in_room(room_id)}

    async def query_profile(request: Request, origin: str) -> tuple[int, Any]:
        user_id = parse_string(request, "user_id")
        if not user_id:
            raise MissingParam("Missing user_id")
        if not is_valid_user_id(user_id) or not hs.is_mine(user_id):
            # Synapse: 400 "User is not hosted on this homeserver".
            raise InvalidParam("User is not hosted on this homeserver")
        field = parse_string(request, "field")
        profile = await hs.profile.get_profile(user_id)
        if field is not None:
            return 200, {field: profile[field]} if field in profile else {}
        return 200, profile

    async def public_rooms_get(request: Request, origin: str) -> tuple[int, Any]:
        limit = parse_integer(request, "limit")
        since = parse_string(request, "since")
        return 200, await hs.directory.public_rooms(limit, since, None)

    async def public_rooms_post(request: Request, origin: str) -> tuple[int, Any]:
        body = json_body(request)
        limit, since = body.get("limit"), body.get("since")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
            raise BadJson("limit must be an integer")
        if since is not None and not isinstance(since, str):
            raise BadJson("since must be a string")
        flt = body.get("filter")
        term = flt.get("generic_search_term") if isinstance(flt, dict) else None
        if term is not None and not isinstance(term, str):
            raise BadJson("generic_search_term must be a string")
        return 200, await hs.directory.public_rooms(limit, since, term)

    async def user_devices(request: Request, origin: str, user_id: str) -> tuple[int, Any]:
        if not is_valid_user_id(user_id) or not hs.is_mine(user_id):
            raise Forbidden("User is not hosted on this homeserver")
        if hs.e2e_keys is None:
            return 200, {"user_id": user_id, "stream_id": 0, "devices": []}
        return 200, await hs.e2e_keys.get_user_devices(user_id)

    async def keys_query(request: Request, origin: str) -> tuple[int, Any]:
        body = json_body(request)
        device_keys = body.get("device_keys")
        if not isinstance(device_keys, dict):
            raise BadJson("device_keys must be an object")
        if hs.e2e_keys is None:
            return 200, {"device_keys": {}}
        return 200, await hs.e2e_keys.query_local_keys(device_keys)

    async def keys_claim(request: Request, origin: str) -> tuple[int, Any]:
        body = json_body(request)
        otks = body.get("one_time_keys")
        if not isinstance(otks, dict):
            raise BadJson("one_time_keys must be an object")
        if hs.e2e_keys is None:
            return 200, {"one_time_keys": {}}
        return 200, await hs.e2e_keys.claim_local_keys(otks)

    async def openid_userinfo(request: Request) -> tuple[int, Any]:
        token = parse_string(request, "access_token")
        if not token:
            raise UnknownToken("Access token missing")
        user_id = await hs.openid.user_for_token(token)
        if user_id is None:
            raise UnknownToken("Access token unknown or expired")
        return 200, {"sub": user_id}

    async def version(request: Request) -> tuple[int, Any]:
        return 200, {"server": {"name": "WSPR", "version": SERVER_VERSION}}

    async def hierarchy(request: Request, origin: str, room_id: str) -> tuple[int, Any]:
        await check_server_acl(hs, room_id, origin)
        suggested_only = parse_boolean(request, "suggested_only", False)
        root = await _room_entry(hs, room_id, origin, require_access=True)
        if root is None:
            raise NotFound("Unknown room")
        children: list[dict[str, Any]] = []
        inaccessible: list[str] = []
        for child in root.get("children_state", []):
            if suggested_only and child.get("content", {}).get("suggested") is not True:
                continue
            child_id = child.get("state_key")
            entry = await _room_entry(hs, child_id, origin, require_access=False)
            if entry is None:
                continue
            if entry.pop("_accessible"):
                children.append(entry)
            else:
                inaccessible.append(child_id)
        root.pop("_accessible", None)
        if suggested_only:
            root["children_state"] = [c for c in root["children_state"] if c.get("content", {}).get("suggested") is True]
        return 200, {"room": root, "children": children, "inaccessible_children": inaccessible}

    router.register("GET", V1 + r"/query/directory", authenticated(hs, query_directory))
    router.register("GET", V1 + r"/query/profile", authenticated(hs, query_profile))
    router.register("GET", V1 + r"/publicRooms", authenticated(hs, public_rooms_get))
    router.register("POST", V1 + r"/publicRooms", authenticated(hs, public_rooms_post))
    router.register("GET", V1 + r"/user/devices/(?P<user_id>[^/]+)", authenticated(hs, user_devices))
    router.register("POST", V1 + r"/user/keys/query", authenticated(hs, keys_query))
    router.register("POST", V1 + r"/user/keys/claim", authenticated(hs, keys_claim))
    router.register("GET", V1 + r"/openid/userinfo", unauthenticated(hs, openid_userinfo))
    router.register("GET", V1 + r"/version", unauthenticated(hs, version))
    router.register("GET", V1 + r"/hierarchy/(?P<room_id>[^/]+)", authenticated(hs, hierarchy))

    # -- client side: hooks the client API calls for remote targets ------------------------

    async def remote_alias_query(alias: str) -> tuple[str, list[str]]:
        resp = await hs.federation.query_directory(server_of(alias), alias)
        room_id, servers = resp.get("room_id"), resp.get("servers")
        if not isinstance(room_id, str) or not isinstance(servers, list):
            raise MatrixError(502, "M_UNKNOWN", "Invalid directory answer from remote server")
        return room_id, [s for s in servers if isinstance(s, str)]

    async def remote_profile(user_id: str) -> dict[str, Any]:
        resp = await hs.federation.query_profile(server_of(user_id), user_id)
        if not isinstance(resp, dict):
            raise NotFound("Profile not found")
        return {k: v for k, v in resp.items() if k in PROFILE_FIELDS and isinstance(v, str)}

    async def remote_public_rooms(server: str, body: dict[str, Any]) -> dict[str, Any]:
        return await hs.federation.get_public_rooms(server, {k: v for k, v in body.items() if v is not None})

    hs.directory.remote_alias_query = remote_alias_query
    hs.directory.remote_public_rooms = remote_public_rooms
    hs.profile.remote_lookup = remote_profile
    if getattr(hs.membership, "resolve_remote_alias", None) is None:
        hs.membership.resolve_remote_alias = remote_alias_query


async def _room_entry(hs: "HomeServer", room_id: Any, origin: str, require_access: bool) -> dict[str, Any] | None:
    """A hierarchy room entry; None for rooms we don't know. ``_accessible`` says whether
    ``origin`` may see it (public / world-readable / knockable, or it has a member there)."""
    if not isinstance(room_id, str) or await hs.rooms.get_room(room_id) is None:
        return None
    summary = await hs.directory.room_summary(room_id)
    accessible = summary.get("join_rule") in ("public", "knock", "knock_restricted") or summary.get("world_readable")
    if not accessible:
        servers = await hs.federation_room_servers.joined_servers(room_id)  # type: ignore[attr-defined]
        accessible = origin in servers
    if require_access and not accessible:
        raise Forbidden("You are not allowed to view this room")
    room = await hs.rooms.get_room(room_id)
    assert room is not None
    child_keys = {k: v for k, v in room.state.items() if k[0] == "m.space.child"}
    events = await hs.rooms.get_state_events(room_id, child_keys)
    children_state = []
    for (_, state_key), ev in sorted(events.items()):
        if not isinstance(ev.content.get("via"), list) or not ev.content["via"]:
            continue  # a child without via is removed
        children_state.append(
            {"type": "m.space.child", "state_key": state_key, "sender": ev.sender, "content": ev.content,
             "origin_server_ts": ev.origin_server_ts}
        )
    entry = dict(summary)
    entry.pop("encryption", None)
    entry["children_state"] = children_state
    entry["_accessible"] = bool(accessible)
    return entry
