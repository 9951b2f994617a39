"""Room aliases and the public room directory."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from homeserver.http.errors import BadJson, Forbidden, MatrixError, NotFound
from homeserver.util.ids import is_valid_alias, server_of

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester

logger = logging.getLogger(__name__)

DIRECTORY_STATE = (
    "m.room.name",
    "m.room.topic",
    "m.room.canonical_alias",
    "m.room.avatar",
    "m.room.join_rules",
    "m.room.history_visibility",
    "m.room.guest_access",
    "m.room.create",
    "m.room.encryption",
)


class DirectoryHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store

    async def resolve_alias(self, alias: str) -> tuple[str, list[str]]:
        if self.hs.is_mine(alias):
            found = await self.store.get_alias(alias)
            if found is None:
                raise NotFound(f"Room alias {alias} not found")
            room_id = found[0]
            return room_id, await self.servers_in_room(room_id)
        return await self.hs.federation.resolve_remote_alias(alias)

    async def servers_in_room(self, room_id: str) -> list[str]:
        room = await self.hs.rooms.get_room(room_id)
        if room is None:
            return [self.hs.server_name]
        servers = {server_of(sk) for (t, sk) in room.state if t == "m.room.member"}
        members = await self.hs.rooms.get_state_events(
            room_id, {k: v for k, v in room.state.items() if k[0] == "m.room.member"}
        )
        joined = {server_of(k[1]) for k, ev in members.items() if ev.membership == "join"}
        ordered = [self.hs.server_name] if self.hs.server_name in joined else []
        ordered += sorted(joined - {self.hs.server_name})
        return ordered or sorted(servers)

    async def create_alias(self, requester: Requester, alias: str, room_id: Any) -> None:
        if not is_valid_alias(alias):
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid room alias")
        if not isinstance(room_id, str):
            raise BadJson("room_id must be a string")
        if not self.hs.is_mine(alias):
            raise MatrixError(400, "M_INVALID_PARAM", "Room alias must be on this server")
        if await self.hs.rooms.get_room(room_id) is None:
            raise NotFound("Unknown room")
        if await self.hs.membership.get_membership(room_id, requester.user_id) != "join":
            raise Forbidden("You must be joined to the room to add an alias")
        if not await self.store.create_alias(alias, room_id, requester.user_id):
            raise MatrixError(409, "M_UNKNOWN", f"Room alias {alias} already exists")

    async def delete_alias(self, requester: Requester, alias: str) -> None:
        if not is_valid_alias(alias):
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid room alias")
        found = await self.store.get_alias(alias)
        if found is None:
            raise NotFound("Room alias not found")
        room_id, creator = found
        user = await self.store.get_user(requester.user_id)
        if creator != requester.user_id and not (user and user.is_admin):
            if not await self.hs.membership.user_can_send_state(room_id, requester.user_id, "m.room.canonical_alias"):
                raise Forbidden("You don't have permission to delete the alias")
        await self.store.delete_alias(alias)
        try:
            await self._drop_from_canonical_alias(requester, room_id, alias)
        except MatrixError as e:
            # As Synapse: the alias is gone either way; the room's event stays if the
            # deleter may not change it.
            logger.info("could not update m.room.canonical_alias of %s: %s", room_id, e)

    async def _drop_from_canonical_alias(self, requester: Requester, room_id: str, alias: str) -> None:
        """Synapse sends a new m.room.canonical_alias without a deleted alias that it named."""
        current = await self.hs.rooms.get_current_state_event(room_id, "m.room.canonical_alias", "")
        if current is None:
            return
        content = dict(current.content)
        changed = False
        if content.get("alias") == alias:
            del content["alias"]
            changed = True
        alt = content.get("alt_aliases")
        if isinstance(alt, list) and alias in alt:
            remaining = [a for a in alt if a != alias]
            if remaining:
                content["alt_aliases"] = remaining
            else:
                del content["alt_aliases"]
            changed = True
        if changed:
            await self.hs.messages.send_event(requester, room_id, "m.room.canonical_alias", content, state_key="")

    async def check_canonical_alias(self, room_id: str, content: dict[str, Any]) -> None:
        """Aliases named in m.room.canonical_alias must exist and point at the room."""
        aliases = []
        if content.get("alias") is not None:
            aliases.append(content["alias"])
        alt = content.get("alt_aliases", [])
        if not isinstance(alt, list):
            raise BadJson("alt_aliases must be a list")
        aliases.extend(alt)
        for alias in aliases:
            if not isinstance(alias, str) or not is_valid_alias(alias):
                raise MatrixError(400, "M_INVALID_PARAM", "Invalid alias")
            if self.hs.is_mine(alias):
                found = await self.store.get_alias(alias)
                if found is None or found[0] != room_id:
                    raise MatrixError(400, "M_BAD_ALIAS", f"Alias {alias} does not point to this room")

    async def room_summary(self, room_id: str) -> dict[str, Any]:
        room = await self.hs.rooms.get_room(room_id)
        if room is None:
            raise NotFound("Unknown room")
        state = await self.hs.rooms.get_state_events(
            room_id, {k: v for k, v in room.state.items() if k[0] in DIRECTORY_STATE and k[1] == ""}
        )
        joined = await self.store.count_joined_members([room_id])
        entry: dict[str, Any] = {
            "room_id": room_id,
            "num_joined_members": joined.get(room_id, 0),
            "world_readable": False,
            "guest_can_join": False,
            "join_rule": "invite",
        }
        for (etype, _), ev in state.items():
            c = ev.content
            if etype == "m.room.name" and isinstance(c.get("name"), str) and c["name"]:
                entry["name"] = c["name"]
            elif etype == "m.room.topic" and isinstance(c.get("topic"), str):
                entry["topic"] = c["topic"]
            elif etype == "m.room.canonical_alias" and isinstance(c.get("alias"), str):
                entry["canonical_alias"] = c["alias"]
            elif etype == "m.room.avatar" and isinstance(c.get("url"), str):
                entry["avatar_url"] = c["url"]
            elif etype == "m.room.join_rules" and isinstance(c.get("join_rule"), str):
                entry["join_rule"] = c["join_rule"]
            elif etype == "m.room.history_visibility":
                entry["world_readable"] = c.get("history_visibility") == "world_readable"
            elif etype == "m.room.guest_access":
                entry["guest_can_join"] = c.get("guest_access") == "can_join"
            elif etype == "m.room.create" and isinstance(c.get("type"), str):
                entry["room_type"] = c["type"]
            elif etype == "m.room.encryption" and isinstance(c.get("algorithm"), str):
                entry["encryption"] = c["algorithm"]
        entry["room_version"] = room.version.identifier
        return entry

    async def remote_public_rooms(self, server: str, body: dict[str, Any]) -> dict[str, Any]:
        """Another server's public room directory (``body`` as POST /publicRooms takes it)."""
        return await self.hs.federation.remote_public_rooms(server, body)

    async def public_rooms(self, limit: int | None, since: str | None, search_term: str | None) -> dict[str, Any]:
        room_ids = await self.store.get_public_room_ids()
        entries = [await self.room_summary(r) for r in room_ids]
        entries = [{k: v for k, v in e.items() if k not in ("room_version", "encryption")} for e in entries]
        if search_term:
            term = search_term.lower()
            entries = [
                e
                for e in entries
                if term in e.get("name", "").lower()
                or term in e.get("topic", "").lower()
                or term in e.get("canonical_alias", "").lower()
            ]
        entries.sort(key=lambda e: (-e["num_joined_members"], e["room_id"]))
        start = 0
        if since:
            try:
                start = int(since.lstrip("n"))
            except ValueError:
                raise MatrixError(400, "M_INVALID_PARAM", "Invalid since token") from None
        total = len(entries)
        if limit is not None and limit >= 0:
            chunk = entries[start : start + limit]
        else:
            chunk = entries[start:]
        result: dict[str, Any] = {"chunk": chunk, "total_room_count_estimate": total}
        if start + len(chunk) < total:
            result["next_batch"] = f"n{start + len(chunk)}"
        if start > 0:
            result["prev_batch"] = f"n{max(0, start - (limit or 0))}"
        return result

    async def set_visibility(self, requester: Requester, room_id: str, visibility: Any) -> None:
        if visibility not in ("public", "private"):
            raise BadJson("visibility must be public or private")
        if await self.hs.rooms.get_room(room_id) is None:
            raise NotFound("Unknown room")
        user = await self.store.get_user(requester.user_id)
        if not (user and user.is_admin) and not await self.hs.membership.user_can_send_state(
            room_id, requester.user_id, "m.room.canonical_alias"
        ):
            raise Forbidden("You don't have permission to publish the room")
        await self.store.set_room_visibility(room_id, visibility == "public")
