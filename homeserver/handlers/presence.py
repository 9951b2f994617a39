"""Presence: online/unavailable/offline and status messages, shared with everyone who
shares a room. Cheap by design: one row per user, changes only when the state does."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeserver.http.errors import BadJson, Forbidden, NotFound
from homeserver.util.ids import now_ms

if TYPE_CHECKING:
    from homeserver.app import HomeServer

STATES = ("online", "unavailable", "offline")
# A user who has not synced or sent anything for this long is shown as unavailable.
IDLE_AFTER_MS = 5 * 60 * 1000


class PresenceHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self.hs = hs
        self.store = hs.store
        self._cache: dict[str, tuple[str, str | None, int]] = {}
        self.hooks: list[Any] = []

    async def set_state(self, user_id: str, state: str, status_msg: Any = None, from_sync: bool = False) -> None:
        if state not in STATES:
            raise BadJson(f"presence must be one of {', '.join(STATES)}")
        if status_msg is not None and not isinstance(status_msg, str):
            raise BadJson("status_msg must be a string")
        prev = self._cache.get(user_id)
        if prev is None:
            stored = await self.store.get_presence([user_id])
            if user_id in stored:
                s, msg, ts, _ = stored[user_id]
                prev = (s, msg, ts)
        ts = now_ms()
        if from_sync:
            status_msg = prev[1] if prev else None
            # Syncing only refreshes last-active; write only when the state changes or
            # the stored timestamp is getting stale, so idle syncs cost nothing.
            if prev is not None and prev[0] == state and ts - prev[2] < 60_000:
                return
        self._cache[user_id] = (state, status_msg, ts)
        pos = self.hs.streams.allocate()
        try:
            await self.store.set_presence(user_id, state, status_msg, ts, pos)
        finally:
            self.hs.streams.complete(pos)
        if prev is None or prev[0] != state or prev[1] != status_msg or not from_sync:
            interested = await self.store.get_shared_room_users(user_id)
            interested.add(user_id)
            self.hs.notifier.notify_users(u for u in interested if self.hs.is_mine(u))
            for hook in self.hooks:
                hook(user_id, state, status_msg)

    async def on_remote_presence(self, user_id: str, state: str, status_msg: str | None, last_active_ago_ms: int) -> None:
        """A presence update for a remote user (federation m.presence). Kept only when a
        local user shares a room with them; not passed to hooks (not ours to forward)."""
        interested = await self.store.get_local_users_sharing_room(user_id)
        if not interested:
            return
        ts = now_ms() - max(0, last_active_ago_ms)
        prev = self._cache.get(user_id)
        self._cache[user_id] = (state, status_msg, ts)
        if prev is not None and prev[0] == state and prev[1] == status_msg and ts - prev[2] < 60_000:
            return
        pos = self.hs.streams.allocate()
        try:
            await self.store.set_presence(user_id, state, status_msg, ts, pos)
        finally:
            self.hs.streams.complete(pos)
        self.hs.notifier.notify_users(interested)

    @staticmethod
    def format(user_id: str, state: str, status_msg: str | None, last_active_ts: int, with_user: bool) -> dict[str, Any]:
        ago = max(0, now_ms() - last_active_ts)
        if state == "online" and ago > IDLE_AFTER_MS:
            state = "unavailable"
        content: dict[str, Any] = {
            "presence": state,
            "last_active_ago": ago,
            "currently_active": state == "online" and ago < 60_000,
        }
        if status_msg:
            content["status_msg"] = status_msg
        if with_user:
            content["user_id"] = user_id
        return content

    async def get_status(self, requester_user: str, user_id: str) -> dict[str, Any]:
        if requester_user != user_id:
            shared = await self.store.get_shared_room_users(requester_user)
            if user_id not in shared:
                raise Forbidden("You do not share a room with this user")
        stored = await self.store.get_presence([user_id])
        if user_id not in stored:
            if await self.store.get_user(user_id) is None and self.hs.is_mine(user_id):
                raise NotFound("Unknown user")
            return {"presence": "offline"}
        s, msg, ts, _ = stored[user_id]
        return self.format(user_id, s, msg, ts, with_user=False)

    async def updates_for(self, user_id: str, since: int, up_to: int) -> list[dict[str, Any]]:
        users = await self.store.get_shared_room_users(user_id)
        users.add(user_id)
        stored = await self.store.get_presence(sorted(users))
        out = []
        for uid, (s, msg, ts, stream_id) in stored.items():
            if since < stream_id <= up_to:
                out.append({"type": "m.presence", "sender": uid, "content": self.format(uid, s, msg, ts, with_user=False)})
        return out
