"""Issue 12's browser test: a person in Chromium (playwright-core from frontend/node_modules,
/usr/bin/chromium) goes through sign-up, TOTP enrolment, sign-out, sign-in with password
and TOTP, a passkey (Chromium's virtual authenticator), a recovery code, a password reset
through the e-mailed link (aiosmtpd sink), consent for a dynamically registered client and
the client's token refresh and revocation — with argon2id passwords, then again with
``password_auth: opaque``, after which the database holds no password or password hash for
that user. The browser side is tests/homeserver/oauth/browser/sign_in.mjs."""

from __future__ import annotations

import json
import os
import shutil
import socket
from typing import Any

from twisted.internet import defer, protocol, reactor
from twisted.trial import unittest

from tests.homeserver.oauth.smtp_sink import SmtpSink
from tests.support.wspr import start_homeserver

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "browser", "sign_in.mjs")
FRONTEND = os.path.join(HERE, "..", "..", "..", "frontend")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


class _Driver(protocol.ProcessProtocol):
    """Runs the script, answers its "MAIL?" questions from the sink, keeps its output."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink
        self.out = b""
        self.err = b""
        self.lines: list[str] = []
        self.done: defer.Deferred[int] = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.out += data
        while b"\n" in self.out:
            line, self.out = self.out.split(b"\n", 1)
            text = line.decode("utf-8", "replace")
            self.lines.append(text)
            if text.startswith("MAIL? "):
                _, address, count = text.split(" ")
                defer.ensureDeferred(self._answer(address, int(count)))

    async def _answer(self, address: str, count: int) -> None:
        try:
            text = (await self.sink.wait_for(address, count))[count - 1].text
        except AssertionError:
            text = ""
        assert self.transport is not None
        self.transport.write((json.dumps(text) + "\n").encode())

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason: Any) -> None:
        self.done.callback(reason.value.exitCode)


class BrowserSignInTest(unittest.TestCase):
    timeout = 300

    def setUp(self) -> None:
        self.node = shutil.which("node")
        if self.node is None:
            raise unittest.SkipTest("node is not installed")
        if not os.path.isdir(os.path.join(FRONTEND, "node_modules", "playwright-core")):
            raise unittest.SkipTest("playwright-core missing: run `npm ci` in frontend/")
        if not os.path.exists(CHROMIUM):
            raise unittest.SkipTest(f"Chromium not found at {CHROMIUM}")

    async def _browse(self, mode: str, username: str) -> tuple[Any, dict[str, Any]]:
        sink = SmtpSink.start(self)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        # localhost, not 127.0.0.1: WebAuthn needs a domain as the relying party ID.
        base = f"http://localhost:{port}"
        server = await start_homeserver(
            self,
            listeners={"client": {"bind_address": "127.0.0.1", "port": port}},
            public_baseurl=base + "/",
            password_auth=mode,
            email=sink.email_config(),
        )
        driver = _Driver(sink)
        reactor.spawnProcess(driver, self.node, [self.node, SCRIPT, base, username, mode], env={**os.environ}, path=HERE)
        code = await driver.done
        stderr = driver.err.decode("utf-8", "replace")
        self.assertEqual(code, 0, f"the browser script exited {code}\n--- stderr ---\n{stderr[-6000:]}")
        results = [line for line in driver.lines if line.startswith("BROWSER-OK ")]
        self.assertEqual(len(results), 1, stderr[-4000:])
        return server, json.loads(results[0][len("BROWSER-OK "):])

    async def test_with_argon2id_passwords(self) -> None:
        server, summary = await self._browse("argon2", "alice")
        self.assertEqual(summary["userId"], "@alice:localhost")
        user = await server.hs.store.get_user("@alice:localhost")
        assert user is not None
        self.assertTrue(user.password_hash and user.password_hash.startswith("$argon2id$"))

    async def test_with_opaque(self) -> None:
        server, summary = await self._browse("opaque", "olivia")
        user_id = "@olivia:localhost"
        self.assertEqual(summary["userId"], user_id)
        # No password and no password hash anywhere for this user: only the OPAQUE record.
        rows = await server.hs.db.read(
            lambda txn: txn.select_all("SELECT password_hash FROM users WHERE user_id = ?", (user_id,)), name="t"
        )
        self.assertEqual(rows, [(None,)])
        record = await server.hs.store.get_opaque_record(user_id)
        assert record is not None
        for secret in ("correct horse battery staple", "a brand new passphrase"):
            self.assertNotIn(secret, record.record)
            dump = await server.hs.db.read(
                lambda txn: [str(r) for t in ("users", "opaque_records", "web_sessions", "audit_log") for r in txn.select_all(f"SELECT * FROM {t}")],
                name="t",
            )
            self.assertFalse(any(secret in row for row in dump))
