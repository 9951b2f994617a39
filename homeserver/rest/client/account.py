"""Registration, login, logout, refresh, whoami, password change and deactivation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.http.errors import Forbidden, MatrixError, MissingParam
from homeserver.http.request import parse_json_body, parse_string
from homeserver.http.server import CLIENT_V3, Router, client_ip

if TYPE_CHECKING:
    from homeserver.app import HomeServer


def register(hs: "HomeServer", router: Router) -> None:
    async def get_login_flows(request: Request) -> tuple[int, Any]:
        return 200, {"flows": [{"type": "m.login.password"}]}

    async def post_login(request: Request) -> tuple[int, Any]:
        body = parse_json_body(request)
        return 200, await hs.login.login(body, client_ip(request))

    async def post_register(request: Request) -> tuple[int, Any]:
        kind = parse_string(request, "kind", "user", allowed=("user", "guest"))
        body = parse_json_body(request, allow_empty=True)
        return 200, await hs.registration.register_via_client(body, kind or "user", client_ip(request), False)

    async def get_register_available(request: Request) -> tuple[int, Any]:
        username = parse_string(request, "username", required=True)
        hs.ratelimiter.check("registration", client_ip(request))
        await hs.registration.check_username((username or "").lower())
        return 200, {"available": True}

    async def get_registration_token_validity(request: Request) -> tuple[int, Any]:
        token = parse_string(request, "token", required=True)
        return 200, {"valid": await hs.store.registration_token_valid(token or "")}

    async def post_refresh(request: Request) -> tuple[int, Any]:
        body = parse_json_body(request)
        token = body.get("refresh_token")
        if not isinstance(token, str):
            raise MissingParam("Missing refresh_token")
        return 200, await hs.auth.refresh(token)

    async def post_logout(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        await hs.devices.delete_devices(requester.user_id, [requester.device_id])
        return 200, {}

    async def post_logout_all(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        devices = await hs.store.get_devices(requester.user_id)
        await hs.devices.delete_devices(requester.user_id, [d.device_id for d in devices])
        return 200, {}

    async def get_whoami(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        return 200, {"user_id": requester.user_id, "device_id": requester.device_id, "is_guest": requester.is_guest}

    async def post_password(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        body = parse_json_body(request)
        new_password = body.get("new_password")
        if not isinstance(new_password, str) or not new_password:
            raise MissingParam("Missing new_password")
        await hs.auth.check_ui_auth(body, [["m.login.password"]], "password", requester)
        await hs.store.set_password_hash(requester.user_id, await hs.auth.hash_password(new_password))
        if body.get("logout_devices", True) is not False:
            others = [d.device_id for d in await hs.store.get_devices(requester.user_id) if d.device_id != requester.device_id]
            if others:
                await hs.devices.delete_devices(requester.user_id, others)
            await hs.store.delete_other_tokens(requester.user_id, requester.device_id, requester.token_hash)
        return 200, {}

    async def post_deactivate(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        body = parse_json_body(request, allow_empty=True)
        await hs.auth.check_ui_auth(body, [["m.login.password"]], "deactivate", requester)
        user_id = requester.user_id
        # Leave every room first so others see the account go.
        for room_id in list(hs.rooms.joined_rooms(user_id)):
            try:
                await hs.membership.update_membership(requester, room_id, user_id, "leave")
            except MatrixError:
                pass
        for room_id in await hs.store.get_rooms_with_membership(user_id, "invite"):
            try:
                await hs.membership.update_membership(requester, room_id, user_id, "leave")
            except MatrixError:
                pass
        devices = [d.device_id for d in await hs.store.get_devices(user_id)]
        await hs.devices.delete_devices(user_id, devices)
        await hs.store.deactivate_user(user_id)
        return 200, {"id_server_unbind_result": "no-support"}

    async def post_openid(request: Request, user_id: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        if requester.user_id != user_id:
            raise Forbidden("Cannot request an OpenID token for another user")
        parse_json_body(request, allow_empty=True)
        return 200, await hs.openid.issue_token(user_id)

    router.register_prefixes("GET", CLIENT_V3, "/login", get_login_flows)
    router.register_prefixes("POST", CLIENT_V3, "/login", post_login)
    router.register_prefixes("POST", CLIENT_V3, "/register", post_register)
    router.register_prefixes("GET", CLIENT_V3, "/register/available", get_register_available)
    router.register(
        "GET", "/_matrix/client/v1/register/m.login.registration_token/validity", get_registration_token_validity
    )
    router.register_prefixes("POST", CLIENT_V3 + ["/_matrix/client/v1"], "/refresh", post_refresh)
    router.register_prefixes("POST", CLIENT_V3, "/logout", post_logout)
    router.register_prefixes("POST", CLIENT_V3, "/logout/all", post_logout_all)
    router.register_prefixes("GET", CLIENT_V3, "/account/whoami", get_whoami)
    router.register_prefixes("POST", CLIENT_V3, "/account/password", post_password)
    router.register_prefixes("POST", CLIENT_V3, "/account/deactivate", post_deactivate)
    router.register_prefixes("POST", CLIENT_V3, "/user/(?P<user_id>[^/]+)/openid/request_token", post_openid)
