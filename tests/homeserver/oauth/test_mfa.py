"""Second factors on the sign-in pages over HTTP: an authenticator app (TOTP: QR code,
confirm, sign-in with a code, a code accepted once, wrong codes limited), recovery codes
(shown once, each works once), ``mfa.required`` taking a user through enrolment at sign-in,
removal needing a fresh sign-in with the second factor, and the audit log entries.
Passkeys are driven in a real browser (tests/homeserver/oauth/test_browser_sign_in.py)."""

from __future__ import annotations

import html
import re
import time

import pyotp
from twisted.trial import unittest

from homeserver.storage.audit import AuditQuery
from homeserver.storage.sessions import WebSessionRecord
from tests.homeserver.oauth.helpers import Browser
from tests.support.wspr import MatrixClient, start_homeserver

PASSWORD = "correct horse"


def _secret(page: str) -> str:
    m = re.search(r'<code class="secret">([A-Z2-7 ]+)</code>', page)
    assert m, page[:2000]
    return m.group(1).replace(" ", "")


def _codes(page: str) -> list[str]:
    return re.findall(r"<li><code>([a-z0-9\-]+)</code></li>", page)


class MfaTest(unittest.TestCase):
    database = "sqlite"
    timeout = 120

    async def _password_step(self, browser: Browser, username: str = "alice") -> tuple[int, dict[str, list[str]], str]:
        await browser.get("/_wspr/login")
        return await browser.post("/_wspr/login", {"step": "password", "username": username, "password": PASSWORD})

    async def _age(self, browser: Browser) -> None:
        session = await self.server.hs.account_pages.load_web_session(browser.cookies["wspr_session"])
        assert session is not None and session.record.auth_time is not None
        r = session.record
        await self.server.hs.store.store_web_session(
            WebSessionRecord(r.session_hash, r.user_id, r.auth_time - 3600_000, r.flow, r.created_ts, r.expires_ts)
        )

    async def test_totp_and_recovery_codes(self) -> None:
        self.server = await start_homeserver(self)
        base = self.server.base_url
        await MatrixClient.register(base, "alice", PASSWORD)
        browser = Browser(base)
        code, headers, _ = await self._password_step(browser)
        self.assertEqual(headers["location"][0], "/_wspr/account")
        code, _, page = await browser.get("/_wspr/account/security")
        self.assertIn("Not set up", page)

        # Enrolment: a QR code (inline SVG, nothing fetched) and the key as text; a wrong
        # code is refused, the right one sets it up and shows ten recovery codes once.
        code, headers, page = await browser.get("/_wspr/account/security/totp")
        self.assertEqual(code, 200)
        self.assertIn("<svg", page)
        self.assertIn('aria-label="QR code for your authenticator app"', page)
        secret = _secret(page)
        link = re.search(r'href="(otpauth://[^"]+)"', page)
        assert link is not None
        uri = html.unescape(link.group(1))
        self.assertEqual(pyotp.parse_uri(uri).secret, secret)
        totp = pyotp.TOTP(secret)
        code, _, page = await browser.post("/_wspr/account/security/totp", {"code": "000000" if totp.now() != "000000" else "111111"})
        self.assertEqual(code, 400)
        code, _, page = await browser.post("/_wspr/account/security/totp", {"code": totp.now()})
        self.assertEqual(code, 200, page[:2000])
        codes = _codes(page)
        self.assertEqual(len(codes), 10)
        self.assertEqual(len(set(codes)), 10)
        code, _, page = await browser.get("/_wspr/account/security")
        self.assertIn("10 unused recovery codes left", page)
        self.assertNotIn(codes[0], page)
        stored = await self.server.hs.db.read(lambda txn: txn.select_all("SELECT code_hash FROM mfa_recovery_codes"), name="t")
        self.assertNotIn(codes[0].replace("-", ""), str(stored))

        # Sign-in now asks for a code after the password; the code just used is refused
        # (each works once), the next one is accepted.
        other = Browser(base)
        code, headers, _ = await self._password_step(other)
        self.assertEqual(headers["location"][0], "/_wspr/login")
        code, _, page = await other.get("/_wspr/login")
        self.assertIn('name="step" value="totp"', page)
        self.assertIn('autocomplete="one-time-code"', page)
        self.assertIn("method=recovery_code", page)
        code, _, page = await other.post("/_wspr/login", {"step": "totp", "code": totp.now()})
        self.assertEqual(code, 400)
        code, headers, _ = await other.post("/_wspr/login", {"step": "totp", "code": totp.at(time.time() + 30)})
        self.assertEqual(headers["location"][0], "/_wspr/account")

        # A recovery code instead: works once.
        third = Browser(base)
        await self._password_step(third)
        code, _, page = await third.get("/_wspr/login?method=recovery_code")
        self.assertIn('name="step" value="recovery_code"', page)
        code, headers, _ = await third.post("/_wspr/login", {"step": "recovery_code", "code": codes[0].upper()})
        self.assertEqual(headers["location"][0], "/_wspr/account")
        fourth = Browser(base)
        await self._password_step(fourth)
        await fourth.get("/_wspr/login?method=recovery_code")
        code, _, page = await fourth.post("/_wspr/login", {"step": "recovery_code", "code": codes[0]})
        self.assertEqual(code, 400)
        self.assertIn("used already", page)

        # Removing the app needs a fresh sign-in, second factor included.
        await self._age(browser)
        code, headers, _ = await browser.get("/_wspr/account/security")
        await browser.post("/_wspr/account/security/totp/remove", {})
        self.assertEqual((await self.server.hs.store.get_totp("@alice:localhost")) is not None, True)
        code, _, page = await browser.get("/_wspr/login")
        self.assertIn("Confirm it is you", page)
        code, headers, _ = await browser.post("/_wspr/login", {"step": "password", "password": PASSWORD})
        code, _, page = await browser.get(headers["location"][0])
        self.assertIn('name="step" value="totp"', page)
        # (the app's next code was used above: a recovery code this time)
        await browser.get("/_wspr/login?method=recovery_code")
        code, headers, _ = await browser.post("/_wspr/login", {"step": "recovery_code", "code": codes[1]})
        self.assertEqual(headers["location"][0], "/_wspr/account/security")
        await browser.get("/_wspr/account/security")
        await browser.post("/_wspr/account/security/totp/remove", {})
        self.assertIsNone(await self.server.hs.store.get_totp("@alice:localhost"))
        # With no second factor left, the recovery codes went too.
        self.assertEqual(await self.server.hs.store.count_unused_recovery_codes("@alice:localhost"), 0)
        entries, _ = await self.server.hs.audit.entries(AuditQuery(user_id="@alice:localhost", event_type="mfa."), 0, 100, False)
        kinds = [(e.event_type, e.details.get("method")) for e in entries]
        for expected in (("mfa.enrol", "totp"), ("mfa.enrol", "recovery_codes"), ("mfa.recovery_code", None), ("mfa.remove", "totp"), ("mfa.failure", "totp")):
            self.assertIn(expected, kinds)

    async def test_wrong_codes_are_limited_per_account(self) -> None:
        self.server = await start_homeserver(
            self, rate_limits={"enabled": True, "login_failed_attempts": {"per_second": 0.01, "burst": 3}, "login": {"per_second": 10, "burst": 100}}
        )
        base = self.server.base_url
        await MatrixClient.register(base, "alice", PASSWORD)
        await self.server.hs.store.set_totp("@alice:localhost", pyotp.random_base32(32), 0)
        record = await self.server.hs.store.get_totp("@alice:localhost")
        assert record is not None
        totp = pyotp.TOTP(record.secret)
        browser = Browser(base)
        await self._password_step(browser)
        await browser.get("/_wspr/login")
        for _ in range(3):
            code, _, page = await browser.post("/_wspr/login", {"step": "totp", "code": "12345x"})
            self.assertIn("not right", page)
        # Then even the right code waits (the one guessing has the password already).
        code, _, page = await browser.post("/_wspr/login", {"step": "totp", "code": totp.now()})
        self.assertEqual(code, 400)
        self.assertIn("Too many wrong codes", page)

    async def test_mfa_required_enrols_at_sign_in(self) -> None:
        self.server = await start_homeserver(self, mfa={"required": True})
        base = self.server.base_url
        await MatrixClient.register(base, "bob", PASSWORD)
        browser = Browser(base)
        code, headers, _ = await self._password_step(browser, "bob")
        self.assertEqual(headers["location"][0], "/_wspr/login")
        code, _, page = await browser.get("/_wspr/login")
        self.assertIn("Set up two-factor authentication", page)
        self.assertIn("<svg", page)
        # A passkey is offered as the other way (with its script allowed by the policy).
        self.assertIn('data-webauthn="create"', page)
        totp = pyotp.TOTP(_secret(page))
        _, headers, _ = await browser.post("/_wspr/login", {"step": "mfa_enrol", "kind": "totp", "code": totp.now()})
        _, _, page = await browser.get(headers["location"][0])
        self.assertIn("Save your recovery codes", page)
        self.assertEqual(len(_codes(page)), 10)
        _, headers, _ = await browser.post("/_wspr/login", {"step": "recovery_codes_shown"})
        self.assertEqual(headers["location"][0], "/_wspr/account")
        # Next time: the code, no enrolment.
        other = Browser(base)
        await self._password_step(other, "bob")
        _code, _, page = await other.get("/_wspr/login")
        self.assertIn('name="step" value="totp"', page)


    async def test_deactivation_removes_the_factors(self) -> None:
        self.server = await start_homeserver(self)
        alice = await MatrixClient.register(self.server.base_url, "alice", PASSWORD)
        store = self.server.hs.store
        await store.set_totp("@alice:localhost", pyotp.random_base32(32), 0)
        await store.replace_recovery_codes("@alice:localhost", ["h1", "h2"], 0)
        auth = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": PASSWORD}
        code, body = await alice.raw("POST", "/_matrix/client/v3/account/deactivate", {"auth": auth})
        self.assertEqual(code, 200, body)
        self.assertIsNone(await store.get_totp("@alice:localhost"))
        self.assertEqual(await store.count_unused_recovery_codes("@alice:localhost"), 0)


class MfaTestPostgres(MfaTest):
    database = "postgresql"
