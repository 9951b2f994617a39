"""Joining, inviting, leaving, kicking, banning and knocking.

Local rooms go straight through the event pipeline (the auth rules decide what is
allowed); rooms this server is not in are reached through the federation hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable

from homeserver.handlers.room_events import EventSpec
from homeserver.http.errors import BadJson, Forbidden, MatrixError, NotFound
from homeserver.protocol import auth_rules
from homeserver.util.ids import is_valid_alias, is_valid_room_id, is_valid_user_id, server_of

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester

RemoteJoin = Callable[[str, str, list[str], dict[str, Any]], Awaitable[str]]

ACTIONS = {
    "join": "join",
    "invite": "invite",
    "leave": "leave",
    "kick": "leave",
    "ban": "ban",
    "unban": "leave",
    "knock": "knock",
}


class MembershipHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self.hs = hs
        self.store = hs.store
        # Set by the federation layer: join/leave/knock/invite rooms on other servers.
        self.remote_join: RemoteJoin | None = None
        self.remote_leave: Callable[[str, str, list[str], dict[str, Any]], Awaitable[None]] | None = None
        self.remote_knock: RemoteJoin | None = None
        self.remote_invite: Callable[[Any], Awaitable[Any]] | None = None
        self.resolve_remote_alias: Callable[[str], Awaitable[tuple[str, list[str]]]] | None = None

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
        pl_event = await self.hs.rooms.get_current_state_event(room_id, "m.room.power_levels")
        level = await self.user_power_level(room_id, user_id)
        if pl_event is None:
            return level >= 50 or level == float("inf")
        events = pl_event.content.get("events", {})
        needed = events.get(event_type, pl_event.content.get("state_default", 50))
        return level >= needed

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
        self, requester: "Requester", room_id_or_alias: str, via: list[str], content_extra: dict[str, Any] | None = None
    ) -> str:
        self.hs.ratelimiter.check("joins", requester.user_id)
        room_id, servers = await self.resolve_room(room_id_or_alias)
        servers = list(dict.fromkeys(list(via) + servers))
        room = await self.hs.rooms.get_room(room_id)
        local_in_room = room is not None and bool(room.joined_local) or (
            room is not None and server_of(room_id) == self.hs.server_name
        )
        if room is not None and local_in_room:
            await self.update_membership(requester, room_id, requester.user_id, "join", content_extra=content_extra)
            return room_id
        if room_id.split(":", 1)[-1] != self.hs.server_name and ":" in room_id:
            servers.append(server_of(room_id))
        # The server that invited us knows the room (v12 room ids name no server).
        servers += await self._remote_servers_for(requester.user_id, room_id)
        servers = [s for s in dict.fromkeys(servers) if s != self.hs.server_name]
        if self.remote_join is None or not servers:
            if room is not None:
                await self.update_membership(requester, room_id, requester.user_id, "join", content_extra=content_extra)
                return room_id
            raise NotFound("No known servers to join the room through")
        content = await self._member_content(requester.user_id, "join", content_extra)
        return await self.remote_join(room_id, requester.user_id, servers, content)

    async def _member_content(self, user_id: str, membership: str, extra: dict[str, Any] | None) -> dict[str, Any]:
        content: dict[str, Any] = dict(extra or {})
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
        requester: "Requester",
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
        if action in ("join", "leave", "knock") and target != sender:
            raise Forbidden("Cannot change another user's membership this way")
        if action == "invite":
            self.hs.ratelimiter.check("invites", sender)
        room = await self.hs.rooms.get_room(room_id)
        current = await self.get_membership(room_id, target) if room is not None else None
        if action == "kick" and current not in ("join", "invite", "knock"):
            raise Forbidden("The target user is not in the room")
        if action == "unban" and current != "ban":
            raise Forbidden("The target user is not banned")
        if action == "invite" and current in ("join", "ban"):
            raise Forbidden(f"{target} is already in the room" if current == "join" else f"{target} is banned from the room")
        content_source = target if membership in ("join", "knock") else None
        content = await self._member_content(content_source or target, membership, content_extra)
        if membership not in ("join", "knock", "invite"):
            content.pop("displayname", None)
            content.pop("avatar_url", None)
        if reason:
            content["reason"] = reason
        if room is None or (not room.joined_local and action in ("leave",)):
            # Rejecting an invite to, or leaving, a room this server is not in.
            if action == "leave" and self.remote_leave is not None:
                servers = await self._remote_servers_for(target, room_id)
                await self.remote_leave(room_id, target, servers, content)
                return room_id
            if action == "knock" and self.remote_knock is not None:
                servers = list(via or []) + await self._remote_servers_for(target, room_id)
                servers = [s for s in dict.fromkeys(servers) if s != self.hs.server_name]
                return await self.remote_knock(room_id, target, servers, content)
            if room is None:
                raise NotFound("Unknown room")
        if action == "knock" and room is not None and not room.joined_local and self.remote_knock is not None:
            servers = list(via or []) + await self._remote_servers_for(target, room_id)
            servers = [s for s in dict.fromkeys(servers) if s != self.hs.server_name]
            return await self.remote_knock(room_id, target, servers, content)
        spec = EventSpec("m.room.member", sender, content, state_key=target, txn_id=txn_id, device_id=requester.device_id)
        if action == "invite" and not self.hs.is_mine(target) and self.remote_invite is not None:
            # The invitee's server must countersign the invite before it is persisted.
            spec.before_persist = self.remote_invite
        event = await self.hs.rooms.send(room_id, spec)
        return event.room_id

    async def _remote_servers_for(self, user_id: str, room_id: str) -> list[str]:
        """Servers to contact for a room we hold only an invite/knock for."""
        servers = []
        lm = await self.store.get_local_membership(user_id, room_id)
        if lm is not None:
            ev = await self.store.get_event(lm.event_id)
            if ev is not None:
                servers.append(server_of(ev.sender))
        if ":" in room_id:
            servers.append(server_of(room_id))
        return [s for s in dict.fromkeys(servers) if s and s != self.hs.server_name]

    async def forget(self, requester: "Requester", room_id: str) -> None:
        membership = await self.store.get_local_membership(requester.user_id, room_id)
        if membership is None:
            raise NotFound("You are not a member of this room")
        if membership.membership in ("join", "invite", "knock"):
            raise MatrixError(400, "M_UNKNOWN", "You must leave the room before forgetting it")
        await self.store.forget_room(requester.user_id, room_id)
