"""Garbage in, spec errors out: deterministic nasty inputs against a live WSPR.

Non-UTF-8 and NUL-carrying paths and bodies, lone surrogates, huge and deeply nested
JSON, a wrong JSON type in every field of createRoom/login/register/filter, odd state
content that later readers must survive, unknown and malformed ids, percent-encoding
oddities, duplicate and concurrent transaction ids, concurrent senders. Every answer
must be the spec's (a 4xx with the right errcode, or success), never a 5xx, and the
room's data must be intact afterwards. Runs on SQLite and, when reachable, PostgreSQL
(which refuses NUL in text and is where such input usually breaks).
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any
from urllib.parse import quote

from twisted.internet import defer, reactor, task, threads
from twisted.trial import unittest

from tests.support.wspr import MatrixClient, start_homeserver

V3 = "/_matrix/client/v3"
BAD_REQUEST = {"M_BAD_JSON", "M_NOT_JSON", "M_INVALID_PARAM", "M_MISSING_PARAM"}
# One value of each JSON type; a field gets every one that is not its own type.
SAMPLES: dict[str, Any] = {"int": 7, "str": "seven", "list": ["x"], "dict": {"x": 1}, "bool": True}
TYPES: dict[str, type | tuple[type, ...]] = {"int": int, "str": str, "list": list, "dict": dict, "bool": bool}


def wrong_values(expected: str) -> list[Any]:
    out = []
    for name, value in SAMPLES.items():
        if name == expected or (expected == "int" and name == "bool") or (expected == "bool" and name == "int"):
            continue
        out.append(value)
    return out


def q(s: str) -> str:
    return quote(s, safe="")


def raw_http(port: int, request_line: bytes, token: str, body: bytes = b"") -> tuple[int, bytes]:
    """One HTTP/1.1 request with the request line exactly as given (bytes http.client refuses)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            request_line + b"\r\nHost: localhost\r\nAuthorization: Bearer " + token.encode()
            + b"\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[-1]


class NastyInputsTest(unittest.TestCase):
    database = "sqlite"
    timeout = 240

    async def _setup(self) -> tuple[Any, MatrixClient, MatrixClient, str]:
        server = await start_homeserver(self, federation={"domain_allowlist": []})
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        rid = (await alice.post("/createRoom", {"preset": "public_chat", "name": "Intact"}))["room_id"]
        await bob.post(f"/join/{q(rid)}")
        return server, alice, bob, rid

    async def _expect(self, client: MatrixClient, method: str, path: str, body: Any = None, *, data: bytes | None = None,
                      code: int | None = None, errcodes: set[str] | None = None) -> tuple[int, Any]:
        got, parsed = await client.raw(method, path, body, data=data)
        where = f"{method} {path[:120]} {(data or json.dumps(body))[:80]!r} -> {got} {str(parsed)[:200]}"
        self.assertLess(got, 500, where)
        if code is not None:
            self.assertEqual(got, code, where)
        if errcodes is not None:
            self.assertIsInstance(parsed, dict, where)
            self.assertIn(parsed.get("errcode"), errcodes, where)
        return got, parsed

    async def _timeline_bodies(self, client: MatrixClient, rid: str) -> list[str]:
        chunk = (await client.get(f"/rooms/{q(rid)}/messages?dir=f&limit=1000"))["chunk"]
        return [e["content"].get("body") for e in chunk if e["type"] == "m.room.message"]

    async def test_bad_bytes_bodies_and_paths(self) -> None:
        server, alice, bob, rid = await self._setup()
        await alice.send_message(rid, "sentinel")
        send = f"{V3}/rooms/{q(rid)}/send/m.room.message"
        msg = b'{"msgtype":"m.text","body":"x"}'
        cases: list[tuple[str, str, bytes, int, set[str]]] = [
            ("PUT", f"{send}/b1", b"\xff\xfe{}", 400, {"M_NOT_JSON"}),
            ("PUT", f"{send}/b2", b'{"msgtype":"m.text","body":"\xff"}', 400, {"M_NOT_JSON"}),
            ("PUT", f"{send}/b3", b'{"msgtype":"m.text","body":"\xed\xa0\x80"}', 400, {"M_NOT_JSON"}),  # UTF-8 surrogate
            ("PUT", f"{send}/b4", b'{"msgtype":"m.text","body":"\\ud800"}', 400, {"M_NOT_JSON"}),  # lone surrogate
            ("PUT", f"{send}/b5", b'{"\\udc00":"x","msgtype":"m.text","body":"x"}', 400, {"M_NOT_JSON"}),
            ("PUT", f"{send}/b6", b'{"a":' * 5000 + b"1" + b"}" * 5000, 400, {"M_NOT_JSON"}),
            ("PUT", f"{send}/b7", b"[" * 100000 + b"]" * 100000, 400, {"M_NOT_JSON"}),
            ("PUT", f"{send}/b8", b'{"body":"x","n":123456789012345678901234567890}', 400, {"M_BAD_JSON"}),
            ("PUT", f"{send}/b9", b'{"body":"x","n":1e400}', 400, {"M_BAD_JSON", "M_NOT_JSON"}),
            ("PUT", f"{send}/b10", b'{"body":"x","n":Infinity}', 400, {"M_NOT_JSON"}),
            ("PUT", f"{send}/b11", b'"just a string"', 400, {"M_BAD_JSON"}),
            ("PUT", f"{send}/b12", b"null", 400, {"M_BAD_JSON"}),
            ("PUT", f"{send}/b13", b'{"body":"x"} trailing', 400, {"M_NOT_JSON"}),
            ("PUT", f"{send}/b14", b'{"body": "' + b"x" * 70000 + b'"}', 413, {"M_TOO_LARGE"}),
            ("POST", f"{V3}/createRoom", b"\x00\x01\x02", 400, {"M_NOT_JSON"}),
            ("POST", f"{V3}/createRoom", b'{"name":"\\ud83d"}', 400, {"M_NOT_JSON"}),
            ("POST", f"{V3}/user/{q(alice.user_id)}/filter", b'{"room":{"rooms":["\\udfff"]}}', 400, {"M_NOT_JSON"}),
            ("PUT", f"{V3}/rooms/{q(rid)}/state/m.room.topic/", b'{"topic":"\\udbff"}', 400, {"M_NOT_JSON"}),
            ("PUT", f"{V3}/profile/{q(alice.user_id)}/displayname", b'{"displayname":"\\ud800x"}', 400, {"M_NOT_JSON"}),
        ]
        for method, path, data, code, errcodes in cases:
            await self._expect(alice, method, path, data=data, code=code, errcodes=errcodes)
        # A surrogate *pair* escape is plain Unicode (an emoji), and deep-but-sane nesting is fine.
        await self._expect(alice, "PUT", f"{send}/ok1", data=b'{"msgtype":"m.text","body":"\\ud83d\\ude00"}', code=200)
        await self._expect(alice, "PUT", f"{send}/ok2", data=b'{"msgtype":"m.text","body":"deep","d":' + b'{"a":' * 200 + b"1" + b"}" * 201, code=200)
        await self._expect(alice, "PUT", f"{send}/ok3", data=b'{"msgtype":"m.text","body":"nul \\u0000 inside"}')
        # NUL inside strings that end up in columns of their own rather than event JSON.
        for method, path, body in [
            ("PUT", f"{V3}/profile/{q(alice.user_id)}/displayname", {"displayname": "a\x00b"}),
            ("PUT", f"{V3}/profile/{q(alice.user_id)}/avatar_url", {"avatar_url": "mxc://a\x00b/c"}),
            ("PUT", f"{V3}/devices/{q(alice.device_id)}", {"display_name": "a\x00b"}),
            ("POST", f"{V3}/createRoom", {"name": "a\x00b", "topic": "t\x00", "room_alias_name": "nul\x00alias"}),
            ("POST", f"{V3}/createRoom", {"name": "a\x00b"}),
            ("PUT", f"{V3}/rooms/{q(rid)}/send/m.reaction/nulrel", {"m.relates_to": {"rel_type": "m.annotation\x00", "event_id": "$x\x00", "key": "\x00"}}),
            ("POST", f"{V3}/createRoom", {"initial_state": [{"type": "org.example\x00", "state_key": "k\x00", "content": {}}]}),
            ("PUT", f"{V3}/rooms/{q(rid)}/state/m.room.canonical_alias/", {"alias": "#a\x00:localhost"}),
            ("PUT", f"{V3}/user/{q(alice.user_id)}/account_data/a%00b", {"x": "\x00"}),
            ("PUT", f"{V3}/user/{q(alice.user_id)}/account_data/m.direct", {"@a\x00:localhost": ["!r\x00:localhost"]}),
            ("POST", f"{V3}/user/{q(alice.user_id)}/filter", {"room": {"rooms": ["!a\x00:localhost"]}}),
            ("POST", f"{V3}/rooms/{q(rid)}/read_markers", {"m.fully_read": "$a\x00"}),
            ("POST", f"{V3}/rooms/{q(rid)}/receipt/m.read/%24x", {"thread_id": "a\x00"}),
            ("POST", f"{V3}/publicRooms", {"filter": {"generic_search_term": "a\x00"}}),
            ("POST", f"{V3}/user_directory/search", {"search_term": "a\x00"}),
            ("POST", f"{V3}/login", {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "a\x00"}, "password": "x"}),
            ("POST", f"{V3}/register", {"username": "nul\x00user", "password": "pw pw pw", "auth": {"type": "m.login.dummy"}}),
            ("GET", f"{V3}/register/available?username=a%00", None),
        ]:
            await self._expect(alice, method, path, body)

        # Paths: non-UTF-8 raw bytes and percent-escapes, NUL, double encoding, slashes.
        port = server.hs.client_port
        status, _ = await threads.deferToThread(
            raw_http, port, b"PUT " + send.encode() + b"/\xff\xfe HTTP/1.1", alice.access_token, msg
        )
        self.assertEqual(status, 400)
        status, _ = await threads.deferToThread(raw_http, port, b"GET /_matrix/client/v3/rooms/\xc3/state HTTP/1.1", alice.access_token)
        self.assertEqual(status, 400)
        odd_txn = ["%FF%FE", "%00", "a%2Fb", "%25", "%2525", "..", "%20", "%E2%80%AE", "x" * 300]
        for txn in odd_txn:
            await self._expect(alice, "PUT", f"{send}/{txn}", data=msg)
        for event_type in ["%00", "m.room.message%00", "%FF", "a%2Fb", "%E2%80%AE"]:
            await self._expect(alice, "PUT", f"{V3}/rooms/{q(rid)}/send/{event_type}/t-{event_type}", data=b'{"k":1}')
        for state_key in ["%00", "%FF%FE", "a%2Fb", "%E2%80%AE", "x" * 300]:
            await self._expect(alice, "PUT", f"{V3}/rooms/{q(rid)}/state/org.example.odd/{state_key}", data=b'{"k":1}')
            await self._expect(alice, "GET", f"{V3}/rooms/{q(rid)}/state/org.example.odd/{state_key}")
        for path in [
            f"/rooms/{q(rid)}/messages?from=%FF", f"/rooms/{q(rid)}/messages?from=%00", f"/rooms/{q(rid)}/messages?dir=%00",
            f"/rooms/{q(rid)}/messages?limit=99999999999999999999", f"/rooms/{q(rid)}/messages?limit=-1",
            f"/_matrix/client/v1/rooms/{q(rid)}/threads?limit=-1", f"/_matrix/client/v1/rooms/{q(rid)}/threads?limit=99999999999999999999",
            f"/_matrix/client/v1/rooms/{q(rid)}/relations/%24x?limit=-1", f"/rooms/{q(rid)}/context/%24x?limit=-1",
            "/notifications?limit=-1", "/publicRooms?limit=-1", "/user_directory/search?limit=-1",
            f"/rooms/{q(rid)}/messages?filter=%7B%22rooms%22%3A%5B%22%5Cud800%22%5D%7D",
            f"/rooms/{q(rid)}/context/%24%00?limit=99999999999999999999",
            f"/rooms/{q(rid)}/event/%24%00", f"/rooms/{q(rid)}/event/%24%FF", f"/rooms/{q(rid)}/event/%2524x",
            f"/rooms/{q(rid)}/state/%00/", f"/rooms/{q(rid)}/members?membership=%00",
            "/sync?filter=99999999999999999999999", "/sync?filter=-1", "/sync?filter=%00", "/sync?timeout=%00",
            "/sync?since=%00", "/sync?since=s99999999999999999999999_1_1",
            "/sync?filter=%7B%22room%22%3A%7B%22rooms%22%3A%5B%22%5Cud800%22%5D%7D%7D",
            "/sync?filter=%7B%22room%22%3A%7B%22timeline%22%3A%7B%22limit%22%3A99999999999999999999%7D%7D%7D",
            f"/user/{q(alice.user_id)}/filter/99999999999999999999999", f"/user/{q(alice.user_id)}/filter/%00",
            "/profile/%40%00%3Alocalhost", "/profile/%40a%3A%FF", "/profile/%40a%3Alocalhost%3A99999999",
            "/directory/room/%23%00%3Alocalhost", "/directory/room/%23a%3A%00",
            "/publicRooms?limit=99999999999999999999", "/publicRooms?since=%00", "/publicRooms?server=%00",
        ]:
            await self._expect(alice, "GET", path if path.startswith("/_matrix") else V3 + path)
        for path in ["/messages?limit=-1", "/messages?limit=99999999999999999999", "/context/%24x?limit=-5"]:
            await self._expect(alice, "GET", f"{V3}/rooms/{q(rid)}{path}", code=400, errcodes={"M_INVALID_PARAM"})
        await self._expect(alice, "GET", f"/_matrix/client/v1/rooms/{q(rid)}/threads?limit=-1", code=400, errcodes={"M_INVALID_PARAM"})

        # Nothing above changed the room: the sentinel and the accepted messages only, in order.
        bodies = await self._timeline_bodies(bob, rid)
        self.assertEqual(bodies[0], "sentinel")
        self.assertIn("\U0001F600", bodies)
        self.assertNotIn(None, bodies[:3])
        state = {(e["type"], e["state_key"]): e for e in await bob.get(f"/rooms/{q(rid)}/state")}
        self.assertEqual(state[("m.room.name", "")]["content"], {"name": "Intact"})
        self.assertNotIn(("m.room.topic", ""), state)
        # Both users still sync, including from scratch.
        for client in (alice, bob, await MatrixClient.login(server.base_url, "bob")):
            sync = await client.sync()
            self.assertIn(rid, sync["rooms"]["join"])

    async def test_wrong_json_types(self) -> None:
        server, alice, bob, rid = await self._setup()
        anon = MatrixClient(server.base_url)
        fields = {
            "createRoom": (alice, "POST", f"{V3}/createRoom", {}, {
                "visibility": "str", "room_alias_name": "str", "name": "str", "topic": "str", "invite": "list",
                "invite_3pid": "list", "room_version": "str", "creation_content": "dict", "initial_state": "list",
                "preset": "str", "is_direct": "bool", "power_level_content_override": "dict",
            }),
            "login": (anon, "POST", f"{V3}/login", {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": "correct horse"}, {
                "type": "str", "identifier": "dict", "password": "str", "device_id": "str",
                "initial_device_display_name": "str", "refresh_token": "bool",
            }),
            # With the auth stage completed, so the server gets as far as creating the account.
            "register": (anon, "POST", f"{V3}/register", {"username": "newbie", "password": "pw pw pw", "auth": {"type": "m.login.dummy"}}, {
                "username": "str", "password": "str", "device_id": "str", "initial_device_display_name": "str",
                "inhibit_login": "bool", "refresh_token": "bool",
            }),
            "filter": (alice, "POST", f"{V3}/user/{q(alice.user_id)}/filter", {}, {
                "event_fields": "list", "event_format": "str", "presence": "dict", "account_data": "dict", "room": "dict",
            }),
            "room filter": (alice, "POST", f"{V3}/user/{q(alice.user_id)}/filter", {"room": {}}, {
                "rooms": "list", "not_rooms": "list", "include_leave": "bool", "timeline": "dict", "state": "dict",
                "ephemeral": "dict", "account_data": "dict",
            }),
            "timeline filter": (alice, "POST", f"{V3}/user/{q(alice.user_id)}/filter", {"room": {"timeline": {}}}, {
                "limit": "int", "types": "list", "not_types": "list", "senders": "list", "not_senders": "list",
                "rooms": "list", "not_rooms": "list", "lazy_load_members": "bool", "include_redundant_members": "bool",
                "contains_url": "bool", "unread_thread_notifications": "bool",
            }),
            "login identifier": (anon, "POST", f"{V3}/login", {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": "correct horse"}, {
                "identifier.type": "str", "identifier.user": "str",
            }),
        }
        rooms_before = len((await alice.get("/joined_rooms"))["joined_rooms"])
        failures: list[str] = []
        for label, (client, method, path, base, spec) in fields.items():
            for field, expected in spec.items():
                for value in wrong_values(expected):
                    body = json.loads(json.dumps(base))
                    target = body
                    parts = field.split(".")
                    nested = {"room filter": ["room"], "timeline filter": ["room", "timeline"]}.get(label, [])
                    for p in nested + parts[:-1]:
                        target = target[p]
                    target[parts[-1]] = value
                    if label == "register":
                        body["auth"]["session"] = (await anon.raw("POST", f"{V3}/register", {}))[1]["session"]
                    got, parsed = await client.raw(method, path, body)
                    if not (got in (400, 403) and parsed.get("errcode") in BAD_REQUEST | {"M_FORBIDDEN", "M_UNKNOWN", "M_UNRECOGNIZED", "M_INVALID_USERNAME", "M_UNSUPPORTED_ROOM_VERSION"}):
                        failures.append(f"{label}.{field}={value!r}: {got} {parsed}")
        self.assertEqual(failures, [], "\n" + "\n".join(failures))
        # No room was half-made by a rejected createRoom, no account by a rejected register.
        self.assertEqual(len((await alice.get("/joined_rooms"))["joined_rooms"]), rooms_before)
        code, _ = await anon.raw("GET", f"{V3}/profile/{q('@newbie:localhost')}")
        self.assertEqual(code, 404)
        # A malformed auth dict is a UIA restart (401 with flows) or a 400, never a 500.
        for auth in (7, "x", [], {"type": 7}, {"type": ["x"]}, {"type": "m.login.password", "session": {}}):
            got, parsed = await self._expect(anon, "POST", f"{V3}/register", {"username": "authless", "password": "pw pw pw", "auth": auth})
            self.assertTrue(got == 400 or (got == 401 and "flows" in parsed), f"auth={auth!r}: {got} {parsed}")

    async def test_odd_state_content_does_not_break_readers(self) -> None:
        """State events with content of the wrong shape are stored (as Synapse does) or
        refused, but never make a later read of the room fail."""
        server, alice, bob, rid = await self._setup()
        odd = [
            ("m.room.name", "", {"name": 5}),
            ("m.room.topic", "", {"topic": ["x"]}),
            ("m.room.avatar", "", {"url": {"x": 1}}),
            ("m.room.join_rules", "", {"join_rule": 5}),
            ("m.room.history_visibility", "", {"history_visibility": ["shared"]}),
            ("m.room.guest_access", "", {"guest_access": {}}),
            ("m.room.canonical_alias", "", {"alias": 5}),
            ("m.room.canonical_alias", "", {"alt_aliases": "x"}),
            ("m.room.encryption", "", {"algorithm": 5}),
            ("m.room.server_acl", "", {"allow": "x", "deny": 5}),
            ("m.room.pinned_events", "", {"pinned": 5}),
            ("m.room.member", alice.user_id, {"membership": "join", "displayname": 5, "avatar_url": []}),
            ("m.room.power_levels", "", {"users": {alice.user_id: "100"}}),
            ("m.room.power_levels", "", {"users": {alice.user_id: 100}, "notifications": {"room": "x"}}),
            ("m.room.tombstone", "", {"replacement_room": 5}),
            ("m.space.child", "!x:localhost", {"via": "x"}),
        ]
        for event_type, state_key, content in odd:
            await self._expect(alice, "PUT", f"{V3}/rooms/{q(rid)}/state/{event_type}/{q(state_key)}", content)
        await self._expect(alice, "PUT", f"{V3}/directory/list/room/{q(rid)}", {"visibility": "public"})
        # Every reader of the room still answers: messages (push rules see the odd
        # display name and power levels), both syncs, a fresh client, the directory.
        event_id = await alice.send_message(rid, f"hello {bob.user_id} bob")
        await bob.send_message(rid, "hello alice")
        carol = await MatrixClient.register(server.base_url, "carol")
        for client, method, path in [
            (bob, "GET", "/sync"), (alice, "GET", "/sync"), (alice, "GET", "/sync?full_state=true"),
            (bob, "GET", f"/rooms/{q(rid)}/messages?dir=b&limit=50"), (bob, "GET", f"/rooms/{q(rid)}/state"),
            (bob, "GET", f"/rooms/{q(rid)}/members"), (bob, "GET", f"/rooms/{q(rid)}/joined_members"),
            (bob, "GET", f"/rooms/{q(rid)}/context/{q(event_id)}"), (bob, "GET", f"/rooms/{q(rid)}/event/{q(event_id)}"),
            (bob, "GET", "/notifications"), (bob, "GET", "/publicRooms"), (carol, "POST", "/publicRooms"),
            (carol, "GET", f"/_matrix/client/v1/room_summary/{q(rid)}"), (bob, "POST", "/user_directory/search"),
            (carol, "POST", f"/join/{q(rid)}"), (alice, "POST", f"/rooms/{q(rid)}/invite"),
        ]:
            body: Any = {"search_term": "a"} if "user_directory" in path else ({"user_id": carol.user_id} if path.endswith("/invite") else None)
            full = path if path.startswith("/_matrix") else V3 + path
            # Carol is no member: a room whose join rule is now 5 is neither public nor joinable.
            await self._expect(client, method, full, body if method == "POST" else None, code=None if client is carol else 200)
        self.assertIn("hello alice", await self._timeline_bodies(alice, rid))
        # An odd history_visibility must not open the history to non-members.
        await self._expect(MatrixClient(server.base_url, (await MatrixClient.register(server.base_url, "dave")).access_token),
                           "GET", f"{V3}/rooms/{q(rid)}/messages?dir=b&limit=5", code=403, errcodes={"M_FORBIDDEN"})

    async def test_unknown_and_malformed_ids(self) -> None:
        server, alice, bob, rid = await self._setup()
        event_id = await alice.send_message(rid, "real")
        nowhere = "!nowhere:localhost"
        cases: list[tuple[MatrixClient, str, str, Any, int, set[str]]] = [
            (alice, "GET", f"/rooms/{q(nowhere)}/messages", None, 403, {"M_FORBIDDEN"}),
            (alice, "GET", f"/rooms/{q(nowhere)}/state", None, 403, {"M_FORBIDDEN"}),
            (alice, "GET", f"/rooms/{q(nowhere)}/event/{q(event_id)}", None, 404, {"M_NOT_FOUND", "M_FORBIDDEN"}),
            (alice, "PUT", f"/rooms/{q(nowhere)}/send/m.room.message/x", {"body": "x"}, 403, {"M_FORBIDDEN"}),
            (alice, "POST", f"/rooms/{q(nowhere)}/join", {}, 404, {"M_NOT_FOUND"}),
            (alice, "POST", f"/rooms/{q(nowhere)}/leave", {}, 0, {"M_FORBIDDEN", "M_NOT_FOUND"}),
            (alice, "POST", f"/join/{q('#nowhere:localhost')}", {}, 404, {"M_NOT_FOUND"}),
            (alice, "GET", f"/rooms/{q(rid)}/event/{q('$nope')}", None, 404, {"M_NOT_FOUND"}),
            (alice, "GET", f"/rooms/{q(rid)}/context/{q('$nope')}", None, 404, {"M_NOT_FOUND"}),
            (alice, "PUT", f"/rooms/{q(rid)}/redact/{q('$nope')}/r1", {}, 0, {"M_NOT_FOUND"}),
            (alice, "POST", f"/rooms/{q(rid)}/receipt/m.read/{q('$nope')}", {}, 404, {"M_NOT_FOUND"}),
            (alice, "GET", f"/profile/{q('@nobody:localhost')}", None, 404, {"M_NOT_FOUND"}),
            (alice, "GET", f"/profile/{q('@nobody:localhost')}/displayname", None, 404, {"M_NOT_FOUND"}),
            (alice, "GET", f"/user/{q(alice.user_id)}/filter/12345", None, 404, {"M_NOT_FOUND"}),
            (alice, "GET", f"/user/{q(bob.user_id)}/filter/0", None, 403, {"M_FORBIDDEN"}),
            (alice, "GET", f"/devices/{q('NOPE')}", None, 404, {"M_NOT_FOUND"}),
            (alice, "GET", f"/directory/room/{q('#nowhere:localhost')}", None, 404, {"M_NOT_FOUND"}),
            (alice, "PUT", f"/rooms/{q(rid)}/typing/{q(bob.user_id)}", {"typing": True}, 400, {"M_FORBIDDEN"}),  # Synapse: 400
            (alice, "PUT", f"/profile/{q(bob.user_id)}/displayname", {"displayname": "x"}, 403, {"M_FORBIDDEN"}),
            (alice, "PUT", f"/user/{q(bob.user_id)}/account_data/x", {}, 403, {"M_FORBIDDEN"}),
        ]
        malformed_rooms = ["room", "!", "!nocolon", "!a:", "#alias:localhost", "@user:localhost", "!a:b:c:d", "!a:[::1", "!\x00:localhost"]
        for bad in malformed_rooms:
            for method, suffix, body in [("GET", "/messages", None), ("GET", "/state", None), ("PUT", "/send/m.room.message/t", {"body": "x"}), ("POST", "/invite", {"user_id": bob.user_id})]:
                cases.append((alice, method, f"/rooms/{q(bad)}{suffix}", body, 0, BAD_REQUEST | {"M_FORBIDDEN", "M_NOT_FOUND"}))
        for bad in ["bob", "@", "@:localhost", "@bob", "@bob:", "@bob:local host", "@bob:localhost:0", "@b\x00b:localhost", "@" + "b" * 300 + ":localhost"]:
            cases += [
                (alice, "POST", f"/rooms/{q(rid)}/invite", {"user_id": bad}, 0, BAD_REQUEST | {"M_NOT_FOUND", "M_FORBIDDEN"}),
                (alice, "POST", f"/rooms/{q(rid)}/kick", {"user_id": bad}, 0, BAD_REQUEST | {"M_FORBIDDEN", "M_NOT_FOUND"}),
                (alice, "POST", f"/rooms/{q(rid)}/ban", {"user_id": bad}, 0, BAD_REQUEST | {"M_FORBIDDEN", "M_NOT_FOUND"}),
                (alice, "GET", f"/profile/{q(bad)}", None, 0, BAD_REQUEST | {"M_NOT_FOUND", "M_FORBIDDEN"}),
                (alice, "PUT", f"/rooms/{q(rid)}/state/m.room.member/{q(bad)}", {"membership": "join"}, 0, BAD_REQUEST | {"M_FORBIDDEN"}),
                (alice, "POST", "/keys/query", {"device_keys": {bad: []}}, 0, BAD_REQUEST | {None}),
            ]
        for bad in ["nope", "$", "$\x00", "$" + "e" * 300, "!room:localhost"]:
            cases += [
                (alice, "GET", f"/rooms/{q(rid)}/event/{q(bad)}", None, 0, BAD_REQUEST | {"M_NOT_FOUND"}),
                (alice, "GET", f"/rooms/{q(rid)}/context/{q(bad)}", None, 0, BAD_REQUEST | {"M_NOT_FOUND"}),
                (alice, "POST", f"/rooms/{q(rid)}/redact/{q(bad)}", {}, 0, BAD_REQUEST | {"M_NOT_FOUND"}),
                (alice, "POST", f"/rooms/{q(rid)}/read_markers", {"m.fully_read": bad}, 0, BAD_REQUEST | {"M_NOT_FOUND"}),
                (alice, "GET", f"/_matrix/client/v1/rooms/{q(rid)}/relations/{q(bad)}", None, 0, BAD_REQUEST | {"M_NOT_FOUND"}),
            ]
        for client, method, path, body, code, errcodes in cases:
            got, parsed = await client.raw(method, path if path.startswith("/_matrix") else V3 + path, body)
            where = f"{method} {path} {body!r} -> {got} {parsed}"
            self.assertLess(got, 500, where)
            if code:
                self.assertEqual(got, code, where)
            if 400 <= got:
                self.assertIn(parsed.get("errcode") if isinstance(parsed, dict) else parsed, errcodes, where)
        self.assertEqual(await self._timeline_bodies(bob, rid), ["real"])

    async def test_duplicate_and_concurrent_transactions(self) -> None:
        server, alice, bob, rid = await self._setup()
        send = f"/rooms/{q(rid)}/send/m.room.message"
        first = await alice.put(f"{send}/dup", {"msgtype": "m.text", "body": "once"})
        again = await alice.put(f"{send}/dup", {"msgtype": "m.text", "body": "once"})
        changed = await alice.put(f"{send}/dup", {"msgtype": "m.text", "body": "different body, same txn"})
        self.assertEqual(first["event_id"], again["event_id"])
        self.assertEqual(first["event_id"], changed["event_id"])
        # The same txn id from another user, or another device of the same user, is a new event.
        other = await bob.put(f"{send}/dup", {"msgtype": "m.text", "body": "bob's"})
        self.assertNotEqual(other["event_id"], first["event_id"])
        alice2 = await MatrixClient.login(server.base_url, "alice")
        second_device = await alice2.put(f"{send}/dup", {"msgtype": "m.text", "body": "other device"})
        self.assertNotEqual(second_device["event_id"], first["event_id"])
        # Twenty identical requests at once (a client retrying on a flaky link): one event.
        same = await defer.gatherResults(
            [defer.ensureDeferred(alice.put(f"{send}/burst", {"msgtype": "m.text", "body": "burst"})) for _ in range(20)]
        )
        self.assertEqual(len({r["event_id"] for r in same}), 1)
        # Forty different messages at once from two users: all land, once each, in one order for all.
        async def one(client: MatrixClient, i: int) -> str:
            return (await client.put(f"{send}/c{i}", {"msgtype": "m.text", "body": f"c{i}"}))["event_id"]

        ids = await defer.gatherResults(
            [defer.ensureDeferred(one(alice if i % 2 else bob, i)) for i in range(40)]
        )
        self.assertEqual(len(set(ids)), 40)
        bodies_alice = await self._timeline_bodies(alice, rid)
        bodies_bob = await self._timeline_bodies(bob, rid)
        self.assertEqual(bodies_alice, bodies_bob)
        self.assertEqual(bodies_alice.count("once"), 1)
        self.assertEqual(bodies_alice.count("burst"), 1)
        self.assertNotIn("different body, same txn", bodies_alice)
        self.assertEqual(sorted(b for b in bodies_alice if b.startswith("c")), sorted(f"c{i}" for i in range(40)))
        # A fresh client's sync and backwards pagination agree with /messages.
        fresh = await MatrixClient.login(server.base_url, "bob")
        sync = await fresh.sync(filter={"room": {"timeline": {"limit": 100}}})
        timeline = [e["content"].get("body") for e in sync["rooms"]["join"][rid]["timeline"]["events"] if e["type"] == "m.room.message"]
        self.assertEqual(timeline, bodies_alice)
        # The room's DAG has one forward extremity once the burst is over: every event
        # has been built on, none forked off and lost.
        extremities = await server.hs.store.get_forward_extremities(rid) if hasattr(server.hs.store, "get_forward_extremities") else None
        if extremities is not None:
            self.assertEqual(len(extremities), 1, extremities)


class ConcurrentCreationTest(unittest.TestCase):
    database = "sqlite"

    async def test_one_alias_one_room(self) -> None:
        """Ten createRooms for one alias at once: one room, the rest M_ROOM_IN_USE."""
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        results = await defer.gatherResults(
            [defer.ensureDeferred(alice.raw("POST", f"{V3}/createRoom", {"room_alias_name": "same"})) for _ in range(10)]
        )
        created = [body["room_id"] for code, body in results if code == 200]
        self.assertEqual(len(created), 1, results)
        self.assertEqual({body.get("errcode") for code, body in results if code != 200}, {"M_ROOM_IN_USE"})
        self.assertEqual((await alice.get("/joined_rooms"))["joined_rooms"], created)
        self.assertEqual((await alice.get(f"/directory/room/{q('#same:localhost')}"))["room_id"], created[0])
        # Registering one name ten times at once: one account.
        anon = MatrixClient(server.base_url)

        async def register() -> int:
            session = (await anon.raw("POST", f"{V3}/register", {}))[1]["session"]
            body = {"username": "twin", "password": "pw pw pw", "auth": {"type": "m.login.dummy", "session": session}}
            return (await anon.raw("POST", f"{V3}/register", body))[0]

        codes = await defer.gatherResults([defer.ensureDeferred(register()) for _ in range(10)])
        self.assertEqual(sorted(codes), [200] + [400] * 9)

    async def test_concurrent_writes_of_one_key(self) -> None:
        """Select-then-insert writes raced on PostgreSQL (one died on the unique key)."""
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        rid = (await alice.post("/createRoom", {}))["room_id"]

        async def burst(method: str, path: str, body: Any) -> list[int]:
            results = await defer.gatherResults(
                [defer.ensureDeferred(alice.raw(method, V3 + path, body)) for _ in range(10)]
            )
            codes = [code for code, _ in results]
            self.assertFalse([c for c in codes if c >= 500], f"{method} {path}: {results}")
            return codes

        self.assertEqual(sorted(await burst("PUT", f"/directory/room/{q('#one:localhost')}", {"room_id": rid})), [200] + [409] * 9)
        await burst("POST", f"/user/{q(alice.user_id)}/filter", {"room": {"timeline": {"limit": 5}}})
        filter_ids = [(await alice.post(f"/user/{q(alice.user_id)}/filter", {}))["filter_id"] for _ in range(2)]
        self.assertEqual(int(filter_ids[1]), int(filter_ids[0]) + 1)
        self.assertEqual(int(filter_ids[0]), 11)  # ten distinct filters were stored
        await burst("PUT", "/pushrules/global/override/one", {"actions": ["notify"], "conditions": []})
        rules = (await alice.get("/pushrules/"))["global"]["override"]
        self.assertEqual([r["rule_id"] for r in rules].count("one"), 1)
        await burst("POST", "/room_keys/version", {"algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": {"public_key": "abc"}})


class ConcurrentCreationPostgresTest(ConcurrentCreationTest):
    database = "postgresql"


class AbandonedLongPollTest(unittest.TestCase):
    async def test_client_hanging_up_mid_sync_leaves_nothing_behind(self) -> None:
        """A client that closes its connection during a long-poll /sync (app closed,
        network switch) must not leave the wait parked until its timeout; trial fails
        the test on the leftover timer if it does."""
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        since = (await alice.sync())["next_batch"]

        def hang_up() -> None:
            with socket.create_connection(("127.0.0.1", server.hs.client_port), timeout=10) as sock:
                sock.sendall(
                    f"GET {V3}/sync?timeout=60000&since={q(since)} HTTP/1.1\r\nHost: localhost\r\n"
                    f"Authorization: Bearer {alice.access_token}\r\n\r\n".encode()
                )
                time.sleep(0.5)  # the server is now waiting for events

        await threads.deferToThread(hang_up)
        await task.deferLater(reactor, 0.2, lambda: None)
        self.assertEqual(server.hs.notifier._waiters, {})
        # The server still answers syncs normally.
        self.assertIn("next_batch", await alice.sync(since=since))


class NastyInputsPostgresTest(NastyInputsTest):
    database = "postgresql"
