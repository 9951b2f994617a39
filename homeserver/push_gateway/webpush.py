"""Web Push delivery for the push gateway: what is sent to the browser, encrypted for it
(RFC 8291 ``aes128gcm``), and posted to its push service (RFC 8030).

The browser gets one JSON object per notification (the service worker's
``public/push-sw.js`` reads it)::

    {"room_id", "event_id", "type", "sender", "sender_display_name"?, "room_name"?,
     "membership"?, "content"?: {"msgtype", "body"}, "unread"?}

``content`` is only there for unencrypted messages: an ``m.room.encrypted`` event has
nothing the server could show, and the browser shows "New message". Notifications
without an event (the unread-count-only updates some homeservers send) are not
forwarded: a browser must show something for every push it receives.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import http_ece
from cryptography.hazmat.primitives.asymmetric import ec

from homeserver.push_gateway.vapid import VapidSigner, b64url, b64url_decode
from homeserver.util.ip_filter import IPFilter
from homeserver.util.outbound_http import (
    BlockedAddress,
    OutboundHttpClient,
    discard_body,
)

if TYPE_CHECKING:
    from homeserver.app import HomeServer

logger = logging.getLogger(__name__)

# The app_id of the PWA's Web Push pushers.
APP_ID = "org.wspr.web"
# How long a push service keeps a push for a browser that is offline.
TTL_S = 24 * 3600
# A push service must accept 4096 bytes of encrypted body (RFC 8030 §7.2): one aes128gcm
# record of 4096 bytes holds 4096 - 86 (header with a 65-byte key id) - 16 (tag) - 1
# (padding delimiter) bytes of plaintext.
MAX_PLAINTEXT = 4096 - 86 - 16 - 1
# Longest message text forwarded (the notification shows a line or two).
MAX_BODY_CHARS = 1000
TIMEOUT_S = 10.0

_TEXT_TYPES = ("m.text", "m.notice", "m.emote")


@dataclass(frozen=True)
class Subscription:
    """A browser's push subscription (PushSubscription.toJSON())."""

    endpoint: str
    p256dh: bytes
    auth: bytes

    @classmethod
    def from_pusher(cls, pushkey: Any, data: Any) -> Subscription | None:
        """From a pusher as the PWA registers it (pushkey = p256dh, data: endpoint and
        auth); None when it isn't one."""
        if not isinstance(pushkey, str) or not isinstance(data, dict):
            return None
        endpoint, auth = data.get("endpoint"), data.get("auth")
        if not isinstance(endpoint, str) or not isinstance(auth, str):
            return None
        parsed = urlparse(endpoint)
        if parsed.scheme not in ("https", "http") or not parsed.hostname:
            return None
        try:
            p256dh, secret = b64url_decode(pushkey), b64url_decode(auth)
        except ValueError:
            return None
        if len(p256dh) != 65 or p256dh[0] != 4 or len(secret) != 16:
            return None
        return cls(endpoint, p256dh, secret)


class Outcome(Enum):
    SENT = "sent"
    # the push service says the subscription is gone: the pusher should be removed
    GONE = "gone"
    FAILED = "failed"
    SKIPPED = "skipped"


def browser_payload(notification: dict[str, Any]) -> bytes | None:
    """The JSON the service worker gets for a gateway notification (None: nothing to show)."""
    event_id = notification.get("event_id")
    room_id = notification.get("room_id")
    if not isinstance(event_id, str) or not isinstance(room_id, str):
        return None
    out: dict[str, Any] = {"room_id": room_id, "event_id": event_id}
    for key in ("type", "sender", "sender_display_name", "room_name"):
        if isinstance(notification.get(key), str):
            out[key] = notification[key]
    counts = notification.get("counts")
    if isinstance(counts, dict) and isinstance(counts.get("unread"), int):
        out["unread"] = counts["unread"]
    content = notification.get("content")
    if isinstance(content, dict):
        if notification.get("type") == "m.room.member" and isinstance(content.get("membership"), str):
            out["membership"] = content["membership"]
        elif notification.get("type") == "m.room.message" and isinstance(content.get("msgtype"), str):
            shown: dict[str, Any] = {"msgtype": content["msgtype"]}
            if content["msgtype"] in _TEXT_TYPES and isinstance(content.get("body"), str):
                shown["body"] = content["body"][:MAX_BODY_CHARS]
            out["content"] = shown
    data = json.dumps(out, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    # too long (long names in many scripts): shorten the text, then drop the names
    while len(data) > MAX_PLAINTEXT:
        body = out.get("content", {}).get("body")
        if isinstance(body, str) and body:
            out["content"]["body"] = body[: len(body) // 2]
        else:
            for key in ("room_name", "sender_display_name", "content"):
                out.pop(key, None)
        data = json.dumps(out, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return data


def encrypt(payload: bytes, sub: Subscription) -> bytes:
    """RFC 8291: the payload encrypted for the subscription's key and auth secret, with a
    fresh sender key and salt per message."""
    sender = ec.generate_private_key(ec.SECP256R1())
    body: bytes = http_ece.encrypt(payload, salt=os.urandom(16), private_key=sender, dh=sub.p256dh, auth_secret=sub.auth, version="aes128gcm")
    return body


def topic_for(room_id: str) -> str:
    """A Topic header (RFC 8030 §5.4) per room: a push still waiting for an offline browser
    is replaced by the room's next one instead of piling up."""
    return b64url(hashlib.sha256(room_id.encode("utf-8")).digest()[:24])


class WebPushSender:
    def __init__(self, hs: HomeServer, signer: VapidSigner) -> None:
        self.hs = hs
        self.signer = signer
        fed = hs.config.federation
        # the same rule as every outbound request to an address someone else chose: no
        # private or loopback addresses, checked at the connection (no DNS rebinding)
        self.http = OutboundHttpClient(hs.reactor, IPFilter(fed.ip_range_blocklist, fed.ip_range_allowlist))

    async def send(self, sub: Subscription, payload: bytes, *, urgency: str, topic: str | None) -> Outcome:
        host = urlparse(sub.endpoint).hostname
        try:
            headers = {
                b"Content-Type": [b"application/octet-stream"],
                b"Content-Encoding": [b"aes128gcm"],
                b"TTL": [str(TTL_S).encode()],
                b"Urgency": [urgency.encode()],
                b"Authorization": [self.signer.authorization(sub.endpoint).encode()],
            }
            if topic:
                headers[b"Topic"] = [topic.encode()]
            resp = await self.http.request(b"POST", sub.endpoint, headers, encrypt(payload, sub), TIMEOUT_S)
            discard_body(resp)
        except BlockedAddress:
            logger.warning("web push: not sending to %s: address is blocklisted", host)
            return Outcome.FAILED
        except Exception as e:  # noqa: BLE001 (a push service's failure is logged, never ours)
            logger.info("web push to %s failed: %s", host, e)
            return Outcome.FAILED
        if resp.code in (404, 410):
            return Outcome.GONE
        if not 200 <= resp.code < 300:
            logger.info("web push to %s: HTTP %d", host, resp.code)
            return Outcome.FAILED
        return Outcome.SENT


class WebPushGateway:
    """Turns push gateway notifications into Web Push messages."""

    def __init__(self, hs: HomeServer, sender: WebPushSender) -> None:
        self.hs = hs
        self.sender = sender

    async def notify(self, notification: dict[str, Any], devices: list[Any]) -> list[str]:
        """Delivers ``notification`` to each device; returns the rejected pushkeys (the
        homeserver removes those pushers), as the push gateway API's answer."""
        rejected: list[str] = []
        payload = browser_payload(notification)
        prio = notification.get("prio")
        room_id = notification.get("room_id")
        for device in devices:
            if not isinstance(device, dict):
                continue
            pushkey = device.get("pushkey")
            sub = Subscription.from_pusher(pushkey, device.get("data"))
            if device.get("app_id") != APP_ID or sub is None:
                if isinstance(pushkey, str):
                    rejected.append(pushkey)
                continue
            if payload is None:
                continue
            outcome = await self.sender.send(
                sub,
                payload,
                urgency="normal" if prio == "low" else "high",
                topic=topic_for(room_id) if isinstance(room_id, str) else None,
            )
            if outcome is Outcome.GONE and isinstance(pushkey, str):
                rejected.append(pushkey)
        return rejected
