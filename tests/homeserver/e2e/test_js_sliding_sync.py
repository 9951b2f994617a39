"""A sliding sync client that is not ours: matrix-js-sdk's SlidingSync (simplified MSC4186
mode) with its Rust crypto, headless in Node, chatting in an encrypted room with a /sync
client and with a second sliding sync client. The room keys reach the sliding sync
clients through the to_device and e2ee extensions.

The Node side is tests/homeserver/e2e/js/sliding_sync.mjs (dependencies: ``npm ci
--prefix tests/homeserver/e2e/js``; the test is skipped if they are missing).
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


class JsSlidingSyncE2EETest(unittest.TestCase):
    timeout = 240

    async def test_encrypted_chat_between_sliding_sync_and_sync_clients(self) -> None:
        node = shutil.which("node")
        if node is None:
            raise unittest.SkipTest("node is not installed")
        if not os.path.isdir(os.path.join(JS_DIR, "node_modules", "matrix-js-sdk")):
            raise unittest.SkipTest("JS test dependencies missing: run `npm ci --prefix tests/homeserver/e2e/js`")
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice", PASSWORD)
        for name in ("bob", "carol"):
            await MatrixClient.register(server.base_url, name, PASSWORD)

        out, err, code = await utils.getProcessOutputAndValue(
            node,
            [os.path.join(JS_DIR, "sliding_sync.mjs"), server.base_url, "alice", "bob", "carol", PASSWORD],
            env={**os.environ},
            path=JS_DIR,
        )
        # The clients' last long-polls (2 s) may still be parked: let them end.
        for _ in range(100):
            if not server.hs.notifier._waiters:
                break
            await task.deferLater(reactor, 0.1, lambda: None)
        stdout, stderr = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        progress = "\n".join(line for line in stderr.splitlines() if "[sliding_sync.mjs]" in line or "Error" in line)
        self.assertEqual(code, 0, f"node exited {code}\n--- progress ---\n{progress}\n--- stderr tail ---\n{stderr[-4000:]}")
        results = [line for line in stdout.splitlines() if line.startswith("SLIDING-SYNC-OK ")]
        self.assertEqual(len(results), 1, progress)
        summary = json.loads(results[0][len("SLIDING-SYNC-OK "):])

        # The server only ever saw ciphertext.
        room_id = summary["roomId"]
        msgs = await alice.get(f"/rooms/{quote(room_id)}/messages?dir=b&limit=100")
        types = [e["type"] for e in msgs["chunk"]]
        self.assertEqual(types.count("m.room.encrypted"), 3, types)
        self.assertNotIn("m.room.message", types)
        self.assertNotIn("hello from", json.dumps(msgs))
        # Two of the three clients synced with sliding sync.
        self.assertGreaterEqual(len(server.hs.sliding_sync.connections), 2)
