"""/keys: device and one-time key upload, query, claim, changes, and cross-signing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.http.request import parse_json_body, parse_string
from homeserver.http.server import CLIENT_ALL, CLIENT_V3, Router

if TYPE_CHECKING:
    from homeserver.app import HomeServer


def register(hs: "HomeServer", router: Router) -> None:
    async def upload(request: Request, device_id: str | None = None) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        body = parse_json_body(request, allow_empty=True)
        return 200, await hs.e2e_keys.upload_keys(requester, body)

    async def query(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        body = parse_json_body(request, allow_empty=True)
        return 200, await hs.e2e_keys.query_keys(requester, body)

    async def claim(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        body = parse_json_body(request)
        return 200, await hs.e2e_keys.claim_keys(requester, body)

    async def changes(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        from_token = parse_string(request, "from", required=True)
        # Synapse ignores `to` and answers up to now; we honour it when given.
        to_token = parse_string(request, "to") or f"s{hs.streams.current}"
        assert from_token is not None
        return 200, await hs.e2e_keys.key_changes(requester, from_token, to_token)

    async def device_signing_upload(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        body = parse_json_body(request)
        await hs.e2e_keys.upload_signing_keys(requester, body)
        return 200, {}

    async def signatures_upload(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        body = parse_json_body(request)
        return 200, await hs.e2e_keys.upload_signatures(requester, body)

    router.register_prefixes("POST", CLIENT_V3, "/keys/upload", upload)
    router.register_prefixes("POST", CLIENT_V3, "/keys/upload/(?P<device_id>[^/]+)", upload)
    router.register_prefixes("POST", CLIENT_V3, "/keys/query", query)
    router.register_prefixes("POST", CLIENT_V3, "/keys/claim", claim)
    router.register_prefixes("GET", CLIENT_V3, "/keys/changes", changes)
    router.register_prefixes("POST", CLIENT_ALL, "/keys/device_signing/upload", device_signing_upload)
    router.register_prefixes("POST", CLIENT_ALL, "/keys/signatures/upload", signatures_upload)
