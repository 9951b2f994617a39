"""/createRoom: presets, initial state, aliases, invites, room versions 1–12 (room upgrades: room_upgrade.py).

A room is created completely or not at all. Every event of the new room (create, the
creator's join, power levels, preset and initial state, name, topic and the invites) is
first built and authorised in memory; only when all of them pass is anything stored, and
the local events are stored as one batch (one transaction). A too large name, a power
level out of range or an override that locks the creator out used to fail at its own
event, after the room, the creator's join and the earlier events were committed.

Invites of users on other servers need their server's countersignature, so they go out
once the room exists, as Synapse sends them; before anything is created their servers
must answer, so an unreachable invitee's server fails the request and leaves no room.
"""

from __future__ import annotations

import copy
import string
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from homeserver.events.event import Event
from homeserver.handlers.profile import MIRRORED_FIELDS
from homeserver.handlers.room_events import EventSpec, RoomInfo
from homeserver.handlers.room_events.builder import check_power_levels_content
from homeserver.http.errors import BadJson, Forbidden, MatrixError, UnsupportedRoomVersion
from homeserver.protocol import auth_rules
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion, get_room_version
from homeserver.storage.events import StateMap
from homeserver.util.ids import random_string, server_of

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester

# Synapse's presets: a public chat gets no m.room.guest_access event at all (guests may
# not join it), and each preset's power levels are merged into the defaults (nested
# objects key by key).
PRESETS: dict[str, dict[str, Any]] = {
    "private_chat": {
        "join_rule": "invite",
        "history_visibility": "shared",
        "guest_can_join": True,
        "invitees_admin": False,
        "power_levels": {"invite": 0},
    },
    "trusted_private_chat": {
        "join_rule": "invite",
        "history_visibility": "shared",
        "guest_can_join": True,
        "invitees_admin": True,
        "power_levels": {"invite": 0},
    },
    "public_chat": {
        "join_rule": "public",
        "history_visibility": "shared",
        "guest_can_join": False,
        "invitees_admin": False,
        "power_levels": {"events": {"m.call.invite": 50}},
    },
}

MAX_ALIAS_LENGTH = 255  # Synapse's MAX_ALIAS_LENGTH, in characters of the full alias
# Characters refused in room_alias_name: Synapse refuses whitespace and ':' (the alias
# would not parse); NUL cannot be stored in PostgreSQL's alias column.
ALIAS_FORBIDDEN_CHARS = frozenset(string.whitespace) | {":", "\x00"}



@dataclass
class RoomRequest:
    """A /createRoom body with every field's shape checked (rest/client/rooms.py parses it)."""

    room_version: str | None = None
    visibility: str = "private"
    preset: str | None = None
    name: str | None = None
    topic: str | None = None
    room_alias_name: str | None = None
    invite: list[str] = field(default_factory=list)
    # each entry has "type", "state_key" and "content"
    initial_state: list[dict[str, Any]] = field(default_factory=list)
    creation_content: dict[str, Any] = field(default_factory=dict)
    power_level_content_override: dict[str, Any] | None = None
    is_direct: bool = False


def default_power_levels(creator: str, version: RoomVersion, preset: str) -> dict[str, Any]:
    """Synapse's generated power levels: no ``notifications`` (its default applies),
    ``historical`` (MSC2716), and from v12 (creators outrank every level) no creator in
    ``users`` and a tombstone level above 100, so that only creators upgrade the room."""
    creators_rule = version.creators_have_infinite_power
    pl: dict[str, Any] = {
        "users": {} if creators_rule else {creator: 100},
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            "m.room.tombstone": 150 if creators_rule else 100,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 50,
        "historical": 100,
    }
    return _deep_merge(pl, PRESETS[preset]["power_levels"])


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    for key, value in override.items():
        if isinstance(base.get(key), dict) and isinstance(value, dict):
            base[key] = _deep_merge(dict(base[key]), value)
        else:
            base[key] = copy.deepcopy(value)
    return base


@dataclass
class _Plan:
    """What a request makes: the events stored in one batch, and the remote invites sent
    after (their events were authorised in the dry run too)."""

    version: RoomVersion
    alias: str | None
    local_events: list[EventSpec]
    remote_invites: list[EventSpec]


class RoomCreationHandler:
    def __init__(self, hs: HomeServer) -> None:
        from homeserver.handlers.room_upgrade import RoomUpgrader

        self.hs = hs
        self.store = hs.store
        self._aliases_in_creation: set[str] = set()
        self._upgrader = RoomUpgrader(hs, self)

    async def create_room(self, requester: Requester, request: RoomRequest) -> dict[str, Any]:
        # Two requests for one alias at once (a double-click, a client retry) both passed
        # the "alias free?" check and both made a room, the second without its alias:
        # reserve the name for the duration of the creation.
        name = request.room_alias_name
        if not name:
            return await self._create_room(requester, request)
        if name in self._aliases_in_creation:
            raise MatrixError(400, "M_ROOM_IN_USE", "Room alias already taken")
        self._aliases_in_creation.add(name)
        try:
            return await self._create_room(requester, request)
        finally:
            self._aliases_in_creation.discard(name)

    async def _create_room(self, requester: Requester, request: RoomRequest) -> dict[str, Any]:
        plan = await self._plan(requester, request)
        version = plan.version
        if version.room_id_from_create_event:
            room_id = "!pending-" + random_string(18)
        else:
            room_id = f"!{random_string(18)}:{self.hs.server_name}"
        await self._dry_run(room_id, version, plan.local_events + plan.remote_invites)
        await self._check_remote_servers(plan.remote_invites)
        self._charge_invites(requester.user_id, request)

        room = self.hs.rooms.register_new_room(room_id, version)
        try:
            events = await self.hs.rooms.send_batch(room, plan.local_events)
        except BaseException:
            self.hs.rooms.forget_cached_room(room.room_id)
            raise
        room_id = events[0].room_id
        if plan.alias:
            await self.store.create_alias(plan.alias, room_id, requester.user_id)
        if request.visibility == "public":
            await self.store.set_room_visibility(room_id, True)
        for spec in plan.remote_invites:
            # As Synapse: a remote invite failing now (its server answered a moment ago)
            # fails the request; the room stays, with the invites that went out.
            spec.before_persist = self.hs.federation.countersign_invite
            await self.hs.rooms.send(room_id, spec)
        result: dict[str, Any] = {"room_id": room_id}
        if plan.alias:
            result["room_alias"] = plan.alias
        return result

    async def _plan(self, requester: Requester, request: RoomRequest) -> _Plan:
        """Checks what needs more than the request's shape, and lists the room's events."""
        user_id = requester.user_id
        version_id = request.room_version or self.hs.config.default_room_version
        if version_id not in KNOWN_ROOM_VERSIONS:
            raise UnsupportedRoomVersion(f"Room version {version_id!r} is not supported")
        version = get_room_version(version_id)
        preset = request.preset or ("public_chat" if request.visibility == "public" else "private_chat")
        if preset not in PRESETS:
            raise BadJson(f"Unknown preset {preset!r}")
        p = PRESETS[preset]
        invitees = list(request.invite)

        alias = None
        if request.room_alias_name:
            alias = f"#{request.room_alias_name}:{self.hs.server_name}"
            if len(alias) > MAX_ALIAS_LENGTH:
                raise MatrixError(400, "M_INVALID_PARAM", f"Can't create aliases longer than {MAX_ALIAS_LENGTH} characters")
            if await self.store.get_alias(alias) is not None:
                raise MatrixError(400, "M_ROOM_IN_USE", "Room alias already taken")

        initial_pl = next(
            (e["content"] for e in request.initial_state if (e["type"], e["state_key"]) == ("m.room.power_levels", "")),
            None,
        )
        override = request.power_level_content_override
        if (
            override is not None
            and initial_pl is None
            and not version.creators_have_infinite_power
            and "users" in override
            and (not isinstance(override["users"], dict) or user_id not in override["users"])
        ):
            # Synapse answers 400 without an errcode (M_UNKNOWN); the spec names this one.
            raise MatrixError(
                400, "M_INVALID_ROOM_STATE", f"power_level_content_override: 'users' does not contain {user_id}"
            )

        create_content = dict(request.creation_content)
        # creation_content cannot choose the version: room_version does (as in Synapse).
        create_content["room_version"] = version.identifier
        if not version.implicit_room_creator:
            create_content["creator"] = user_id
        if version.creators_have_infinite_power and p["invitees_admin"] and invitees:
            # v12: in a trusted private chat the invitees are co-creators, as Synapse does.
            create_content.setdefault("additional_creators", list(dict.fromkeys(invitees)))

        if initial_pl is not None:
            # As Synapse: power levels in initial_state replace the generated ones, and
            # power_level_content_override does not apply.
            power_levels = copy.deepcopy(initial_pl)
        else:
            power_levels = default_power_levels(user_id, version, preset)
            if p["invitees_admin"] and not version.creators_have_infinite_power:
                for invitee in invitees:
                    power_levels["users"][invitee] = 100
            for k, v in (override or {}).items():
                power_levels[k] = copy.deepcopy(v)
        if version.enforce_int_power_levels:
            check_power_levels_content(power_levels)

        # Only the name and avatar go into member events, not the extended profile fields.
        profile = {k: v for k, v in (await self.hs.profile.get_profile(user_id)).items() if k in MIRRORED_FIELDS}
        specs: list[EventSpec] = [
            EventSpec("m.room.create", user_id, create_content, state_key=""),
            EventSpec("m.room.member", user_id, {"membership": "join", **profile}, state_key=user_id),
            EventSpec("m.room.power_levels", user_id, power_levels, state_key=""),
        ]
        state_keys = {(e["type"], e["state_key"]) for e in request.initial_state}
        if alias and ("m.room.canonical_alias", "") not in state_keys:
            specs.append(EventSpec("m.room.canonical_alias", user_id, {"alias": alias}, state_key=""))
        preset_state = [
            ("m.room.join_rules", {"join_rule": p["join_rule"]}),
            ("m.room.history_visibility", {"history_visibility": p["history_visibility"]}),
        ]
        if p["guest_can_join"]:
            preset_state.append(("m.room.guest_access", {"guest_access": "can_join"}))
        for etype, content in preset_state:
            if (etype, "") not in state_keys:
                specs.append(EventSpec(etype, user_id, content, state_key=""))
        # One event per (type, state_key): a later entry replaces an earlier one in its
        # place, as Synapse keeps initial_state in an ordered dict.
        chosen: dict[tuple[str, str], dict[str, Any]] = {}
        for ev in request.initial_state:
            if ev["type"] not in ("m.room.create", "m.room.member", "m.room.power_levels"):
                chosen[(ev["type"], ev["state_key"])] = ev["content"]
        for (etype, state_key), content in chosen.items():
            specs.append(EventSpec(etype, user_id, copy.deepcopy(content), state_key=state_key))
        if request.name is not None:
            specs.append(EventSpec("m.room.name", user_id, {"name": request.name}, state_key=""))
        if request.topic is not None:
            # The spec's m.topic (MSC3765) is an object holding an m.text block list.
            topic = {"topic": request.topic, "m.topic": {"m.text": [{"body": request.topic}]}}
            specs.append(EventSpec("m.room.topic", user_id, topic, state_key=""))

        extra = {"is_direct": True} if request.is_direct else {}
        remote_invites: list[EventSpec] = []
        for invitee in invitees:
            # The membership handler's member content (the invitee's profile when local).
            content = await self.hs.membership._member_content(invitee, "invite", extra)
            spec = EventSpec("m.room.member", user_id, content, state_key=invitee)
            (specs if self.hs.is_mine(invitee) else remote_invites).append(spec)
        return _Plan(version, alias, specs, remote_invites)

    async def _dry_run(self, room_id: str, version: RoomVersion, specs: list[EventSpec]) -> None:
        """Builds and authorises ``specs`` in order on an empty room, in memory only, with
        the pipeline's own builder and authoriser: raises the error the first refused
        event would get (413 too large, 400 bad JSON, 403 auth rules) before anything
        is stored."""
        builder, authoriser = self.hs.rooms.builder, self.hs.rooms.authoriser
        room = RoomInfo(room_id, version, {}, None, 0, set(), 0)
        state: StateMap = {}
        extremities: set[str] = set()
        depth = 0
        built: dict[str, Event] = {}
        for spec in specs:
            event = await builder.build(room, spec, state, extremities, depth, built)
            try:
                await authoriser.check(event.with_event_id(), version, state, built)
            except auth_rules.AuthError as e:
                raise Forbidden(str(e)) from None
            built[event.event_id] = event
            if event.type == "m.room.create":
                room.room_id = event.room_id  # v12: known only now
            if event.is_state:
                state[event.state_pair] = event.event_id
            extremities = {event.event_id}
            depth = event.depth

    async def _check_remote_servers(self, remote_invites: list[EventSpec]) -> None:
        """Each remote invitee's server must answer before the room is made: otherwise
        the request would fail at the invite, after the room was stored. Answered as
        Synapse answers an invite to an unreachable server (502), or a denied one (403)."""
        for server in sorted({server_of(spec.state_key or "") for spec in remote_invites}):
            try:
                await self.hs.federation.get_version(server)
            except MatrixError as e:
                if e.code == 403:
                    raise
                raise MatrixError(502, "M_UNKNOWN", f"Can't reach {server} to invite its users: {e.msg}") from None

    def _charge_invites(self, user_id: str, request: RoomRequest) -> None:
        """The invites of a new room count against the sender's invite rate, before the
        room exists (they do not go through update_membership, which charges one each)."""
        for _ in request.invite:
            self.hs.ratelimiter.check("invites", user_id)

    # -- room upgrades (room_upgrade.py) clone rooms with the same plan -----------------

    async def plan(self, requester: Requester, request: RoomRequest) -> _Plan:
        """The events a createRoom request makes, checked but not built."""
        return await self._plan(requester, request)

    async def store_new_room(self, room_id: str, plan: _Plan) -> list[Event]:
        """The local events of ``plan`` as a new room ``room_id`` (a v12 room's id comes
        from its create event): dry run, then one batch; nothing stored on failure."""
        await self._dry_run(room_id, plan.version, plan.local_events)
        room = self.hs.rooms.register_new_room(room_id, plan.version)
        try:
            return await self.hs.rooms.send_batch(room, plan.local_events)
        except BaseException:
            self.hs.rooms.forget_cached_room(room.room_id)
            raise

    async def upgrade_room(
        self, requester: Requester, old_room_id: str, new_version_id: str, additional_creators: Any = None
    ) -> str:
        return await self._upgrader.upgrade_room(requester, old_room_id, new_version_id, additional_creators)
