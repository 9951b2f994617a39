"""Room upgrades (``POST /rooms/{roomId}/upgrade``), from any room version to any other,
as Synapse's ``RoomCreationHandler.upgrade_room`` does them:

1. the tombstone is built and authorised in the old room (403 for a user who may not
   send it), naming the new room;
2. before it is stored, the new room is made: a create event with ``predecessor`` (the
   tombstone's id; none for a room version 12 room, whose id is its create event's hash
   and so is known before the tombstone), the old room's join rules, name, topic,
   history visibility, guest access, avatar, encryption, server ACL, power levels (and a
   space's children) as initial state, the upgrader's level raised to what copying that
   state needs, and the old room's bans;
3. the tombstone is stored; the local aliases move to the new room and the canonical
   alias with them; the room directory listing moves; local members' tags, ``m.direct``
   and room push rules are copied;
4. the old room is restricted (sending and inviting need more than ``users_default``)
   and the new room gets the old power levels back (the upgrader's temporary raise
   undone).

Creators differ between versions: before 11 the create event names a ``creator``, in
11 the sender is the creator, and in 12 the sender and ``additional_creators`` (which
the request may name) have unlimited power and may not appear in the power levels'
``users``.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from homeserver.events.event import Event
from homeserver.handlers.room_events import EventSpec, RoomInfo
from homeserver.http.errors import MatrixError, NotFound, UnsupportedRoomVersion
from homeserver.protocol.identifiers import is_valid_user_id
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion, get_room_version
from homeserver.util.async_helpers import SharedResult
from homeserver.util.ids import now_ms, random_string

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester
    from homeserver.handlers.room_creation import RoomCreationHandler, RoomRequest, _Plan

# State copied into the new room (Synapse's types_to_copy).
COPIED_STATE = (
    "m.room.join_rules",
    "m.room.name",
    "m.room.topic",
    "m.room.history_visibility",
    "m.room.guest_access",
    "m.room.avatar",
    "m.room.encryption",
    "m.room.server_acl",
    "m.room.power_levels",
)


def integer_power_levels(content: dict[str, Any]) -> dict[str, Any]:
    """A copy of power levels with string levels ("50", allowed before room version 10)
    made integers, as Synapse copies them into an upgraded room; a level that is no
    integer at all is left out (Synapse's upgrade fails on it)."""

    def level(value: Any) -> int | None:
        if type(value) is int:
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                return None
        return None

    out: dict[str, Any] = {}
    for key, value in content.items():
        if isinstance(value, dict):
            out[key] = {k: v for k, v in ((k, level(v)) for k, v in value.items()) if v is not None}
        elif (fixed := level(value)) is not None:
            out[key] = fixed
    return out


def check_additional_creators(value: Any) -> list[str]:
    """Synapse's check_valid_additional_creators (400 M_FORBIDDEN, as its AuthError)."""
    if type(value) is not list:
        raise MatrixError(400, "M_FORBIDDEN", "additional_creators must be an array")
    for entry in value:
        if type(entry) is not str:
            raise MatrixError(400, "M_FORBIDDEN", "entry in additional_creators is not a string")
        if not is_valid_user_id(entry):
            raise MatrixError(400, "M_FORBIDDEN", "entry in additional_creators is not a valid user ID")
    return value


def _int_or(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


class RoomUpgrader:
    def __init__(self, hs: HomeServer, creation: RoomCreationHandler) -> None:
        self.hs = hs
        self.store = hs.store
        self.creation = creation
        # old room id -> (upgrading user, the upgrade's result): a repeated request of the
        # same user gets the same answer, another user's gets 400 (as Synapse).
        self._in_progress: dict[str, tuple[str, SharedResult[str]]] = {}

    async def upgrade_room(
        self, requester: Requester, old_room_id: str, new_version_id: str, additional_creators: Any = None
    ) -> str:
        if new_version_id not in KNOWN_ROOM_VERSIONS:
            raise UnsupportedRoomVersion("Your homeserver does not support this room version")
        new_version = get_room_version(new_version_id)
        creators: list[str] | None = None
        if new_version.creators_have_infinite_power and additional_creators is not None:
            creators = check_additional_creators(additional_creators)
        user_id = requester.user_id
        running = self._in_progress.get(old_room_id)
        if running is not None:
            if running[0] != user_id:
                raise MatrixError(400, "M_UNKNOWN", "An upgrade for this room is currently in progress")
            return await running[1].wait()
        old_room = await self.hs.rooms.get_room(old_room_id)
        if old_room is None or old_room.state_group is None:
            raise NotFound(f"Unknown room id {old_room_id}")
        result: SharedResult[str] = SharedResult()
        self._in_progress[old_room_id] = (user_id, result)
        try:
            new_room_id = await self._upgrade(requester, old_room, new_version, creators)
        except BaseException as e:
            result.errback(e)
            raise
        else:
            result.callback(new_room_id)
            return new_room_id
        finally:
            del self._in_progress[old_room_id]

    async def _upgrade(
        self, requester: Requester, old_room: RoomInfo, new_version: RoomVersion, creators: list[str] | None
    ) -> str:
        user_id = requester.user_id
        old_room_id = old_room.room_id
        plan: _Plan | None = None
        if new_version.room_id_from_create_event:
            # v12: the room id is the create event's hash, so the create event comes
            # first and its predecessor names no tombstone (as in Synapse). Built with a
            # fixed time, it is the same event when the room is stored.
            plan = await self._plan(requester, old_room, new_version, None, creators)
            plan.local_events[0].extra["origin_server_ts"] = now_ms()
            new_room_id = await self._room_id_of(plan)
        else:
            new_room_id = f"!{random_string(18)}:{self.hs.server_name}"

        async def clone_before_tombstone(tombstone: Event) -> Event:
            # Runs once the tombstone is built and authorised, before it is stored: a user
            # who may not upgrade the room gets 403 before anything is made.
            nonlocal plan
            if plan is None:
                plan = await self._plan(requester, old_room, new_version, tombstone.event_id, creators)
            events = await self.creation.store_new_room(new_room_id, plan)
            if events[0].room_id != new_room_id:  # a v12 create event built differently
                raise MatrixError(500, "M_UNKNOWN", "The new room's id is not the one the tombstone names")
            return tombstone

        await self.hs.rooms.send(
            old_room_id,
            EventSpec(
                "m.room.tombstone",
                user_id,
                {"body": "This room has been replaced", "replacement_room": new_room_id},
                state_key="",
                before_persist=clone_before_tombstone,
            ),
        )
        await self._move_aliases(user_id, old_room_id, new_room_id)
        await self._transfer_user_state(old_room, new_room_id)
        if await self.store.get_room_visibility(old_room_id):
            await self.store.set_room_visibility(old_room_id, False)
            await self.store.set_room_visibility(new_room_id, True)
        await self._update_power_levels(user_id, old_room_id, new_room_id, new_version, creators)
        return new_room_id

    # -- the new room ---------------------------------------------------------------------

    async def _plan(
        self,
        requester: Requester,
        old_room: RoomInfo,
        new_version: RoomVersion,
        tombstone_id: str | None,
        creators: list[str] | None,
    ) -> _Plan:
        from homeserver.handlers.room_creation import RoomRequest

        user_id = requester.user_id
        state = await self.hs.rooms.get_state_events(old_room.room_id)
        old_create = state.get(("m.room.create", ""))
        old_create_content = old_create.content if old_create is not None else {}
        creation_content: dict[str, Any] = {"predecessor": {"room_id": old_room.room_id}}
        if tombstone_id is not None:
            creation_content["predecessor"]["event_id"] = tombstone_id
        if creators is not None:
            creation_content["additional_creators"] = creators
        if old_create_content.get("m.federate", True) is False:
            creation_content["m.federate"] = False
        room_type = old_create_content.get("type")
        if room_type is not None:
            creation_content["type"] = room_type

        initial: dict[tuple[str, str], dict[str, Any]] = {}
        for (event_type, state_key), ev in state.items():
            if state_key == "" and event_type in COPIED_STATE:
                initial[(event_type, "")] = copy.deepcopy(ev.content)
            elif room_type == "m.space" and event_type == "m.space.child" and ev.content:
                initial[(event_type, state_key)] = copy.deepcopy(ev.content)
        power_levels = integer_power_levels(initial.get(("m.room.power_levels", ""), {}))
        # The upgrader must be able to send all of that state (and the bans): raised for
        # now, given back by _update_power_levels.
        events = power_levels.get("events", {})
        needed = max(
            _int_or(power_levels.get("state_default", 50), 50),
            _int_or(power_levels.get("ban", 50), 50),
            max((v for v in events.values() if type(v) is int), default=0) if isinstance(events, dict) else 0,
        )
        users = power_levels.setdefault("users", {})
        if _int_or(users.get(user_id, power_levels.get("users_default", 0)), 0) < needed:
            users[user_id] = needed
        if new_version.creators_have_infinite_power:
            for creator in [user_id, *(creators or [])]:
                users.pop(creator, None)
        if ("m.room.power_levels", "") in initial:
            initial[("m.room.power_levels", "")] = power_levels

        request: RoomRequest = RoomRequest(
            room_version=new_version.identifier,
            # The preset only fills what the old room lacks; everything else is copied.
            preset="private_chat",
            creation_content=creation_content,
            initial_state=[{"type": t, "state_key": k, "content": c} for (t, k), c in initial.items()],
        )
        plan = await self.creation.plan(requester, request)
        # Banned users stay banned (their ban events, sent by the upgrader).
        for (event_type, state_key), ev in sorted(state.items()):
            if event_type == "m.room.member" and ev.membership == "ban":
                plan.local_events.append(EventSpec("m.room.member", user_id, dict(ev.content), state_key=state_key))
        return plan

    async def _room_id_of(self, plan: _Plan) -> str:
        """A v12 room's id, from its (deterministic) create event."""
        room = RoomInfo("!pending-" + random_string(18), plan.version, {}, None, 0, set(), 0)
        create = await self.hs.rooms.builder.build(room, plan.local_events[0], {}, set(), 0, {})
        return create.room_id

    # -- after the tombstone ------------------------------------------------------------

    async def _move_aliases(self, user_id: str, old_room_id: str, new_room_id: str) -> None:
        """Local aliases point at the new room; the canonical alias event follows them
        (Synapse's _move_aliases_to_new_room: local aliases leave the old room's event)."""
        for alias in await self.store.get_aliases_for_room(old_room_id):
            found = await self.store.get_alias(alias)
            await self.store.delete_alias(alias)
            await self.store.create_alias(alias, new_room_id, found[1] if found else user_id)
        event = await self.hs.rooms.get_current_state_event(old_room_id, "m.room.canonical_alias")
        if event is None:
            return
        old_content = dict(event.content)
        new_content: dict[str, Any] = {}
        canonical = event.content.get("alias")
        if isinstance(canonical, str) and self.hs.is_mine(canonical):
            new_content["alias"] = canonical
            old_content.pop("alias", None)
        alt = event.content.get("alt_aliases")
        if isinstance(alt, list) and alt:
            old_alt = list(alt)
            new_alt = new_content.setdefault("alt_aliases", [])
            for alias in alt:
                if isinstance(alias, str) and self.hs.is_mine(alias):
                    new_alt.append(alias)
                    old_alt.remove(alias)
            if old_alt:
                old_content["alt_aliases"] = old_alt
            else:
                old_content.pop("alt_aliases", None)
        for room_id, content in ((old_room_id, old_content), (new_room_id, new_content)):
            try:
                await self.hs.rooms.send(room_id, EventSpec("m.room.canonical_alias", user_id, content, state_key=""))
            except MatrixError:
                pass  # as Synapse: the new room is returned all the same

    async def _transfer_user_state(self, old_room: RoomInfo, new_room_id: str) -> None:
        """Each local member's tags, m.direct entry and push rules of the old room are
        copied to the new one (Synapse's copy_user_state_on_room_upgrade)."""
        account_data = self.hs.account_data
        old_room_id = old_room.room_id
        for user_id in sorted(old_room.joined_local):
            tags = (await account_data.get_tags(user_id, old_room_id))["tags"]
            for tag, body in tags.items():
                await account_data.add_tag(user_id, new_room_id, tag, body)
            direct = await self.store.get_account_data(user_id, "", "m.direct")
            if isinstance(direct, dict):
                for rooms in direct.values():
                    if isinstance(rooms, list) and old_room_id in rooms and new_room_id not in rooms:
                        rooms.append(new_room_id)
                        await account_data.put(user_id, "", "m.direct", direct)
                        break
            await self._copy_push_rules(user_id, old_room_id, new_room_id)

    async def _copy_push_rules(self, user_id: str, old_room_id: str, new_room_id: str) -> None:
        push = self.hs.push_rules
        rules = (await push.get_rules_for_client(user_id))["global"]
        for kind, entries in rules.items():
            for rule in entries if isinstance(entries, list) else []:
                if not rule.get("enabled", True) or rule.get("default"):
                    continue
                if kind == "room" and rule.get("rule_id") == old_room_id:
                    body: dict[str, Any] = {"actions": rule.get("actions", [])}
                    await push.put_rule(user_id, "room", new_room_id, body, None, None)
                    continue
                conditions = rule.get("conditions")
                if not isinstance(conditions, list) or not any(
                    isinstance(c, dict) and c.get("key") == "room_id" and c.get("pattern") == old_room_id
                    for c in conditions
                ):
                    continue
                new_conditions = [
                    {**c, "pattern": new_room_id} if isinstance(c, dict) and c.get("key") == "room_id" else c
                    for c in conditions
                ]
                # As Synapse: the copy's id is the new room's id.
                await push.put_rule(
                    user_id, kind, new_room_id, {"actions": rule.get("actions", []), "conditions": new_conditions}, None, None
                )

    async def _update_power_levels(
        self, user_id: str, old_room_id: str, new_room_id: str, new_version: RoomVersion, creators: list[str] | None
    ) -> None:
        """Restricts the old room (sending and inviting above ``users_default``, at least
        50) and gives the new room the old levels (the upgrader's raise undone)."""
        old_pl = await self.hs.rooms.get_current_state_event(old_room_id, "m.room.power_levels")
        if old_pl is None:
            return
        restricted = integer_power_levels(old_pl.content)
        level = max(_int_or(restricted.get("users_default", 0), 0) + 1, 50)
        changed = False
        for key in ("invite", "events_default"):
            if _int_or(restricted.get(key, 0), 0) < level:
                restricted[key] = level
                changed = True
        if changed:
            try:
                await self.hs.rooms.send(old_room_id, EventSpec("m.room.power_levels", user_id, restricted, state_key=""))
            except MatrixError:
                pass  # as Synapse: logged there, the upgrade stands
        levels = integer_power_levels(old_pl.content)
        if new_version.creators_have_infinite_power and isinstance(levels.get("users"), dict):
            for creator in [user_id, *(creators or [])]:
                levels["users"].pop(creator, None)
        current = await self.hs.rooms.get_current_state_event(new_room_id, "m.room.power_levels")
        if current is None or current.content != levels:
            await self.hs.rooms.send(new_room_id, EventSpec("m.room.power_levels", user_id, levels, state_key=""))
