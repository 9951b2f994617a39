"""OPAQUE (RFC 9807) sign-in with ``password_auth: opaque``, over HTTP, with the browser's
own client library: @serenity-kit/opaque (opaque-ke 4.0.1 in WASM) running in Node
(tests/homeserver/oauth/js/opaque_client.mjs) computes the client's messages, WSPR's
Python server (opaquepy, opaque-ke 3.0.0) answers. This is the interoperability proof:
sign-up, sign-in, a wrong password, the move of an argon2id account to OPAQUE, the legacy
m.login.password endpoint checking an OPAQUE password, and no password hash in the
database. The vendored copy the pages serve is checked against the npm package."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from typing import Any

from twisted.trial import unittest

from homeserver.oauth.opaque import KSF_BROWSER
from tests.homeserver.oauth.helpers import Browser, http, start_with_public_baseurl
from tests.support.wspr import MatrixClient

JS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "js")
PACKAGE = os.path.join(JS_DIR, "node_modules", "@serenity-kit", "opaque")
VENDORED = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "homeserver", "oauth", "static", "opaque-1.1.0.js"
)
PASSWORD = "correct horse battery"


def _need_node() -> str:
    node = shutil.which("node")
    if node is None:
        raise unittest.SkipTest("node is not installed")
    if not os.path.isdir(PACKAGE):
        raise unittest.SkipTest("JS test dependencies missing: run `npm ci --prefix tests/homeserver/oauth/js`")
    return node


class OpaqueClient:
    """@serenity-kit/opaque's client functions, in a Node process."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [_need_node(), os.path.join(JS_DIR, "opaque_client.mjs")],
            cwd=JS_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def call(self, fn: str, **args: Any) -> Any:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"side": "client", "fn": fn, "args": args}) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        if "err" in answer:
            raise AssertionError(answer["err"])
        return answer["ok"]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(10)
        if self.proc.stdout:
            self.proc.stdout.close()


async def post_json(browser: Browser, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    headers = {**browser._headers(), "Content-Type": "application/json"}
    code, hdrs, content = await http("POST", browser._url(path), body=json.dumps({**body, "csrf": browser.csrf()}).encode(), headers=headers)
    browser._remember(hdrs)
    return code, json.loads(content)


class VendoredLibraryTest(unittest.TestCase):
    def test_vendored_file_is_the_npm_package(self) -> None:
        _need_node()
        with open(os.path.join(PACKAGE, "esm", "index.js"), "rb") as f:
            npm = hashlib.sha256(f.read()).hexdigest()
        with open(VENDORED, "rb") as f:
            vendored = hashlib.sha256(f.read()).hexdigest()
        with open(os.path.join(PACKAGE, "package.json")) as f:
            self.assertEqual(json.load(f)["version"], "1.1.0")
        self.assertEqual(vendored, npm)
        with open(VENDORED.replace(".js", ".LICENSE.txt")) as f:
            self.assertIn(npm, f.read())


class OpaqueSignInTest(unittest.TestCase):
    database = "sqlite"
    timeout = 120

    async def _start(self) -> str:
        self.client = OpaqueClient()
        self.addCleanup(self.client.close)
        self.server = await start_with_public_baseurl(
            self, database=self.database, password_auth="opaque", enable_registration=True
        )
        return self.server.base_url

    async def _register_opaque(self, browser: Browser, purpose: str, **extra: str) -> str:
        start = self.client.call("startRegistration", password=PASSWORD)
        code, body = await post_json(browser, "/_wspr/opaque/register/start", {"purpose": purpose, "request": start["registrationRequest"], **extra})
        self.assertEqual(code, 200, body)
        done = self.client.call(
            "finishRegistration",
            password=PASSWORD,
            registrationResponse=body["response"],
            clientRegistrationState=start["clientRegistrationState"],
            keyStretching=KSF_BROWSER,
        )
        return done["registrationRecord"]

    async def _sign_in(self, browser: Browser, username: str, password: str) -> tuple[int, dict[str, list[str]], str]:
        await browser.get("/_wspr/login")
        self.assertIn('data-opaque="login"', browser.last_page)
        start = self.client.call("startLogin", password=password)
        code, body = await post_json(browser, "/_wspr/opaque/login/start", {"username": username, "request": start["startLoginRequest"]})
        self.assertEqual(code, 200, body)
        if body.get("legacy"):
            reg = self.client.call("startRegistration", password=password)
            code, legacy = await post_json(
                browser, "/_wspr/opaque/login/legacy", {"username": username, "password": password, "request": reg["registrationRequest"]}
            )
            if code != 200:
                return code, {}, json.dumps(legacy)
            done = self.client.call(
                "finishRegistration",
                password=password,
                registrationResponse=legacy["response"],
                clientRegistrationState=reg["clientRegistrationState"],
                keyStretching=KSF_BROWSER,
            )
            return await browser.post("/_wspr/login", {"step": "opaque", "record": done["registrationRecord"]})
        finished = self.client.call(
            "finishLogin", clientLoginState=start["clientLoginState"], loginResponse=body["response"], password=password, keyStretching=KSF_BROWSER
        )
        return await browser.post("/_wspr/login", {"step": "opaque", "finish": finished["finishLoginRequest"] if finished else ""})

    async def _stored(self, user_id: str) -> tuple[str | None, str | None]:
        user = await self.server.hs.store.get_user(user_id)
        record = await self.server.hs.store.get_opaque_record(user_id)
        assert user is not None
        return user.password_hash, record.record if record else None

    async def test_sign_up_sign_in_and_legacy_login(self) -> None:
        base = await self._start()
        browser = Browser(base)
        code, headers, page = await browser.get("/_wspr/register")
        self.assertEqual(code, 200)
        csp = headers["content-security-policy"][0]
        self.assertIn("script-src 'self' 'wasm-unsafe-eval'", csp)
        self.assertIn('src="/_wspr/static/opaque.js"', page)
        # The password inputs have no name: a browser never posts them.
        self.assertNotRegex(page, r'type="password"[^>]*name=')
        record = await self._register_opaque(browser, "sign_up", username="carol")
        code, headers, _ = await browser.post("/_wspr/register", {"username": "carol", "record": record})
        self.assertEqual(headers["location"][0], "/_wspr/account")
        password_hash, stored = await self._stored("@carol:localhost")
        self.assertIsNone(password_hash)
        self.assertIsNotNone(stored)
        # Sign-up again with the same name: refused before any registration.
        await Browser(base).get("/_wspr/register")
        other = Browser(base)
        await other.get("/_wspr/register")
        start = self.client.call("startRegistration", password=PASSWORD)
        code, body = await post_json(other, "/_wspr/opaque/register/start", {"purpose": "sign_up", "username": "carol", "request": start["registrationRequest"]})
        self.assertEqual(code, 400)
        self.assertIn("taken", body["error"])

        # Sign in with the right password, then a wrong one.
        fresh = Browser(base)
        code, headers, _ = await self._sign_in(fresh, "carol", PASSWORD)
        self.assertEqual(headers["location"][0], "/_wspr/account", fresh.last_page[:500])
        wrong = Browser(base)
        code, _, page = await self._sign_in(wrong, "carol", "not the password")
        self.assertEqual(code, 400)
        self.assertIn("Wrong user name or password", page)
        # An unknown user gets an answer that looks like any other, and cannot finish.
        code, _, page = await self._sign_in(Browser(base), "nobody", PASSWORD)
        self.assertEqual(code, 400)

        # The legacy endpoint sees the password and checks it against the OPAQUE record.
        alice = await MatrixClient.login(base, "carol", PASSWORD)
        self.assertEqual((await alice.get("/account/whoami"))["user_id"], "@carol:localhost")
        status, _, content = await http(
            "POST", base + "/_matrix/client/v3/login",
            body=json.dumps({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "carol"}, "password": "nope"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        self.assertEqual(status, 403, content)

        # Changing the password (a fresh sign-in: just done) registers a new record.
        await fresh.get("/_wspr/account/password")
        self.assertIn('data-purpose="change"', fresh.last_page)
        new_record = await self._register_opaque(fresh, "change")
        code, _, page = await fresh.post("/_wspr/account/password", {"record": new_record, "sign_out": "on"})
        self.assertEqual(code, 200, page[:1000])
        self.assertEqual((await self._stored("@carol:localhost"))[1], self.server.hs.sign_in_factors.opaque.parse_upload(new_record))

    async def test_argon2_account_moves_to_opaque(self) -> None:
        base = await self._start()
        await MatrixClient.register(base, "dave", PASSWORD)
        password_hash, record = await self._stored("@dave:localhost")
        self.assertTrue(password_hash and password_hash.startswith("$argon2id$"))
        self.assertIsNone(record)
        # A wrong password is refused at the one-time check.
        code, _, page = await self._sign_in(Browser(base), "dave", "wrong")
        self.assertEqual(code, 403, page)
        browser = Browser(base)
        code, headers, _ = await self._sign_in(browser, "dave", PASSWORD)
        self.assertEqual(headers["location"][0], "/_wspr/account", browser.last_page[:500])
        password_hash, record = await self._stored("@dave:localhost")
        self.assertIsNone(password_hash)
        self.assertIsNotNone(record)
        # From now on it is an OPAQUE sign-in, and the legacy login still works.
        code, headers, _ = await self._sign_in(Browser(base), "dave", PASSWORD)
        self.assertEqual(headers["location"][0], "/_wspr/account")
        await MatrixClient.login(base, "dave", PASSWORD)
        # Nothing in the database holds the password or a hash of it.
        rows = await self.server.hs.db.read(
            lambda txn: txn.select_all("SELECT password_hash FROM users WHERE user_id = ?", ("@dave:localhost",)), name="t"
        )
        self.assertEqual(rows, [(None,)])


class OpaqueSignInTestPostgres(OpaqueSignInTest):
    database = "postgresql"



