"""The MatrixRTC token service: OpenID token in, LiveKit JWT out, as Element Call expects."""

from __future__ import annotations

import secrets

from twisted.trial import unittest

from homeserver.handlers.call_tokens import livekit_identity_for, livekit_room_for
from media_sfu.tokens import verify_access_token
from tests.support.wspr import MatrixClient, MatrixRequestError, start_homeserver

SECRET = secrets.token_urlsafe(32)


class CallTokenTest(unittest.TestCase):
    async def _server(self):  # type: ignore[no-untyped-def]
        return await start_homeserver(
            self, sfu={"enabled": True, "api_key": "wspr", "api_secret": SECRET, "public_url": "wss://sfu.example/livekit"}
        )

    async def test_openid_to_jwt(self) -> None:
        server = await self._server()
        alice = await MatrixClient.register(server.base_url, "alice")
        transports = await alice.request("GET", "/_matrix/client/unstable/org.matrix.msc4143/rtc/transports")
        url = transports["rtc_transports"][0]["livekit_service_url"]
        self.assertEqual(transports["rtc_transports"][0]["type"], "livekit")
        self.assertFalse(url.endswith("/"))
        well_known = await MatrixClient(server.base_url).request("GET", "/.well-known/matrix/client")
        self.assertEqual(well_known["org.matrix.msc4143.rtc_foci"], transports["rtc_transports"])

        openid = await alice.post(f"/user/{alice.user_id}/openid/request_token", {})
        self.assertEqual(openid["matrix_server_name"], "localhost")
        anon = MatrixClient(server.base_url)
        body = {
            "room_id": "!room:localhost",
            "slot_id": "m.call#ROOM",
            "openid_token": openid,
            "member": {"id": "member-1", "claimed_user_id": alice.user_id, "claimed_device_id": alice.device_id},
        }
        answer = await anon.request("POST", "/_wspr/livekit/jwt/get_token", body)
        self.assertEqual(answer["url"], "wss://sfu.example/livekit")
        claims = verify_access_token(answer["jwt"], {"wspr": SECRET})
        self.assertEqual(claims.identity, livekit_identity_for(alice.user_id, alice.device_id, "member-1"))
        self.assertEqual(claims.video.room, livekit_room_for("!room:localhost", "m.call#ROOM"))
        self.assertTrue(claims.video.room_create)

        legacy = await anon.request(
            "POST", "/_wspr/livekit/jwt/sfu/get", {"room": "!room:localhost", "openid_token": openid, "device_id": "DEV"}
        )
        legacy_claims = verify_access_token(legacy["jwt"], {"wspr": SECRET})
        self.assertEqual(legacy_claims.identity, f"{alice.user_id}:DEV")
        # Both endpoints meet in the same LiveKit room.
        self.assertEqual(legacy_claims.video.room, claims.video.room)

        # Claiming to be someone else, or a made-up token, is refused.
        with self.assertRaises(MatrixRequestError) as cm:
            await anon.request("POST", "/_wspr/livekit/jwt/get_token", {**body, "member": {**body["member"], "claimed_user_id": "@bob:localhost"}})
        self.assertEqual((cm.exception.code, cm.exception.errcode), (401, "M_UNAUTHORIZED"))
        with self.assertRaises(MatrixRequestError) as cm:
            await anon.request("POST", "/_wspr/livekit/jwt/get_token", {**body, "openid_token": {**openid, "access_token": "forged"}})
        self.assertEqual(cm.exception.code, 401)
        with self.assertRaises(MatrixRequestError) as cm:
            await anon.request("POST", "/_wspr/livekit/jwt/get_token", {"room_id": "!r:localhost"})
        self.assertEqual((cm.exception.code, cm.exception.errcode), (400, "M_BAD_JSON"))

        # Browsers call it cross-origin: the preflight is answered.
        code, _ = await anon.raw("OPTIONS", "/_wspr/livekit/jwt/get_token", headers={"Origin": "https://call.example", "Access-Control-Request-Method": "POST"})
        self.assertEqual(code, 200)
