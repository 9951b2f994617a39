"""Synapse's admin API for users: list, query, create or modify, deactivate, reset
password, admin flag, joined rooms, devices, and signing in as a user. Checks and error
messages in Synapse's order (synapse/rest/admin/users.py, devices.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.handlers.admin.users import USER_TYPES, UserChanges
from homeserver.http.errors import BadJson, InvalidParam, MatrixError, MissingParam, NotFound
from homeserver.http.request import parse_boolean, parse_json_body, parse_string, parse_strings
from homeserver.http.server import Router
from homeserver.rest.admin._base import (
    ADMIN_V1,
    ADMIN_V2,
    ADMIN_V3,
    SEG,
    actor,
    check_local_user,
    check_safe_int,
    check_user_id,
    optional_bool,
    parse_paging,
    require_admin,
)
from homeserver.storage.admin import USER_ORDER, UserQuery

if TYPE_CHECKING:
    from homeserver.app import HomeServer

MAX_PASSWORD_LENGTH = 512



def parse_user_changes(body: dict[str, Any]) -> UserChanges:
    """The body of PUT /v2/users/{userId}, with Synapse's checks and messages."""
    threepids = body.get("threepids")
    pairs: set[tuple[str, str]] = set()
    if threepids is not None:
        if not isinstance(threepids, list):
            raise BadJson("threepids must be a list")
        for t in threepids:
            if not isinstance(t, dict):
                raise BadJson("threepids must be a list of objects")
            missing = [k for k in ("medium", "address") if k not in t]
            if missing:
                raise MissingParam(f"Missing params: {missing}")
            medium, address = t["medium"], t["address"]
            if not isinstance(medium, str) or not isinstance(address, str):
                raise BadJson("medium and address must be strings")
            # e-mail addresses are kept lower-cased (Synapse's canonicalise_email)
            pairs.add((medium, address.strip().lower() if medium == "email" else address))
    external_ids = body.get("external_ids")
    if external_ids is not None:
        if not isinstance(external_ids, list) or not all(isinstance(e, dict) for e in external_ids):
            raise BadJson("external_ids must be a list of objects")
        for e in external_ids:
            missing = [k for k in ("auth_provider", "external_id") if k not in e]
            if missing:
                raise MissingParam(f"Missing params: {missing}")
    user_type = body.get("user_type")
    if user_type is not None and user_type not in USER_TYPES:
        raise MatrixError(400, "M_UNKNOWN", "Invalid user type")
    admin = body.get("admin", False)
    if not isinstance(admin, bool):
        raise BadJson("Param 'admin' must be a boolean, if given")
    password = body.get("password")
    if password is not None and (not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH):
        raise MatrixError(400, "M_UNKNOWN", "Invalid password")
    logout_devices = body.get("logout_devices", True)
    if not isinstance(logout_devices, bool):
        raise MatrixError(400, "M_UNKNOWN", "'logout_devices' parameter is not of type boolean")
    deactivated = body.get("deactivated", False)
    if not isinstance(deactivated, bool):
        raise MatrixError(400, "M_UNKNOWN", "'deactivated' parameter is not of type boolean")
    locked = body.get("locked", False)
    if not isinstance(locked, bool):
        raise MatrixError(400, "M_UNKNOWN", "'locked' parameter is not of type boolean")
    if deactivated and locked:
        raise MatrixError(400, "M_UNKNOWN", "An user can't be deactivated and locked")
    if locked:
        # Synapse's account locking (MSC3939) is not implemented here: say so rather
        # than answer as if the account were locked.
        raise InvalidParam("Locking accounts is not supported by this server")
    for key in ("displayname", "avatar_url"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise BadJson(f"{key} must be a string")
    return UserChanges(
        given=frozenset(k for k in body if k in ("displayname", "avatar_url", "admin", "deactivated", "user_type", "threepids")),
        password=password,
        logout_devices=logout_devices,
        displayname=body.get("displayname"),
        avatar_url=body.get("avatar_url"),
        admin=admin,
        deactivated=deactivated,
        user_type=user_type,
        threepids=frozenset(pairs),
    )


def register(hs: HomeServer, router: Router) -> None:
    users = hs.admin.users

    def list_users(v3: bool) -> Callable[[Request], Awaitable[tuple[int, Any]]]:
        async def handler(request: Request) -> tuple[int, Any]:
            await require_admin(hs, request)
            start, limit = parse_paging(request)
            if v3:
                deactivated = optional_bool(request, "deactivated")
            else:
                # v2: deactivated=true lists everyone, else only active accounts
                deactivated = None if parse_boolean(request, "deactivated", False) else False
            parse_boolean(request, "locked", False)
            order_by = parse_string(request, "order_by", "name", allowed=tuple(USER_ORDER))
            direction = parse_string(request, "dir", "f", allowed=("f", "b"))
            query = UserQuery(
                user_id=parse_string(request, "user_id"),
                name=parse_string(request, "name"),
                guests=parse_boolean(request, "guests", True),
                deactivated=deactivated,
                admins=optional_bool(request, "admins"),
                not_user_types=tuple(parse_strings(request, "not_user_type")),
            )
            found, total = await users.list_users(query, start, limit, order_by or "name", direction == "b")
            out: dict[str, Any] = {"users": found, "total": total}
            if start + limit < total:
                out["next_token"] = str(start + len(found))
            return 200, out

        return handler

    async def get_user(request: Request, user_id: str) -> tuple[int, Any]:
        await require_admin(hs, request)
        check_local_user(hs, user_id, "Can only look up local users")
        user = await users.user_json(user_id)
        if user is None:
            raise NotFound("User not found")
        return 200, user

    async def put_user(request: Request, user_id: str) -> tuple[int, Any]:
        admin = await require_admin(hs, request)
        check_user_id(user_id)
        body = parse_json_body(request)
        if not hs.is_mine(user_id):
            raise MatrixError(400, "M_UNKNOWN", "This endpoint can only be used with local users")
        changes = parse_user_changes(body)
        return await users.create_or_modify(admin, user_id, changes, actor(admin, request))

    async def deactivate(request: Request, user_id: str) -> tuple[int, Any]:
        admin = await require_admin(hs, request)
        check_local_user(hs, user_id, "Can only deactivate local users")
        await users.require_user(user_id)
        body = parse_json_body(request, allow_empty=True)
        erase = body.get("erase", False)
        if not isinstance(erase, bool):
            raise BadJson("Param 'erase' must be a boolean, if given")
        await users.deactivate(user_id, erase, actor(admin, request))
        return 200, {"id_server_unbind_result": "success"}

    async def reset_password(request: Request, user_id: str) -> tuple[int, Any]:
        admin = await require_admin(hs, request)
        check_user_id(user_id)
        body = parse_json_body(request)
        if "new_password" not in body:
            raise MissingParam("Missing params: ['new_password']")
        new_password = body["new_password"]
        if not isinstance(new_password, str) or len(new_password) > MAX_PASSWORD_LENGTH:
            raise MatrixError(400, "M_UNKNOWN", "Invalid password")
        logout_devices = body.get("logout_devices", True)
        if not isinstance(logout_devices, bool):
            raise MatrixError(400, "M_UNKNOWN", "'logout_devices' parameter is not of type boolean")
        await users.require_user(user_id)
        await users.set_password(user_id, new_password, logout_devices, admin, actor(admin, request))
        return 200, {}

    async def get_admin(request: Request, user_id: str) -> tuple[int, Any]:
        await require_admin(hs, request)
        check_local_user(hs, user_id, "Only local users can be admins of this homeserver")
        user = await hs.store.get_user(user_id)
        return 200, {"admin": bool(user and user.is_admin)}

    async def put_admin(request: Request, user_id: str) -> tuple[int, Any]:
        admin = await require_admin(hs, request)
        check_user_id(user_id)
        body = parse_json_body(request)
        if "admin" not in body:
            raise MissingParam("Missing params: ['admin']")
        check_local_user(hs, user_id, "Only local users can be admins of this homeserver")
        await users.set_admin(admin, user_id, bool(body["admin"]), actor(admin, request))
        return 200, {}

    async def joined_rooms(request: Request, user_id: str) -> tuple[int, Any]:
        await require_admin(hs, request)
        rooms = sorted(hs.rooms.joined_rooms(user_id)) if hs.is_mine(user_id) else []
        return 200, {"joined_rooms": rooms, "total": len(rooms)}

    async def login_as(request: Request, user_id: str) -> tuple[int, Any]:
        admin = await require_admin(hs, request)
        if not hs.is_mine(user_id):
            raise MatrixError(400, "M_UNKNOWN", "Only local users can be logged in as")
        check_user_id(user_id)
        await users.require_user(user_id)
        body = parse_json_body(request, allow_empty=True)
        valid_until_ms = body.get("valid_until_ms")
        if valid_until_ms is not None and (type(valid_until_ms) is not int):
            raise MatrixError(400, "M_UNKNOWN", "'valid_until_ms' parameter must be an int")
        if valid_until_ms is not None:
            check_safe_int(valid_until_ms, "valid_until_ms")
        if admin.user_id == user_id:
            raise MatrixError(400, "M_UNKNOWN", "Cannot use admin API to login as self")
        token = await users.login_as(user_id, valid_until_ms, actor(admin, request))
        return 200, {"access_token": token}

    async def user_by_threepid(request: Request, medium: str, address: str) -> tuple[int, Any]:
        await require_admin(hs, request)
        if medium == "email":
            address = address.strip().lower()
        user_id = await hs.store.get_user_by_threepid(medium, address)
        if user_id is None:
            raise NotFound("User not found")
        return 200, {"user_id": user_id}

    # -- devices (v2) ------------------------------------------------------------------

    async def _device_owner(request: Request, user_id: str) -> None:
        check_local_user(hs, user_id, "Can only lookup local users")
        await users.require_user(user_id, "Unknown user")

    async def list_devices(request: Request, user_id: str) -> tuple[int, Any]:
        await require_admin(hs, request)
        await _device_owner(request, user_id)
        devices = await users.devices_json(user_id)
        return 200, {"devices": devices, "total": len(devices)}

    async def create_device(request: Request, user_id: str) -> tuple[int, Any]:
        admin = await require_admin(hs, request)
        check_local_user(hs, user_id, "Can only create devices for local users")
        await users.require_user(user_id, "Unknown user")
        body = parse_json_body(request)
        device_id = body.get("device_id")
        if not device_id:
            raise MatrixError(400, "M_UNKNOWN", "Missing device_id")
        if not isinstance(device_id, str):
            raise MatrixError(400, "M_UNKNOWN", "device_id must be a string")
        await users.create_device(user_id, device_id, actor(admin, request))
        return 201, {}

    async def get_device(request: Request, user_id: str, device_id: str) -> tuple[int, Any]:
        await require_admin(hs, request)
        await _device_owner(request, user_id)
        device = await users.device_json(user_id, device_id)
        if device is None:
            raise NotFound("No device found")
        return 200, device

    async def put_device(request: Request, user_id: str, device_id: str) -> tuple[int, Any]:
        admin = await require_admin(hs, request)
        await _device_owner(request, user_id)
        body = parse_json_body(request, allow_empty=True)
        name = body.get("display_name")
        if name is not None and not isinstance(name, str):
            raise BadJson("display_name must be a string")
        await users.update_device(user_id, device_id, body, actor(admin, request))
        return 200, {}

    async def delete_device(request: Request, user_id: str, device_id: str) -> tuple[int, Any]:
        admin = await require_admin(hs, request)
        await _device_owner(request, user_id)
        await users.delete_devices(user_id, [device_id], actor(admin, request))
        return 200, {}

    async def delete_devices(request: Request, user_id: str) -> tuple[int, Any]:
        admin = await require_admin(hs, request)
        await _device_owner(request, user_id)
        body = parse_json_body(request)
        if "devices" not in body:
            raise MissingParam("Missing params: ['devices']")
        devices = body["devices"]
        if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
            raise BadJson("devices must be a list of device ids")
        await users.delete_devices(user_id, devices, actor(admin, request))
        return 200, {}

    uid = f"(?P<user_id>{SEG})"
    router.register("GET", ADMIN_V2 + "/users", list_users(v3=False))
    router.register("GET", ADMIN_V3 + "/users", list_users(v3=True))
    router.register("GET", f"{ADMIN_V2}/users/{uid}", get_user)
    router.register("PUT", f"{ADMIN_V2}/users/{uid}", put_user)
    router.register("POST", f"{ADMIN_V1}/deactivate/{uid}", deactivate)
    router.register("POST", f"{ADMIN_V1}/reset_password/{uid}", reset_password)
    router.register("GET", f"{ADMIN_V1}/users/{uid}/admin", get_admin)
    router.register("PUT", f"{ADMIN_V1}/users/{uid}/admin", put_admin)
    router.register("GET", f"{ADMIN_V1}/users/{uid}/joined_rooms", joined_rooms)
    router.register("POST", f"{ADMIN_V1}/users/{uid}/login", login_as)
    router.register("GET", f"{ADMIN_V1}/threepid/(?P<medium>{SEG})/users/(?P<address>{SEG})", user_by_threepid)
    router.register("GET", f"{ADMIN_V2}/users/{uid}/devices", list_devices)
    router.register("POST", f"{ADMIN_V2}/users/{uid}/devices", create_device)
    router.register("GET", f"{ADMIN_V2}/users/{uid}/devices/(?P<device_id>{SEG})", get_device)
    router.register("PUT", f"{ADMIN_V2}/users/{uid}/devices/(?P<device_id>{SEG})", put_device)
    router.register("DELETE", f"{ADMIN_V2}/users/{uid}/devices/(?P<device_id>{SEG})", delete_device)
    router.register("POST", f"{ADMIN_V2}/users/{uid}/delete_devices", delete_devices)
