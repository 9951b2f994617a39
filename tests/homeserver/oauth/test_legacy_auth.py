"""The legacy API under JWT sessions (access_token_format: jwt, the default): /login,
/refresh, /logout, device deletion, password change and deactivation end sessions at
once; tokens of a login without refresh never expire; key rotation signs nobody out.
Also password_login: oauth_only (compared with Synapse with MAS) and
org.matrix.login.jwt (Synapse's jwt_config)."""

from __future__ import annotations

import time

from joserfc import jwt
from joserfc.jwk import OctKey
from twisted.trial import unittest

from homeserver.oauth.tokens import AccessTokenCodec, SigningKeys
from tests.support.wspr import MatrixClient, start_homeserver

PASSWORD = "correct horse"


async def _whoami_status(client: MatrixClient) -> tuple[int, dict]:
    return await client.raw("GET", "/_matrix/client/v3/account/whoami")


class JwtSessionsTest(unittest.TestCase):
    database = "sqlite"

    async def test_legacy_login_refresh_and_ends(self) -> None:
        server = await start_homeserver(self)
        base = server.base_url
        await MatrixClient.register(base, "erin", PASSWORD)
        anon = MatrixClient(base)
        login = await anon.request(
            "POST",
            "/_matrix/client/v3/login",
            {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "erin"}, "password": PASSWORD, "refresh_token": True, "device_id": "PHONE"},
        )
        self.assertTrue(login["access_token"].startswith("eyJ"))
        self.assertEqual(login["expires_in_ms"], 300_000)
        phone = MatrixClient(base, login["access_token"])
        self.assertEqual((await phone.get("/account/whoami"))["device_id"], "PHONE")
        # /refresh rotates; the old refresh token may be retried until the new one is used.
        first = await anon.request("POST", "/_matrix/client/v3/refresh", {"refresh_token": login["refresh_token"]})
        retry = await anon.request("POST", "/_matrix/client/v3/refresh", {"refresh_token": login["refresh_token"]})
        third = await anon.request("POST", "/_matrix/client/v1/refresh", {"refresh_token": retry["refresh_token"]})
        code, body = await anon.raw("POST", "/_matrix/client/v3/refresh", {"refresh_token": login["refresh_token"]})
        self.assertEqual((code, body["errcode"]), (401, "M_UNKNOWN_TOKEN"))
        # ... and that reuse ended the session.
        for token in (third["access_token"], first["access_token"]):
            code, body = await _whoami_status(MatrixClient(base, token))
            self.assertEqual((code, body["errcode"], body["soft_logout"]), (401, "M_UNKNOWN_TOKEN", False))

        # /logout ends the session at once.
        laptop = await MatrixClient.login(base, "erin", PASSWORD, device_id="LAPTOP")
        await laptop.post("/logout")
        self.assertEqual((await _whoami_status(laptop))[0], 401)
        # Deleting a device from another session ends its sessions at once.
        a = await MatrixClient.login(base, "erin", PASSWORD, device_id="A")
        b = await MatrixClient.login(base, "erin", PASSWORD, device_id="B")
        code, body = await a.raw("DELETE", "/_matrix/client/v3/devices/B", {})
        await a.request("DELETE", "/_matrix/client/v3/devices/B", {"auth": {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "erin"}, "password": PASSWORD, "session": body["session"]}})
        self.assertEqual((await _whoami_status(b))[0], 401)
        # Logging in again with a device ID replaces that device's session.
        a2 = await MatrixClient.login(base, "erin", PASSWORD, device_id="A")
        self.assertEqual((await _whoami_status(a))[0], 401)
        await a2.get("/account/whoami")
        # Deactivation ends everything.
        code, body = await a2.raw("POST", "/_matrix/client/v3/account/deactivate", {})
        await a2.request("POST", "/_matrix/client/v3/account/deactivate", {"auth": {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "erin"}, "password": PASSWORD, "session": body["session"]}})
        self.assertEqual((await _whoami_status(a2))[0], 401)

    async def test_tokens_without_refresh_never_expire_and_survive_a_restart(self) -> None:
        server = await start_homeserver(self, access_token_lifetime=1000)
        await MatrixClient.register(server.base_url, "fay", PASSWORD)
        client = await MatrixClient.login(server.base_url, "fay", PASSWORD)
        claims = server.hs.auth.sessions.codec.verify(client.access_token or "")
        self.assertIsNone(claims.expires_at)
        from twisted.internet import reactor, task

        await task.deferLater(reactor, 1.5, lambda: None)
        await client.get("/account/whoami")
        # The revocation list is in the database: a restarted server still refuses a
        # revoked token (here: a second server on the same data directory).
        other = await MatrixClient.login(server.base_url, "fay", PASSWORD)
        await other.post("/logout")
        sessions = server.hs.auth.sessions
        fresh = type(sessions)(server.hs)
        await fresh.start()
        self.assertIn(sessions.codec.verify(other.access_token or "").session_id, fresh.revocations)

    async def test_key_rotation_signs_nobody_out(self) -> None:
        server = await start_homeserver(self)
        await MatrixClient.register(server.base_url, "gus", PASSWORD)
        client = await MatrixClient.login(server.base_url, "gus", PASSWORD, refresh_token=True)
        path = server.hs.config.auth.signing_keys_path
        old_keys = SigningKeys(path)
        from homeserver.cli import main as wspr_main

        self.assertEqual(wspr_main(["rotate-token-key", "-c", server.config_path]), 0)
        new_kid = SigningKeys(path).active.kid
        self.assertNotEqual(new_kid, old_keys.active.kid)
        # A process started after the rotation signs with the new key and still accepts
        # the old key's tokens; a process started before learns the new key when it
        # first meets it.
        new_keys = SigningKeys(path)
        self.assertEqual(new_keys.active.kid, new_kid)
        issuer = server.hs.config.public_baseurl
        after = AccessTokenCodec(new_keys, issuer)
        self.assertEqual(after.verify(client.access_token or "").user_id, "@gus:localhost")
        token = after.issue(user_id="@gus:localhost", device_id="D", session_id="s", is_guest=False, lifetime_s=60)
        before = AccessTokenCodec(old_keys, issuer)
        old_keys._last_reload = 0.0
        self.assertEqual(before.verify(token).device_id, "D")
        # The running server accepts tokens of the new key too (it re-reads the file).
        server.hs.auth.sessions.codec.keys._last_reload = 0.0
        session = server.hs.auth.sessions.codec.verify(client.access_token or "").session_id
        token = after.issue(user_id="@gus:localhost", device_id=client.device_id, session_id=session, is_guest=False, lifetime_s=60)
        await MatrixClient(server.base_url, token).get("/account/whoami")
        # A forged token (another key with the same kid) is refused.
        import json

        forged_path = self.mktemp()
        SigningKeys(forged_path)
        with open(forged_path) as f:
            forged_file = json.load(f)
        forged_file["keys"][0]["kid"] = forged_file["active"] = new_kid
        with open(forged_path, "w") as f:
            json.dump(forged_file, f)
        forged = AccessTokenCodec(SigningKeys(forged_path), issuer)
        bad = forged.issue(user_id="@gus:localhost", device_id="D", session_id=session, is_guest=False, lifetime_s=60)
        code, body = await _whoami_status(MatrixClient(server.base_url, bad))
        self.assertEqual((code, body["errcode"]), (401, "M_UNKNOWN_TOKEN"))

    async def test_opaque_format(self) -> None:
        server = await start_homeserver(self, access_token_format="opaque")
        await MatrixClient.register(server.base_url, "hal", PASSWORD)
        client = await MatrixClient.login(server.base_url, "hal", PASSWORD)
        self.assertTrue((client.access_token or "").startswith("wspr_at_"))
        await client.post("/logout")
        self.assertEqual((await _whoami_status(client))[0], 401)


class JwtSessionsTestPostgres(JwtSessionsTest):
    database = "postgresql"


class OAuthOnlyTest(unittest.TestCase):
    async def test_legacy_endpoints_answer_as_synapse_with_mas(self) -> None:
        server = await start_homeserver(self, password_login="oauth_only")
        base = server.base_url
        anon = MatrixClient(base)
        for method, path, body in (
            ("GET", "/_matrix/client/v3/login", None),
            ("POST", "/_matrix/client/v3/login", {"type": "m.login.password", "user": "x", "password": "y"}),
            ("POST", "/_matrix/client/v3/refresh", {"refresh_token": "x"}),
            ("POST", "/_matrix/client/v3/logout", {}),
            ("POST", "/_matrix/client/v3/account/password", {}),
            ("POST", "/_matrix/client/v3/delete_devices", {"devices": []}),
            ("DELETE", "/_matrix/client/v3/devices/X", {}),
            ("GET", "/_matrix/client/v3/register/available?username=x", None),
        ):
            code, answer = await anon.raw(method, path, body)
            self.assertEqual((code, answer["errcode"]), (404, "M_UNRECOGNIZED"), path)
        code, answer = await anon.raw("POST", "/_matrix/client/v3/register", {"username": "x", "password": "y"})
        self.assertEqual((code, answer["errcode"]), (403, "M_FORBIDDEN"))
        self.assertIn("m.login.application_service", answer["error"])
        # The OAuth 2.0 API is there, and the sign-in page signs users in.
        metadata = await anon.request("GET", "/_matrix/client/v1/auth_metadata")
        self.assertTrue(metadata["authorization_endpoint"].endswith("/_wspr/oauth2/authorize"))
        # Users exist (an admin creates them, or they sign up on the page); clients are told
        # the password is changed on the account pages.
        await server.hs.registration.register_user("ann", PASSWORD)
        session = await server.hs.auth.sessions.create("@ann:localhost", "ANN", None, kind="oauth", refreshable=True)
        capabilities = await MatrixClient(base, session.access_token).get("/capabilities")
        self.assertEqual(capabilities["capabilities"]["m.change_password"], {"enabled": False})

    async def test_synapse_with_delegated_auth_answers_the_same(self) -> None:
        """What Synapse 1.163 answers with its authentication delegated (MAS): the
        legacy sign-in servlets are not registered."""
        import inspect

        import synapse.rest.client.login as login_servlets
        import synapse.rest.client.logout as logout_servlets
        import synapse.rest.client.register as register_servlets

        for module in (login_servlets, logout_servlets):
            source = inspect.getsource(module.register_servlets)
            self.assertIn("if hs.config.mas.enabled:\n        return", source)
        self.assertIn("RegisterAppServiceOnlyRestServlet", inspect.getsource(register_servlets.register_servlets))


class JwtLoginTest(unittest.TestCase):
    def _token(self, secret: str, **claims: object) -> str:
        now = int(time.time())
        payload = {"sub": "ida", "iat": now, "exp": now + 60, **claims}
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode({"alg": "HS256"}, payload, OctKey.import_key(secret.encode()), algorithms=["HS256"])

    async def test_org_matrix_login_jwt(self) -> None:
        secret = "s3cret-key-for-tests-0123456789abcdef"
        server = await start_homeserver(
            self,
            jwt_config={"enabled": True, "secret": secret, "algorithm": "HS256", "issuer": "https://idp.example.org", "audiences": ["wspr"], "display_name_claim": "name"},
        )
        anon = MatrixClient(server.base_url)
        flows = (await anon.request("GET", "/_matrix/client/v3/login"))["flows"]
        self.assertEqual(flows[0], {"type": "org.matrix.login.jwt"})
        self.assertIn({"type": "m.login.password"}, flows)
        good = self._token(secret, iss="https://idp.example.org", aud="wspr", name="Ida")
        login = await anon.request("POST", "/_matrix/client/v3/login", {"type": "org.matrix.login.jwt", "token": good})
        self.assertEqual(login["user_id"], "@ida:localhost")
        me = MatrixClient(server.base_url, login["access_token"])
        self.assertEqual((await me.get("/profile/@ida:localhost"))["displayname"], "Ida")
        # Again: the same account.
        again = await anon.request("POST", "/_matrix/client/v3/login", {"type": "org.matrix.login.jwt", "token": good})
        self.assertEqual(again["user_id"], "@ida:localhost")
        for token, why in (
            (self._token("wrong-secret-wrong-secret-wrong-0123", iss="https://idp.example.org", aud="wspr"), "Signature verification failed"),
            (self._token(secret, iss="https://other.example.org", aud="wspr"), "iss"),
            (self._token(secret, iss="https://idp.example.org", aud="other"), "aud"),
            (self._token(secret, iss="https://idp.example.org", aud="wspr", exp=int(time.time()) - 600), "expired"),
            (self._token(secret, iss="https://idp.example.org", aud="wspr", sub=None), "Invalid JWT"),
            (None, "missing"),
        ):
            code, body = await anon.raw("POST", "/_matrix/client/v3/login", {"type": "org.matrix.login.jwt", "token": token})
            self.assertEqual((code, body["errcode"]), (403, "M_FORBIDDEN"), why)
            self.assertIn(why.lower(), body["error"].lower(), body)

    async def test_jwt_login_stays_under_oauth_only(self) -> None:
        secret = "another-secret-0123456789abcdef0123"
        server = await start_homeserver(self, password_login="oauth_only", jwt_config={"enabled": True, "secret": secret})
        anon = MatrixClient(server.base_url)
        self.assertEqual((await anon.request("GET", "/_matrix/client/v3/login"))["flows"], [{"type": "org.matrix.login.jwt"}])
        code, body = await anon.raw("POST", "/_matrix/client/v3/login", {"type": "m.login.password", "user": "x", "password": "y"})
        self.assertEqual((code, body["errcode"]), (400, "M_UNKNOWN"))
        login = await anon.request("POST", "/_matrix/client/v3/login", {"type": "org.matrix.login.jwt", "token": self._token(secret)})
        self.assertEqual(login["user_id"], "@ida:localhost")


class RedisFanoutTest(unittest.TestCase):
    """Two processes on one database (here: two servers in one test process, sharing the
    data directory): a session ended on one is refused by the other at once, through
    Redis pub/sub; without Redis the other only learns it at its next start."""

    async def _pair(self, redis: bool) -> tuple[MatrixClient, str, str]:
        import socket

        from twisted.internet import defer

        from homeserver.app import HomeServer
        from homeserver.config import load_config

        with socket.socket() as s:
            try:
                s.connect(("127.0.0.1", 6379))
            except OSError:
                raise unittest.SkipTest("Redis is not running on 127.0.0.1:6379") from None
        overrides = {"redis": {"enabled": True, "dbid": 3}} if redis else {}
        first = await start_homeserver(self, **overrides)
        second_hs = HomeServer(load_config(first.config_path))
        await second_hs.start()
        self.addCleanup(lambda: defer.ensureDeferred(second_hs.stop()))
        if redis:
            for hs in (first.hs, second_hs):
                assert hs.auth.sessions.fanout is not None
                await hs.auth.sessions.fanout.ready
        await MatrixClient.register(first.base_url, "ivy", PASSWORD)
        client = await MatrixClient.login(first.base_url, "ivy", PASSWORD, refresh_token=True)
        return client, first.base_url, f"http://127.0.0.1:{second_hs.client_port}"

    async def test_revocation_reaches_the_other_process_through_redis(self) -> None:
        client, first, second = await self._pair(redis=True)
        on_second = MatrixClient(second, client.access_token)
        await on_second.get("/account/whoami")
        await client.post("/logout")
        from twisted.internet import reactor, task

        for _ in range(50):
            if (await _whoami_status(on_second))[0] == 401:
                break
            await task.deferLater(reactor, 0.02, lambda: None)
        code, body = await _whoami_status(on_second)
        self.assertEqual((code, body["errcode"]), (401, "M_UNKNOWN_TOKEN"))

    async def test_without_redis_the_other_process_does_not_know(self) -> None:
        client, first, second = await self._pair(redis=False)
        on_second = MatrixClient(second, client.access_token)
        await client.post("/logout")
        # Documented: one process, or Redis. Here the second server still accepts the
        # token until it expires or the server restarts.
        self.assertEqual((await _whoami_status(on_second))[0], 200)
