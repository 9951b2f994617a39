"""Rooms as the server's admins see them (Synapse's admin API for rooms): the listing
with each room's statistics, details, members and state, blocking, and deleting a room:
its local users leave (optionally into a new room), then every trace of it is purged.
The v2 deletion runs in the background and reports through its delete id."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from homeserver.events.client_format import client_v1
from homeserver.handlers.audit import Actor, AuditEvent
from homeserver.handlers.room_creation import RoomRequest
from homeserver.http.errors import MatrixError, NotFound
from homeserver.storage.admin import DeleteTask, RoomOverview
from homeserver.util.ids import now_ms

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.events.event import Event
    from homeserver.handlers.auth import Requester

logger = logging.getLogger(__name__)

# Synapse's order_by values: (the listing field, ascending by default)
ROOM_ORDER = {
    "name": ("name", True),
    "alphabetical": ("name", True),
    "size": ("joined_members", False),
    "joined_members": ("joined_members", False),
    "joined_local_members": ("joined_local_members", False),
    "version": ("version", False),
    "creator": ("creator", True),
    "encryption": ("encryption", True),
    "federatable": ("federatable", True),
    "public": ("public", True),
    "join_rules": ("join_rules", True),
    "guest_access": ("guest_access", True),
    "history_visibility": ("history_visibility", True),
    "state_events": ("state_events", False),
}

DEFAULT_SHUTDOWN_MESSAGE = (
    "Sharing illegal content on this server is not permitted and rooms in violation will be blocked."
)
DEFAULT_SHUTDOWN_ROOM_NAME = "Content Violation Notification"

# Statuses of a v2 deletion, as Synapse's scheduled tasks.
SCHEDULED, ACTIVE, COMPLETE, FAILED = "scheduled", "active", "complete", "failed"


@dataclass(frozen=True)
class ShutdownParams:
    requester_user_id: str
    new_room_user_id: str | None = None
    new_room_name: str | None = None
    message: str | None = None
    block: bool = False
    purge: bool = True
    force_purge: bool = False

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _sort_key(value: Any) -> tuple[int, Any]:
    # NULLs first when ascending, as SQLite (Synapse's reference test setup) orders them.
    if value is None:
        return (0, "")
    return (1, value)


class AdminRoomsHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store
        self._running: dict[str, defer.Deferred[None]] = {}

    # -- reading ---------------------------------------------------------------------------

    async def _listing(self, overviews: list[RoomOverview]) -> list[dict[str, Any]]:
        events = await self.store.get_events([eid for ov in overviews for eid in ov.state_ids.values()])
        out = []
        for ov in overviews:
            def content(etype: str, ov: RoomOverview = ov) -> dict[str, Any]:
                ev = events.get(ov.state_ids.get(etype, ""))
                return ev.content if ev is not None and isinstance(ev.content, dict) else {}

            def text(etype: str, key: str) -> str | None:
                value = content(etype).get(key)
                return value if isinstance(value, str) else None

            create = content("m.room.create")
            out.append(
                {
                    "room_id": ov.room_id,
                    "name": text("m.room.name", "name"),
                    "canonical_alias": text("m.room.canonical_alias", "alias"),
                    "joined_members": ov.joined_members,
                    "joined_local_members": ov.joined_local_members,
                    "version": ov.version,
                    "creator": ov.creator,
                    "encryption": text("m.room.encryption", "algorithm"),
                    "federatable": create.get("m.federate", True) is not False,
                    "public": ov.is_public,
                    "join_rules": text("m.room.join_rules", "join_rule"),
                    "guest_access": text("m.room.guest_access", "guest_access"),
                    "history_visibility": text("m.room.history_visibility", "history_visibility"),
                    "state_events": ov.state_events,
                    "room_type": create.get("type") if isinstance(create.get("type"), str) else None,
                    # details only (dropped from the list below)
                    "avatar": text("m.room.avatar", "url"),
                    "topic": text("m.room.topic", "topic"),
                    "replacement_room": text("m.room.tombstone", "replacement_room"),
                    "tombstoned": "m.room.tombstone" in ov.state_ids,
                }
            )
        return out

    async def list_rooms(
        self,
        start: int,
        limit: int,
        order_by: str,
        reverse: bool,
        search_term: str | None,
        public_rooms: bool | None,
        empty_rooms: bool | None,
    ) -> tuple[list[dict[str, Any]], int]:
        """Every room this server knows, filtered and sorted as Synapse's
        get_rooms_paginate (the name and alias match as substrings, the id exactly)."""
        rooms = await self._listing(await self.store.get_room_overviews())
        if search_term:
            term = search_term.lower()
            rooms = [
                r
                for r in rooms
                if term in (r["name"] or "").lower()
                or _alias_localpart_matches(r["canonical_alias"], term)
                or r["room_id"] == search_term
            ]
        if public_rooms is not None:
            rooms = [r for r in rooms if r["public"] == public_rooms]
        if empty_rooms is not None:
            rooms = [r for r in rooms if (r["joined_members"] == 0) == empty_rooms]
        column, ascending = ROOM_ORDER[order_by]
        if reverse:
            ascending = not ascending
        rooms.sort(key=lambda r: (_sort_key(r[column]), r["room_id"]), reverse=not ascending)
        page = rooms[start : start + limit]
        for r in page:
            for key in ("avatar", "topic", "replacement_room", "tombstoned"):
                del r[key]
        return page, len(rooms)

    async def details(self, room_id: str) -> dict[str, Any] | None:
        overviews = await self.store.get_room_overviews(room_id)
        if not overviews:
            return None
        room = (await self._listing(overviews))[0]
        members = await self.store.get_members_with_membership(room_id, "join")
        local = [m for m in members if self.hs.is_mine(m)]
        room["joined_local_devices"] = await self.store.count_devices_of_users(local)
        room["forgotten"] = await self.store.room_forgotten_by_all(room_id)
        return room

    async def members(self, room_id: str) -> list[str] | None:
        if await self.store.get_room_version(room_id) is None:
            return None
        return sorted(await self.store.get_members_with_membership(room_id, "join"))

    async def state(self, room_id: str, event_type: str | None) -> list[dict[str, Any]] | None:
        if await self.store.get_room_version(room_id) is None:
            return None
        state = await self.store.get_current_state_ids(room_id)
        ids = [eid for (t, _), eid in state.items() if event_type is None or t == event_type]
        events: list[Event] = sorted((await self.store.get_events(ids)).values(), key=lambda e: e.stream_ordering)
        return [client_v1(e) for e in await self.hs.messages.serialize(None, events, bundle=False)]

    async def messages(
        self, admin: Requester, room_id: str, from_token: str | None, to_token: str | None, direction: str, limit: int
    ) -> dict[str, Any]:
        if await self.store.get_room_version(room_id) is None:
            raise NotFound("Room not found")
        return await room_messages(self.hs, admin, room_id, from_token, to_token, direction, limit)

    # -- blocking --------------------------------------------------------------------------

    async def block(self, room_id: str, block: bool, by: Actor) -> None:
        if block:
            assert by.user_id is not None
            await self.store.block_room(room_id, by.user_id)
        else:
            await self.store.unblock_room(room_id)
        await self.hs.audit.record_by(AuditEvent.ADMIN_ROOM_BLOCKED, None, by, {"room_id": room_id, "block": block})

    # -- deleting ----------------------------------------------------------------------------

    async def shutdown(self, room_id: str, params: ShutdownParams, result: dict[str, Any] | None = None) -> dict[str, Any]:
        """Synapse's RoomShutdownHandler.shutdown_room: block if asked; every local user
        with a membership leaves (as themselves) and forgets the room; with
        ``new_room_user_id``, the joined ones are put into a new room that user makes
        (where others cannot speak), told why, and the room's aliases move there."""
        result = result or {"kicked_users": [], "failed_to_kick_users": [], "local_aliases": [], "new_room_id": None}
        if params.block:
            await self.store.block_room(room_id, params.requester_user_id)
        if await self.store.get_room_version(room_id) is None:
            return result
        from homeserver.handlers.auth import Requester

        new_room_id = result.get("new_room_id")
        if params.new_room_user_id is not None and new_room_id is None:
            creator = Requester(params.new_room_user_id, "", False, "")
            created = await self.hs.room_creation.create_room(
                creator,
                RoomRequest(
                    preset="public_chat",
                    name=params.new_room_name or DEFAULT_SHUTDOWN_ROOM_NAME,
                    power_level_content_override={"users_default": -10},
                ),
            )
            new_room_id = result["new_room_id"] = created["room_id"]
        for user_id, membership in await self.store.get_local_users_related_to_room(room_id):
            if membership not in ("join", "invite", "knock"):
                continue
            target = Requester(user_id, "", False, "")
            try:
                await self.hs.membership.update_membership(target, room_id, user_id, "leave")
                await self.store.forget_room(user_id, room_id)
                if new_room_id is not None and membership == "join":
                    await self.hs.membership.update_membership(target, new_room_id, user_id, "join")
                result["kicked_users"].append(user_id)
            except MatrixError as e:
                logger.warning("shutting down %s: %s could not leave: %s", room_id, user_id, e)
                result["failed_to_kick_users"].append(user_id)
        if params.new_room_user_id is not None and new_room_id is not None:
            creator = Requester(params.new_room_user_id, "", False, "")
            await self.hs.messages.send_event(
                creator,
                new_room_id,
                "m.room.message",
                {"body": params.message or DEFAULT_SHUTDOWN_MESSAGE, "msgtype": "m.text"},
            )
            result["local_aliases"] = await self.store.move_room_aliases(room_id, new_room_id, params.requester_user_id)
        else:
            result["local_aliases"] = []
        return result

    async def purge(self, room_id: str, force: bool) -> None:
        """Deletes the room from the database. Refused while a local user is still joined,
        unless ``force``."""
        if self.hs.rooms.local_users_in_room(room_id) and not force:
            raise MatrixError(400, "M_UNKNOWN", "Users are still joined to this room")
        room = await self.hs.rooms.get_room(room_id)

        async def purge() -> list[str]:
            return await self.store.purge_room(room_id)

        # In the room's queue: no send is being built or persisted into it meanwhile.
        event_ids = await self.hs.rooms.run_exclusive(room, purge) if room is not None else await purge()
        self.hs.rooms.forget_cached_room(room_id)
        self.store.forget_room_events(room_id, event_ids)

    async def delete(self, room_id: str, params: ShutdownParams, by: Actor) -> dict[str, Any]:
        """DELETE /_synapse/admin/v1/rooms/{roomId}: shut down, then purge, at once."""
        result = await self.shutdown(room_id, params)
        if params.purge:
            await self.purge(room_id, params.force_purge)
        await self.hs.audit.record_by(
            AuditEvent.ADMIN_ROOM_DELETED, None, by, {"room_id": room_id, "block": params.block, "purge": params.purge}
        )
        return result

    # -- v2: in the background ----------------------------------------------------------

    async def start_delete(self, room_id: str, params: ShutdownParams, by: Actor) -> str:
        active = await self.store.get_delete_tasks(room_id, (SCHEDULED, ACTIVE))
        if active:
            raise MatrixError(400, "M_UNKNOWN", f"Purge already in progress for {room_id}")
        if params.new_room_user_id is not None and not self.hs.is_mine(params.new_room_user_id):
            raise MatrixError(400, "M_UNKNOWN", f"User must be our own: {params.new_room_user_id}")
        task = DeleteTask(secrets.token_urlsafe(12), room_id, SCHEDULED, params.to_json(), None, None, now_ms())
        await self.store.add_delete_task(task)
        await self.hs.audit.record_by(
            AuditEvent.ADMIN_ROOM_DELETED, None, by,
            {"room_id": room_id, "block": params.block, "purge": params.purge, "delete_id": task.delete_id},
        )
        self._run(task)
        return task.delete_id

    def _run(self, task: DeleteTask) -> None:
        d = defer.ensureDeferred(self._run_task(task))
        self._running[task.delete_id] = d
        d.addBoth(lambda _: self._running.pop(task.delete_id, None))

    async def _run_task(self, task: DeleteTask) -> None:
        params = ShutdownParams(**task.params)
        result = task.result
        try:
            await self.store.update_delete_task(task.delete_id, ACTIVE, result)
            result = await self.shutdown(task.room_id, params, result)
            await self.store.update_delete_task(task.delete_id, ACTIVE, result)
            if params.purge:
                # (a room this server never had purges to nothing: no error, as in Synapse)
                await self.purge(task.room_id, params.force_purge)
            await self.store.update_delete_task(task.delete_id, COMPLETE, result)
        except Exception as e:
            logger.exception("deleting room %s failed", task.room_id)
            try:
                await self.store.update_delete_task(task.delete_id, FAILED, result, str(e))
            except Exception:
                logger.exception("recording the failure of %s failed", task.delete_id)

    async def resume_deletes(self) -> None:
        """At start: deletions that were under way when the server stopped run again."""
        for task in await self.store.get_delete_tasks(None, (SCHEDULED, ACTIVE)):
            self._run(task)

    async def wait_for_deletes(self) -> None:
        """Until the background deletions running now are done (at shutdown)."""
        for d in list(self._running.values()):
            try:
                await d
            except Exception:
                pass

    @staticmethod
    def task_json(task: DeleteTask) -> dict[str, Any]:
        return {
            "delete_id": task.delete_id,
            "room_id": task.room_id,
            "status": task.status,
            "shutdown_room": task.result,
        }


def _alias_localpart_matches(alias: str | None, term: str) -> bool:
    """Synapse's ``LOWER(canonical_alias) LIKE '#%term%:%'``."""
    if not alias:
        return False
    local = alias.lower().split(":", 1)[0]
    return local.startswith("#") and term in local[1:] and ":" in alias


async def _position(store: Any, room_id: str, token: str) -> tuple[int, int]:
    from homeserver.handlers.messages import parse_pagination_token

    _, value = parse_pagination_token(token)
    if isinstance(value, tuple):  # topological
        return value
    depth, after = await store.get_topological_key_at_stream(room_id, value)
    return (depth, after - 1)


async def room_messages(
    hs: HomeServer, admin: Requester, room_id: str, from_token: str | None, to_token: str | None,
    direction: str, limit: int,
) -> dict[str, Any]:
    """A page of the room's timeline whatever the admin's membership (Synapse's admin
    /messages), in the client API's token format and order."""
    from homeserver.handlers.messages import MAX_LIMIT, START_POSITION, make_topo_token, token_after, token_before

    store = hs.store
    limit = max(0, min(limit, MAX_LIMIT))
    if from_token is not None:
        from_pos = await _position(store, room_id, from_token)
    elif direction == "b":
        from_pos = await _position(store, room_id, f"s{hs.streams.current}")
    else:
        from_pos = START_POSITION
    to_pos = await _position(store, room_id, to_token) if to_token else None
    start = from_token or make_topo_token(from_pos)
    if direction == "b":
        from_key = (from_pos[0], from_pos[1] + 1)
        to_key = (to_pos[0], to_pos[1] + 1) if to_pos is not None else None
    else:
        from_key, to_key = from_pos, to_pos
    events = await store.paginate_room_events(room_id, from_key, direction, limit + 1, to_key=to_key) if limit else []
    events = events[:limit]
    if not events:
        return {"chunk": [], "start": start}
    end = token_before(events[-1]) if direction == "b" else token_after(events[-1])
    chunk = await hs.messages.serialize(None, events)
    return {"chunk": [client_v1(e) for e in chunk], "start": start, "end": end}

