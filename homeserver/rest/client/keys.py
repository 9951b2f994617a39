"""/keys: device and one-time key upload, query, claim, changes, and cross-signing; and
MSC3814 dehydrated devices (unstable, as Synapse serves them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.http.request import parse_integer, parse_json_body, parse_string
from homeserver.http.server import CLIENT_ALL, CLIENT_UNSTABLE, CLIENT_V3, Router

if TYPE_CHECKING:
    from homeserver.app import HomeServer


def register(hs: HomeServer, router: Router) -> None:
    async def upload(request: Request, device_id: str | None = None) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        body = parse_json_body(request, allow_empty=True)
        return 200, await hs.e2e_keys.upload_keys(requester, body)

    async def query(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        body = parse_json_body(request, allow_empty=True)
        return 200, await hs.e2e_keys.device_keys.query_keys(requester, body)

    async def claim(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        body = parse_json_body(request)
        return 200, await hs.e2e_keys.one_time_keys.claim_keys(requester, body)

    async def changes(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        from_token = parse_string(request, "from", required=True)
        # Synapse ignores `to` and answers up to now; we honour it when given.
        to_token = parse_string(request, "to") or f"s{hs.streams.current}"
        assert from_token is not None
        return 200, await hs.e2e_keys.device_keys.key_changes(requester, from_token, to_token)

    async def device_signing_upload(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        body = parse_json_body(request)
        await hs.e2e_keys.cross_signing.upload_signing_keys(requester, body)
        return 200, {}

    async def signatures_upload(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        body = parse_json_body(request)
        return 200, await hs.e2e_keys.cross_signing.upload_signatures(requester, body)

    async def get_dehydrated(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        return 200, await hs.e2e_keys.dehydrated_devices.get_dehydrated_device(requester.user_id)

    async def put_dehydrated(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        return 200, await hs.e2e_keys.dehydrated_devices.put_dehydrated_device(requester, parse_json_body(request))

    async def delete_dehydrated(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        return 200, await hs.e2e_keys.dehydrated_devices.delete_dehydrated_device(requester.user_id)

    async def get_dehydrated_events(request: Request, device_id: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        limit = parse_integer(request, "limit", 100) or 100
        body, limited = await hs.e2e_keys.dehydrated_devices.dehydrated_device_events(
            requester.user_id, device_id, parse_string(request, "from"), limit
        )
        if not limited:
            del body["next_batch"]  # GET: no next_batch means "that was everything" (Synapse)
        return 200, body

    async def post_dehydrated_events(request: Request, device_id: str) -> tuple[int, Any]:
        # The earlier MSC3814 draft: POST with next_batch in the body, always answered.
        requester = await hs.auth.get_user_by_req(request)
        next_batch = parse_json_body(request, allow_empty=True).get("next_batch")
        if next_batch is not None and not isinstance(next_batch, str):
            next_batch = None
        limit = parse_integer(request, "limit", 100) or 100
        body, _ = await hs.e2e_keys.dehydrated_devices.dehydrated_device_events(requester.user_id, device_id, next_batch, limit)
        return 200, body

    dehydrated = "/org.matrix.msc3814.v1/dehydrated_device"
    router.register_prefixes("GET", CLIENT_UNSTABLE, dehydrated, get_dehydrated)
    router.register_prefixes("PUT", CLIENT_UNSTABLE, dehydrated, put_dehydrated)
    router.register_prefixes("DELETE", CLIENT_UNSTABLE, dehydrated, delete_dehydrated)
    router.register_prefixes("GET", CLIENT_UNSTABLE, dehydrated + "/(?P<device_id>[^/]+)/events", get_dehydrated_events)
    router.register_prefixes("POST", CLIENT_UNSTABLE, dehydrated + "/(?P<device_id>[^/]+)/events", post_dehydrated_events)

    router.register_prefixes("POST", CLIENT_V3, "/keys/upload", upload)
    router.register_prefixes("POST", CLIENT_V3, "/keys/upload/(?P<device_id>[^/]+)", upload)
    router.register_prefixes("POST", CLIENT_V3, "/keys/query", query)
    router.register_prefixes("POST", CLIENT_V3, "/keys/claim", claim)
    router.register_prefixes("GET", CLIENT_V3, "/keys/changes", changes)
    router.register_prefixes("POST", CLIENT_ALL, "/keys/device_signing/upload", device_signing_upload)
    router.register_prefixes("POST", CLIENT_ALL, "/keys/signatures/upload", signatures_upload)
