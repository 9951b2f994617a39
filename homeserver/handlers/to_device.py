"""Sending to-device messages: locally into each device's queue (which /sync delivers and
then deletes), and to other servers as m.direct_to_device EDUs.

Each message gets its own stream position, allocated in the order the messages are
queued, so a device receives them exactly once and in order. A client's send is
idempotent per (user, device, txn id): the transaction id is recorded in the same
database transaction as the queued messages.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from homeserver.http.errors import BadJson
from homeserver.util.ids import is_valid_user_id, server_of

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester

logger = logging.getLogger(__name__)


class ToDeviceHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store

    @staticmethod
    def parse_messages(messages: Any) -> dict[str, dict[str, dict[str, Any]]]:
        if not isinstance(messages, dict):
            raise BadJson("messages must be an object")
        for devices in messages.values():
            if not isinstance(devices, dict) or not all(isinstance(c, dict) for c in devices.values()):
                raise BadJson("messages must map user ids to {device_id: content}")
        return messages

    async def send_to_device(
        self, requester: Requester, event_type: str, txn_id: str, messages: dict[str, dict[str, dict[str, Any]]]
    ) -> None:
        sender = requester.user_id
        local = {u: d for u, d in messages.items() if self.hs.is_mine(u)}
        delivered = await self._queue_local(
            sender, event_type, local, txn_key=(sender, requester.device_id, txn_id)
        )
        if not delivered:
            return  # a retried transaction: everything was sent the first time
        by_server: dict[str, dict[str, dict[str, Any]]] = {}
        for user_id, devices in messages.items():
            if not self.hs.is_mine(user_id) and is_valid_user_id(user_id):
                by_server.setdefault(server_of(user_id), {})[user_id] = devices
        for server, users in sorted(by_server.items()):
            content = {
                "sender": sender,
                "type": event_type,
                "message_id": secrets.token_urlsafe(16),
                "messages": users,
            }
            try:
                self.hs.federation.send_edu(server, "m.direct_to_device", content)
            except Exception:
                logger.exception("sending m.direct_to_device to %s failed", server)

    def on_remote_to_device(self, origin: str, content: dict[str, Any]) -> defer.Deferred[None]:
        """Inbound m.direct_to_device EDU. Returns a Deferred, so the caller may await it
        or fire and forget."""
        d = defer.ensureDeferred(self._on_remote_to_device(origin, content))

        def log_failure(f: Any) -> None:
            logger.error("handling m.direct_to_device from %s failed: %s", origin, f.getTraceback())

        d.addErrback(log_failure)
        return d

    async def _on_remote_to_device(self, origin: str, content: dict[str, Any]) -> None:
        if not isinstance(content, dict):
            return
        sender = content.get("sender")
        event_type = content.get("type")
        message_id = content.get("message_id")
        messages = content.get("messages")
        if not isinstance(sender, str) or server_of(sender) != origin:
            logger.info("dropping m.direct_to_device from %s with sender %r", origin, sender)
            return
        if not isinstance(event_type, str) or not isinstance(messages, dict):
            return
        local = {
            u: {d: c for d, c in devices.items() if isinstance(c, dict)}
            for u, devices in messages.items()
            if self.hs.is_mine(u) and isinstance(devices, dict)
        }
        # The same EDU may arrive twice (a retried transaction): message_id dedupes it.
        txn_key = ("remote:" + origin, "", message_id) if isinstance(message_id, str) and message_id else None
        await self._queue_local(sender, event_type, local, txn_key)

    async def _queue_local(
        self,
        sender: str,
        event_type: str,
        messages: dict[str, dict[str, dict[str, Any]]],
        txn_key: tuple[str, str, str] | None,
    ) -> bool:
        """Queues messages for local devices ('*' = every device of the user; unknown
        devices are skipped, as in Synapse). False if txn_key was already used."""
        if txn_key is not None and await self.store.to_device_txn_seen(txn_key):
            return False
        wildcard = [u for u, devices in messages.items() if "*" in devices]
        explicit = [u for u, devices in messages.items() if any(d != "*" for d in devices)]
        known = await self.store.to_device_device_ids(sorted(set(wildcard) | set(explicit)))
        targets: list[tuple[str, str, dict[str, Any]]] = []
        for user_id, devices in messages.items():
            existing = known.get(user_id, [])
            for device_id, body in devices.items():
                message = {"type": event_type, "sender": sender, "content": body}
                if device_id == "*":
                    targets.extend((user_id, d, message) for d in existing)
                elif device_id in existing:
                    targets.append((user_id, device_id, message))
        positions = [self.hs.streams.allocate() for _ in targets]
        try:
            rows = [(pos, u, d, m) for pos, (u, d, m) in zip(positions, targets, strict=True)]
            queued = await self.store.to_device_add_with_txn(txn_key, rows)
        finally:
            for pos in positions:
                self.hs.streams.complete(pos)
        if queued and targets:
            self.hs.notifier.notify_users({u for u, _, _ in targets})
        return queued
