"""Devices: listing, renaming, deleting (with their keys and messages), and the
device-list change stream that E2EE clients follow."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeserver.http.errors import NotFound

if TYPE_CHECKING:
    from homeserver.app import HomeServer


class DeviceHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self.hs = hs
        self.store = hs.store
        # Called with (user_id) when a user's device list changes: the E2EE and
        # federation layers subscribe to send m.device_list_update.
        self.change_hooks: list[Any] = []
        self.delete_hooks: list[Any] = []

    @staticmethod
    def device_json(d: Any) -> dict[str, Any]:
        # The spec types these as string/integer and says "absent if not set": a null
        # breaks strictly typed clients, so unknown fields are left out.
        fields = {"display_name": d.display_name, "last_seen_ip": d.last_seen_ip, "last_seen_ts": d.last_seen_ts}
        return {"device_id": d.device_id, **{k: v for k, v in fields.items() if v is not None}}

    async def list_devices(self, user_id: str) -> list[dict[str, Any]]:
        return [self.device_json(d) for d in await self.store.get_devices(user_id)]

    async def get_device(self, user_id: str, device_id: str) -> dict[str, Any]:
        d = await self.store.get_device(user_id, device_id)
        if d is None:
            raise NotFound("Device not found")
        return self.device_json(d)

    async def rename_device(self, user_id: str, device_id: str, name: str | None) -> None:
        if not await self.store.set_device_display_name(user_id, device_id, name):
            raise NotFound("Device not found")
        await self.notify_device_change(user_id)

    async def delete_devices(self, user_id: str, device_ids: list[str]) -> None:
        for hook in self.delete_hooks:
            await hook(user_id, device_ids)
        await self.store.delete_devices(user_id, device_ids)
        await self.notify_device_change(user_id)

    async def notify_device_change(self, user_id: str) -> None:
        """Records a device-list change and wakes everyone who shares a room with the user."""
        pos = self.hs.streams.allocate()
        try:
            await self.store.add_device_list_change(user_id, pos)
        finally:
            self.hs.streams.complete(pos)
        interested = await self.store.get_shared_room_users(user_id)
        interested.add(user_id)
        self.hs.notifier.notify_users(u for u in interested if self.hs.is_mine(u))
        for hook in self.change_hooks:
            await hook(user_id)
