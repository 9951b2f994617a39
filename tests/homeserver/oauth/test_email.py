"""E-mail over HTTP with a local SMTP sink (aiosmtpd): adding an address through the
legacy API (requestToken, the link, /account/3pid/add with UIA, /account/3pid,
/account/3pid/delete) and through the account page, and password reset by e-mail
(requestToken, the page behind the link: single use, expiring, every session ends, the
page says what happens to encrypted history)."""

from __future__ import annotations

import re
from typing import Any

from twisted.trial import unittest

from homeserver.util.ids import hash_token
from tests.homeserver.oauth.helpers import Browser
from tests.homeserver.oauth.smtp_sink import SmtpSink
from tests.support.wspr import MatrixClient, start_homeserver

PASSWORD = "correct horse"


def _link(text: str) -> str:
    m = re.search(r"https?://\S+", text)
    assert m, text
    return m.group(0)


def _path(link: str) -> str:
    return "/" + link.split("/", 3)[3]


class EmailTest(unittest.TestCase):
    database = "sqlite"
    timeout = 120

    async def _start(self, **overrides: Any) -> str:
        self.sink = SmtpSink.start(self)
        self.server = await start_homeserver(self, email=self.sink.email_config(), **overrides)
        return self.server.base_url

    async def test_add_email_with_the_legacy_api(self) -> None:
        base = await self._start()
        alice = await MatrixClient.register(base, "alice", PASSWORD)
        self.assertEqual((await alice.get("/capabilities"))["capabilities"]["m.3pid_changes"], {"enabled": True})
        request = {"client_secret": "secret-1", "email": "Alice@Example.org", "send_attempt": 1}
        code, body = await alice.raw("POST", "/_matrix/client/v3/account/3pid/email/requestToken", request)
        self.assertEqual(code, 200, body)
        sid = body["sid"]
        mail = (await self.sink.wait_for("alice@example.org"))[0]
        self.assertEqual(mail.message["From"], "WSPR <noreply@localhost>")
        link = _link(mail.text)
        self.assertIn("/_wspr/email/verify?token=", link)
        # The same attempt again: the same session, nothing sent.
        code, body = await alice.raw("POST", "/_matrix/client/v3/account/3pid/email/requestToken", request)
        self.assertEqual(body["sid"], sid)
        self.assertEqual(len(self.sink.mails_to("alice@example.org")), 1)
        # Bad input gets the spec's errors.
        code, body = await alice.raw("POST", "/_matrix/client/v3/account/3pid/email/requestToken", {"client_secret": "x", "email": "not an address", "send_attempt": 1})
        self.assertEqual((code, body["errcode"]), (400, "M_INVALID_PARAM"))
        code, body = await alice.raw("POST", "/_matrix/client/v3/account/3pid/email/requestToken", {"email": "a@b.org"})
        self.assertEqual((code, body["errcode"]), (400, "M_MISSING_PARAM"))
        code, body = await alice.raw("POST", "/_matrix/client/v3/account/3pid/email/requestToken", {"client_secret": "no spaces", "email": "a@b.org", "send_attempt": 1})
        self.assertEqual((code, body["errcode"]), (400, "M_BAD_JSON"))
        code, body = await alice.raw("POST", "/_matrix/client/v3/account/3pid/email/requestToken", {"client_secret": "s", "email": "a@b.org", "send_attempt": "1"})
        self.assertEqual((code, body["errcode"]), (400, "M_BAD_JSON"))
        # Not validated yet.
        add = {"client_secret": "secret-1", "sid": sid}
        code, body = await alice.raw("POST", "/_matrix/client/v3/account/3pid/add", {**add, "auth": {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": PASSWORD}})
        self.assertEqual((code, body.get("errcode")), (400, "M_THREEPID_AUTH_FAILED"), body)
        code, _, page = await Browser(base).get(_path(link))
        self.assertEqual(code, 200)
        self.assertIn("is confirmed", page)
        # UIA first, then the address is bound.
        code, body = await alice.raw("POST", "/_matrix/client/v3/account/3pid/add", add)
        self.assertEqual(code, 401)
        self.assertEqual(body["flows"], [{"stages": ["m.login.password"]}])
        auth = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": PASSWORD, "session": body["session"]}
        code, body = await alice.raw("POST", "/_matrix/client/v3/account/3pid/add", {**add, "auth": auth})
        self.assertEqual(code, 200, body)
        listed = await alice.get("/account/3pid")
        self.assertEqual([(t["medium"], t["address"]) for t in listed["threepids"]], [("email", "alice@example.org")])
        self.assertIsInstance(listed["threepids"][0]["validated_at"], int)
        # The link works once; the address cannot be asked for again.
        code, _, page = await Browser(base).get(_path(link))
        self.assertEqual(code, 400)
        code, body = await alice.raw("POST", "/_matrix/client/v3/account/3pid/email/requestToken", {**request, "client_secret": "secret-2"})
        self.assertEqual((code, body["errcode"]), (400, "M_THREEPID_IN_USE"))
        code, body = await alice.raw("POST", "/_matrix/client/v3/account/3pid/delete", {"medium": "email", "address": "alice@example.org"})
        self.assertEqual((code, body), (200, {"id_server_unbind_result": "no-support"}))
        self.assertEqual((await alice.get("/account/3pid"))["threepids"], [])

    async def test_password_reset_by_email(self) -> None:
        base = await self._start()
        alice = await MatrixClient.register(base, "alice", PASSWORD)
        # Add the address on the account page: the link binds it at once.
        browser = Browser(base)
        await browser.get("/_wspr/login")
        await browser.post("/_wspr/login", {"step": "password", "username": "alice", "password": PASSWORD})
        await browser.get("/_wspr/account/email")
        code, _, page = await browser.post("/_wspr/account/email/add", {"address": "alice@example.org"})
        self.assertIn("We sent a link", page)
        link = _link((await self.sink.wait_for("alice@example.org"))[0].text)
        code, _, page = await browser.get(_path(link))
        self.assertIn("was added to your account", page)
        code, _, page = await browser.get("/_wspr/account/email")
        self.assertIn("alice@example.org", page)

        # An unknown address: the legacy API says so (as Synapse), the page does not.
        code, body = await alice.raw("POST", "/_matrix/client/v3/account/password/email/requestToken", {"client_secret": "s1", "email": "bob@example.org", "send_attempt": 1})
        self.assertEqual((code, body["errcode"]), (400, "M_THREEPID_NOT_FOUND"))
        stranger = Browser(base)
        await stranger.get("/_wspr/password/forgot")
        code, _, page = await stranger.post("/_wspr/password/forgot", {"address": "bob@example.org"})
        self.assertIn("If an account has the address", page)

        code, _, page = await stranger.post("/_wspr/password/forgot", {"address": "ALICE@example.org"})
        self.assertIn("If an account has the address", page)
        mails = await self.sink.wait_for("alice@example.org", 2)
        link = _link(mails[-1].text)
        self.assertIn("/_wspr/password/reset?token=", link)
        code, _, page = await stranger.get(_path(link))
        self.assertEqual(code, 200)
        self.assertIn("does not reset your encryption", page)
        self.assertIn("recovery key", page)
        code, _, page = await stranger.post("/_wspr/password/reset", {"reset_token": _path(link).split("token=")[1], "new_password": "new one", "confirm": "new one"})
        self.assertEqual(code, 200, page[:2000])
        self.assertIn("signed out everywhere", page)
        # Every session ended; the new password works, the old one does not.
        code, body = await alice.raw("GET", "/_matrix/client/v3/account/whoami")
        self.assertEqual((code, body["errcode"]), (401, "M_UNKNOWN_TOKEN"))
        await MatrixClient.login(base, "alice", "new one")
        code, _, _ = await browser.get("/_wspr/account")
        self.assertEqual(code, 303)
        # The link works once.
        code, _, page = await Browser(base).get(_path(link))
        self.assertEqual(code, 400)
        self.assertIn("expired or was used", page)

        # The legacy API's request sends the same kind of link; an expired one is refused.
        code, body = await alice.raw("POST", "/_matrix/client/v3/account/password/email/requestToken", {"client_secret": "s2", "email": "alice@example.org", "send_attempt": 1})
        self.assertEqual(code, 200, body)
        link = _link((await self.sink.wait_for("alice@example.org", 3))[-1].text)
        token = _path(link).split("token=")[1]
        await self.server.hs.db.write(
            lambda txn: txn.execute("UPDATE email_validation_sessions SET expires_ts = 1 WHERE token_hash = ?", (hash_token(token),)),
            name="t",
        )
        code, _, page = await Browser(base).get(_path(link))
        self.assertEqual(code, 400)

    async def test_without_smtp(self) -> None:
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice", PASSWORD)
        code, body = await alice.raw("POST", "/_matrix/client/v3/account/3pid/email/requestToken", {"client_secret": "s", "email": "a@example.org", "send_attempt": 1})
        self.assertEqual((code, body["errcode"]), (400, "M_THREEPID_MEDIUM_NOT_SUPPORTED"))
        self.assertEqual((await alice.get("/capabilities"))["capabilities"]["m.3pid_changes"], {"enabled": False})
        code, _, page = await Browser(server.base_url).get("/_wspr/login")
        self.assertNotIn("Forgot your password", page)


class EmailTestPostgres(EmailTest):
    database = "postgresql"
