"""Devices: listing, renaming, deleting (with their keys and messages), and the
device-list change stream that E2EE clients follow."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeserver.handlers.audit import Actor, AuditEvent
from homeserver.http.errors import NotFound

if TYPE_CHECKING:
    from homeserver.app import HomeServer


class DeviceHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store
        # Called with (user_id) when a user's device list changes: the E2EE and
        # federation layers subscribe to send m.device_list_update.
        self.change_hooks: list[Any] = []
        self.delete_hooks: list[Any] = []

    @staticmethod
    def device_json(d: Any) -> dict[str, Any]:
        # Synapse's form: every field present, null when unknown (and the owner's user_id).
        # matrix-nio's response schema requires display_name, last_seen_ip and
        # last_seen_ts, so leaving them out makes it reject the whole listing.
        return {
            "user_id": d.user_id,
            "device_id": d.device_id,
            "display_name": d.display_name,
            "last_seen_ip": d.last_seen_ip,
            "last_seen_ts": d.last_seen_ts,
        }

    async def list_devices(self, user_id: str) -> list[dict[str, Any]]:
        await self.hs.auth.last_seen_written(user_id)
        return [self.device_json(d) for d in await self.store.get_devices(user_id)]

    async def get_device(self, user_id: str, device_id: str) -> dict[str, Any]:
        await self.hs.auth.last_seen_written(user_id)
        d = await self.store.get_device(user_id, device_id)
        if d is None:
            raise NotFound("Device not found")
        return self.device_json(d)

    async def rename_device(self, user_id: str, device_id: str, name: str | None) -> None:
        if not await self.store.set_device_display_name(user_id, device_id, name):
            raise NotFound("Device not found")
        await self.notify_device_change(user_id)

    async def delete_devices(self, user_id: str, device_ids: list[str], *, by: Actor | None = None) -> None:
        """``by``: who deletes them, for the audit log (None: the user, from no known address)."""
        for hook in self.delete_hooks:
            await hook(user_id, device_ids)
        # The devices' sign-in sessions end first: from here on their JWT access tokens
        # are refused by every process (the revocation list), before the devices go.
        await self.hs.auth.sessions.revoke_devices(user_id, device_ids)
        await self.store.delete_devices(user_id, device_ids)
        await self.notify_device_change(user_id)
        actor = by or Actor(user_id)
        await self.hs.audit.record_by(AuditEvent.DEVICES_DELETED, user_id, actor, {"device_ids": list(device_ids)})

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
