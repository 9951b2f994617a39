"""An encrypted chat in which one client reads the WebSocket stream: matrix-js-sdk (Rust
crypto, headless in Node) with its own /sync loop answered from the socket
(tests/homeserver/e2e/js/ws_sync_fetch.mjs), with a /sync client and a sliding sync
client. The room keys reach the WebSocket client as to-device messages over the socket;
its socket is dropped once and the SDK resumes from its token (nothing missed, nothing
twice). Node side: tests/homeserver/e2e/js/websocket.mjs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from urllib.parse import quote

from twisted.internet import reactor, task, utils
from twisted.trial import unittest

from tests.support.wspr import MatrixClient, start_homeserver

JS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "js")
PASSWORD = "correct horse"


def node_with_websocket() -> list[str] | None:
    """node, with the flag that turns its WebSocket on where it is not on by default
    (Node 20; Node 22 has it)."""
    node = shutil.which("node")
    if node is None:
        return None
    for flags in ([], ["--experimental-websocket"]):
        probe = subprocess.run(
            [node, *flags, "-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)"],
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            return [node, *flags]
    return None


class JsWebSocketE2EETest(unittest.TestCase):
    timeout = 240

    async def test_encrypted_chat_over_the_websocket_with_sync_and_sliding_sync_clients(self) -> None:
        node = node_with_websocket()
        if node is None:
            raise unittest.SkipTest("node (with WebSocket) is not installed")
        if not os.path.isdir(os.path.join(JS_DIR, "node_modules", "matrix-js-sdk")):
            raise unittest.SkipTest("JS test dependencies missing: run `npm ci --prefix tests/homeserver/e2e/js`")
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice", PASSWORD)
        for name in ("bob", "dave"):
            await MatrixClient.register(server.base_url, name, PASSWORD)

        out, err, code = await utils.getProcessOutputAndValue(
            node[0],
            [*node[1:], os.path.join(JS_DIR, "websocket.mjs"), server.base_url, "alice", "bob", "dave", PASSWORD],
            env={**os.environ},
            path=JS_DIR,
        )
        # The /sync clients' last long-polls (2 s) may still be parked: let them end.
        for _ in range(100):
            if not server.hs.notifier._waiters:
                break
            await task.deferLater(reactor, 0.1, lambda: None)
        stdout, stderr = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        progress = "\n".join(line for line in stderr.splitlines() if "[websocket.mjs]" in line or "Error" in line)
        self.assertEqual(code, 0, f"node exited {code}\n--- progress ---\n{progress}\n--- stderr tail ---\n{stderr[-4000:]}")
        results = [line for line in stdout.splitlines() if line.startswith("WEBSOCKET-OK ")]
        self.assertEqual(len(results), 1, progress)
        summary = json.loads(results[0][len("WEBSOCKET-OK "):])
        # The WebSocket client connected twice (the drop) and never fell back to HTTP /sync.
        self.assertGreaterEqual(summary["stream"]["opens"], 2)
        self.assertEqual(summary["stream"]["httpSyncs"], 0)

        # The server only ever saw ciphertext.
        msgs = await alice.get(f"/rooms/{quote(summary['roomId'])}/messages?dir=b&limit=100")
        types = [e["type"] for e in msgs["chunk"]]
        self.assertEqual(types.count("m.room.encrypted"), 4, types)
        self.assertNotIn("m.room.message", types)
        self.assertNotIn("hello from", json.dumps(msgs))
