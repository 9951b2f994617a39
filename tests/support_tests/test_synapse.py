"""Smoke test for tests.support.synapse: a real Synapse starts, and a message round-trips."""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.parse
import uuid

import treq
from twisted.internet import defer, reactor
from twisted.trial import unittest
from twisted.web.client import HTTPConnectionPool

from tests.support.synapse import SynapseServer

try:
    import synapse  # noqa: F401
except ImportError:  # matrix-synapse is a test extra
    synapse = None


class SynapseHarnessTest(unittest.TestCase):
    timeout = 120
    if synapse is None:
        skip = "matrix-synapse is not installed"

    def setUp(self):
        self.workdir = tempfile.mkdtemp(prefix="wspr-synapse-test-")
        self.server = SynapseServer(self.workdir)
        self.addCleanup(shutil.rmtree, self.workdir, True)
        self.addCleanup(self.server.stop_async)
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(self.pool.closeCachedConnections)
        return self.server.start_async()

    async def _req(self, method, path, token, body=None):
        headers = {"Authorization": [f"Bearer {token}".encode()]}
        kwargs = {}
        if body is not None:
            kwargs["data"] = json.dumps(body).encode()
            headers["Content-Type"] = [b"application/json"]
        resp = await treq.request(
            method, (self.server.client_url + path).encode(), headers=headers, pool=self.pool, **kwargs
        )
        content = await resp.content()
        self.assertEqual(resp.code, 200, f"{method} {path}: {resp.code} {content[:300]!r}")
        return json.loads(content)

    @defer.inlineCallbacks
    def test_message_round_trip(self):
        yield defer.ensureDeferred(self._round_trip())

    async def _round_trip(self):
        s = self.server
        self.assertEqual(s.server_name, f"127.0.0.1:{s.federation_port}")
        alice = await s.register_user_async("alice", "alice-pw", admin=True)
        bob = await s.register_user_async("bob", "bob-pw")
        self.assertEqual(alice["user_id"], f"@alice:{s.server_name}")
        self.assertTrue(bob["access_token"])

        room = await self._req(
            "POST", "/_matrix/client/v3/createRoom", alice["access_token"],
            {"preset": "public_chat", "name": "harness"},
        )
        room_id = room["room_id"]
        q = urllib.parse.quote(room_id)
        await self._req("POST", f"/_matrix/client/v3/join/{q}", bob["access_token"], {})

        body = "hello " + uuid.uuid4().hex
        sent = await self._req(
            "PUT", f"/_matrix/client/v3/rooms/{q}/send/m.room.message/txn1",
            alice["access_token"], {"msgtype": "m.text", "body": body},
        )
        event_id = sent["event_id"]

        # Bob reads it back via /messages ...
        msgs = await self._req(
            "GET", f"/_matrix/client/v3/rooms/{q}/messages?dir=b&limit=10",
            bob["access_token"],
        )
        got = [e for e in msgs["chunk"] if e["event_id"] == event_id]
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0]["content"]["body"], body)
        self.assertEqual(got[0]["sender"], alice["user_id"])

        # ... and via /sync.
        sync = await self._req("GET", "/_matrix/client/v3/sync?timeout=0", bob["access_token"])
        timeline = sync["rooms"]["join"][room_id]["timeline"]["events"]
        self.assertIn(body, [e.get("content", {}).get("body") for e in timeline])
