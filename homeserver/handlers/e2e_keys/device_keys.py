"""Device keys: upload, /keys/query (local users from storage, remote ones through the
remote device-list cache), /keys/changes, and the federation answers about our users'
devices (/user/devices, /user/keys/query)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeserver.handlers.e2e_keys.common import check_device_keys, parse_timeout
from homeserver.http.errors import BadJson, InvalidParam
from homeserver.util.ids import is_valid_user_id

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester
    from homeserver.handlers.e2e_keys.remote_device_lists import RemoteDeviceLists


class DeviceKeysHandler:
    def __init__(self, hs: HomeServer, remote: RemoteDeviceLists) -> None:
        self.hs = hs
        self.store = hs.store
        self.remote = remote

    async def upload(self, user_id: str, device_id: str, device_keys: Any) -> None:
        """The device keys of a /keys/upload (for the authenticated device only)."""
        if not isinstance(device_keys, dict):
            raise BadJson("device_keys must be an object")
        if device_keys.get("user_id") != user_id or device_keys.get("device_id") != device_id:
            raise InvalidParam("device_keys must be for the authenticated user and device")
        check_device_keys(device_keys)
        # Never store what the server adds on the way out.
        device_keys = {k: v for k, v in device_keys.items() if k != "unsigned"}
        if await self.store.e2e_set_device_keys(user_id, device_id, device_keys):
            await self.hs.devices.notify_device_change(user_id)

    @staticmethod
    def _parse_device_query(query: Any) -> dict[str, list[str]]:
        if not isinstance(query, dict):
            raise BadJson("device_keys must be an object")
        out: dict[str, list[str]] = {}
        for user_id, devices in query.items():
            if devices is None:
                devices = []
            if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
                raise BadJson("device_keys values must be lists of device ids")
            out[user_id] = devices
        return out

    async def query_keys(self, requester: Requester, body: dict[str, Any]) -> dict[str, Any]:
        query = self._parse_device_query(body.get("device_keys", {}))
        timeout_ms = parse_timeout(body)
        local = {u: d for u, d in query.items() if self.hs.is_mine(u)}
        remote = {u: d for u, d in query.items() if not self.hs.is_mine(u) and is_valid_user_id(u)}
        result = await self.query_local_keys(local, from_user_id=requester.user_id)
        result["failures"] = {}
        if remote:
            await self.remote.query(remote, result, timeout_ms)
        return result

    async def query_local_keys(
        self, device_keys_query: dict[str, list[str]], from_user_id: str | None = None
    ) -> dict[str, Any]:
        """Keys of local users, as in the federation user/keys/query response (and, with
        ``from_user_id``, the client one: that user's own user-signing key and the
        signatures they made are included)."""
        query = {u: list(d or []) for u, d in device_keys_query.items() if self.hs.is_mine(u)}
        devices = await self.store.e2e_get_devices_with_keys(query)
        device_keys: dict[str, dict[str, Any]] = {}
        for user_id in query:
            out: dict[str, Any] = {}
            for device_id, (keys, display_name) in devices.get(user_id, {}).items():
                if keys is None:
                    continue
                keys = dict(keys)
                unsigned = {}
                # Device names stay on this server (Synapse's default,
                # allow_device_name_lookup_over_federation: false).
                if display_name is not None and from_user_id is not None:
                    unsigned["device_display_name"] = display_name
                keys["unsigned"] = unsigned
                out[device_id] = keys
            device_keys[user_id] = out
        cross = await self.store.e2e_get_cross_signing_keys(query.keys(), from_user_id)
        result: dict[str, Any] = {
            "device_keys": device_keys,
            "master_keys": {},
            "self_signing_keys": {},
            "user_signing_keys": {},
        }
        for user_id, keys in cross.items():
            if "master" in keys:
                result["master_keys"][user_id] = keys["master"]
            if "self_signing" in keys:
                result["self_signing_keys"][user_id] = keys["self_signing"]
            # The user-signing key is only ever shown to its owner.
            if "user_signing" in keys and user_id == from_user_id:
                result["user_signing_keys"][user_id] = keys["user_signing"]
        return result

    async def key_changes(self, requester: Requester, from_token: str, to_token: str) -> dict[str, list[str]]:
        from homeserver.handlers.sync import SyncToken

        since = SyncToken.parse(from_token)
        up_to = min(SyncToken.parse(to_token).stream, self.hs.streams.current)
        memberships = await self.store.get_local_memberships(requester.user_id)
        # The same computation /sync uses for device_lists, over the given range.
        return await self.hs.sync.device_lists(requester.user_id, since, up_to, memberships)

    async def get_user_devices(self, user_id: str) -> dict[str, Any]:
        """The federation /user/devices/{userId} response for a local user."""
        devices = (await self.store.e2e_get_devices_with_keys({user_id: []})).get(user_id, {})
        out = []
        for device_id, (keys, _display_name) in sorted(devices.items()):
            entry: dict[str, Any] = {"device_id": device_id}
            if keys is not None:
                entry["keys"] = keys
            out.append(entry)
        result: dict[str, Any] = {
            "user_id": user_id,
            "stream_id": await self.store.e2e_outbound_stream_id(user_id),
            "devices": out,
        }
        cross = (await self.store.e2e_get_cross_signing_keys([user_id])).get(user_id, {})
        if "master" in cross:
            result["master_key"] = cross["master"]
        if "self_signing" in cross:
            result["self_signing_key"] = cross["self_signing"]
        return result

    async def on_devices_deleted(self, user_id: str, device_ids: list[str]) -> None:
        await self.store.e2e_delete_device_keys(user_id, device_ids)
