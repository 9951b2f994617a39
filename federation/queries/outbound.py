"""Queries we send for our users: a remote alias, a remote profile, another server's
public rooms. Answers are checked before the client API sees them."""

from __future__ import annotations

from typing import Any

from federation.client import FederationClient
from homeserver.http.errors import MatrixError, NotFound
from homeserver.util.ids import server_of

PROFILE_FIELDS = ("displayname", "avatar_url")


class OutboundQueries:
    def __init__(self, client: FederationClient) -> None:
        self.client = client

    async def resolve_alias(self, alias: str) -> tuple[str, list[str]]:
        resp = await self.client.query_directory(server_of(alias), alias)
        room_id, servers = resp.get("room_id"), resp.get("servers")
        if not isinstance(room_id, str) or not isinstance(servers, list):
            raise MatrixError(502, "M_UNKNOWN", "Invalid directory answer from remote server")
        return room_id, [s for s in servers if isinstance(s, str)]

    async def profile(self, user_id: str) -> dict[str, Any]:
        resp = await self.client.query_profile(server_of(user_id), user_id)
        if not isinstance(resp, dict):
            raise NotFound("Profile not found")
        return {k: v for k, v in resp.items() if k in PROFILE_FIELDS and isinstance(v, str)}

    async def public_rooms(self, server: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.client.get_public_rooms(server, {k: v for k, v in body.items() if v is not None})
