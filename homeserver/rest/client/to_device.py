"""PUT /sendToDevice/{eventType}/{txnId}."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.http.request import parse_json_body
from homeserver.http.server import CLIENT_V3, Router

if TYPE_CHECKING:
    from homeserver.app import HomeServer


def register(hs: HomeServer, router: Router) -> None:
    async def send_to_device(request: Request, event_type: str, txn_id: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        body = parse_json_body(request)
        messages = hs.to_device.parse_messages(body.get("messages"))
        await hs.to_device.send_to_device(requester, event_type, txn_id, messages)
        return 200, {}

    router.register_prefixes(
        "PUT", CLIENT_V3, "/sendToDevice/(?P<event_type>[^/]+)/(?P<txn_id>[^/]+)", send_to_device
    )
