"""The account pages over plain HTTP: the account management URL and its actions,
profile, sessions (list, view, sign out), password change with a fresh sign-in, and the
cross-signing reset approval a client's m.oauth UIA stage points at."""

from __future__ import annotations

from twisted.trial import unittest

from tests.homeserver.e2e._helpers import Ed25519, cross_signing_key
from tests.homeserver.oauth.helpers import (
    CLIENT_METADATA,
    REDIRECT_URI,
    Browser,
    authorize_url,
    pkce,
    post_form,
    post_json,
    redirect_params,
)
from tests.support.wspr import MatrixClient, start_homeserver

PASSWORD = "correct horse"


class AccountPagesTest(unittest.TestCase):
    database = "sqlite"

    async def _setup(self, **overrides: object) -> str:
        self.server = await start_homeserver(self, **overrides)
        await MatrixClient.register(self.server.base_url, "alice", PASSWORD)
        return self.server.base_url

    async def _signed_in_browser(self, base: str) -> Browser:
        browser = Browser(base)
        code, headers, _ = await browser.get("/_wspr/account")
        self.assertEqual(headers["location"][0], "/_wspr/login")
        await browser.get("/_wspr/login")
        code, _, page = await browser.post("/_wspr/login", {"step": "password", "username": "alice", "password": "wrong"})
        self.assertEqual(code, 400)
        self.assertIn("Wrong user name or password", page)
        self.assertIn('role="alert"', page)
        before = browser.cookies["wspr_session"]
        code, headers, _ = await browser.post("/_wspr/login", {"step": "password", "username": "alice", "password": PASSWORD})
        self.assertEqual(headers["location"][0], "/_wspr/account")
        # A new session cookie once signed in; the old one is worth nothing.
        self.assertNotEqual(browser.cookies["wspr_session"], before)
        self.assertIsNone(await self.server.hs.account_pages.load_web_session(before))
        await browser.get("/_wspr/account")
        self.assertIn("@alice:localhost", browser.last_page)
        return browser

    async def _oauth_client(self, base: str, device_id: str) -> tuple[MatrixClient, str]:
        code, body = await post_json(base + "/_wspr/oauth2/register", CLIENT_METADATA)
        client_id = body["client_id"]
        verifier, challenge = pkce()
        location = await Browser(base).sign_in_and_consent(authorize_url(base, client_id, device_id, challenge), "alice", PASSWORD)
        status, tokens = await post_form(
            base + "/_wspr/oauth2/token",
            {"grant_type": "authorization_code", "code": redirect_params(location)["code"], "redirect_uri": REDIRECT_URI, "client_id": client_id, "code_verifier": verifier},
        )
        self.assertEqual(status, 200, tokens)
        return MatrixClient(base, tokens["access_token"], "@alice:localhost", device_id), client_id

    async def test_pages_are_safe_to_serve(self) -> None:
        base = await self._setup()
        browser = Browser(base)
        code, headers, page = await browser.get("/_wspr/login")
        self.assertEqual(code, 200)
        csp = headers["content-security-policy"][0]
        self.assertIn("default-src 'none'", csp)
        self.assertIn("frame-ancestors 'none'", csp)
        self.assertEqual(headers["x-frame-options"][0], "DENY")
        self.assertEqual(headers["cache-control"][0], "no-store")
        cookie = headers["set-cookie"][0]
        for attribute in ("HttpOnly", "SameSite=Lax", "Path=/_wspr/"):
            self.assertIn(attribute, cookie)
        # Accessible form: labelled inputs with autocomplete hints, a viewport for phones.
        for fragment in ('<label for="f-username">', 'autocomplete="current-password"', 'name="viewport"', 'lang="en"'):
            self.assertIn(fragment, page)
        # No external resources.
        self.assertNotIn("http://", page.replace(base, ""))
        self.assertNotIn("https://", page)
        # A form post without the CSRF token does nothing.
        code, headers, _ = await browser.post("/_wspr/login", {"step": "password", "username": "alice", "password": PASSWORD, "csrf": "forged"})
        self.assertEqual(headers["location"][0], "/_wspr/login")
        code, _, _ = await browser.get("/_wspr/login")
        self.assertIn('name="step" value="password"', browser.last_page)
        code, _, css = await browser.get("/_wspr/static/account.css")
        self.assertEqual(code, 200)

    async def test_profile_and_sessions(self) -> None:
        base = await self._setup()
        phone, _ = await self._oauth_client(base, "PHONE00001")
        browser = await self._signed_in_browser(base)
        code, _, page = await browser.get("/_wspr/account/profile")
        self.assertIn('value="alice"', page)
        await browser.post("/_wspr/account/profile", {"displayname": "Alice <3"})
        self.assertIn("Saved", browser.last_page)
        self.assertIn("Alice &lt;3", browser.last_page)
        self.assertEqual((await phone.get("/profile/@alice:localhost"))["displayname"], "Alice <3")
        code, _, page = await browser.get("/_wspr/account/sessions")
        self.assertIn("PHONE00001", page)
        self.assertIn("Test client", page)
        code, _, page = await browser.get("/_wspr/account/session?device_id=PHONE00001")
        self.assertIn("client.example.org", page)
        # Deep links of the account management URL (the spec's and MSC4191's action names).
        for action, target in (
            ("org.matrix.profile", "/_wspr/account/profile"),
            ("org.matrix.sessions_list", "/_wspr/account/sessions"),
            ("org.matrix.devices_list", "/_wspr/account/sessions"),
            ("org.matrix.session_view&device_id=PHONE00001", "/_wspr/account/session?device_id=PHONE00001"),
            ("org.matrix.device_delete&device_id=PHONE00001", "/_wspr/account/session/end?device_id=PHONE00001"),
            ("org.matrix.session_end&device_id=PHONE00001", "/_wspr/account/session/end?device_id=PHONE00001"),
            ("org.matrix.cross_signing_reset", "/_wspr/account/cross_signing_reset"),
        ):
            code, headers, _ = await browser.get(f"/_wspr/account?action={action}")
            self.assertEqual(headers["location"][0], target, action)
        # Signing a session out: its token dies at once, its device goes.
        code, _, page = await browser.get("/_wspr/account/session/end?device_id=PHONE00001")
        self.assertIn("Sign out", page)
        code, headers, _ = await browser.post("/_wspr/account/session/end", {"device_id": "PHONE00001"})
        self.assertEqual(headers["location"][0], "/_wspr/account/sessions")
        code, body = await phone.raw("GET", "/_matrix/client/v3/account/whoami")
        self.assertEqual((code, body["errcode"]), (401, "M_UNKNOWN_TOKEN"))
        code, _, page = await browser.get("/_wspr/account/sessions")
        self.assertNotIn("PHONE00001", page)

    async def test_sensitive_actions_need_a_fresh_sign_in(self) -> None:
        base = await self._setup()
        browser = await self._signed_in_browser(base)
        other = await MatrixClient.login(base, "alice", PASSWORD)
        # Age the sign-in past the re-authentication window.
        session = await self.server.hs.account_pages.load_web_session(browser.cookies["wspr_session"])
        assert session is not None
        from homeserver.storage.sessions import WebSessionRecord

        r = session.record
        await self.server.hs.store.store_web_session(
            WebSessionRecord(r.session_hash, r.user_id, r.auth_time - 3600_000, r.flow, r.created_ts, r.expires_ts)
        )
        code, headers, _ = await browser.get("/_wspr/account/password")
        self.assertEqual(headers["location"][0], "/_wspr/login")
        code, _, page = await browser.get("/_wspr/login")
        self.assertIn("Confirm it is you", page)
        self.assertIn("readonly", page)
        code, headers, _ = await browser.post("/_wspr/login", {"step": "password", "password": PASSWORD})
        self.assertEqual(headers["location"][0], "/_wspr/account/password")
        await browser.get("/_wspr/account/password")
        code, _, page = await browser.post("/_wspr/account/password", {"new_password": "new pw", "confirm": "other"})
        self.assertEqual(code, 400)
        code, _, page = await browser.post("/_wspr/account/password", {"new_password": "new pw", "confirm": "new pw", "sign_out": "on"})
        self.assertIn("has been changed", page)
        # Everywhere else signed out, at once; the new password works.
        code, body = await other.raw("GET", "/_matrix/client/v3/account/whoami")
        self.assertEqual((code, body["errcode"]), (401, "M_UNKNOWN_TOKEN"))
        await MatrixClient.login(base, "alice", "new pw")

    async def test_cross_signing_reset_with_m_oauth(self) -> None:
        base = await self._setup()
        client, _ = await self._oauth_client(base, "XSIGNDEV01")
        master, ssk = Ed25519(), Ed25519()
        uid = client.user_id

        def keys(m: Ed25519, s: Ed25519) -> dict:
            return {
                "master_key": cross_signing_key(uid, m, "master"),
                "self_signing_key": m.sign(cross_signing_key(uid, s, "self_signing"), uid),
            }

        # First set-up needs no auth (MSC3967).
        await client.post("/keys/device_signing/upload", keys(master, ssk))
        # Replacing them from an OAuth session: the m.oauth stage, as Synapse with MAS answers.
        new_master, new_ssk = Ed25519(), Ed25519()
        code, body = await client.raw("POST", "/_matrix/client/v3/keys/device_signing/upload", keys(new_master, new_ssk))
        self.assertEqual(code, 401, body)
        url = f"{self.server.hs.config.public_baseurl}_wspr/account?action=org.matrix.cross_signing_reset"
        self.assertEqual(body["flows"], [{"stages": ["m.oauth"]}, {"stages": ["org.matrix.cross_signing_reset"]}])
        self.assertEqual(body["params"], {"m.oauth": {"url": url}, "org.matrix.cross_signing_reset": {"url": url}})
        self.assertEqual(body["session"], "dummy")
        self.assertIn(url, body["msg"])
        # The UIA fallback page sends the browser there too.
        code, headers, _ = await Browser(base).get("/_matrix/client/v3/auth/m.oauth/fallback/web?session=dummy")
        self.assertEqual((code, headers["location"][0]), (302, url))
        # The user approves on the account page; the client retries and succeeds.
        browser = await self._signed_in_browser(base)
        code, _, page = await browser.get("/_wspr/account/cross_signing_reset")
        self.assertIn("Allow the reset", page)
        code, _, page = await browser.post("/_wspr/account/cross_signing_reset", {})
        self.assertIn("Approved", page)
        await client.post("/keys/device_signing/upload", {**keys(new_master, new_ssk), "auth": {"session": "dummy"}})
        query = await client.post("/keys/query", {"device_keys": {uid: []}})
        self.assertIn(new_master.key_id, query["master_keys"][uid]["keys"])


class AccountPagesTestPostgres(AccountPagesTest):
    database = "postgresql"
