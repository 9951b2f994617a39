"""``GET /_matrix/client/v1/rooms/{roomId}/hierarchy``: a space and the rooms below it, as
Synapse's RoomSummaryHandler walks them.

The walk is depth first from the root: a room's ``m.space.child`` events (those with a
``via``, ordered by their ``order``, then their timestamp) are visited in that order, each
room once. A room is listed when the requester may see it: its join rule is public, knock
or knock_restricted, its history is world-readable, the requester is joined or invited,
or it is restricted to a room the requester is in. Rooms this server is not in come from
the servers named in the child's ``via`` (``/_matrix/federation/v1/hierarchy``).

``limit`` rooms make a page (50 at most); what is left of the walk is kept in memory for
five minutes under the ``next_batch`` token, as Synapse keeps it in its database.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from homeserver.events.event import Event
from homeserver.handlers.membership import allowed_room_ids
from homeserver.http.errors import Forbidden, MatrixError
from homeserver.util.caches import LruCache

if TYPE_CHECKING:
    from homeserver.app import HomeServer

logger = logging.getLogger(__name__)

MAX_ROOMS = 50
SESSION_VALIDITY_MS = 5 * 60 * 1000
MAX_SESSIONS = 10_000
_INVALID_ORDER = re.compile(r"[^\x20-\x7E]")


@dataclass
class _QueueEntry:
    room_id: str
    via: list[str]
    depth: int = 0
    # What a remote server said about this room in its parent's answer.
    remote_room: dict[str, Any] | None = None


@dataclass
class _Session:
    created_ms: int
    requester: str
    room_id: str
    suggested_only: bool
    max_depth: int | None
    queue: list[_QueueEntry]
    processed: set[str] = field(default_factory=set)


def _valid_via(content: dict[str, Any]) -> bool:
    via = content.get("via")
    return isinstance(via, list) and bool(via) and all(isinstance(v, str) for v in via)


def _child_order(ev: Event) -> tuple[bool, str, int, str]:
    """Synapse's ordering: a valid ``order`` string first (by it), then the timestamp."""
    order = ev.content.get("order")
    if not isinstance(order, str) or len(order) > 50 or _INVALID_ORDER.search(order):
        order = None
    return order is None, order or "", ev.origin_server_ts, ev.state_key or ""


class RoomHierarchyHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self._sessions: LruCache[str, _Session] = LruCache(MAX_SESSIONS)

    async def get_hierarchy(
        self,
        user_id: str,
        room_id: str,
        suggested_only: bool = False,
        max_depth: int | None = None,
        limit: int | None = None,
        from_token: str | None = None,
    ) -> dict[str, Any]:
        if await self._is_local(room_id):
            if not await self._local_room_accessible(room_id, user_id):
                raise Forbidden(f"User {user_id} not in room {room_id}, and room previews are disabled")
        else:
            root, _, _ = await self._remote_hierarchy(_QueueEntry(room_id, []), False)
            if root is None or not await self._remote_room_accessible(user_id, room_id, root):
                raise Forbidden(f"User {user_id} not in room {room_id}, and room previews are disabled")

        now = int(self.hs.reactor.seconds() * 1000)
        if from_token:
            session = self._sessions.get(from_token)
            if (
                session is None
                or now - session.created_ms > SESSION_VALIDITY_MS
                or (session.requester, session.room_id, session.suggested_only, session.max_depth)
                != (user_id, room_id, suggested_only, max_depth)
            ):
                raise MatrixError(400, "M_INVALID_PARAM", "Unknown pagination token")
            queue, processed = list(session.queue), set(session.processed)
        else:
            queue, processed = [_QueueEntry(room_id, [])], set()

        limit = MAX_ROOMS if limit is None else min(limit, MAX_ROOMS)
        rooms: list[dict[str, Any]] = []
        while queue and len(rooms) < limit:
            entry = queue.pop()
            if entry.room_id in processed:
                continue
            children_from_remote: dict[str, dict[str, Any]] = {}
            inaccessible: set[str] = set()
            room: dict[str, Any] | None
            if await self._is_local(entry.room_id):
                room = await self._local_room(entry.room_id, user_id, suggested_only)
            else:
                at_bottom = max_depth is not None and entry.depth >= max_depth
                if entry.remote_room is not None and (entry.remote_room.get("room_type") != "m.space" or at_bottom):
                    room = dict(entry.remote_room)
                    room.setdefault("children_state", [])
                else:
                    room, children_from_remote, inaccessible = await self._remote_hierarchy(entry, suggested_only)
                if room is not None and not await self._remote_room_accessible(user_id, entry.room_id, room):
                    room = None
            processed.add(entry.room_id)
            if room is None:
                continue
            rooms.append(room)
            if max_depth is None or entry.depth < max_depth:
                queue.extend(
                    _QueueEntry(ev["state_key"], ev["content"]["via"], entry.depth + 1, children_from_remote.get(ev["state_key"]))
                    for ev in reversed(room.get("children_state", []))
                    if ev.get("type") == "m.space.child" and ev.get("state_key") not in inaccessible
                )

        result: dict[str, Any] = {"rooms": rooms}
        if queue:
            token = secrets.token_urlsafe(16)
            self._sessions.put(token, _Session(now, user_id, room_id, suggested_only, max_depth, queue, processed))
            result["next_batch"] = token
        return result

    # -- rooms this server is in ---------------------------------------------------------

    async def _is_local(self, room_id: str) -> bool:
        room = await self.hs.rooms.get_room(room_id)
        return room is not None and bool(room.joined_local)

    async def _local_room_accessible(self, room_id: str, user_id: str) -> bool:
        room = await self.hs.rooms.get_room(room_id)
        if room is None:
            # A room we only hold an invite to.
            lm = await self.hs.store.get_local_membership(user_id, room_id)
            return lm is not None and lm.membership == "invite"
        keys = [k for k in (("m.room.join_rules", ""), ("m.room.history_visibility", ""), ("m.room.member", user_id)) if k in room.state]
        state = await self.hs.rooms.get_state_events(room_id, {k: room.state[k] for k in keys})
        rules = state.get(("m.room.join_rules", ""))
        rule = rules.content.get("join_rule") if rules is not None else None
        version = room.version
        if (
            rule == "public"
            or (version.knock_join_rule and rule == "knock")
            or (version.knock_restricted_join_rule and rule == "knock_restricted")
        ):
            return True
        visibility = state.get(("m.room.history_visibility", ""))
        if visibility is not None and visibility.content.get("history_visibility") == "world_readable":
            return True
        member = state.get(("m.room.member", user_id))
        if member is not None and member.membership in ("join", "invite"):
            return True
        restricted = version.restricted_join_rule and (
            rule == "restricted" or (rule == "knock_restricted" and version.knock_restricted_join_rule)
        )
        return bool(restricted and rules is not None and await self._in_any(allowed_room_ids(rules.content), user_id))

    async def _in_any(self, room_ids: list[str], user_id: str) -> bool:
        for room_id in room_ids:
            if await self.hs.membership.get_membership(room_id, user_id) == "join":
                return True
        return False

    async def _local_room(self, room_id: str, user_id: str, suggested_only: bool) -> dict[str, Any] | None:
        if not await self._local_room_accessible(room_id, user_id):
            return None
        entry = await self.hs.directory.room_summary(room_id)
        room = await self.hs.rooms.get_room(room_id)
        assert room is not None
        rules = await self.hs.rooms.get_current_state_event(room_id, "m.room.join_rules", "")
        if rules is not None and room.version.restricted_join_rule and rules.content.get("join_rule") in ("restricted", "knock_restricted"):
            allowed = allowed_room_ids(rules.content)
            if allowed:
                entry["allowed_room_ids"] = allowed
        children: list[dict[str, Any]] = []
        if entry.get("room_type") == "m.space":
            keys = {k: v for k, v in room.state.items() if k[0] == "m.space.child"}
            events = [ev for ev in (await self.hs.rooms.get_state_events(room_id, keys)).values() if _valid_via(ev.content)]
            if suggested_only:
                events = [ev for ev in events if ev.content.get("suggested") is True]
            children = [
                {"type": ev.type, "state_key": ev.state_key, "content": ev.content, "sender": ev.sender,
                 "origin_server_ts": ev.origin_server_ts}
                for ev in sorted(events, key=_child_order)
            ]
        entry["children_state"] = children
        return entry

    # -- rooms of other servers ----------------------------------------------------------

    async def _remote_hierarchy(
        self, entry: _QueueEntry, suggested_only: bool
    ) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]], set[str]]:
        """(the room with its children_state, the children the server described, the
        children it says we may not see), from the first of the ``via`` servers that answers."""
        for server in dict.fromkeys(entry.via):
            if server == self.hs.server_name:
                continue
            try:
                answer = await self.hs.federation.get_hierarchy(server, entry.room_id, suggested_only)
            except MatrixError as e:
                logger.info("hierarchy of %s from %s failed: %s", entry.room_id, server, e)
                continue
            room = answer.get("room") if isinstance(answer, dict) else None
            if not isinstance(room, dict) or room.get("room_id") != entry.room_id:
                continue
            room = dict(room)
            children_state = room.get("children_state")
            room["children_state"] = [
                ev for ev in (children_state if isinstance(children_state, list) else [])
                if isinstance(ev, dict) and ev.get("type") == "m.space.child" and isinstance(ev.get("state_key"), str)
                and isinstance(ev.get("content"), dict) and _valid_via(ev["content"])
            ]
            children = {
                c["room_id"]: c for c in answer.get("children", []) if isinstance(c, dict) and isinstance(c.get("room_id"), str)
            }
            inaccessible = {r for r in answer.get("inaccessible_children", []) if isinstance(r, str)}
            return room, children, inaccessible
        return None, {}, set()

    async def _remote_room_accessible(self, user_id: str, room_id: str, room: dict[str, Any]) -> bool:
        """A room another server described: listed if it is joinable or world-readable, if
        the user is in one of its allowed rooms, or if they are in it or invited here."""
        if room.get("join_rule", "public") in ("public", "knock", "knock_restricted") or room.get("world_readable") is True:
            return True
        allowed = room.get("allowed_room_ids")
        if isinstance(allowed, list) and await self._in_any([r for r in allowed if isinstance(r, str)], user_id):
            return True
        return await self._local_room_accessible(room_id, user_id)
