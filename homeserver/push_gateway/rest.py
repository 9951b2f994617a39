"""The push gateway's endpoints on the client listener.

``GET /_wspr/push/v1/web``: what a browser needs to subscribe (the VAPID public key) and
to register its pusher (the gateway URL and app_id). Unauthenticated, like any gateway.

``POST /_matrix/push/v1/notify``: the Push Gateway API's ``/notify`` (client-server spec,
"Push Gateway API"), answering ``{"rejected": [pushkey, ...]}``. At the spec's own path,
on this server's origin: homeservers (Synapse, and WSPR like it) accept a pusher URL only
with exactly that path.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from twisted.web.server import Request

from homeserver.http.errors import BadJson, MatrixError
from homeserver.http.request import parse_json_body
from homeserver.http.server import Router
from homeserver.push_gateway.vapid import (
    VapidSigner,
    load_or_create_key,
    public_key_b64,
)
from homeserver.push_gateway.webpush import APP_ID, WebPushGateway, WebPushSender

if TYPE_CHECKING:
    from homeserver.app import HomeServer

PREFIX = "/_wspr/push/v1"
NOTIFY_PATH = "/_matrix/push/v1/notify"


def _origin(url: str) -> str:
    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.netloc}"


def default_subject(public_baseurl: str, server_name: str) -> str:
    """The VAPID contact when none is configured: the server's https origin (without a
    port, as push services take it), else a mailto: at the server's host."""
    parsed = urlparse(public_baseurl)
    if parsed.scheme == "https" and parsed.hostname:
        return f"https://{parsed.hostname}"
    host = server_name.rsplit(":", 1)[0].strip("[]") if not server_name.endswith("]") else server_name.strip("[]")
    return f"mailto:push@{host}"


def register(hs: HomeServer, router: Router) -> None:
    cfg = hs.config.web_push
    if not cfg.enabled:
        return
    path = cfg.vapid_private_key_path
    if not os.path.isabs(path):
        path = os.path.join(hs.config.config_dir, path)
    key = load_or_create_key(path)
    subject = cfg.subject or default_subject(hs.config.public_baseurl, hs.config.server_name)
    gateway = WebPushGateway(hs, WebPushSender(hs, VapidSigner(key, subject)))
    info = {
        "vapid_public_key": public_key_b64(key),
        "gateway_url": _origin(hs.config.public_baseurl) + NOTIFY_PATH,
        "app_id": APP_ID,
    }

    async def web(request: Request) -> tuple[int, Any]:
        return 200, info

    async def notify(request: Request) -> tuple[int, Any]:
        body = parse_json_body(request)
        notification = body.get("notification")
        if not isinstance(notification, dict):
            raise MatrixError(400, "M_MISSING_PARAM", "Missing notification")
        devices = notification.get("devices")
        if not isinstance(devices, list):
            raise BadJson("notification.devices must be a list")
        return 200, {"rejected": await gateway.notify(notification, devices)}

    router.register("GET", PREFIX + "/web", web)
    router.register("POST", NOTIFY_PATH, notify)
