"""/devices: list, get, rename, delete (user-interactive auth for deletes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.handlers.audit import Actor
from homeserver.http.errors import BadJson
from homeserver.http.request import parse_json_body, user_agent
from homeserver.http.server import CLIENT_V3, Router

if TYPE_CHECKING:
    from homeserver.app import HomeServer


def register(hs: HomeServer, router: Router) -> None:
    async def list_devices(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        return 200, {"devices": await hs.devices.list_devices(requester.user_id)}

    async def get_device(request: Request, device_id: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        return 200, await hs.devices.get_device(requester.user_id, device_id)

    async def put_device(request: Request, device_id: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        body = parse_json_body(request, allow_empty=True)
        name = body.get("display_name")
        if name is not None and not isinstance(name, str):
            raise BadJson("display_name must be a string")
        await hs.devices.rename_device(requester.user_id, device_id, name)
        return 200, {}

    async def delete_device(request: Request, device_id: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        body = parse_json_body(request, allow_empty=True)
        await hs.devices.get_device(requester.user_id, device_id)
        await hs.auth.check_ui_auth(body, [["m.login.password"]], f"delete_device:{device_id}", requester)
        await hs.devices.delete_devices(requester.user_id, [device_id], by=Actor.of(requester, user_agent(request)))
        return 200, {}

    async def delete_devices(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        body = parse_json_body(request)
        devices = body.get("devices")
        if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
            raise BadJson("devices must be a list of device ids")
        await hs.auth.check_ui_auth(body, [["m.login.password"]], "delete_devices", requester)
        await hs.devices.delete_devices(requester.user_id, devices, by=Actor.of(requester, user_agent(request)))
        return 200, {}

    router.register_prefixes("GET", CLIENT_V3, "/devices", list_devices)
    router.register_prefixes("GET", CLIENT_V3, "/devices/(?P<device_id>[^/]+)", get_device)
    router.register_prefixes("PUT", CLIENT_V3, "/devices/(?P<device_id>[^/]+)", put_device)
    router.register_prefixes("DELETE", CLIENT_V3, "/devices/(?P<device_id>[^/]+)", delete_device)
    router.register_prefixes("POST", CLIENT_V3, "/delete_devices", delete_devices)
