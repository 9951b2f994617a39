"""Read receipts (m.read, m.read.private, threaded) and read markers."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from homeserver.http.errors import BadJson, MatrixError, NotFound
from homeserver.storage.receipts import Receipt
from homeserver.util.ids import now_ms

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester

RECEIPT_TYPES = ("m.read", "m.read.private")


class ReceiptHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store
        # Called for each public receipt (federation sends our users' on).
        self.listeners: list[Callable[[Receipt], None]] = []

    async def post_receipt(
        self, requester: Requester, room_id: str, receipt_type: str, event_id: str, thread_id: Any = None
    ) -> None:
        if receipt_type == "m.fully_read":
            await self.set_read_marker(requester, room_id, event_id)
            return
        if receipt_type not in RECEIPT_TYPES:
            # Synapse's answers, errcodes included.
            raise MatrixError(400, "M_UNKNOWN", f"Receipt type must be {', '.join((*RECEIPT_TYPES, 'm.fully_read'))}")
        if thread_id is not None and (not isinstance(thread_id, str) or not thread_id):
            raise MatrixError(400, "M_INVALID_PARAM", "thread_id field must be a non-empty string")
        await self.hs.membership.require_joined(room_id, requester.user_id)
        ev = await self.store.get_event(event_id)
        if ev is None or ev.room_id != room_id:
            raise NotFound("Event not found")
        await self.store_receipt(room_id, receipt_type, requester.user_id, thread_id or "", event_id, now_ms())
        await self.hs.push_actions.on_receipt(requester.user_id, room_id, ev)

    async def store_receipt(self, room_id: str, receipt_type: str, user_id: str, thread_id: str, event_id: str, ts: int) -> None:
        pos = self.hs.streams.allocate()
        receipt = Receipt(room_id, receipt_type, user_id, thread_id, event_id, ts, pos)
        try:
            await self.store.put_receipt(receipt)
        finally:
            self.hs.streams.complete(pos)
        if receipt_type == "m.read.private":
            self.hs.notifier.notify_users([user_id])
        else:
            self.hs.notifier.notify_room(room_id)
            for listener in self.listeners:
                listener(receipt)

    async def set_read_marker(self, requester: Requester, room_id: str, event_id: str) -> None:
        await self.hs.membership.require_joined(room_id, requester.user_id)
        ev = await self.store.get_event(event_id)
        if ev is None or ev.room_id != room_id:
            raise NotFound("Event not found")
        await self.hs.account_data.put(requester.user_id, room_id, "m.fully_read", {"event_id": event_id}, check=False)

    async def read_markers(self, requester: Requester, room_id: str, body: dict[str, Any]) -> None:
        for key in ("m.fully_read", "m.read", "m.read.private"):
            value = body.get(key)
            if value is None:
                continue
            if not isinstance(value, str):
                raise BadJson(f"{key} must be an event id")
            if key == "m.fully_read":
                await self.set_read_marker(requester, room_id, value)
            else:
                await self.post_receipt(requester, room_id, key, value)

    @staticmethod
    def receipts_edu(receipts: list[Receipt], viewer: str) -> dict[str, Any]:
        """The m.receipt ephemeral event for sync; private receipts only for their owner."""
        content: dict[str, Any] = {}
        for r in receipts:
            if r.receipt_type == "m.read.private" and r.user_id != viewer:
                continue
            data: dict[str, Any] = {"ts": r.ts}
            if r.thread_id:
                data["thread_id"] = r.thread_id
            content.setdefault(r.event_id, {}).setdefault(r.receipt_type, {})[r.user_id] = data
        return {"type": "m.receipt", "content": content}
