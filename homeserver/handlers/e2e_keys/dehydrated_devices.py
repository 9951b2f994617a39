"""Dehydrated devices (MSC3814, as Synapse implements it): a device kept on the server
for a user who has none online, its keys, and the to-device messages queued for it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeserver.handlers.e2e_keys.common import FALLBACK_KEY_FIELDS
from homeserver.http.errors import BadJson, InvalidParam, MatrixError

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester


class DehydratedDevicesHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store

    async def get_dehydrated_device(self, user_id: str) -> dict[str, Any]:
        found = await self.store.dehydrated_get(user_id)
        if found is None:
            raise MatrixError(404, "M_NOT_FOUND", "No dehydrated device available")
        return {"device_id": found[0], "device_data": found[1]}

    async def put_dehydrated_device(self, requester: Requester, body: dict[str, Any]) -> dict[str, Any]:
        from homeserver.handlers.auth import Requester

        user_id = requester.user_id
        device_id = body.get("device_id")
        device_data = body.get("device_data")
        display_name = body.get("initial_device_display_name")
        if not isinstance(device_id, str) or not device_id:
            raise BadJson("device_id must be a string")
        if not isinstance(device_data, dict):
            raise BadJson("device_data must be an object")
        if display_name is not None and not isinstance(display_name, str):
            raise BadJson("initial_device_display_name must be a string")
        if "device_keys" not in body:
            raise BadJson("Device key(s) not found, these must be provided.")
        existing = await self.store.get_device(user_id, device_id)
        current = await self.store.dehydrated_get(user_id)
        if existing is not None and (current is None or current[0] != device_id):
            # Never turn someone's real (logged-in) device into the dehydrated one.
            raise InvalidParam("device_id is already in use")
        old = await self.store.dehydrated_set(user_id, device_id, device_data, display_name)
        if old is not None:
            await self.hs.devices.delete_devices(user_id, [old])
        keys = {k: body[k] for k in ("device_keys", "one_time_keys", *FALLBACK_KEY_FIELDS) if k in body}
        await self.hs.e2e_keys.upload_keys(Requester(user_id, device_id, requester.is_guest, ""), keys)
        if existing is None:
            await self.hs.devices.notify_device_change(user_id)
        return {"device_id": device_id}

    async def delete_dehydrated_device(self, user_id: str) -> dict[str, Any]:
        found = await self.store.dehydrated_get(user_id)
        if found is None:
            raise MatrixError(404, "M_NOT_FOUND", "No dehydrated device available")
        await self.store.dehydrated_forget(user_id, found[0])
        await self.hs.devices.delete_devices(user_id, [found[0]])
        return {"device_id": found[0]}

    async def dehydrated_device_events(
        self, user_id: str, device_id: str, from_token: str | None, limit: int
    ) -> tuple[dict[str, Any], bool]:
        """(response, limited): the to-device messages queued for the dehydrated device,
        paginated by ``d<stream id>`` tokens."""
        found = await self.store.dehydrated_get(user_id)
        if found is None:
            raise MatrixError(403, "M_FORBIDDEN", "No dehydrated device exists")
        if found[0] != device_id:
            raise MatrixError(403, "M_FORBIDDEN", "You may only fetch messages for your dehydrated device")
        since = 0
        if from_token:
            try:
                if not from_token.startswith("d"):
                    raise ValueError
                since = int(from_token[1:])
            except ValueError:
                raise InvalidParam(f"from parameter {from_token!r} has an invalid format") from None
        up_to = self.hs.streams.current
        limit = max(1, min(limit, 1000))
        events, last = await self.store.dehydrated_messages(user_id, device_id, since, up_to, limit)
        limited = len(events) == limit
        return {"events": events, "next_batch": f"d{last}"}, limited
