"""matrix-js-sdk with its Rust crypto (the stack Element Web uses), headless in Node,
against WSPR: encrypted chat between two users, cross-signing, secret storage and key
backup, a new device restoring the backup with the recovery key, and a dehydrated
device (MSC3814) collecting keys while all of a user's devices are offline.

The Node side is tests/homeserver/e2e/js/e2ee.mjs; its dependencies are installed with
``npm ci --prefix tests/homeserver/e2e/js`` (the test is skipped if they are missing).
"""

from __future__ import annotations

import json
import os
import shutil
from urllib.parse import quote

from twisted.internet import reactor, task, utils
from twisted.trial import unittest

from tests.support.wspr import MatrixClient, start_homeserver

JS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "js")
PASSWORD = "correct horse"


class JsSdkE2EETest(unittest.TestCase):
    timeout = 240

    async def test_encrypted_chat_cross_signing_backup_and_dehydration(self) -> None:
        node = shutil.which("node")
        if node is None:
            raise unittest.SkipTest("node is not installed")
        if not os.path.isdir(os.path.join(JS_DIR, "node_modules", "matrix-js-sdk")):
            raise unittest.SkipTest(
                "JS test dependencies missing: run `npm ci --prefix tests/homeserver/e2e/js`"
            )
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice", PASSWORD)
        await MatrixClient.register(server.base_url, "bob", PASSWORD)

        out, err, code = await utils.getProcessOutputAndValue(
            node,
            [os.path.join(JS_DIR, "e2ee.mjs"), server.base_url, "alice", "bob", PASSWORD],
            env={**os.environ},
            path=JS_DIR,
        )
        # The clients' last long-polling /syncs (2 s) may still be parked on the server:
        # let them end so no timer outlives the test.
        for _ in range(100):
            if not server.hs.notifier._waiters:
                break
            await task.deferLater(reactor, 0.1, lambda: None)
        stdout, stderr = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        progress = "\n".join(line for line in stderr.splitlines() if "[e2ee.mjs]" in line or "Error" in line)
        self.assertEqual(code, 0, f"node exited {code}\n--- progress ---\n{progress}\n--- stderr tail ---\n{stderr[-4000:]}")
        results = [line for line in stdout.splitlines() if line.startswith("E2EE-JS-OK ")]
        self.assertEqual(len(results), 1, progress)
        summary = json.loads(results[0][len("E2EE-JS-OK "):])

        # The server only ever saw ciphertext.
        room_id = summary["roomId"]
        msgs = await alice.get(f"/rooms/{quote(room_id)}/messages?dir=b&limit=100")
        types = [e["type"] for e in msgs["chunk"]]
        self.assertEqual(types.count("m.room.encrypted"), 3, types)
        self.assertNotIn("m.room.message", types)
        self.assertNotIn("from js", json.dumps(msgs))
        # The backup holds encrypted session data only.
        backup = await alice.get(f"/room_keys/keys?version={summary['backupVersion']}")
        self.assertGreaterEqual(len(backup["rooms"][room_id]["sessions"]), 2)
        for session in backup["rooms"][room_id]["sessions"].values():
            self.assertEqual(set(session["session_data"]), {"ciphertext", "ephemeral", "mac"})
