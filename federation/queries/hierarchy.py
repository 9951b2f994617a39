"""``GET /_matrix/federation/v1/hierarchy/{roomId}``: a space and its children as
another server may see them (public, world-readable or knockable rooms, or rooms it
has a member in)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from federation.destinations import RoomServers
from federation.server_acl import check_server_acl
from federation.transport.server import InboundRequests
from homeserver.http.errors import Forbidden, NotFound
from homeserver.http.request import parse_boolean

if TYPE_CHECKING:
    from homeserver.app import HomeServer

V1 = "/_matrix/federation/v1"


class HierarchyEndpoint:
    def __init__(self, hs: HomeServer, room_servers: RoomServers) -> None:
        self.hs = hs
        self.room_servers = room_servers

    def register(self, inbound: InboundRequests) -> None:
        self.hs.federation_router.register(
            "GET", V1 + r"/hierarchy/(?P<room_id>[^/]+)", inbound.authenticated(self.hierarchy)
        )

    async def hierarchy(self, request: Request, origin: str, room_id: str) -> tuple[int, Any]:
        await check_server_acl(self.hs, room_id, origin)
        suggested_only = parse_boolean(request, "suggested_only", False)
        root = await self._room_entry(room_id, origin, require_access=True)
        if root is None:
            raise NotFound("Unknown room")
        children: list[dict[str, Any]] = []
        inaccessible: list[str] = []
        for child in root.get("children_state", []):
            if suggested_only and child.get("content", {}).get("suggested") is not True:
                continue
            child_id = child.get("state_key")
            entry = await self._room_entry(child_id, origin, require_access=False)
            if entry is None:
                continue
            if entry.pop("_accessible"):
                children.append(entry)
            else:
                inaccessible.append(child_id)
        root.pop("_accessible", None)
        if suggested_only:
            root["children_state"] = [c for c in root["children_state"] if c.get("content", {}).get("suggested") is True]
        return 200, {"room": root, "children": children, "inaccessible_children": inaccessible}

    async def _room_entry(self, room_id: Any, origin: str, require_access: bool) -> dict[str, Any] | None:
        """A hierarchy room entry; None for rooms we don't know. ``_accessible`` says whether
        ``origin`` may see it (public / world-readable / knockable, or it has a member there)."""
        hs = self.hs
        if not isinstance(room_id, str) or await hs.rooms.get_room(room_id) is None:
            return None
        summary = await hs.directory.room_summary(room_id)
        accessible = summary.get("join_rule") in ("public", "knock", "knock_restricted") or summary.get("world_readable")
        if not accessible:
            servers = await self.room_servers.joined_servers(room_id)
            accessible = origin in servers
        if require_access and not accessible:
            raise Forbidden("You are not allowed to view this room")
        room = await hs.rooms.get_room(room_id)
        assert room is not None
        child_keys = {k: v for k, v in room.state.items() if k[0] == "m.space.child"}
        events = await hs.rooms.get_state_events(room_id, child_keys)
        children_state = []
        for (_, state_key), ev in sorted(events.items()):
            if not isinstance(ev.content.get("via"), list) or not ev.content["via"]:
                continue  # a child without via is removed
            children_state.append(
                {"type": "m.space.child", "state_key": state_key, "sender": ev.sender, "content": ev.content,
                 "origin_server_ts": ev.origin_server_ts}
            )
        entry = dict(summary)
        entry.pop("encryption", None)
        entry["children_state"] = children_state
        entry["_accessible"] = bool(accessible)
        return entry
