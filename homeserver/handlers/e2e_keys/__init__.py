"""End-to-end encryption keys (``hs.e2e_keys``), split by what each part does:

| module | attribute | what |
| --- | --- | --- |
| ``device_keys.py`` | ``device_keys`` | device keys: upload, /keys/query, /keys/changes, federation /user/devices and /user/keys/query |
| ``one_time_keys.py`` | ``one_time_keys`` | one-time and fallback keys: upload, the counts /sync reports, /keys/claim (and federation's) |
| ``cross_signing.py`` | ``cross_signing`` | cross-signing keys and uploaded signatures |
| ``remote_device_lists.py`` | ``remote_device_lists`` | the cache of other servers' users' keys, their device-list updates, device-list changes for /sync |
| ``device_list_updates.py`` | ``device_list_updates`` | m.device_list_update / m.signing_key_update to other servers |
| ``dehydrated_devices.py`` | ``dehydrated_devices`` | dehydrated devices (MSC3814) |
| ``common.py`` | | key shapes, signature checks, per-user locks, remote failures |

The server only moves public keys and signatures around; it checks the signatures it
must rely on (cross-signing keys signed by the master key, uploaded signatures) so a
client cannot plant a forged signature in someone else's key list.

Outbound the parts use ``hs.federation.send_edu``, ``query_user_keys`` and
``claim_user_keys``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeserver.handlers.e2e_keys.cross_signing import CrossSigningHandler
from homeserver.handlers.e2e_keys.dehydrated_devices import DehydratedDevicesHandler
from homeserver.handlers.e2e_keys.device_keys import DeviceKeysHandler
from homeserver.handlers.e2e_keys.device_list_updates import DeviceListUpdater
from homeserver.handlers.e2e_keys.one_time_keys import OneTimeKeysHandler
from homeserver.handlers.e2e_keys.remote_device_lists import RemoteDeviceLists

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester


class E2EKeysHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.remote_device_lists = RemoteDeviceLists(hs)
        self.device_keys = DeviceKeysHandler(hs, self.remote_device_lists)
        self.one_time_keys = OneTimeKeysHandler(hs)
        self.cross_signing = CrossSigningHandler(hs, self.remote_device_lists)
        self.device_list_updates = DeviceListUpdater(hs)
        self.dehydrated_devices = DehydratedDevicesHandler(hs)
        hs.devices.delete_hooks.append(self._on_devices_deleted)
        hs.devices.change_hooks.append(self.device_list_updates.on_local_device_change)

    async def upload_keys(self, requester: Requester, body: dict[str, Any]) -> dict[str, Any]:
        """POST /keys/upload: device keys first (other users hear of them even if the
        one-time keys are then refused), then one-time and fallback keys."""
        device_keys = body.get("device_keys")
        if device_keys is not None:
            await self.device_keys.upload(requester.user_id, requester.device_id, device_keys)
        return await self.one_time_keys.upload(requester.user_id, requester.device_id, body)

    async def _on_devices_deleted(self, user_id: str, device_ids: list[str]) -> None:
        await self.device_keys.on_devices_deleted(user_id, device_ids)
        self.one_time_keys.invalidate_counts([(user_id, d) for d in device_ids])
