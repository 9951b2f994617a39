"""Key endpoints: ``/_matrix/key/v2/server`` (our keys) and ``/_matrix/key/v2/query``
(notary: other servers' keys as we fetched them, countersigned). Unauthenticated, as
servers fetch keys before they can check anything."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from federation.discovery import split_server_name
from homeserver.http.errors import BadJson, InvalidParam
from homeserver.http.request import parse_integer, parse_json_body
from homeserver.http.server import RawResponse
from homeserver.protocol.canonical_json import encode_canonical_json

if TYPE_CHECKING:
    from federation.service import Federation
    from homeserver.app import HomeServer

MAX_NOTARY_SERVERS = 100


def _canonical(body: Any) -> RawResponse:
    """Key responses go out as canonical JSON, as Synapse sends them: a checker may verify
    the signatures against the bytes as served (Complement's TestInboundFederationKeys
    does), not against a re-encoding."""
    return RawResponse(200, encode_canonical_json(body), {"Content-Type": "application/json"})


def register_key_servlets(hs: HomeServer, fed: Federation) -> None:
    router = hs.federation_router
    unauthenticated = fed.inbound.unauthenticated

    async def server_keys(request: Request, key_id: str | None = None) -> RawResponse:
        return _canonical(fed.keyring.local_key_response())

    async def query_one(request: Request, server_name: str) -> RawResponse:
        _check_name(server_name)
        minimum = parse_integer(request, "minimum_valid_until_ts") or 0
        return _canonical({"server_keys": await fed.keyring.key_responses_for(server_name, minimum)})

    async def query_many(request: Request) -> RawResponse:
        body = parse_json_body(request)
        wanted = body.get("server_keys")
        if not isinstance(wanted, dict):
            raise BadJson("server_keys must be an object")
        if len(wanted) > MAX_NOTARY_SERVERS:
            raise BadJson("Too many servers")
        out: list[dict[str, Any]] = []
        for server_name, criteria in wanted.items():
            _check_name(server_name)
            minimum = 0
            if isinstance(criteria, dict):
                for c in criteria.values():
                    if isinstance(c, dict) and isinstance(c.get("minimum_valid_until_ts"), int):
                        minimum = max(minimum, c["minimum_valid_until_ts"])
            out.extend(await fed.keyring.key_responses_for(server_name, minimum))
        return _canonical({"server_keys": out})

    router.register("GET", r"/_matrix/key/v2/server(?:/(?P<key_id>[^/]*))?", unauthenticated(server_keys))
    router.register("GET", r"/_matrix/key/v2/query/(?P<server_name>[^/]+)(?:/[^/]*)?", unauthenticated(query_one))
    router.register("POST", r"/_matrix/key/v2/query", unauthenticated(query_many))


def _check_name(server_name: Any) -> None:
    try:
        split_server_name(server_name)
    except (ValueError, TypeError):
        raise InvalidParam(f"Invalid server name {server_name!r}") from None
