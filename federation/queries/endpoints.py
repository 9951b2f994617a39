"""The query endpoints other servers call: directory, profile, public rooms, device and
key queries and claims, OpenID userinfo, version. (Space hierarchies: ``hierarchy.py``;
the queries we send: ``outbound.py``.)"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from federation.transport.server import InboundRequests, json_body
from homeserver.http.errors import BadJson, Forbidden, InvalidParam, MissingParam, NotFound, UnknownToken
from homeserver.http.request import parse_integer, parse_string
from homeserver.util.ids import is_valid_alias, is_valid_user_id

if TYPE_CHECKING:
    from homeserver.app import HomeServer

logger = logging.getLogger(__name__)

V1 = "/_matrix/federation/v1"
SERVER_VERSION = "0.1.0"


class QueryEndpoints:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs

    def register(self, inbound: InboundRequests) -> None:
        router, auth, anyone = self.hs.federation_router, inbound.authenticated, inbound.unauthenticated
        router.register("GET", V1 + r"/query/directory", auth(self.query_directory))
        router.register("GET", V1 + r"/query/profile", auth(self.query_profile))
        router.register("GET", V1 + r"/publicRooms", auth(self.public_rooms_get))
        router.register("POST", V1 + r"/publicRooms", auth(self.public_rooms_post))
        router.register("GET", V1 + r"/user/devices/(?P<user_id>[^/]+)", auth(self.user_devices))
        router.register("POST", V1 + r"/user/keys/query", auth(self.keys_query))
        router.register("POST", V1 + r"/user/keys/claim", auth(self.keys_claim))
        router.register("GET", V1 + r"/openid/userinfo", anyone(self.openid_userinfo))
        router.register("GET", V1 + r"/version", anyone(self.version))

    # -- directory and profiles --------------------------------------------------------

    async def query_directory(self, request: Request, origin: str) -> tuple[int, Any]:
        hs = self.hs
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

    async def query_profile(self, request: Request, origin: str) -> tuple[int, Any]:
        user_id = parse_string(request, "user_id")
        if not user_id:
            raise MissingParam("Missing user_id")
        if not is_valid_user_id(user_id) or not self.hs.is_mine(user_id):
            # Synapse: 400 "User is not hosted on this homeserver".
            raise InvalidParam("User is not hosted on this homeserver")
        field = parse_string(request, "field")
        profile = await self.hs.profile.get_profile(user_id)
        if field is not None:
            return 200, {field: profile[field]} if field in profile else {}
        return 200, profile

    # -- public rooms ------------------------------------------------------------------

    async def public_rooms_get(self, request: Request, origin: str) -> tuple[int, Any]:
        limit = parse_integer(request, "limit")
        since = parse_string(request, "since")
        return 200, await self.hs.directory.public_rooms(limit, since, None)

    async def public_rooms_post(self, request: Request, origin: str) -> tuple[int, Any]:
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
        return 200, await self.hs.directory.public_rooms(limit, since, term)

    # -- end-to-end encryption ----------------------------------------------------------

    async def user_devices(self, request: Request, origin: str, user_id: str) -> tuple[int, Any]:
        if not is_valid_user_id(user_id) or not self.hs.is_mine(user_id):
            raise Forbidden("User is not hosted on this homeserver")
        return 200, await self.hs.e2e_keys.device_keys.get_user_devices(user_id)

    async def keys_query(self, request: Request, origin: str) -> tuple[int, Any]:
        device_keys = json_body(request).get("device_keys")
        if not isinstance(device_keys, dict):
            raise BadJson("device_keys must be an object")
        return 200, await self.hs.e2e_keys.device_keys.query_local_keys(device_keys)

    async def keys_claim(self, request: Request, origin: str) -> tuple[int, Any]:
        otks = json_body(request).get("one_time_keys")
        if not isinstance(otks, dict):
            raise BadJson("one_time_keys must be an object")
        return 200, await self.hs.e2e_keys.one_time_keys.claim_local_keys(otks)

    # -- unauthenticated ---------------------------------------------------------------

    async def openid_userinfo(self, request: Request) -> tuple[int, Any]:
        token = parse_string(request, "access_token")
        if not token:
            raise UnknownToken("Access token missing")
        user_id = await self.hs.openid.user_for_token(token)
        if user_id is None:
            raise UnknownToken("Access token unknown or expired")
        return 200, {"sub": user_id}

    async def version(self, request: Request) -> tuple[int, Any]:
        return 200, {"server": {"name": "WSPR", "version": SERVER_VERSION}}
