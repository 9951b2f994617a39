"""The Matrix OAuth 2.0 API end to end over HTTP: discovery, dynamic registration, the
authorisation code grant with PKCE through the sign-in and consent pages, the refresh
token grant, revocation, and every endpoint's errors (compared with the spec's OpenAPI
schema where it has one)."""

from __future__ import annotations

import os

import yaml
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from twisted.trial import unittest

from tests.homeserver.compat import spec_fuzz
from tests.homeserver.oauth.helpers import (
    CLIENT_METADATA,
    REDIRECT_URI,
    Browser,
    authorize_url,
    pkce,
    post_form,
    post_json,
    redirect_params,
    scope,
)
from tests.support.wspr import MatrixClient, start_homeserver


def _spec_schema() -> dict:
    path = os.path.join(spec_fuzz.CLIENT_SERVER, "oauth_server_metadata.yaml")
    if not os.path.exists(path):
        raise unittest.SkipTest(f"Matrix spec not found at {spec_fuzz.CLIENT_SERVER}")
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)["paths"]["/auth_metadata"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]


class OAuthFlowTest(unittest.TestCase):
    database = "sqlite"

    async def _server(self, **overrides: object) -> tuple[str, MatrixClient]:
        server = await start_homeserver(self, **overrides)
        await MatrixClient.register(server.base_url, "alice", "correct horse")
        self.server = server
        return server.base_url, MatrixClient(server.base_url)

    async def _register_client(self, base: str, **changes: object) -> str:
        code, body = await post_json(base + "/_wspr/oauth2/register", {**CLIENT_METADATA, **changes})
        self.assertEqual(code, 201, body)
        return body["client_id"]

    async def _login(self, base: str, client_id: str, device_id: str = "OAUTHDEV01") -> tuple[dict, str]:
        verifier, challenge = pkce()
        browser = Browser(base)
        location = await browser.sign_in_and_consent(
            authorize_url(base, client_id, device_id, challenge), "alice", "correct horse"
        )
        params = redirect_params(location)
        self.assertIn("code", params, location)
        code, body = await post_form(
            base + "/_wspr/oauth2/token",
            {
                "grant_type": "authorization_code",
                "code": params["code"],
                "redirect_uri": REDIRECT_URI,
                "client_id": client_id,
                "code_verifier": verifier,
            },
        )
        self.assertEqual(code, 200, body)
        return body, params["code"]

    async def test_discovery_matches_spec_and_rfc8414(self) -> None:
        base, anon = await self._server()
        for path in (
            "/_matrix/client/v1/auth_metadata",
            "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata",
            "/.well-known/openid-configuration",
        ):
            metadata = await anon.request("GET", path)
            schema = _spec_schema()
            for key in schema["required"]:
                self.assertIn(key, metadata, path)
            self.assertIn("S256", metadata["code_challenge_methods_supported"])
            self.assertNotIn("plain", metadata["code_challenge_methods_supported"])
            self.assertEqual(set(metadata["response_modes_supported"]), {"query", "fragment"})
            self.assertIn("create", metadata["prompt_values_supported"])
            allowed = set(schema["properties"]["account_management_actions_supported"]["items"]["enum"])
            # The spec's names and MSC4191's earlier ones (which released clients send).
            self.assertTrue(allowed <= set(metadata["account_management_actions_supported"]) | {"org.matrix.account_deactivate"})
            self.assertIn("org.matrix.sessions_list", metadata["account_management_actions_supported"])
            # authlib's RFC 8414 validation (https issuer is the one rule a loopback test breaks).
            AuthorizationServerMetadata({**metadata, "issuer": "https://example.org/"}).validate()
        issuer = await anon.request("GET", "/_matrix/client/unstable/org.matrix.msc2965/auth_issuer")
        self.assertEqual(issuer["issuer"], metadata["issuer"])
        well_known = await anon.request("GET", "/.well-known/matrix/client")
        self.assertEqual(well_known["org.matrix.msc2965.authentication"]["issuer"], metadata["issuer"])
        # Without the OAuth 2.0 API: 404 M_UNRECOGNIZED, as the spec says.
        other = await start_homeserver(self, oauth={"enabled": False})
        code, body = await MatrixClient(other.base_url).raw("GET", "/_matrix/client/v1/auth_metadata")
        self.assertEqual((code, body["errcode"]), (404, "M_UNRECOGNIZED"))

    async def test_login_refresh_revoke(self) -> None:
        base, _ = await self._server()
        client_id = await self._register_client(base)
        tokens, _ = await self._login(base, client_id)
        self.assertEqual(tokens["token_type"], "Bearer")
        self.assertEqual(tokens["scope"], scope("OAUTHDEV01"))
        self.assertGreater(tokens["expires_in"], 0)
        client = MatrixClient(base, tokens["access_token"])
        whoami = await client.get("/account/whoami")
        self.assertEqual((whoami["user_id"], whoami["device_id"]), ("@alice:localhost", "OAUTHDEV01"))
        devices = await client.get("/devices")
        self.assertIn("OAUTHDEV01", [d["device_id"] for d in devices["devices"]])
        await client.sync()

        code, refreshed = await post_form(
            base + "/_wspr/oauth2/token",
            {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": client_id},
        )
        self.assertEqual(code, 200, refreshed)
        self.assertNotEqual(refreshed["refresh_token"], tokens["refresh_token"])
        client2 = MatrixClient(base, refreshed["access_token"])
        await client2.get("/account/whoami")

        code, body = await post_form(
            base + "/_wspr/oauth2/revoke",
            {"token": refreshed["access_token"], "token_type_hint": "access_token", "client_id": client_id},
        )
        self.assertEqual(code, 200, body)
        for c in (client, client2):
            code, body = await c.raw("GET", "/_matrix/client/v3/account/whoami")
            self.assertEqual((code, body["errcode"], body.get("soft_logout")), (401, "M_UNKNOWN_TOKEN", False))
        # The refresh token went with the session, and the device with it.
        code, body = await post_form(
            base + "/_wspr/oauth2/token",
            {"grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"], "client_id": client_id},
        )
        self.assertEqual((code, body["error"]), (400, "invalid_grant"))
        other = await MatrixClient.login(base, "alice", "correct horse")
        self.assertNotIn("OAUTHDEV01", [d["device_id"] for d in (await other.get("/devices"))["devices"]])
        # Revoking again, or an unknown token, is still 200 (RFC 7009).
        code, _ = await post_form(base + "/_wspr/oauth2/revoke", {"token": refreshed["access_token"]})
        self.assertEqual(code, 200)
        code, _ = await post_form(base + "/_wspr/oauth2/revoke", {"token": "nonsense"})
        self.assertEqual(code, 200)


    async def test_query_response_mode_and_unstable_scope(self) -> None:
        base, _ = await self._server()
        client_id = await self._register_client(base)
        verifier, challenge = pkce()
        url = authorize_url(base, client_id, "RUSTSDK001", challenge, response_mode="query", scope=scope("RUSTSDK001", unstable=True))
        location = await Browser(base).sign_in_and_consent(url, "alice", "correct horse")
        self.assertTrue(location.startswith(REDIRECT_URI + "?"), location)
        params = redirect_params(location)
        self.assertTrue(params["state"].startswith("st-"))
        code, body = await post_form(
            base + "/_wspr/oauth2/token",
            {"grant_type": "authorization_code", "code": params["code"], "redirect_uri": REDIRECT_URI, "client_id": client_id, "code_verifier": verifier},
        )
        self.assertEqual(code, 200, body)
        # The unstable MSC2967 names are granted as asked.
        self.assertEqual(body["scope"], scope("RUSTSDK001", unstable=True))
        self.assertEqual((await MatrixClient(base, body["access_token"]).get("/account/whoami"))["device_id"], "RUSTSDK001")

    async def test_registration_errors(self) -> None:
        base, _ = await self._server()
        url = base + "/_wspr/oauth2/register"
        bad = [
            ({"client_uri": "http://client.example.org/"}, "invalid_client_metadata"),
            ({"client_uri": "https://user:pw@client.example.org/"}, "invalid_client_metadata"),
            ({"client_uri": None}, "invalid_client_metadata"),
            ({"redirect_uris": ["https://other.example.com/callback"]}, "invalid_redirect_uri"),
            ({"redirect_uris": ["https://app.client.example.org/callback#frag"]}, "invalid_redirect_uri"),
            ({"redirect_uris": ["http://app.client.example.org/callback"]}, "invalid_redirect_uri"),
            ({"redirect_uris": []}, "invalid_redirect_uri"),
            ({"token_endpoint_auth_method": "client_secret_basic"}, "invalid_client_metadata"),
            ({"application_type": "desktop"}, "invalid_client_metadata"),
            ({"logo_uri": "https://elsewhere.example.com/logo.png"}, "invalid_client_metadata"),
            # native clients (the spec's examples of invalid URIs)
            ({"application_type": "native", "redirect_uris": ["example:/callback"]}, "invalid_redirect_uri"),
            ({"application_type": "native", "redirect_uris": ["org.example:/callback"]}, "invalid_redirect_uri"),
            ({"application_type": "native", "redirect_uris": ["org.example.client.app://callback"]}, "invalid_redirect_uri"),
            ({"application_type": "native", "redirect_uris": ["https://localhost/callback"]}, "invalid_redirect_uri"),
            ({"application_type": "native", "redirect_uris": ["http://localhost:1234/callback"]}, "invalid_redirect_uri"),
        ]
        for change, error in bad:
            body = {**CLIENT_METADATA, **change}
            body = {k: v for k, v in body.items() if v is not None}
            code, answer = await post_json(url, body)
            self.assertEqual((code, answer.get("error")), (400, error), change)
        code, answer = await post_json(url, ["not", "an", "object"])
        self.assertEqual((code, answer["error"]), (400, "invalid_client_metadata"))
        # The spec's valid native forms; localised and unknown values are dropped.
        good = {
            **CLIENT_METADATA,
            "application_type": "native",
            "redirect_uris": [
                "org.example.client.app:/callback",
                "org.example.client:/",
                "org.example.client:callback",
                "http://localhost/callback",
                "http://127.0.0.1/callback",
                "http://[::1]/callback",
                "https://app.client.example.org/callback",
            ],
            "client_name#fr": "Client de test",
            "grant_types": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange"],
        }
        code, answer = await post_json(url, good)
        self.assertEqual(code, 201, answer)
        self.assertEqual(answer["grant_types"], ["authorization_code", "refresh_token"])
        self.assertNotIn("client_name#fr", answer)
        self.assertNotIn("client_secret", answer)
        # Identical metadata shares one client_id (the spec's suggested de-duplication).
        code, again = await post_json(url, good)
        self.assertEqual(again["client_id"], answer["client_id"])

    async def test_native_loopback_redirect_takes_any_port(self) -> None:
        base, _ = await self._server()
        client_id = await self._register_client(
            base, client_uri="https://example.com/", application_type="native", redirect_uris=["http://127.0.0.1/callback"]
        )
        verifier, challenge = pkce()
        url = authorize_url(base, client_id, "LOOPBACK01", challenge, redirect_uri="http://127.0.0.1:54321/callback", response_mode="query")
        location = await Browser(base).sign_in_and_consent(url, "alice", "correct horse")
        self.assertTrue(location.startswith("http://127.0.0.1:54321/callback?code="), location)
        code, body = await post_form(
            base + "/_wspr/oauth2/token",
            {"grant_type": "authorization_code", "code": redirect_params(location)["code"], "redirect_uri": "http://127.0.0.1:54321/callback", "client_id": client_id, "code_verifier": verifier},
        )
        self.assertEqual(code, 200, body)

    async def test_authorization_request_errors(self) -> None:
        base, _ = await self._server()
        client_id = await self._register_client(base)
        _, challenge = pkce()
        browser = Browser(base)
        # No valid client or redirect URI: an error page, never a redirect.
        for extra in ({"client_id": "nope"}, {"redirect_uri": "https://evil.example.com/cb"}, {"client_id": None}):
            url = authorize_url(base, extra.get("client_id", client_id), "DEV", challenge, **{k: v for k, v in extra.items() if k != "client_id"})
            if "client_id" in extra and extra["client_id"] is None:
                url = url.replace("client_id=None&", "").replace("&client_id=None", "")
            code, headers, page = await browser.get(url)
            self.assertEqual(code, 400, extra)
            self.assertNotIn("location", headers)
            self.assertIn("not valid", page)
        # After the redirect URI is validated, errors go back to the client with the state.
        cases = [
            ({"code_challenge": None}, "invalid_request"),  # PKCE is required
            ({"code_challenge_method": "plain"}, "invalid_request"),  # plain is refused
            ({"code_challenge_method": None}, "invalid_request"),  # (no method means plain)
            ({"scope": "urn:matrix:client:api:*"}, "invalid_scope"),  # no device
            ({"scope": scope("A") + " urn:matrix:client:device:B"}, "invalid_scope"),  # two devices
            ({"scope": "urn:matrix:client:device:ABC"}, "invalid_scope"),  # no API access
            ({"scope": "urn:matrix:client:api:* urn:matrix:client:device:bad/dev"}, "invalid_scope"),
            ({"response_type": "token"}, "unsupported_response_type"),
            ({"response_mode": "form_post"}, "invalid_request"),
        ]
        for extra, error in cases:
            url = authorize_url(base, client_id, "DEVICE", challenge, state="s123", **extra)
            code, headers, _ = await browser.get(url)
            self.assertEqual(code, 303, extra)
            location = headers["location"][0]
            # (an unknown response_mode falls back to the default, query)
            separator = "?" if extra.get("response_mode") == "form_post" else "#"
            self.assertTrue(location.startswith(REDIRECT_URI + separator), (extra, location))
            params = redirect_params(location)
            self.assertEqual((params["error"], params["state"]), (error, "s123"), extra)
        # The user says no: access_denied.
        location = await browser.sign_in_and_consent(
            authorize_url(base, client_id, "DEVICE", challenge), "alice", "correct horse", approve=False
        )
        self.assertEqual(redirect_params(location)["error"], "access_denied")

    async def test_token_endpoint_errors(self) -> None:
        base, _ = await self._server()
        client_id = await self._register_client(base)
        other_client = await self._register_client(base, client_name="Other")
        token_url = base + "/_wspr/oauth2/token"

        async def new_code(device: str) -> tuple[str, str]:
            verifier, challenge = pkce()
            location = await Browser(base).sign_in_and_consent(authorize_url(base, client_id, device, challenge), "alice", "correct horse")
            return redirect_params(location)["code"], verifier

        def form(the_code: str, verifier: str, **changes: str) -> dict[str, str]:
            f = {"grant_type": "authorization_code", "code": the_code, "redirect_uri": REDIRECT_URI, "client_id": client_id, "code_verifier": verifier}
            f.update(changes)
            return {k: v for k, v in f.items() if v is not None}

        code_, verifier = await new_code("DEVA")
        for changes, status, error in [
            ({"code_verifier": pkce()[0]}, 400, "invalid_grant"),  # wrong verifier
            ({"code_verifier": None}, 400, "invalid_request"),  # missing verifier
            ({"code_verifier": "short"}, 400, "invalid_request"),
            ({"redirect_uri": "https://app.client.example.org/other"}, 400, "invalid_grant"),
            ({"client_id": other_client}, 400, "invalid_grant"),  # another client's code
            ({"client_id": "unknown"}, 400, "invalid_client"),
            ({"code": "made-up"}, 400, "invalid_grant"),
            ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ]:
            status_, body = await post_form(token_url, form(code_, verifier, **changes))
            self.assertEqual((status_, body.get("error")), (status, error), changes)
        # The code still works after those failures; once.
        status_, first = await post_form(token_url, form(code_, verifier))
        self.assertEqual(status_, 200, first)
        client = MatrixClient(base, first["access_token"])
        await client.get("/account/whoami")
        # Code reuse: refused, and the session it gave is revoked (RFC 6749 4.1.2).
        status_, body = await post_form(token_url, form(code_, verifier))
        self.assertEqual((status_, body["error"]), (400, "invalid_grant"))
        status_, body = await client.raw("GET", "/_matrix/client/v3/account/whoami")
        self.assertEqual((status_, body["errcode"]), (401, "M_UNKNOWN_TOKEN"))

    async def test_refresh_token_reuse_revokes_session(self) -> None:
        base, _ = await self._server()
        client_id = await self._register_client(base)
        tokens, _ = await self._login(base, client_id)
        url = base + "/_wspr/oauth2/token"

        def refresh(token: str, cid: str = client_id) -> dict[str, str]:
            return {"grant_type": "refresh_token", "refresh_token": token, "client_id": cid}

        rt1 = tokens["refresh_token"]
        # Another client cannot use it (and does not burn it).
        other = await self._register_client(base, client_name="Other")
        status, body = await post_form(url, refresh(rt1, other))
        self.assertEqual((status, body["error"]), (400, "invalid_grant"))
        status, second = await post_form(url, refresh(rt1))
        self.assertEqual(status, 200, second)
        # The answer was lost: the client retries with the old token, and may (the spec's
        # MUST): the unused successor is replaced.
        status, retry = await post_form(url, refresh(rt1))
        self.assertEqual(status, 200, retry)
        status, third = await post_form(url, refresh(retry["refresh_token"]))
        self.assertEqual(status, 200, third)
        live = MatrixClient(base, third["access_token"])
        await live.get("/account/whoami")
        # Now rt1's successor has been used: presenting rt1 again is theft. The session ends.
        status, body = await post_form(url, refresh(rt1))
        self.assertEqual((status, body["error"]), (400, "invalid_grant"))
        status, body = await live.raw("GET", "/_matrix/client/v3/account/whoami")
        self.assertEqual((status, body["errcode"], body["soft_logout"]), (401, "M_UNKNOWN_TOKEN", False))
        status, body = await post_form(url, refresh(third["refresh_token"]))
        self.assertEqual((status, body["error"]), (400, "invalid_grant"))
        # The superseded successor of the retry counts as reuse too.

    async def test_superseded_refresh_token_revokes_session(self) -> None:
        base, _ = await self._server()
        client_id = await self._register_client(base)
        tokens, _ = await self._login(base, client_id)
        url = base + "/_wspr/oauth2/token"

        def form(t: str) -> dict[str, str]:
            return {"grant_type": "refresh_token", "refresh_token": t, "client_id": client_id}

        status, lost = await post_form(url, form(tokens["refresh_token"]))
        status, retry = await post_form(url, form(tokens["refresh_token"]))
        self.assertEqual(status, 200)
        # The first answer was not lost after all: someone else holds it. Using it ends it all.
        status, body = await post_form(url, form(lost["refresh_token"]))
        self.assertEqual((status, body["error"]), (400, "invalid_grant"))
        status, body = await MatrixClient(base, retry["access_token"]).raw("GET", "/_matrix/client/v3/account/whoami")
        self.assertEqual((status, body["errcode"]), (401, "M_UNKNOWN_TOKEN"))

    async def test_revocation_errors_and_refresh_token_revocation(self) -> None:
        base, _ = await self._server()
        client_id = await self._register_client(base)
        tokens, _ = await self._login(base, client_id)
        url = base + "/_wspr/oauth2/revoke"
        status, body = await post_form(url, {"client_id": client_id})
        self.assertEqual((status, body["error"]), (400, "invalid_request"))
        # Revoking the refresh token, without a client_id (a secret scanner) and with a hint
        # the server does not know (RFC 7009: the hint only helps the search), ends the session.
        status, _ = await post_form(url, {"token": tokens["refresh_token"], "token_type_hint": "id_token"})
        self.assertEqual(status, 200)
        status, body = await MatrixClient(base, tokens["access_token"]).raw("GET", "/_matrix/client/v3/account/whoami")
        self.assertEqual((status, body["errcode"]), (401, "M_UNKNOWN_TOKEN"))

    async def test_expired_access_token_is_soft_logout(self) -> None:
        base, _ = await self._server(access_token_lifetime=1000)
        client_id = await self._register_client(base)
        tokens, _ = await self._login(base, client_id)
        self.assertEqual(tokens["expires_in"], 1)
        from twisted.internet import reactor, task

        await task.deferLater(reactor, 2.1, lambda: None)
        status, body = await MatrixClient(base, tokens["access_token"]).raw("GET", "/_matrix/client/v3/account/whoami")
        self.assertEqual((status, body["errcode"], body["soft_logout"]), (401, "M_UNKNOWN_TOKEN", True))

    async def test_prompt_create_signs_up(self) -> None:
        base, _ = await self._server()
        client_id = await self._register_client(base)
        verifier, challenge = pkce()
        browser = Browser(base)
        code, headers, _ = await browser.get(authorize_url(base, client_id, "NEWUSER001", challenge, prompt="create"))
        self.assertEqual(headers["location"][0], "/_wspr/register")
        await browser.get("/_wspr/register")
        code, _, page = await browser.post("/_wspr/register", {"username": "bob", "password": "pw", "confirm": "nope"})
        self.assertEqual(code, 400)
        self.assertIn("do not match", page)
        code, _, page = await browser.post("/_wspr/register", {"username": "alice", "password": "pw", "confirm": "pw"})
        self.assertIn("taken", page)
        code, headers, _ = await browser.post("/_wspr/register", {"username": "bob", "password": "pw", "confirm": "pw"})
        await browser.follow(code, headers)
        self.assertIn("Allow access?", browser.last_page)
        self.assertIn("@bob:localhost", browser.last_page)
        code, headers, _ = await browser.post("/_wspr/consent", {"decision": "approve"})
        location = await browser.follow(code, headers)
        status, body = await post_form(
            base + "/_wspr/oauth2/token",
            {"grant_type": "authorization_code", "code": redirect_params(location)["code"], "redirect_uri": REDIRECT_URI, "client_id": client_id, "code_verifier": verifier},
        )
        self.assertEqual(status, 200, body)
        self.assertEqual((await MatrixClient(base, body["access_token"]).get("/account/whoami"))["user_id"], "@bob:localhost")
        # The new account signs in with its password on the legacy API too.
        await MatrixClient.login(base, "bob", "pw")

    async def test_sign_up_closed_and_token_gated(self) -> None:
        closed = await start_homeserver(self, enable_registration=False)
        code, _, page = await Browser(closed.base_url).get("/_wspr/register")
        self.assertEqual(code, 403)
        self.assertIn("closed", page)
        gated = await start_homeserver(self, registration_requires_token=True)
        base2 = gated.base_url
        await gated.hs.store.create_registration_token("abc", 1, None)
        browser = Browser(base2)
        await browser.get("/_wspr/register")
        self.assertIn('name="token"', browser.last_page)
        code, _, page = await browser.post("/_wspr/register", {"username": "carol", "password": "pw", "confirm": "pw", "token": "wrong"})
        self.assertEqual(code, 400)
        self.assertIn("not valid", page)
        code, headers, _ = await browser.post("/_wspr/register", {"username": "carol", "password": "pw", "confirm": "pw", "token": "abc"})
        self.assertEqual(headers["location"][0], "/_wspr/account")
        await MatrixClient.login(base2, "carol", "pw")
        # The token had one use.
        self.assertFalse(await gated.hs.store.registration_token_valid("abc"))


class OAuthFlowTestPostgres(OAuthFlowTest):
    database = "postgresql"
