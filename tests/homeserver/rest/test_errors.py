"""Bad input gets the spec's error with the right status, never a 500, and never leaves
partial data behind."""

from __future__ import annotations

from twisted.trial import unittest

from tests.support.wspr import MatrixClient, start_homeserver


class ErrorsTest(unittest.TestCase):
    async def test_error_codes(self) -> None:
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        anon = MatrixClient(server.base_url)
        rid = (await alice.post("/createRoom", {}))["room_id"]

        cases = [
            (anon, "GET", "/_matrix/client/v3/account/whoami", None, None, 401, "M_MISSING_TOKEN"),
            (MatrixClient(server.base_url, "bogus"), "GET", "/_matrix/client/v3/account/whoami", None, None, 401, "M_UNKNOWN_TOKEN"),
            (alice, "POST", "/_matrix/client/v3/createRoom", None, b"{not json", 400, "M_NOT_JSON"),
            (alice, "POST", "/_matrix/client/v3/createRoom", None, b"[1,2]", 400, "M_BAD_JSON"),
            (alice, "POST", "/_matrix/client/v3/createRoom", {"invite": "bob"}, None, 400, "M_BAD_JSON"),
            (alice, "POST", "/_matrix/client/v3/createRoom", {"preset": "party"}, None, 400, "M_BAD_JSON"),
            (alice, "PUT", f"/_matrix/client/v3/rooms/{rid}/send/m.room.message/t1", None, b"", 400, "M_NOT_JSON"),
            (alice, "PUT", f"/_matrix/client/v3/rooms/{rid}/send/m.room.message/t2", {"body": 1.5}, None, 400, "M_BAD_JSON"),
            (alice, "PUT", f"/_matrix/client/v3/rooms/{rid}/send/m.room.message/t3", None, b'{"n": NaN}', 400, "M_NOT_JSON"),
            (alice, "GET", "/_matrix/client/v3/rooms/!nope:localhost/messages", None, None, 403, "M_FORBIDDEN"),
            (alice, "GET", "/_matrix/client/v3/rooms/not-a-room/messages", None, None, 400, "M_INVALID_PARAM"),
            (alice, "GET", "/_matrix/client/v3/no/such/endpoint", None, None, 404, "M_UNRECOGNIZED"),
            (alice, "DELETE", "/_matrix/client/v3/createRoom", None, None, 405, "M_UNRECOGNIZED"),
            (alice, "GET", f"/_matrix/client/v3/rooms/{rid}/messages?dir=sideways", None, None, 400, "M_INVALID_PARAM"),
            (alice, "GET", f"/_matrix/client/v3/rooms/{rid}/messages?limit=lots", None, None, 400, "M_INVALID_PARAM"),
            (alice, "GET", "/_matrix/client/v3/sync?since=garbage", None, None, 400, "M_UNKNOWN"),  # as Synapse: "Invalid stream token"
            (alice, "GET", "/_matrix/client/v3/sync?filter=%7Bbad", None, None, 400, "M_NOT_JSON"),  # as Synapse: "Invalid filter JSON"
            (alice, "POST", "/_matrix/client/v3/join/%23nowhere:localhost", {}, None, 404, "M_NOT_FOUND"),
            (alice, "PUT", f"/_matrix/client/v3/rooms/{rid}/send/m.room.message/big", {"body": "x" * 70000}, None, 413, "M_TOO_LARGE"),
            (alice, "PUT", f"/_matrix/client/v3/rooms/{rid}/state/m.room.create/", {"creator": "me"}, None, 403, "M_FORBIDDEN"),
        ]
        for client, method, path, body, data, code, errcode in cases:
            got_code, got = await client.raw(method, path, body, data=data)
            self.assertEqual((got_code, got.get("errcode") if isinstance(got, dict) else got), (code, errcode), f"{method} {path}")
        too_big = await alice.raw("POST", "/_matrix/client/v3/createRoom", data=b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}')
        self.assertEqual((too_big[0], too_big[1]["errcode"]), (413, "M_TOO_LARGE"))
        # Nothing half-made: the room still has just its creation events and no messages.
        msgs = await alice.get(f"/rooms/{rid}/messages?dir=b&limit=100")
        self.assertFalse([e for e in msgs["chunk"] if e["type"] == "m.room.message"])

    async def test_rate_limited_with_retry_after(self) -> None:
        server = await start_homeserver(self, rate_limits={"enabled": True, "message": {"per_second": 0.1, "burst": 3}})
        alice = await MatrixClient.register(server.base_url, "alice")
        rid = (await alice.post("/createRoom", {}))["room_id"]
        codes = []
        for i in range(5):
            code, body = await alice.raw("PUT", f"/_matrix/client/v3/rooms/{rid}/send/m.room.message/r{i}", {"msgtype": "m.text", "body": "x"})
            codes.append(code)
        self.assertEqual(codes[:3], [200, 200, 200])
        self.assertEqual(codes[3], 429)
        self.assertEqual(body["errcode"], "M_LIMIT_EXCEEDED")
        self.assertGreater(body["retry_after_ms"], 0)

    async def test_cors(self) -> None:
        server = await start_homeserver(self)
        import treq
        from twisted.internet import reactor
        from twisted.web.client import HTTPConnectionPool

        resp = await treq.request(
            "OPTIONS",
            (server.base_url + "/_matrix/client/v3/sync").encode(),
            headers={"Origin": ["https://app.example"], "Access-Control-Request-Method": ["GET"]},
            pool=HTTPConnectionPool(reactor, persistent=False),
        )
        await resp.content()
        self.assertEqual(resp.code, 200)
        self.assertEqual(resp.headers.getRawHeaders("Access-Control-Allow-Origin"), ["*"])
        self.assertIn("Authorization", resp.headers.getRawHeaders("Access-Control-Allow-Headers")[0])
