"""What other servers learn of our users' devices: after a local device-list change
(hs.devices' change hook), an m.device_list_update for each device that changed since we
last told them, and an m.signing_key_update when the public cross-signing keys changed,
to every server sharing a room with the user.

What was sent is recorded as a digest per device (of its canonical JSON), so only
changes go out; the stream ids and prev_id let a server that missed one resync.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any

from homeserver.handlers.e2e_keys.common import UserLocks
from homeserver.protocol.canonical_json import encode_canonical_json
from homeserver.util.ids import server_of

if TYPE_CHECKING:
    from homeserver.app import HomeServer

logger = logging.getLogger(__name__)


class DeviceListUpdater:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store
        self._outbound_locks = UserLocks()

    async def on_local_device_change(self, user_id: str) -> None:
        """Sends other servers m.device_list_update for each device that changed since we
        last told them, and m.signing_key_update when the cross-signing keys changed."""
        if not self.hs.is_mine(user_id):
            return
        try:
            await self._outbound_locks.run(user_id, lambda: self._send_device_updates(user_id))
        except Exception:
            logger.exception("sending device list updates for %s failed", user_id)

    async def _destinations(self, user_id: str) -> set[str]:
        users = await self.store.get_shared_room_users(user_id)
        return {server_of(u) for u in users if not self.hs.is_mine(u) and server_of(u)}

    async def _send_device_updates(self, user_id: str) -> None:
        stream_id, sent = await self.store.e2e_get_outbound_state(user_id)
        devices = (await self.store.e2e_get_devices_with_keys({user_id: []})).get(user_id, {})
        cross = (await self.store.e2e_get_cross_signing_keys([user_id])).get(user_id, {})
        current: dict[str, tuple[str, dict[str, Any]]] = {}
        for device_id, (keys, _display_name) in devices.items():
            # No device_display_name: names are not shared over federation (as in Synapse).
            content: dict[str, Any] = {"user_id": user_id, "device_id": device_id, "deleted": False}
            if keys is not None:
                content["keys"] = keys
            current[device_id] = (hashlib.sha256(encode_canonical_json(content)).hexdigest(), content)
        public_cross = {t: cross[t] for t in ("master", "self_signing") if t in cross}
        cross_hash = hashlib.sha256(encode_canonical_json(public_cross)).hexdigest() if public_cross else None

        updates: list[dict[str, Any]] = []
        changes: dict[str, str | None] = {}
        for device_id, (digest, content) in sorted(current.items()):
            if sent.get(device_id) != digest:
                updates.append(content)
                changes[device_id] = digest
        for device_id in sorted(set(sent) - set(current) - {""}):
            updates.append({"user_id": user_id, "device_id": device_id, "deleted": True})
            changes[device_id] = None
        signing_update = cross_hash is not None and sent.get("") != cross_hash
        if signing_update:
            changes[""] = cross_hash
        if not changes:
            return
        destinations = await self._destinations(user_id)
        for content in updates:
            content["prev_id"] = [stream_id] if stream_id else []
            stream_id += 1
            content["stream_id"] = stream_id
        # Record first: a failed send is repaired by the remote's resync (prev_id gap).
        await self.store.e2e_set_outbound_state(user_id, stream_id, changes)
        for destination in sorted(destinations):
            for content in updates:
                await self._send_edu(destination, "m.device_list_update", content)
            if signing_update:
                edu = {"user_id": user_id, **{f"{t}_key": k for t, k in public_cross.items()}}
                await self._send_edu(destination, "m.signing_key_update", edu)

    async def _send_edu(self, destination: str, edu_type: str, content: dict[str, Any]) -> None:
        try:
            self.hs.federation.send_edu(destination, edu_type, content)
        except Exception:
            logger.exception("sending %s to %s failed", edu_type, destination)
