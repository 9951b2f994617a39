"""User directory search: users the searcher shares a room with, or who are in a room
anyone may join or read (public join rule or world-readable history), matched on user
id and display name.

The directory table is brought up to date lazily: each search first folds in the member
events persisted since the last one (cheap: the events table is read by stream range).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from homeserver.events.event import Event
from homeserver.http.errors import BadJson, MissingParam

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.room_events import RoomInfo

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
MAX_CANDIDATES = 500
VISIBILITY_TTL_S = 60.0
_VISIBILITY_TYPES = ("m.room.join_rules", "m.room.history_visibility")


class UserDirectoryHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store
        self._lock = defer.DeferredLock()
        self._public_rooms: list[str] | None = None
        self._public_rooms_at = 0.0
        self._caught_up_to = -1

    def on_events_persisted(self, events: list[Event], room: RoomInfo) -> None:
        if any(e.type in _VISIBILITY_TYPES for e in events):
            self._public_rooms = None

    async def _catch_up(self) -> None:
        up_to = self.hs.streams.current
        if up_to == self._caught_up_to:
            return  # nothing new since the last search: no write transaction
        await self._lock.acquire()
        try:
            while await self.store.update_user_directory(up_to):
                pass
            self._caught_up_to = max(self._caught_up_to, up_to)
        finally:
            self._lock.release()

    async def _visible_rooms(self) -> list[str]:
        now = self.hs.reactor.seconds()
        if self._public_rooms is not None and now - self._public_rooms_at < VISIBILITY_TTL_S:
            return self._public_rooms
        public: set[str] = set()
        for room_id, event_type, raw in await self.store.get_visibility_state():
            try:
                content = json.loads(raw).get("content", {})
            except ValueError:
                continue
            if not isinstance(content, dict):
                continue
            if event_type == "m.room.join_rules" and content.get("join_rule") == "public":
                public.add(room_id)
            elif event_type == "m.room.history_visibility" and content.get("history_visibility") == "world_readable":
                public.add(room_id)
        self._public_rooms = sorted(public)
        self._public_rooms_at = now
        return self._public_rooms

    async def search(self, user_id: str, body: dict[str, Any]) -> dict[str, Any]:
        term = body.get("search_term")
        if term is None:
            raise MissingParam("Missing search_term")
        if not isinstance(term, str):
            raise BadJson("search_term must be a string")
        limit = body.get("limit", DEFAULT_LIMIT)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise BadJson("limit must be a non-negative integer")
        limit = min(limit, MAX_LIMIT)
        terms = [t for t in term.casefold().split() if t][:10]
        if not terms:
            return {"results": [], "limited": False}
        await self._catch_up()
        rows = await self.store.search_user_directory(user_id, terms, await self._visible_rooms(), MAX_CANDIDATES)
        first = terms[0]

        def rank(entry: Any) -> tuple:
            local = entry.user_id[1:].split(":", 1)[0].casefold()
            name = (entry.display_name or "").casefold()
            prefix = local.startswith(first) or any(w.startswith(first) for w in name.split())
            return (not prefix, not entry.shares_room, entry.display_name is None, name or local, entry.user_id)

        rows.sort(key=rank)
        results = []
        for entry in rows[:limit]:
            # Both keys always, null when unset, as Synapse's search_user_dir answers.
            results.append({"user_id": entry.user_id, "display_name": entry.display_name, "avatar_url": entry.avatar_url})
        return {"results": results, "limited": len(rows) > limit}
