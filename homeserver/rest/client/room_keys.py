"""/room_keys: server-side key backup versions and the backed-up session keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.http.request import parse_json_body, parse_string
from homeserver.http.server import CLIENT_UNSTABLE, CLIENT_V3, Router

if TYPE_CHECKING:
    from homeserver.app import HomeServer

PREFIXES = CLIENT_V3 + CLIENT_UNSTABLE
ROOM = "/(?P<room_id>[^/]+)"
SESSION = "/(?P<session_id>[^/]+)"


def register(hs: HomeServer, router: Router) -> None:
    async def create_version(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        version = await hs.room_keys.create_version(requester.user_id, parse_json_body(request))
        return 200, {"version": version}

    async def get_version(request: Request, version: str | None = None) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        return 200, await hs.room_keys.get_version(requester.user_id, version or None)

    async def put_version(request: Request, version: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        await hs.room_keys.update_version(requester.user_id, version, parse_json_body(request))
        return 200, {}

    async def delete_version(request: Request, version: str | None = None) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        await hs.room_keys.delete_version(requester.user_id, version or None)
        return 200, {}

    def required_version(request: Request) -> str:
        version = parse_string(request, "version", required=True)
        assert version is not None
        return version

    async def put_keys(
        request: Request, room_id: str | None = None, session_id: str | None = None
    ) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        version = required_version(request)
        body = parse_json_body(request)
        if session_id is not None:
            rooms: Any = {room_id: {"sessions": {session_id: body}}}
        elif room_id is not None:
            rooms = {room_id: body}
        else:
            rooms = body.get("rooms")
        return 200, await hs.room_keys.upload_keys(requester.user_id, version, rooms)

    async def get_keys(
        request: Request, room_id: str | None = None, session_id: str | None = None
    ) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        version = required_version(request)
        return 200, await hs.room_keys.get_keys(requester.user_id, version, room_id, session_id)

    async def delete_keys(
        request: Request, room_id: str | None = None, session_id: str | None = None
    ) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        version = required_version(request)
        return 200, await hs.room_keys.delete_keys(requester.user_id, version, room_id, session_id)

    router.register_prefixes("POST", PREFIXES, "/room_keys/version", create_version)
    router.register_prefixes("GET", PREFIXES, "/room_keys/version", get_version)
    router.register_prefixes("GET", PREFIXES, "/room_keys/version/(?P<version>[^/]*)", get_version)
    router.register_prefixes("PUT", PREFIXES, "/room_keys/version/(?P<version>[^/]+)", put_version)
    # Synapse also accepts DELETE without a version (the current backup).
    router.register_prefixes("DELETE", PREFIXES, "/room_keys/version", delete_version)
    router.register_prefixes("DELETE", PREFIXES, "/room_keys/version/(?P<version>[^/]*)", delete_version)
    for path in ("/room_keys/keys", "/room_keys/keys" + ROOM, "/room_keys/keys" + ROOM + SESSION):
        router.register_prefixes("PUT", PREFIXES, path, put_keys)
        router.register_prefixes("GET", PREFIXES, path, get_keys)
        router.register_prefixes("DELETE", PREFIXES, path, delete_keys)
