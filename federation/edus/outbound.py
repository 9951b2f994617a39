"""Outbound EDUs: local typing, public read receipts and presence go to the servers
sharing the room (for presence, any room) with the user. The methods are listeners of
the typing, receipt and presence handlers (wired in ``app.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from federation.destinations import RoomServers
from federation.sender.ordered_work import OrderedWork
from federation.sender.queue import FederationSender
from homeserver.util.ids import server_of

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.storage.receipts import Receipt


class OutboundEdus:
    def __init__(self, hs: HomeServer, sender: FederationSender, room_servers: RoomServers, work: OrderedWork) -> None:
        self.hs = hs
        self.sender = sender
        self.room_servers = room_servers
        self.work = work

    def on_typing(self, room_id: str, user_id: str, typing: bool) -> None:
        if not self.hs.is_mine(user_id):
            return

        async def send() -> None:
            for dest in sorted(await self.room_servers.destinations(room_id)):
                self.sender.send_edu(dest, "m.typing", {"room_id": room_id, "user_id": user_id, "typing": typing})

        self.work.run(send)

    def on_receipt(self, receipt: Receipt) -> None:
        if receipt.receipt_type != "m.read" or not self.hs.is_mine(receipt.user_id):
            return

        async def send() -> None:
            data: dict[str, Any] = {"ts": receipt.ts}
            if receipt.thread_id:
                data["thread_id"] = receipt.thread_id
            content = {receipt.room_id: {"m.read": {receipt.user_id: {"event_ids": [receipt.event_id], "data": data}}}}
            for dest in sorted(await self.room_servers.destinations(receipt.room_id)):
                self.sender.send_edu(dest, "m.receipt", content)

        self.work.run(send)

    def on_presence(self, user_id: str, presence: str, status_msg: str | None) -> None:
        if not self.hs.is_mine(user_id):
            return

        async def send() -> None:
            users = await self.hs.store.get_shared_room_users(user_id)
            dests = {server_of(u) for u in users if ":" in u} - {self.hs.server_name}
            update: dict[str, Any] = {
                "user_id": user_id,
                "presence": presence,
                "last_active_ago": 0,
                "currently_active": presence == "online",
            }
            if status_msg:
                update["status_msg"] = status_msg
            for dest in sorted(dests):
                self.sender.send_edu(dest, "m.presence", {"push": [update]})

        self.work.run(send)
