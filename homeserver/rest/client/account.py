"""Registration, login, logout, refresh, whoami, password change and deactivation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.handlers.audit import Actor, AuditEvent
from homeserver.http.errors import Forbidden, MatrixError, MissingParam
from homeserver.http.request import parse_json_body, parse_string, user_agent
from homeserver.http.server import CLIENT_V3, Router, client_ip, get_access_token
from homeserver.oauth.email import CLIENT_SECRET_RE

if TYPE_CHECKING:
    from homeserver.app import HomeServer


def register(hs: HomeServer, router: Router) -> None:
    async def get_login_flows(request: Request) -> tuple[int, Any]:
        return 200, {"flows": hs.login.login_flows()}

    async def post_login(request: Request) -> tuple[int, Any]:
        body = parse_json_body(request)
        return 200, await hs.login.login(body, client_ip(request), user_agent(request))

    async def post_register(request: Request) -> tuple[int, Any]:
        # As Synapse: the body must be a JSON object (a guest's too), an unknown kind is
        # M_UNRECOGNIZED (the handler's), and an access token in the request is refused.
        body = parse_json_body(request)
        kind = parse_string(request, "kind", "user") or "user"
        has_token = get_access_token(request) is not None
        return 200, await hs.registration.register_via_client(body, kind, client_ip(request), has_token)

    async def get_register_available(request: Request) -> tuple[int, Any]:
        if not hs.config.enable_registration:
            raise Forbidden("Registration has been disabled")
        hs.ratelimiter.check("registration", client_ip(request))
        username = parse_string(request, "username", required=True)
        # Not lower-cased, unlike /register: Synapse answers M_INVALID_USERNAME for capitals.
        await hs.registration.check_username(username or "")
        return 200, {"available": True}

    async def get_registration_token_validity(request: Request) -> tuple[int, Any]:
        if not hs.config.enable_registration:
            raise Forbidden("Registration has been disabled")
        token = parse_string(request, "token", required=True)
        return 200, {"valid": await hs.store.registration_token_valid(token or "")}

    async def post_refresh(request: Request) -> tuple[int, Any]:
        body = parse_json_body(request)
        token = body.get("refresh_token")
        if not isinstance(token, str):
            raise MissingParam("Missing refresh_token")
        return 200, await hs.auth.refresh(token)

    async def post_logout(request: Request) -> tuple[int, Any]:
        # As Synapse, guests cannot log out (nor in again).
        requester = await hs.auth.get_user_by_req(request)
        await hs.devices.delete_devices(requester.user_id, [requester.device_id])
        return 200, {}

    async def post_logout_all(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
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
        await hs.audit.record_by(
            AuditEvent.PASSWORD_CHANGED, requester.user_id, Actor.of(requester, user_agent(request)),
            {"logout_devices": body.get("logout_devices", True) is not False},
        )
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

    # -- third-party identifiers (e-mail), as Synapse (homeserver/oauth/email.py) ---------

    def _request_token_params(body: dict[str, Any]) -> tuple[str, str, int]:
        # Synapse's EmailRequestTokenBody: a missing field is M_MISSING_PARAM, a wrong
        # type or a malformed client_secret M_BAD_JSON, a bad address M_INVALID_PARAM.
        client_secret, email, send_attempt = body.get("client_secret"), body.get("email"), body.get("send_attempt")
        if client_secret is None or email is None or send_attempt is None:
            raise MissingParam("Missing params: client_secret, email and send_attempt are required")
        if not isinstance(client_secret, str) or not CLIENT_SECRET_RE.match(client_secret):
            raise MatrixError(400, "M_BAD_JSON", "client_secret must match [0-9a-zA-Z.=_-]{1,255}")
        if not isinstance(email, str):
            raise MatrixError(400, "M_BAD_JSON", "email must be a string")
        if not isinstance(send_attempt, int) or isinstance(send_attempt, bool):
            raise MatrixError(400, "M_BAD_JSON", "send_attempt must be an integer")
        return client_secret, email, send_attempt

    async def post_3pid_email_request_token(request: Request) -> tuple[int, Any]:
        if not hs.sign_in_factors.email.enabled:
            raise MatrixError(
                400, "M_THREEPID_MEDIUM_NOT_SUPPORTED", "Adding an email to your account is disabled on this server"
            )
        body = parse_json_body(request)
        client_secret, email, send_attempt = _request_token_params(body)
        sid = await hs.sign_in_factors.email.request_token("add", client_secret, email, send_attempt, client_ip(request))
        return 200, {"sid": sid}

    async def post_password_email_request_token(request: Request) -> tuple[int, Any]:
        if not hs.sign_in_factors.email.enabled:
            raise MatrixError(400, "M_UNKNOWN", "Email-based password resets have been disabled on this server")
        body = parse_json_body(request)
        client_secret, email, send_attempt = _request_token_params(body)
        sid = await hs.sign_in_factors.email.request_token("reset", client_secret, email, send_attempt, client_ip(request))
        return 200, {"sid": sid}

    async def get_3pids(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        threepids = await hs.store.get_threepids(requester.user_id)
        return 200, {
            "threepids": [
                {"medium": t.medium, "address": t.address, "validated_at": t.validated_at, "added_at": t.added_at}
                for t in threepids
            ]
        }

    async def post_3pid_add(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        body = parse_json_body(request)
        client_secret, sid = body.get("client_secret"), body.get("sid")
        if not isinstance(client_secret, str) or not isinstance(sid, str):
            raise MissingParam("Missing params: client_secret and sid are required")
        await hs.auth.check_ui_auth(body, [["m.login.password"]], "add_threepid", requester)
        await hs.sign_in_factors.email.add_validated(requester.user_id, sid, client_secret)
        return 200, {}

    async def post_3pid_delete(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        body = parse_json_body(request)
        medium, address = body.get("medium"), body.get("address")
        if not isinstance(medium, str) or not isinstance(address, str):
            raise MissingParam("Missing params: medium and address are required")
        if medium == "email":
            await hs.sign_in_factors.email.remove(requester.user_id, address)
        else:
            await hs.store.remove_threepid(requester.user_id, medium, address)
        # No identity server is ever contacted.
        return 200, {"id_server_unbind_result": "no-support"}

    router.register_prefixes("POST", CLIENT_V3, "/account/3pid/email/requestToken", post_3pid_email_request_token)
    router.register_prefixes("POST", CLIENT_V3, "/account/password/email/requestToken", post_password_email_request_token)
    router.register_prefixes("GET", CLIENT_V3, "/account/3pid", get_3pids)
    router.register_prefixes("POST", CLIENT_V3, "/account/3pid/add", post_3pid_add)
    router.register_prefixes("POST", CLIENT_V3, "/account/3pid/delete", post_3pid_delete)

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
