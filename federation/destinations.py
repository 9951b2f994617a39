"""Which servers are in a room: the servers of its joined members (plus, for a
membership event, the target's server so a kicked or banned server hears of it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeserver.util.ids import server_of

if TYPE_CHECKING:
    from homeserver.app import HomeServer


class RoomServers:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        # room -> (member part of the state it was computed from, joined servers)
        self._cache: dict[str, tuple[dict[tuple[str, str], str], frozenset[str]]] = {}

    async def joined_servers(self, room_id: str) -> frozenset[str]:
        room = await self.hs.rooms.get_room(room_id)
        if room is None:
            return frozenset()
        members = {k: v for k, v in room.state.items() if k[0] == "m.room.member"}
        cached = self._cache.get(room_id)
        if cached is not None and cached[0] == members:
            return cached[1]
        events = await self.hs.rooms.get_state_events(room_id, members)
        servers = frozenset(
            server_of(k[1]) for k, ev in events.items() if ev.membership == "join" and ":" in k[1]
        )
        self._cache[room_id] = (members, servers)
        return servers

    async def destinations(self, room_id: str) -> set[str]:
        """Joined servers of the room other than us."""
        return set(await self.joined_servers(room_id)) - {self.hs.server_name}
