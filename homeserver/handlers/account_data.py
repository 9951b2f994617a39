"""Account data (global and per room) and room tags."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeserver.http.errors import BadJson, Forbidden, MatrixError, NotFound
from homeserver.util.caches import LruCache

if TYPE_CHECKING:
    from homeserver.app import HomeServer

# Types the server manages itself; clients use their own APIs for these.
SERVER_MANAGED = {"m.fully_read", "m.push_rules"}
IGNORED_USER_LIST = "m.ignored_user_list"
_USE_INSTEAD = {"m.fully_read": "/rooms/!roomId:server.name/read_markers", "m.push_rules": "/pushrules"}
# Users whose ignore list is kept in memory (every read path filters through it).
IGNORED_CACHE_ENTRIES = 100_000


def check_settable(data_type: str) -> None:
    """Refuses the types the server manages, as Synapse does: 405 M_BAD_JSON."""
    if data_type in SERVER_MANAGED:
        raise MatrixError(405, "M_BAD_JSON", f"Cannot set {data_type} through this API. Use {_USE_INSTEAD[data_type]}")


def ignored_in(content: dict[str, Any] | None) -> frozenset[str]:
    """The users an m.ignored_user_list content ignores; content of another shape ignores
    no one (Synapse stores it all the same)."""
    ignored = (content or {}).get("ignored_users")
    return frozenset(k for k in ignored if isinstance(k, str)) if isinstance(ignored, dict) else frozenset()


class AccountDataHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store
        self._ignored: LruCache[str, frozenset[str]] = LruCache(IGNORED_CACHE_ENTRIES)

    async def put(self, user_id: str, room_id: str, data_type: str, content: dict[str, Any], check: bool = True) -> None:
        if check:
            check_settable(data_type)
        ignore_list = data_type == IGNORED_USER_LIST and not room_id
        if ignore_list and user_id in ignored_in(content):
            raise MatrixError(400, "M_INVALID_PARAM", "You cannot ignore yourself")
        pos = self.hs.streams.allocate()
        try:
            await self.store.put_account_data(user_id, room_id, data_type, content, pos)
        finally:
            self.hs.streams.complete(pos)
        if ignore_list:
            # From the next read on, the new list applies everywhere (as in Synapse, which
            # filters with the current list; clients re-sync from scratch to get back what
            # an un-ignored user sent).
            self._ignored.put(user_id, ignored_in(content))
        self.hs.notifier.notify_users([user_id])

    async def ignored_users(self, user_id: str) -> frozenset[str]:
        """The users ``user_id`` ignores (m.ignored_user_list)."""
        ignored = self._ignored.fetch(user_id)
        if ignored is None:
            ignored = ignored_in(await self.store.get_account_data(user_id, "", IGNORED_USER_LIST))
            # A put while this read was in flight wins: it holds the newer list.
            newer = self._ignored.fetch(user_id)
            if newer is not None:
                return newer
            self._ignored.put(user_id, ignored)
        return ignored

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
