"""Presence: online/unavailable/offline and status messages, shared with everyone who
shares a room. Cheap by design: one row per user, changes only when the state does."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from homeserver.http.errors import BadJson, Forbidden, MatrixError, NotFound
from homeserver.util.caches import LruCache
from homeserver.util.ids import now_ms

if TYPE_CHECKING:
    from homeserver.app import HomeServer

STATES = ("online", "unavailable", "offline")
# A user who has not synced or sent anything for this long is shown as unavailable.
IDLE_AFTER_MS = 5 * 60 * 1000
# Users whose last presence is kept in memory (the store has everyone's).
PRESENCE_CACHE_ENTRIES = 100_000


class PresenceHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store
        self._cache: LruCache[str, tuple[str, str | None, int]] = LruCache(PRESENCE_CACHE_ENTRIES)
        # Called when a local user's presence changes (federation sends it on).
        self.listeners: list[Callable[[str, str, str | None], None]] = []

    async def set_state(self, user_id: str, state: str, status_msg: Any = None, from_sync: bool = False) -> None:
        if state not in STATES:
            # Synapse's answer (M_UNKNOWN).
            raise MatrixError(400, "M_UNKNOWN", "Unable to parse state")
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
        self._cache.put(user_id, (state, status_msg, ts))
        pos = self.hs.streams.allocate()
        try:
            await self.store.set_presence(user_id, state, status_msg, ts, pos)
        finally:
            self.hs.streams.complete(pos)
        if prev is None or prev[0] != state or prev[1] != status_msg or not from_sync:
            interested = await self.store.get_shared_room_users(user_id)
            interested.add(user_id)
            self.hs.notifier.notify_users(u for u in interested if self.hs.is_mine(u))
            for listener in self.listeners:
                listener(user_id, state, status_msg)

    async def on_remote_presence(self, user_id: str, state: str, status_msg: str | None, last_active_ago_ms: int) -> None:
        """A presence update for a remote user (federation m.presence). Kept only when a
        local user shares a room with them; not passed to listeners (not ours to forward)."""
        interested = await self.store.get_local_users_sharing_room(user_id)
        if not interested:
            return
        ts = now_ms() - max(0, last_active_ago_ms)
        prev = self._cache.get(user_id)
        self._cache.put(user_id, (state, status_msg, ts))
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
        """Synapse's form: ``last_active_ago`` only when known, ``currently_active`` only
        for someone online."""
        ago = max(0, now_ms() - last_active_ts)
        if state == "online" and ago > IDLE_AFTER_MS:
            state = "unavailable"
        content: dict[str, Any] = {"presence": state}
        if with_user:
            content["user_id"] = user_id
        if last_active_ts:
            content["last_active_ago"] = ago
        if status_msg:
            content["status_msg"] = status_msg
        if state == "online":
            content["currently_active"] = ago < 60_000
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

    async def for_sync(
        self, user_id: str, since: int | None, up_to: int, newly_shared: set[str]
    ) -> list[dict[str, Any]]:
        """The m.presence events of a /sync, as Synapse sends them: in an initial (or
        full_state) sync the presence of everyone the user shares a room with who is not
        offline; in an incremental one what changed since ``since``, plus the current
        presence of ``newly_shared`` users (who joined a room with the user, or whose room
        the user joined), offline or not."""
        out: dict[str, dict[str, Any]] = {}
        if since is None or self.store.presence_changes.any_changed_since(since):
            users = await self.store.get_shared_room_users(user_id)
            users.add(user_id)
            for uid, (s, msg, ts, stream_id) in (await self.store.get_presence(sorted(users))).items():
                if since is None and s == "offline":
                    continue
                if since is None or since < stream_id <= up_to:
                    out[uid] = self._event(uid, s, msg, ts)
        extra = sorted(newly_shared - {user_id} - set(out))
        if extra:
            stored = await self.store.get_presence(extra)
            for uid in extra:
                if uid in stored:
                    s, msg, ts, _ = stored[uid]
                    out[uid] = self._event(uid, s, msg, ts)
                else:
                    out[uid] = {"type": "m.presence", "sender": uid, "content": {"presence": "offline"}}
        return list(out.values())

    def _event(self, user_id: str, state: str, status_msg: str | None, last_active_ts: int) -> dict[str, Any]:
        return {"type": "m.presence", "sender": user_id, "content": self.format(user_id, state, status_msg, last_active_ts, with_user=False)}
