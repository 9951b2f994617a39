"""/createRoom: presets, initial state, aliases, invites, room versions 10–12; and room upgrades."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from homeserver.handlers.room_events import EventSpec
from homeserver.http.errors import BadJson, Forbidden, MatrixError, UnsupportedRoomVersion
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS, get_room_version
from homeserver.util.ids import is_valid_user_id, random_string

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester

PRESETS: dict[str, dict[str, Any]] = {
    "private_chat": {"join_rule": "invite", "history_visibility": "shared", "guest_access": "can_join", "invitees_admin": False},
    "trusted_private_chat": {"join_rule": "invite", "history_visibility": "shared", "guest_access": "can_join", "invitees_admin": True},
    "public_chat": {"join_rule": "public", "history_visibility": "shared", "guest_access": "forbidden", "invitees_admin": False},
}


def default_power_levels(creator: str, creator_in_users: bool, preset: str) -> dict[str, Any]:
    pl: dict[str, Any] = {
        "users": {creator: 100} if creator_in_users else {},
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            "m.room.tombstone": 100,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        # As Synapse does: anyone in a private room may invite.
        "invite": 0 if preset in ("private_chat", "trusted_private_chat") else 50,
        "notifications": {"room": 50},
    }
    return pl


class RoomCreationHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self.hs = hs
        self.store = hs.store
        self._aliases_in_creation: set[str] = set()

    async def create_room(self, requester: "Requester", body: dict[str, Any]) -> dict[str, Any]:
        # Two requests for one alias at once (a double-click, a client retry) both passed
        # the "alias free?" check and both made a room, the second without its alias:
        # reserve the name for the duration of the creation.
        name = body.get("room_alias_name")
        if not isinstance(name, str) or not name:
            return await self._create_room(requester, body)
        if name in self._aliases_in_creation:
            raise MatrixError(400, "M_ROOM_IN_USE", "Room alias already taken")
        self._aliases_in_creation.add(name)
        try:
            return await self._create_room(requester, body)
        finally:
            self._aliases_in_creation.discard(name)

    async def _create_room(self, requester: "Requester", body: dict[str, Any]) -> dict[str, Any]:
        user_id = requester.user_id
        version_id = body.get("room_version", self.hs.config.default_room_version)
        if not isinstance(version_id, str) or version_id not in KNOWN_ROOM_VERSIONS:
            raise UnsupportedRoomVersion(f"Room version {version_id!r} is not supported")
        version = get_room_version(version_id)

        visibility = body.get("visibility", "private")
        if visibility not in ("public", "private"):
            raise BadJson("visibility must be public or private")
        preset = body.get("preset") or ("public_chat" if visibility == "public" else "private_chat")
        if not isinstance(preset, str) or preset not in PRESETS:  # a list/dict is unhashable
            raise BadJson(f"Unknown preset {preset!r}")
        p = PRESETS[preset]

        invitees = body.get("invite", [])
        if not isinstance(invitees, list) or not all(isinstance(i, str) and is_valid_user_id(i) for i in invitees):
            raise BadJson("invite must be a list of user ids")
        initial_state = body.get("initial_state", [])
        if not isinstance(initial_state, list):
            raise BadJson("initial_state must be a list")
        for ev in initial_state:
            if not isinstance(ev, dict) or not isinstance(ev.get("type"), str) or not isinstance(ev.get("content", {}), dict):
                raise BadJson("initial_state entries need a type and a content object")
            if not isinstance(ev.get("state_key", ""), str):
                raise BadJson("initial_state state_key must be a string")
            if "\x00" in ev["type"] or "\x00" in ev.get("state_key", ""):
                # Checked before the room exists: failing at that event would leave it half-made.
                raise BadJson("initial_state type and state_key cannot contain NUL")
        creation_content = body.get("creation_content") or {}
        if not isinstance(creation_content, dict):
            raise BadJson("creation_content must be an object")
        pl_override = body.get("power_level_content_override")
        if pl_override is not None and not isinstance(pl_override, dict):
            raise BadJson("power_level_content_override must be an object")
        for key in ("name", "topic", "room_alias_name"):
            if body.get(key) is not None and not isinstance(body[key], str):
                raise BadJson(f"{key} must be a string")
        if not isinstance(body.get("is_direct", False), bool):
            raise BadJson("is_direct must be a boolean")
        if not isinstance(body.get("invite_3pid", []), list):
            raise BadJson("invite_3pid must be a list")

        alias = None
        if body.get("room_alias_name"):
            alias = f"#{body['room_alias_name']}:{self.hs.server_name}"
            if ":" in body["room_alias_name"] or len(alias) > 255:
                raise MatrixError(400, "M_INVALID_PARAM", "Invalid room alias")
            if await self.store.get_alias(alias) is not None:
                raise MatrixError(400, "M_ROOM_IN_USE", "Room alias already taken")

        profile = await self.hs.profile.get_profile(user_id)

        create_content = dict(creation_content)
        create_content["room_version"] = version.identifier
        if not version.implicit_room_creator:
            create_content["creator"] = user_id
        if version.creators_have_infinite_power and p["invitees_admin"] and invitees:
            # v12: in a trusted private chat the invitees are co-creators, as Synapse does.
            create_content.setdefault("additional_creators", list(invitees))

        if version.room_id_from_create_event:
            room_id = "!pending-" + random_string(18)
        else:
            room_id = f"!{random_string(18)}:{self.hs.server_name}"
        room = self.hs.rooms.register_new_room(room_id, version)

        creator_listed = not version.creators_have_infinite_power
        power_levels = default_power_levels(user_id, creator_listed, preset)
        if p["invitees_admin"] and not version.creators_have_infinite_power:
            for invitee in invitees:
                power_levels["users"][invitee] = 100
        if pl_override:
            for k, v in pl_override.items():
                power_levels[k] = copy.deepcopy(v)

        specs: list[EventSpec] = [
            EventSpec("m.room.create", user_id, create_content, state_key=""),
            EventSpec("m.room.member", user_id, {"membership": "join", **profile}, state_key=user_id),
            EventSpec("m.room.power_levels", user_id, power_levels, state_key=""),
        ]
        if alias:
            specs.append(EventSpec("m.room.canonical_alias", user_id, {"alias": alias}, state_key=""))
        state_types = {(e["type"], e.get("state_key", "")) for e in initial_state}
        for etype, key, content in (
            ("m.room.join_rules", "join_rule", {"join_rule": p["join_rule"]}),
            ("m.room.history_visibility", "history_visibility", {"history_visibility": p["history_visibility"]}),
            ("m.room.guest_access", "guest_access", {"guest_access": p["guest_access"]}),
        ):
            if (etype, "") not in state_types:
                specs.append(EventSpec(etype, user_id, content, state_key=""))
        for ev in initial_state:
            if ev["type"] in ("m.room.create", "m.room.member", "m.room.power_levels"):
                continue
            specs.append(EventSpec(ev["type"], user_id, dict(ev.get("content", {})), state_key=ev.get("state_key", "")))
        if body.get("name"):
            specs.append(EventSpec("m.room.name", user_id, {"name": body["name"]}, state_key=""))
        if body.get("topic"):
            specs.append(
                EventSpec(
                    "m.room.topic",
                    user_id,
                    {"topic": body["topic"], "m.topic": [{"mimetype": "text/plain", "body": body["topic"]}]},
                    state_key="",
                )
            )
        try:
            events = await self.hs.rooms.send_batch(room, specs)
        except BaseException:
            self.hs.rooms.forget_cached_room(room.room_id)
            raise
        room_id = events[0].room_id
        if alias:
            await self.store.create_alias(alias, room_id, user_id)
        if visibility == "public":
            await self.store.set_room_visibility(room_id, True)
        is_direct = body.get("is_direct") is True
        for invitee in invitees:
            extra = {"is_direct": True} if is_direct else {}
            await self.hs.membership.update_membership(requester, room_id, invitee, "invite", content_extra=extra)
        result: dict[str, Any] = {"room_id": room_id}
        if alias:
            result["room_alias"] = alias
        return result

    async def upgrade_room(self, requester: "Requester", old_room_id: str, new_version_id: str) -> str:
        if new_version_id not in KNOWN_ROOM_VERSIONS:
            raise UnsupportedRoomVersion()
        user_id = requester.user_id
        old_room = await self.hs.rooms.get_room(old_room_id)
        if old_room is None:
            raise Forbidden("Unknown room")
        if not await self.hs.membership.user_can_send_state(old_room_id, user_id, "m.room.tombstone"):
            raise Forbidden("You don't have permission to upgrade the room")
        state = await self.hs.rooms.get_state_events(old_room_id)
        copy_types = (
            "m.room.join_rules",
            "m.room.history_visibility",
            "m.room.guest_access",
            "m.room.name",
            "m.room.topic",
            "m.room.avatar",
            "m.room.encryption",
            "m.room.server_acl",
            "m.room.related_groups",
            "m.room.power_levels",
        )
        initial_state = []
        pl_content = None
        for (etype, sk), ev in state.items():
            if etype == "m.room.power_levels":
                pl_content = dict(ev.content)
                continue
            if etype in copy_types and sk == "":
                initial_state.append({"type": etype, "state_key": "", "content": ev.content})
        old_create = state.get(("m.room.create", ""))
        last_event_id = sorted(old_room.extremities)[0] if old_room.extremities else None
        creation_content: dict[str, Any] = {"predecessor": {"room_id": old_room_id}}
        if last_event_id:
            creation_content["predecessor"]["event_id"] = last_event_id
        if old_create is not None and "type" in old_create.content:
            creation_content["type"] = old_create.content["type"]
        new_version = get_room_version(new_version_id)
        if pl_content is not None:
            users = dict(pl_content.get("users", {}))
            if new_version.creators_have_infinite_power:
                users.pop(user_id, None)
            else:
                users[user_id] = max(100, users.get(user_id, 0))
            pl_content["users"] = users
        result = await self.create_room(
            requester,
            {
                "room_version": new_version_id,
                "creation_content": creation_content,
                "initial_state": initial_state,
                "power_level_content_override": pl_content,
                "preset": "private_chat",
            },
        )
        new_room_id = result["room_id"]
        await self.hs.rooms.send(
            old_room_id,
            EventSpec(
                "m.room.tombstone",
                user_id,
                {"body": "This room has been replaced", "replacement_room": new_room_id},
                state_key="",
            ),
        )
        # Move local aliases and the directory listing over, as Synapse does.
        for alias in await self.store.get_aliases_for_room(old_room_id):
            await self.store.delete_alias(alias)
            await self.store.create_alias(alias, new_room_id, user_id)
        canonical = state.get(("m.room.canonical_alias", ""))
        if canonical is not None:
            try:
                await self.hs.rooms.send(
                    new_room_id, EventSpec("m.room.canonical_alias", user_id, dict(canonical.content), state_key="")
                )
            except MatrixError:
                pass
        if await self.store.get_room_visibility(old_room_id):
            await self.store.set_room_visibility(old_room_id, False)
            await self.store.set_room_visibility(new_room_id, True)
        # Restrict the old room so people move over.
        if pl_content is not None:
            old_pl = state.get(("m.room.power_levels", ""))
            if old_pl is not None:
                restricted = dict(old_pl.content)
                restricted["events_default"] = max(50, restricted.get("events_default", 0))
                restricted["invite"] = max(50, restricted.get("invite", 0))
                try:
                    await self.hs.rooms.send(
                        old_room_id, EventSpec("m.room.power_levels", user_id, restricted, state_key="")
                    )
                except MatrixError:
                    pass
        return new_room_id
