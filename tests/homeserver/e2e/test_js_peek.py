"""matrix-js-sdk peeking into a world-readable room without joining it
(``client.peekInRoom``: ``GET /rooms/{roomId}/initialSync``, then ``GET /events?room_id=``
long-polls), as a registered non-member and as a guest (Element's room previews).

The Node side is tests/homeserver/e2e/js/peek.mjs (dependencies: ``npm ci --prefix
tests/homeserver/e2e/js``; the test is skipped if they are missing)."""

from __future__ import annotations

import json
import os
import shutil

from twisted.internet import reactor, task, utils
from twisted.trial import unittest

from tests.support.wspr import MatrixClient, start_homeserver

JS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "js")
PASSWORD = "correct horse"


class JsPeekTest(unittest.TestCase):
    timeout = 180

    async def test_peek_into_a_world_readable_room(self) -> None:
        node = shutil.which("node")
        if node is None:
            raise unittest.SkipTest("node is not installed")
        if not os.path.isdir(os.path.join(JS_DIR, "node_modules", "matrix-js-sdk")):
            raise unittest.SkipTest("JS test dependencies missing: run `npm ci --prefix tests/homeserver/e2e/js`")
        server = await start_homeserver(self, allow_guest_access=True)
        for name in ("alice", "bob"):
            await MatrixClient.register(server.base_url, name, PASSWORD)

        out, err, code = await utils.getProcessOutputAndValue(
            node,
            [os.path.join(JS_DIR, "peek.mjs"), server.base_url, "alice", "bob", PASSWORD],
            env={**os.environ},
            path=JS_DIR,
        )
        # The peekers' last long-polls end when their connections close.
        for _ in range(100):
            if not server.hs.event_stream._peekers:
                break
            await task.deferLater(reactor, 0.1, lambda: None)
        stdout, stderr = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        progress = "\n".join(line for line in stderr.splitlines() if "[peek.mjs]" in line or "Error" in line)
        self.assertEqual(code, 0, f"node exited {code}\n--- progress ---\n{progress}\n--- stderr tail ---\n{stderr[-4000:]}")
        results = [line for line in stdout.splitlines() if line.startswith("PEEK-OK ")]
        self.assertEqual(len(results), 1, progress)
        summary = json.loads(results[0][len("PEEK-OK "):])
        expected = ["before 1", "before 2", "after 1", "after 2"]
        self.assertEqual(summary["timelines"], {"member": expected, "guest": expected})
        # Neither peeker joined the room.
        room_id = summary["roomId"]
        members = await server.hs.store.get_members_with_membership(room_id, "join")
        self.assertEqual(sorted(members), ["@alice:localhost"])
