"""matrix-js-sdk (43, in Node) completes the OAuth 2.0 login against WSPR with its own
helpers (discovery, dynamic registration, authorisation URL with PKCE, code exchange),
drives the sign-in and consent pages over HTTP, syncs and sends, refreshes its expired
access token by itself, and signs out by revocation.

The Node side is tests/homeserver/oauth/js/oauth_login.mjs; its dependencies are installed
with ``npm ci --prefix tests/homeserver/oauth/js`` (``make js-test-deps``; the test is
skipped if they are missing)."""

from __future__ import annotations

import json
import os
import shutil

from twisted.internet import reactor, task, utils
from twisted.trial import unittest

from tests.homeserver.oauth.helpers import start_with_public_baseurl
from tests.support.wspr import MatrixClient

JS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "js")
PASSWORD = "correct horse"


class JsSdkOAuthTest(unittest.TestCase):
    timeout = 120

    async def test_js_sdk_oauth_login_sync_refresh_revoke(self) -> None:
        node = shutil.which("node")
        if node is None:
            raise unittest.SkipTest("node is not installed")
        if not os.path.isdir(os.path.join(JS_DIR, "node_modules", "matrix-js-sdk")):
            raise unittest.SkipTest("JS test dependencies missing: run `npm ci --prefix tests/homeserver/oauth/js`")
        # Short-lived access tokens, so the client has to refresh during the test.
        server = await start_with_public_baseurl(self, access_token_lifetime=2000)
        await MatrixClient.register(server.base_url, "alice", PASSWORD)
        out, err, code = await utils.getProcessOutputAndValue(
            node, [os.path.join(JS_DIR, "oauth_login.mjs"), server.base_url, "alice", PASSWORD], env={**os.environ}, path=JS_DIR
        )
        for _ in range(100):  # let the client's last long-poll end
            if not server.hs.notifier._waiters:
                break
            await task.deferLater(reactor, 0.1, lambda: None)
        stdout, stderr = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        self.assertEqual(code, 0, f"node exited {code}\n--- stderr ---\n{stderr[-4000:]}")
        results = [line for line in stdout.splitlines() if line.startswith("OAUTH-JS-OK ")]
        self.assertEqual(len(results), 1, stderr[-4000:])
        summary = json.loads(results[0][len("OAUTH-JS-OK "):])
        self.assertEqual(summary["userId"], "@alice:localhost")
        self.assertGreaterEqual(summary["refreshes"], 1)
        # The server side: the device was created by the scope and is gone after sign-out.
        alice = await MatrixClient.login(server.base_url, "alice", PASSWORD)
        devices = [d["device_id"] for d in (await alice.get("/devices"))["devices"]]
        self.assertNotIn(summary["deviceId"], devices)
        messages = await alice.get(f"/rooms/{summary['roomId']}/messages?dir=b&limit=10")
        self.assertIn("signed in with OAuth 2.0", json.dumps(messages))
