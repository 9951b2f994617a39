"""Outbound requests to other servers: ``request`` (signed, over TLS, after discovery)
and one typed wrapper per endpoint the rest of federation calls."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from federation.transport.client import DEFAULT_TIMEOUT_S, FederationTransport

V1 = "/_matrix/federation/v1"


def q(segment: str) -> str:
    """Percent-encode one path segment."""
    return quote(segment, safe="")


class FederationClient:
    def __init__(self, transport: FederationTransport) -> None:
        self.transport = transport

    async def request(
        self,
        destination: str,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> Any:
        """A signed request; ``path`` is percent-encoded (use ``q()`` for segments).
        Raises FederationError (remote status/errcode), FederationUnreachable (502) or
        FederationDenied (403)."""
        return await self.transport.request(destination, method, path, query=query, body=body, timeout=timeout)

    # -- E2EE ----------------------------------------------------------------------------

    async def query_user_keys(self, destination: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request(destination, "POST", f"{V1}/user/keys/query", body=body)

    async def claim_user_keys(self, destination: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request(destination, "POST", f"{V1}/user/keys/claim", body=body)

    async def get_user_devices(self, destination: str, user_id: str) -> dict[str, Any]:
        return await self.request(destination, "GET", f"{V1}/user/devices/{q(user_id)}")

    # -- queries ---------------------------------------------------------------------------

    async def query_profile(self, destination: str, user_id: str, field: str | None = None) -> dict[str, Any]:
        return await self.request(destination, "GET", f"{V1}/query/profile", query={"user_id": user_id, "field": field})

    async def query_directory(self, destination: str, alias: str) -> dict[str, Any]:
        return await self.request(destination, "GET", f"{V1}/query/directory", query={"room_alias": alias})

    async def get_public_rooms(self, destination: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request(destination, "POST", f"{V1}/publicRooms", body=body)

    async def get_version(self, destination: str) -> dict[str, Any]:
        return await self.request(destination, "GET", f"{V1}/version")

    async def get_hierarchy(self, destination: str, room_id: str, suggested_only: bool = False) -> dict[str, Any]:
        return await self.request(
            destination, "GET", f"{V1}/hierarchy/{q(room_id)}", query={"suggested_only": "true" if suggested_only else "false"}
        )

    async def openid_userinfo(self, destination: str, access_token: str) -> dict[str, Any]:
        return await self.request(destination, "GET", f"{V1}/openid/userinfo", query={"access_token": access_token})
