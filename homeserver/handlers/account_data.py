"""Account data (global and per room) and room tags."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeserver.http.errors import BadJson, Forbidden, MatrixError, NotFound

if TYPE_CHECKING:
    from homeserver.app import HomeServer

# Types the server manages itself; clients use their own APIs for these.
SERVER_MANAGED = {"m.fully_read", "m.push_rules"}


class AccountDataHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self.hs = hs
        self.store = hs.store

    async def put(self, user_id: str, room_id: str, data_type: str, content: dict[str, Any], check: bool = True) -> None:
        if check and data_type in SERVER_MANAGED:
            raise MatrixError(400, "M_BAD_JSON", f"Cannot set {data_type} through the account data API")
        pos = self.hs.streams.allocate()
        try:
            await self.store.put_account_data(user_id, room_id, data_type, content, pos)
        finally:
            self.hs.streams.complete(pos)
        self.hs.notifier.notify_users([user_id])

    async def get(self, user_id: str, room_id: str, data_type: str) -> dict[str, Any]:
        content = await self.store.get_account_data(user_id, room_id, data_type)
        if content is None:
            raise NotFound("Account data not found")
        return content

    async def get_tags(self, user_id: str, room_id: str) -> dict[str, Any]:
        content = await self.store.get_account_data(user_id, room_id, "m.tag")
        return {"tags": (content or {}).get("tags", {})}

    async def add_tag(self, user_id: str, room_id: str, tag: str, body: dict[str, Any]) -> None:
        if len(tag) > 255:
            raise MatrixError(400, "M_INVALID_PARAM", "Tag too long")
        order = body.get("order")
        if order is not None and not isinstance(order, (int, float)):
            raise BadJson("order must be a number")
        tags = (await self.get_tags(user_id, room_id))["tags"]
        tags[tag] = body
        await self.put(user_id, room_id, "m.tag", {"tags": tags}, check=False)

    async def remove_tag(self, user_id: str, room_id: str, tag: str) -> None:
        tags = (await self.get_tags(user_id, room_id))["tags"]
        tags.pop(tag, None)
        await self.put(user_id, room_id, "m.tag", {"tags": tags}, check=False)

    @staticmethod
    def check_owner(requester_user: str, user_id: str) -> None:
        if requester_user != user_id:
            raise Forbidden("Cannot access another user's account data")
