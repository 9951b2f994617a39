import base64
import json
import time

import jwt
from twisted.trial import unittest

from media_sfu.tokens import TokenError, mint_access_token, verify_access_token

KEY, SECRET = "apikey", "x" * 40


def payload(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


class MintTests(unittest.TestCase):
    def test_claims_match_livekit_format(self):
        t = mint_access_token(KEY, SECRET, "@alice:hs:DEV", "roomalias", name="Alice", ttl=600, now=1_000_000)
        p = payload(t)
        self.assertEqual(p["iss"], KEY)
        self.assertEqual(p["sub"], "@alice:hs:DEV")
        self.assertEqual(p["identity"], "@alice:hs:DEV")
        self.assertEqual(p["name"], "Alice")
        self.assertEqual((p["nbf"], p["exp"]), (1_000_000, 1_000_600))
        v = p["video"]
        self.assertEqual(v["room"], "roomalias")
        for k in ("roomJoin", "canPublish", "canSubscribe", "canUpdateOwnMetadata", "roomCreate"):
            self.assertIs(v[k], True, k)
        self.assertEqual(jwt.get_unverified_header(t)["alg"], "HS256")

    def test_payload_is_atob_safe(self):
        # Element Call decodes the payload with atob(), which rejects '-' and '_'
        for i in range(50):
            t = mint_access_token(KEY, SECRET, f"user{i}", f"room{i}", now=1_700_000_000 + i)
            self.assertNotRegex(t.split(".")[1], r"[-_]")

    def test_optional_grants(self):
        p = payload(mint_access_token(KEY, SECRET, "u", "r", can_create_room=False, can_publish=False,
                                      metadata="m", attributes={"a": "b"}))
        self.assertNotIn("roomCreate", p["video"])
        self.assertIs(p["video"]["canPublish"], False)
        self.assertEqual(p["metadata"], "m")
        self.assertEqual(p["attributes"], {"a": "b"})

    def test_rejects_bad_arguments(self):
        self.assertRaises(ValueError, mint_access_token, KEY, SECRET, "", "r")
        self.assertRaises(ValueError, mint_access_token, KEY, SECRET, "u", "")
        self.assertRaises(ValueError, mint_access_token, KEY, SECRET, "u", "r", ttl=0)


class VerifyTests(unittest.TestCase):
    def test_round_trip(self):
        c = verify_access_token(mint_access_token(KEY, SECRET, "bob", "r1", name="Bob"), {KEY: SECRET})
        self.assertEqual((c.api_key, c.identity, c.name), (KEY, "bob", "Bob"))
        self.assertTrue(c.video.room_join)
        self.assertTrue(c.video.room_create)
        self.assertEqual(c.video.room, "r1")

    def test_secret_lookup_function(self):
        t = mint_access_token(KEY, SECRET, "bob", "r1")
        self.assertEqual(verify_access_token(t, lambda k: SECRET if k == KEY else None).identity, "bob")

    def test_wrong_secret(self):
        t = mint_access_token(KEY, SECRET, "bob", "r1")
        self.assertRaises(TokenError, verify_access_token, t, {KEY: "y" * 40})

    def test_unknown_key(self):
        t = mint_access_token("other", SECRET, "bob", "r1")
        self.assertRaises(TokenError, verify_access_token, t, {KEY: SECRET})

    def test_expired(self):
        t = mint_access_token(KEY, SECRET, "bob", "r1", ttl=60, now=time.time() - 3600)
        with self.assertRaisesRegex(TokenError, "expired"):
            verify_access_token(t, {KEY: SECRET})

    def test_not_yet_valid(self):
        t = mint_access_token(KEY, SECRET, "bob", "r1", now=time.time() + 3600)
        with self.assertRaisesRegex(TokenError, "not yet valid"):
            verify_access_token(t, {KEY: SECRET})

    def test_garbage_and_none_alg(self):
        self.assertRaises(TokenError, verify_access_token, "", {KEY: SECRET})
        self.assertRaises(TokenError, verify_access_token, "a.b.c", {KEY: SECRET})
        unsigned = jwt.encode({"iss": KEY, "sub": "x", "exp": time.time() + 60}, "", algorithm="none")
        self.assertRaises(TokenError, verify_access_token, unsigned, {KEY: SECRET})

    def test_lk_jwt_service_style_token(self):
        # what element-hq/lk-jwt-service signs: no roomCreate, canPublish etc. explicit
        now = int(time.time())
        t = jwt.encode({"iss": KEY, "sub": "id", "nbf": now, "exp": now + 3600,
                        "video": {"roomJoin": True, "room": "alias"}}, SECRET, algorithm="HS256")
        c = verify_access_token(t, {KEY: SECRET})
        self.assertTrue(c.video.can_publish and c.video.can_subscribe)
        self.assertFalse(c.video.room_create)
