"""Joining, inviting, leaving, kicking, banning and knocking.

Local rooms go straight through the event pipeline (the auth rules decide what is
allowed); rooms this server is not in are reached through ``hs.federation``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeserver.handlers.room_events import EventSpec
from homeserver.http.errors import BadJson, Forbidden, MatrixError, NotFound
from homeserver.protocol import auth_rules
from homeserver.util.ids import is_valid_alias, is_valid_room_id, is_valid_user_id, server_of

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.events.event import Event
    from homeserver.handlers.auth import Requester
    from homeserver.handlers.room_events import RoomInfo

ACTIONS = {
    "join": "join",
    "invite": "invite",
    "leave": "leave",
    "kick": "leave",
    "ban": "ban",
    "unban": "leave",
    "knock": "knock",
}


def allowed_room_ids(join_rules_content: dict[str, Any]) -> list[str]:
    """The rooms a restricted join rule's ``allow`` names (m.room_membership entries;
    anything malformed is skipped)."""
    allow = join_rules_content.get("allow")
    return [
        entry["room_id"]
        for entry in (allow if isinstance(allow, list) else [])
        if isinstance(entry, dict) and entry.get("type") == "m.room_membership" and isinstance(entry.get("room_id"), str)
    ]


class MembershipHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store

    async def get_membership(self, room_id: str, user_id: str) -> str | None:
        ev = await self.hs.rooms.get_current_state_event(room_id, "m.room.member", user_id)
        return ev.membership if ev is not None else None

    async def require_joined(self, room_id: str, user_id: str) -> None:
        if await self.get_membership(room_id, user_id) != "join":
            raise Forbidden(f"User {user_id} not in room {room_id}")

    async def user_power_level(self, room_id: str, user_id: str) -> int | float:
        room = await self.hs.rooms.get_room(room_id)
        if room is None:
            return 0
        state = await self.hs.rooms.get_state_events(
            room_id, {k: v for k, v in room.state.items() if k in (("m.room.power_levels", ""), ("m.room.create", ""))}
        )
        return auth_rules.get_user_power_level(user_id, {k: e.with_event_id() for k, e in state.items()}, room.version)

    async def user_can_send_state(self, room_id: str, user_id: str, event_type: str) -> bool:
        room = await self.hs.rooms.get_room(room_id)
        if room is None:
            return False
        state = await self.hs.rooms.get_state_events(
            room_id, {k: v for k, v in room.state.items() if k in (("m.room.power_levels", ""), ("m.room.create", ""))}
        )
        # The auth rules' reading of the levels: before room version 10 they may be
        # strings ("50"), which compared as they were raised a TypeError (a 500).
        pdus = {k: e.with_event_id() for k, e in state.items()}
        return auth_rules.user_can_send(user_id, event_type, "", pdus, room.version)

    async def restricted_join_authoriser(self, room: RoomInfo, user_id: str) -> str | None:
        """For a join to a ``restricted`` (room versions 8+) or ``knock_restricted``
        (10+) room: one of our joined users who may invite, to name in the join's
        ``join_authorised_via_users_server``; None when the room is not restricted or
        the user is invited or joined already (Synapse's check_restricted_join_rules
        and get_user_which_could_invite, for local joins and for make_join alike).

        403 when the user is in none of the allowed rooms; 400
        M_UNABLE_TO_AUTHORISE_JOIN when a remote user may be in an allowed room we are
        not in; 400 M_UNABLE_TO_GRANT_JOIN when none of our users may invite."""
        rules = await self._restricted_rules_for(room, user_id)
        if rules is None:
            return None
        allowed_rooms = allowed_room_ids(rules.content)
        for allowed in allowed_rooms:
            # Only rooms we are in count: the state of a room we left is stale (Synapse
            # drops it, and so cannot vouch for anyone through that room).
            other = await self.hs.rooms.get_room(allowed)
            if other is None or not other.joined_local:
                continue
            ev = await self.hs.rooms.get_current_state_event(allowed, "m.room.member", user_id)
            if ev is not None and ev.membership == "join":
                break
        else:
            if not self.hs.is_mine(user_id):
                for allowed in allowed_rooms:
                    other = await self.hs.rooms.get_room(allowed)
                    if other is None or not other.joined_local:
                        raise MatrixError(
                            400, "M_UNABLE_TO_AUTHORISE_JOIN", f"Unable to check if {user_id} is in allowed rooms."
                        )
            raise Forbidden("You do not belong to any of the required rooms/spaces to join this room.")
        for candidate in sorted(room.joined_local):
            if await self._can_invite(room, candidate):
                return candidate
        raise MatrixError(400, "M_UNABLE_TO_GRANT_JOIN", "Unable to find a user which could issue an invite")

    async def _restricted_rules_for(self, room: RoomInfo, user_id: str) -> Event | None:
        """The join rules event when a join of ``user_id`` needs a restricted (v8+) or
        knock_restricted (v10+) authorisation: not when the room is otherwise, nor when
        the user is invited or joined already."""
        version = room.version
        ids = {k: room.state[k] for k in (("m.room.join_rules", ""), ("m.room.member", user_id)) if k in room.state}
        events = await self.store.get_events(ids.values())
        rules = events.get(ids.get(("m.room.join_rules", ""), ""))
        rule = rules.content.get("join_rule") if rules is not None else None
        restricted = version.restricted_join_rule and (
            rule == "restricted" or (rule == "knock_restricted" and version.knock_restricted_join_rule)
        )
        if rules is None or not restricted:
            return None
        member = events.get(ids.get(("m.room.member", user_id), ""))
        if member is not None and member.membership in ("join", "invite"):
            return None
        return rules

    async def _servers_that_can_invite(self, room: RoomInfo) -> set[str]:
        """The servers of the room's joined members whom the power levels let invite
        (Synapse's get_users_which_can_issue_invite)."""
        keys = (("m.room.power_levels", ""), ("m.room.create", ""))
        state = await self.hs.rooms.get_state_events(room.room_id, {k: room.state[k] for k in keys if k in room.state})
        auth = {k: e.with_event_id() for k, e in state.items()}
        needed = auth_rules.get_named_power_level("invite", auth)
        members = await self.hs.rooms.get_state_events(
            room.room_id, {k: v for k, v in room.state.items() if k[0] == "m.room.member"}
        )
        return {
            server_of(key[1])
            for key, ev in members.items()
            if ev.membership == "join" and auth_rules.get_user_power_level(key[1], auth, room.version) >= needed
        }

    async def _restricted_join_elsewhere(self, room: RoomInfo, user_id: str) -> list[str] | None:
        """For a room we are in: the servers to join ``user_id`` through when we cannot
        authorise their restricted join ourselves (none of our users may invite, or they
        may be in an allowed room we are not in); None for a local join. Synapse's
        _should_perform_remote_join."""
        if await self._restricted_rules_for(room, user_id) is None:
            return None
        servers = await self._servers_that_can_invite(room)
        if self.hs.server_name not in servers:
            return sorted(servers)
        try:
            await self.restricted_join_authoriser(room, user_id)
        except MatrixError as e:
            if e.errcode == "M_UNABLE_TO_AUTHORISE_JOIN":
                return sorted(servers - {self.hs.server_name})
            raise
        return None

    async def _can_invite(self, room: RoomInfo, user_id: str) -> bool:
        keys = (("m.room.power_levels", ""), ("m.room.create", ""))
        state = await self.hs.rooms.get_state_events(room.room_id, {k: room.state[k] for k in keys if k in room.state})
        auth = {k: e.with_event_id() for k, e in state.items()}
        level = auth_rules.get_user_power_level(user_id, auth, room.version)
        return level >= auth_rules.get_named_power_level("invite", auth)

    async def resolve_room(self, room_id_or_alias: str) -> tuple[str, list[str]]:
        """A room id (and servers to join through) for an id or alias."""
        if room_id_or_alias.startswith("#"):
            if not is_valid_alias(room_id_or_alias):
                raise MatrixError(400, "M_INVALID_PARAM", "Invalid room alias")
            return await self.hs.directory.resolve_alias(room_id_or_alias)
        if not is_valid_room_id(room_id_or_alias):
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid room id")
        return room_id_or_alias, []

    async def join(
        self, requester: Requester, room_id_or_alias: str, via: list[str], content_extra: dict[str, Any] | None = None
    ) -> str:
        self.hs.ratelimiter.check("joins", requester.user_id)
        room_id, servers = await self.resolve_room(room_id_or_alias)
        await self._check_not_blocked(room_id)
        if requester.is_guest:
            await self.hs.guests.check_can_join(room_id)
            content_extra = self.hs.guests.member_content(requester, content_extra)
        servers = list(dict.fromkeys(list(via) + servers))
        room = await self.hs.rooms.get_room(room_id)
        local_in_room = room is not None and bool(room.joined_local) or (
            room is not None and server_of(room_id) == self.hs.server_name
        )
        if room is not None and local_in_room:
            elsewhere = await self._restricted_join_elsewhere(room, requester.user_id) if room.joined_local else None
            if elsewhere is None:
                await self.update_membership(requester, room_id, requester.user_id, "join", content_extra=content_extra)
                return room_id
            # A restricted join we cannot authorise: through a server that can, whatever
            # servers the client named (as Synapse).
            servers = [s for s in elsewhere if s != self.hs.server_name]
            if not servers:
                raise MatrixError(400, "M_UNABLE_TO_GRANT_JOIN", "Unable to find a user which could issue an invite")
            content = await self._member_content(requester.user_id, "join", content_extra)
            return await self.hs.federation.remote_join(room_id, requester.user_id, servers, content)
        # The servers the client named, the alias's, and the one that invited us. The room
        # id's server only when there is no other: Synapse never adds it (v12 room ids name
        # no server, and a join the client sent through given servers must not succeed
        # through another, Complement's restricted-room fail-over); WSPR keeps it for a
        # bare room id, where Synapse answers 404.
        servers += await self._remote_servers_for(requester.user_id, room_id, room_id_server=False)
        servers = [s for s in dict.fromkeys(servers) if s != self.hs.server_name]
        if not servers and server_of(room_id) not in ("", self.hs.server_name):
            servers = [server_of(room_id)]
        if not servers:
            if room is not None:
                await self.update_membership(requester, room_id, requester.user_id, "join", content_extra=content_extra)
                return room_id
            raise NotFound("No known servers to join the room through")
        content = await self._member_content(requester.user_id, "join", content_extra)
        return await self.hs.federation.remote_join(room_id, requester.user_id, servers, content)

    async def _member_content(self, user_id: str, membership: str, extra: dict[str, Any] | None) -> dict[str, Any]:
        content: dict[str, Any] = dict(extra or {})
        # Never taken from a client (it would not be signed by the authorising server):
        # a display name update of a restricted room may carry it back (as Synapse).
        content.pop("join_authorised_via_users_server", None)
        content["membership"] = membership
        if membership in ("join", "knock", "invite") and self.hs.is_mine(user_id):
            try:
                profile = await self.hs.profile.get_profile(user_id)
            except MatrixError:
                profile = {}
            for k in ("displayname", "avatar_url"):
                if k in profile and k not in content:
                    content[k] = profile[k]
        return content

    async def update_membership(
        self,
        requester: Requester,
        room_id: str,
        target: str,
        action: str,
        reason: str | None = None,
        content_extra: dict[str, Any] | None = None,
        txn_id: str | None = None,
        via: list[str] | None = None,
    ) -> str:
        if action not in ACTIONS:
            raise BadJson(f"Unknown membership action {action}")
        if not is_valid_user_id(target):
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid user id")
        if reason is not None and not isinstance(reason, str):
            raise BadJson("reason must be a string")
        membership = ACTIONS[action]
        sender = requester.user_id
        content_extra = self.hs.guests.member_content(requester, content_extra)
        if membership not in ("leave", "ban"):
            await self._check_not_blocked(room_id)
        if action in ("join", "leave", "knock") and target != sender:
            raise Forbidden("Cannot change another user's membership this way")
        if action == "invite":
            self.hs.ratelimiter.check("invites", sender)
        room = await self.hs.rooms.get_room(room_id)
        current = await self.get_membership(room_id, target) if room is not None else None
        # Synapse's update_membership_locked answers these with 403 M_BAD_STATE.
        if action == "unban" and current != "ban":
            raise MatrixError(403, "M_BAD_STATE", f"Cannot unban user who was not banned (membership={current})")
        if current == "ban" and action in ("invite", "kick"):
            raise MatrixError(403, "M_BAD_STATE", f"Cannot {action} user who was banned")
        if action == "kick" and current not in ("join", "invite", "knock"):
            raise Forbidden("The target user is not in the room")
        if action == "invite" and current == "join":
            raise Forbidden(f"{target} is already in the room")
        content_source = target if membership in ("join", "knock") else None
        content = await self._member_content(content_source or target, membership, content_extra)
        if membership not in ("join", "knock", "invite"):
            content.pop("displayname", None)
            content.pop("avatar_url", None)
        if reason:
            content["reason"] = reason
        if room is None or (not room.joined_local and action in ("leave",)):
            # Rejecting an invite to, or leaving, a room this server is not in.
            if action == "leave":
                if await self.store.get_local_membership(target, room_id) is None:
                    # As Synapse: nothing to leave or reject here, and no server to ask.
                    raise NotFound("Not a known room")
                servers = await self._remote_servers_for(target, room_id)
                await self.hs.federation.remote_leave(room_id, target, servers, content)
                return room_id
            if action == "knock":
                return await self._remote_knock(room_id, target, via, content)
            if room is None:
                raise NotFound("Unknown room")
        if action == "knock" and not room.joined_local:
            return await self._remote_knock(room_id, target, via, content)
        if action == "join" and room.joined_local:
            authoriser = await self.restricted_join_authoriser(room, target)
            if authoriser is not None:
                content["join_authorised_via_users_server"] = authoriser
        if room.joined_local:
            # The same membership sent again by the same sender is a no-op, as on Synapse
            # (joining a room twice does not make a second join event).
            old = await self.hs.rooms.get_current_state_event(room_id, "m.room.member", target)
            if old is not None and old.sender == sender and old.content == content:
                return room_id
        spec = EventSpec("m.room.member", sender, content, state_key=target, txn_id=txn_id, device_id=requester.device_id)
        if action == "invite" and not self.hs.is_mine(target):
            # The invitee's server must countersign the invite before it is persisted.
            spec.before_persist = self.hs.federation.countersign_invite
        event = await self.hs.rooms.send(room_id, spec)
        return event.room_id

    async def _check_not_blocked(self, room_id: str) -> None:
        """A room an admin blocked (storage/admin.py) takes no joins, invites or knocks."""
        if await self.store.room_blocked_by(room_id) is not None:
            raise MatrixError(403, "M_UNKNOWN", "This room has been blocked on this server")

    async def _remote_knock(self, room_id: str, user_id: str, via: list[str] | None, content: dict[str, Any]) -> str:
        servers = list(via or []) + await self._remote_servers_for(user_id, room_id)
        servers = [s for s in dict.fromkeys(servers) if s != self.hs.server_name]
        return await self.hs.federation.remote_knock(room_id, user_id, servers, content)

    async def _remote_servers_for(self, user_id: str, room_id: str, room_id_server: bool = True) -> list[str]:
        """Servers to contact for a room we hold only an invite/knock for."""
        servers = []
        lm = await self.store.get_local_membership(user_id, room_id)
        if lm is not None:
            ev = await self.store.get_event(lm.event_id)
            if ev is not None:
                servers.append(server_of(ev.sender))
        if room_id_server and ":" in room_id:
            servers.append(server_of(room_id))
        return [s for s in dict.fromkeys(servers) if s and s != self.hs.server_name]

    async def forget(self, requester: Requester, room_id: str) -> None:
        membership = await self.store.get_local_membership(requester.user_id, room_id)
        if membership is None:
            raise NotFound("You are not a member of this room")
        if membership.membership in ("join", "invite", "knock"):
            raise MatrixError(400, "M_UNKNOWN", "You must leave the room before forgetting it")
        await self.store.forget_room(requester.user_id, room_id)
        # The room leaves the user's sliding sync lists.
        self.hs.sliding_sync.room_lists.forget_memberships(requester.user_id)
