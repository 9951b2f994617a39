"""WSPR's Web Push gateway end to end: a pusher of kind ``http`` pointing at
``/_matrix/push/v1/notify`` (as the PWA registers one), WSPR's own HTTP pusher POSTing to it
like to any external gateway, and the gateway sending Web Push to a real push service
stand-in on loopback, which checks the VAPID signature (RFC 8292) and decrypts the message
(RFC 8291) with its own implementation of the spec's key derivation, as a browser would.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from twisted.internet import defer, reactor
from twisted.trial import unittest
from twisted.web import resource, server

from tests.support.wspr import MatrixClient, start_homeserver


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


class Browser:
    """The receiving side of a push subscription: the browser's key pair and auth secret,
    and RFC 8291 §3.4 decryption (written from the RFC, not through http_ece)."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.public = self.key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        self.auth = bytes(range(16))

    def decrypt(self, body: bytes) -> bytes:
        salt, rs, idlen = body[:16], int.from_bytes(body[16:20], "big"), body[20]
        sender = body[21 : 21 + idlen]
        ciphertext = body[21 + idlen :]
        assert idlen == 65 and len(ciphertext) <= rs, (idlen, rs, len(ciphertext))
        sender_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender)
        shared = self.key.exchange(ec.ECDH(), sender_key)
        ikm = hkdf(self.auth, shared, b"WebPush: info\x00" + self.public + sender, 32)
        cek = hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
        nonce = hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
        padded = AESGCM(cek).decrypt(nonce, ciphertext, None)
        end = len(padded.rstrip(b"\x00"))
        assert padded[end - 1] == 2, "the last record ends with the 0x02 delimiter"
        return padded[: end - 1]


@dataclass
class Push:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class PushService(resource.Resource):
    """A push service on loopback: records each push; paths under /gone/ answer 410."""

    pushes: list[Push] = field(default_factory=list)
    isLeaf = True

    def __post_init__(self) -> None:
        resource.Resource.__init__(self)
        self.waiters: list[defer.Deferred[Push]] = []

    def render_POST(self, request: server.Request) -> bytes:
        push = Push(
            request.path.decode(),
            {k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()},
            request.content.read() if request.content else b"",
        )
        self.pushes.append(push)
        waiters, self.waiters = self.waiters, []
        for d in waiters:
            d.callback(push)
        request.setResponseCode(410 if push.path.startswith("/gone/") else 201)
        return b""

    def next_push(self, timeout: float = 10.0) -> defer.Deferred[Push]:
        d: defer.Deferred[Push] = defer.Deferred()
        self.waiters.append(d)
        d.addTimeout(timeout, reactor)
        d.addErrback(lambda f: f.trap(defer.CancelledError))  # cancelled at cleanup: nobody waits
        return d


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


async def eventually(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        d: defer.Deferred[None] = defer.Deferred()
        reactor.callLater(0.05, d.callback, None)  # type: ignore[attr-defined,arg-type]
        await d


class WebPushGatewayTest(unittest.TestCase):
    timeout = 60

    async def start(self) -> None:
        """A homeserver whose public_baseurl is its real address, and a push service."""
        port = free_port()
        self.hs = await start_homeserver(
            self,
            # the pusher reaches the gateway, and the gateway the push service, on loopback
            federation={"ip_range_allowlist": ["127.0.0.0/8"]},
            listeners={"client": {"bind_address": "127.0.0.1", "port": port}},
            public_baseurl=f"http://127.0.0.1:{port}/",
        )
        self.service = PushService()
        self.addCleanup(self._cancel_waiters)
        listening: Any = reactor.listenTCP(0, server.Site(self.service), interface="127.0.0.1")  # type: ignore[attr-defined,arg-type]
        self.addCleanup(listening.stopListening)
        self.service_url = f"http://127.0.0.1:{listening.getHost().port}"
        anon = MatrixClient(self.hs.base_url)
        self.info = await anon.request("GET", "/_wspr/push/v1/web")

    def _cancel_waiters(self) -> None:
        for d in list(self.service.waiters):
            d.cancel()

    async def subscribe(self, client: MatrixClient, browser: Browser, path: str) -> dict[str, Any]:
        """What the PWA does: its push subscription registered as an http pusher."""
        body = {
            "kind": "http",
            "app_id": self.info["app_id"],
            "pushkey": b64url(browser.public),
            "app_display_name": "WSPR",
            "device_display_name": "WSPR on Linux",
            "lang": "en",
            "data": {"url": self.info["gateway_url"], "endpoint": self.service_url + path, "auth": b64url(browser.auth)},
        }
        await client.request("POST", "/_matrix/client/v3/pushers/set", body)
        return body

    async def two_people(self) -> tuple[MatrixClient, MatrixClient, str]:
        alice = await MatrixClient.register(self.hs.base_url, "alice")
        bob = await MatrixClient.register(self.hs.base_url, "bob")
        await bob.request("PUT", "/_matrix/client/v3/profile/" + bob.user_id + "/displayname", {"displayname": "Bob"})
        room = (await alice.request("POST", "/_matrix/client/v3/createRoom", {"name": "Garden", "invite": [bob.user_id]}))["room_id"]
        await bob.request("POST", f"/_matrix/client/v3/join/{room}", {})
        return alice, bob, room

    async def test_info(self) -> None:
        await self.start()
        port = self.hs.hs.client_port
        self.assertEqual(self.info["gateway_url"], f"http://127.0.0.1:{port}/_matrix/push/v1/notify")
        self.assertEqual(self.info["app_id"], "org.wspr.web")
        key = b64url_decode(self.info["vapid_public_key"])
        self.assertEqual((len(key), key[0]), (65, 4))  # an uncompressed P-256 point
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key)

    async def test_message_arrives_encrypted_for_the_browser(self) -> None:
        await self.start()
        alice, bob, room = await self.two_people()
        browser = Browser()
        await self.subscribe(alice, browser, "/push/alice")
        arrived = self.service.next_push()
        sent = await bob.request("PUT", f"/_matrix/client/v3/rooms/{room}/send/m.room.message/t1", {"msgtype": "m.text", "body": "hello web push"})
        push = await arrived

        self.assertEqual(push.path, "/push/alice")
        self.assertEqual(push.headers["content-encoding"], "aes128gcm")
        self.assertEqual(push.headers["urgency"], "high")
        self.assertEqual(push.headers["ttl"], str(24 * 3600))
        self.assertRegex(push.headers["topic"], r"^[A-Za-z0-9_-]{32}$")
        self.assertNotIn(b"hello web push", push.body)
        # VAPID: a JWT for this push service's origin, signed with the key browsers subscribe with
        scheme, _, params = push.headers["authorization"].partition(" ")
        self.assertEqual(scheme, "vapid")
        fields: dict[str, str] = {k: v for k, _, v in (p.partition("=") for p in params.split(","))}
        self.assertEqual(fields["k"], self.info["vapid_public_key"])
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(fields["k"]))
        claims = jwt.decode(fields["t"], public, algorithms=["ES256"], audience=self.service_url)
        self.assertTrue(time.time() < claims["exp"] <= time.time() + 24 * 3600)
        self.assertRegex(claims["sub"], r"^(mailto:|https?://)")

        payload = json.loads(browser.decrypt(push.body))
        self.assertEqual(payload["event_id"], sent["event_id"])
        self.assertEqual(payload["room_id"], room)
        self.assertEqual(payload["room_name"], "Garden")
        self.assertEqual(payload["sender"], bob.user_id)
        self.assertEqual(payload["sender_display_name"], "Bob")
        self.assertEqual(payload["content"], {"msgtype": "m.text", "body": "hello web push"})
        self.assertEqual(payload["type"], "m.room.message")
        self.assertIsInstance(payload["unread"], int)

    async def test_encrypted_message_carries_no_content(self) -> None:
        await self.start()
        alice, bob, room = await self.two_people()
        browser = Browser()
        await self.subscribe(alice, browser, "/push/alice")
        arrived = self.service.next_push()
        await bob.request(
            "PUT",
            f"/_matrix/client/v3/rooms/{room}/send/m.room.encrypted/t2",
            {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEnAC...", "device_id": "D", "sender_key": "k", "session_id": "s"},
        )
        payload = json.loads(browser.decrypt((await arrived).body))
        self.assertEqual(payload["type"], "m.room.encrypted")
        self.assertNotIn("content", payload)
        self.assertNotIn("AwgAEnAC", json.dumps(payload))

    async def test_gone_subscription_removes_the_pusher(self) -> None:
        await self.start()
        alice, bob, room = await self.two_people()
        await self.subscribe(alice, Browser(), "/gone/old-browser")
        pushers = (await alice.request("GET", "/_matrix/client/v3/pushers"))["pushers"]
        self.assertEqual(len(pushers), 1)
        arrived = self.service.next_push()
        await bob.request("PUT", f"/_matrix/client/v3/rooms/{room}/send/m.room.message/t3", {"msgtype": "m.text", "body": "anyone?"})
        await arrived

        async def removed() -> bool:
            return not (await alice.request("GET", "/_matrix/client/v3/pushers"))["pushers"]

        self.assertTrue(await eventually(removed), "the push service said 410: the pusher goes")

    async def test_gateway_api(self) -> None:
        """The /notify endpoint as any homeserver may call it."""
        await self.start()
        anon = MatrixClient(self.hs.base_url)
        browser = Browser()
        good: dict[str, Any] = {"app_id": "org.wspr.web", "pushkey": b64url(browser.public), "data": {"endpoint": self.service_url + "/push/x", "auth": b64url(browser.auth)}}
        notification = {"event_id": "$e", "room_id": "!r:hs", "type": "m.room.message", "sender": "@b:hs", "content": {"msgtype": "m.text", "body": "x" * 10000}, "counts": {"unread": 3}}
        arrived = self.service.next_push()
        answer = await anon.request("POST", "/_matrix/push/v1/notify", {"notification": {**notification, "devices": [good]}})
        self.assertEqual(answer, {"rejected": []})
        payload = json.loads(browser.decrypt((await arrived).body))
        self.assertEqual(payload["unread"], 3)
        self.assertEqual(len(payload["content"]["body"]), 1000)  # long texts are cut

        # other apps' pushers and malformed subscriptions are rejected (the homeserver drops them)
        other = {**good, "app_id": "com.example.app"}
        broken = {**good, "pushkey": "not-a-key"}
        answer = await anon.request("POST", "/_matrix/push/v1/notify", {"notification": {**notification, "devices": [other, broken]}})
        self.assertEqual(sorted(answer["rejected"]), sorted(["not-a-key", good["pushkey"]]))

        # a push service in a blocked range (private addresses) is never contacted
        private = {**good, "data": {**good["data"], "endpoint": "http://10.255.255.1/push"}}
        count = len(self.service.pushes)
        answer = await anon.request("POST", "/_matrix/push/v1/notify", {"notification": {**notification, "devices": [private]}})
        self.assertEqual(answer, {"rejected": []})
        self.assertEqual(len(self.service.pushes), count)

        # a count-only notification (no event) is not forwarded: a browser must show every push
        answer = await anon.request("POST", "/_matrix/push/v1/notify", {"notification": {"counts": {"unread": 0}, "devices": [good]}})
        self.assertEqual(answer, {"rejected": []})
        self.assertEqual(len(self.service.pushes), count)

        bad: dict[str, Any]
        for bad in ({}, {"notification": []}, {"notification": {"devices": {}}}):
            code, body = await anon.raw("POST", "/_matrix/push/v1/notify", bad)
            self.assertEqual(code, 400, bad)
            self.assertIn(body["errcode"], ("M_BAD_JSON", "M_MISSING_PARAM"))
        code, body = await anon.raw("POST", "/_matrix/push/v1/notify", data=b"not json")
        self.assertEqual((code, body["errcode"]), (400, "M_NOT_JSON"))

    async def test_disabled(self) -> None:
        hs = await start_homeserver(self, web_push={"enabled": False})
        code, _ = await MatrixClient(hs.base_url).raw("GET", "/_wspr/push/v1/web")
        self.assertEqual(code, 404)
