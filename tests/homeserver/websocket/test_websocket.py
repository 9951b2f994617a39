"""The WebSocket stream (docs/websocket.md) over a real server: discovery, authentication
(header, query, auth frame) and its failures, what /sync carries arriving as it happens
(timeline, state, typing, receipts, presence, account data, to-device, device lists, call
membership and call keys), resumption from a token with nothing lost or duplicated while
1,000 events flow (to-device messages kept until acknowledged), slow clients dropped with
4008 and resuming, heartbeats, the sliding sync mode, a server restart, the per-device cap.
SQLite and PostgreSQL."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from homeserver.app import HomeServer
from homeserver.config import load_config
from homeserver.websocket.frames import FEATURE, PATH
from tests.homeserver.e2e._helpers import Ed25519, device_keys
from tests.homeserver.websocket.client import WsClient, close_all
from tests.support.wspr import MatrixClient, start_homeserver

# Timelines long enough that a resumed stream never has a gap (limited) to fill.
BIG_TIMELINE = {"room": {"timeline": {"limit": 1000}}}
CALL_MEMBER = "org.matrix.msc3401.call.member"
CALL_KEYS = "io.element.call.encryption_keys"


async def sleep(seconds: float) -> None:
    await task.deferLater(reactor, seconds, lambda: None)


async def subscribe(base_url: str, client: MatrixClient, **fields: Any) -> WsClient:
    ws = await WsClient.connect(base_url, client.access_token)
    await ws.next("hello")
    ws.send({"type": "subscribe", "mode": "sync", **fields})
    return ws


def timeline(frame: dict[str, Any], room_id: str) -> list[dict[str, Any]]:
    room = frame["data"]["rooms"]["join"].get(room_id)
    return room["timeline"]["events"] if room else []


class RoomLog:
    """A room's timeline as a client holds it: the events of the frames in order, and the
    gap before a limited timeline (more than the filter's limit happened since the token)
    filled by paginating back from its prev_batch, as /sync clients do."""

    def __init__(self, client: MatrixClient, room_id: str, known: list[dict[str, Any]] = ()) -> None:  # type: ignore[assignment]
        self.client = client
        self.room_id = room_id
        self.events: list[dict[str, Any]] = list(known)
        self.gaps = 0

    @property
    def ids(self) -> list[str]:
        return [e["event_id"] for e in self.events]

    def messages(self, key: str = "event_id") -> list[Any]:
        out = [e for e in self.events if e["type"] == "m.room.message"]
        return [e["event_id"] for e in out] if key == "event_id" else [e["content"][key] for e in out]

    async def add(self, frame: dict[str, Any]) -> None:
        room = frame["data"]["rooms"]["join"].get(self.room_id)
        if not room:
            return
        if room["timeline"]["limited"] and self.events:
            self.gaps += 1
            self.events += await self._back_to_known(room["timeline"]["prev_batch"])
        self.events += room["timeline"]["events"]

    async def _back_to_known(self, token: str) -> list[dict[str, Any]]:
        known = set(self.ids)
        out: list[dict[str, Any]] = []
        while True:
            page = await self.client.get(f"/rooms/{quote(self.room_id)}/messages?dir=b&limit=50&from={quote(token)}")
            for event in page["chunk"]:
                if event["event_id"] in known:
                    return list(reversed(out))
                out.append(event)
            if "end" not in page:
                return list(reversed(out))
            token = page["end"]


async def read_until(
    ws: WsClient, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 20.0, ack: bool = True
) -> list[dict[str, Any]]:
    """Data frames until ``done(frames)``, acknowledging each."""
    got: list[dict[str, Any]] = []
    deadline = reactor.seconds() + timeout
    while not done(got):
        remaining = deadline - reactor.seconds()
        if remaining <= 0:
            raise AssertionError(f"timed out; got {json.dumps(got)[:3000]}")
        frame = await ws.next("sync", timeout=remaining)
        got.append(frame)
        if ack:
            ws.send({"type": "ack", "token": frame["token"]})
    return got


async def upgrade_raw(client: MatrixClient, query: str = "", token: str | None = None) -> tuple[int, Any]:
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    anon = MatrixClient(client.base_url)
    return await anon.raw("GET", PATH + query, headers=headers)


class WebSocketMixin:
    database = "sqlite"

    def setUp(self) -> None:
        # Runs after the server's cleanup (cleanups run last first): what is still open goes.
        self.addCleanup(lambda: defer.ensureDeferred(close_all()))  # type: ignore[attr-defined]

    async def server(self, **websocket: Any) -> Any:
        return await start_homeserver(self, database=self.database, websocket=websocket)  # type: ignore[arg-type]

    # -- discovery and authentication -----------------------------------------------

    async def test_discovery_and_plain_get(self) -> None:
        server = await self.server()
        alice = await MatrixClient.register(server.base_url, "alice")
        versions = await alice.request("GET", "/_matrix/client/versions")
        self.assertIs(versions["unstable_features"][FEATURE], True)
        code, body = await alice.raw("GET", PATH)
        self.assertEqual((code, body["errcode"]), (426, "M_UNRECOGNIZED"))

    async def test_disabled(self) -> None:
        server = await self.server(enabled=False)
        alice = await MatrixClient.register(server.base_url, "alice")
        versions = await alice.request("GET", "/_matrix/client/versions")
        self.assertIs(versions["unstable_features"][FEATURE], False)
        code, _ = await upgrade_raw(alice, token=alice.access_token)
        self.assertEqual(code, 404)

    async def test_three_ways_to_authenticate(self) -> None:
        server = await self.server()
        alice = await MatrixClient.register(server.base_url, "alice")
        # The Authorization header.
        ws = await WsClient.connect(server.base_url, alice.access_token)
        hello = await ws.next("hello")
        self.assertEqual((hello["user_id"], hello["device_id"]), (alice.user_id, alice.device_id))
        ws.close()
        # ?access_token= as every Matrix endpoint takes it.
        ws = await WsClient.connect(server.base_url, query="access_token=" + quote(alice.access_token))
        self.assertEqual((await ws.next("hello"))["user_id"], alice.user_id)
        ws.close()
        # An auth frame (browsers), pipelined with the subscribe.
        ws = await WsClient.connect(server.base_url)
        ws.send({"type": "auth", "access_token": alice.access_token})
        ws.send({"type": "subscribe", "mode": "sync"})
        self.assertEqual((await ws.next("hello"))["device_id"], alice.device_id)
        first = await ws.next("sync")
        self.assertIn("next_batch", first["data"])
        self.assertEqual(first["token"], first["data"]["next_batch"])
        ws.close()

    async def test_auth_failures(self) -> None:
        server = await self.server(auth_timeout_ms=500)
        alice = await MatrixClient.register(server.base_url, "alice")
        # A bad token in the upgrade request: the usual 401, no socket.
        code, body = await upgrade_raw(alice, token="nope")
        self.assertEqual((code, body["errcode"]), (401, "M_UNKNOWN_TOKEN"))
        code, body = await upgrade_raw(alice, query="?access_token=nope")
        self.assertEqual((code, body["errcode"]), (401, "M_UNKNOWN_TOKEN"))
        # A bad token in the auth frame.
        ws = await WsClient.connect(server.base_url)
        ws.send({"type": "auth", "access_token": "nope"})
        error = await ws.next("error")
        self.assertEqual(error["errcode"], "M_UNKNOWN_TOKEN")
        self.assertEqual((await ws.wait_closed())[0], 4001)
        # No auth frame in time.
        ws = await WsClient.connect(server.base_url)
        self.assertEqual((await ws.next("error"))["errcode"], "M_MISSING_TOKEN")
        self.assertEqual((await ws.wait_closed())[0], 4001)
        # A subscribe before authenticating.
        ws = await WsClient.connect(server.base_url)
        ws.send({"type": "subscribe", "mode": "sync"})
        self.assertEqual((await ws.next("error"))["errcode"], "M_MISSING_TOKEN")
        self.assertEqual((await ws.wait_closed())[0], 4001)
        # A second auth frame for another user.
        bob = await MatrixClient.register(server.base_url, "bob")
        ws = await WsClient.connect(server.base_url, alice.access_token)
        await ws.next("hello")
        ws.send({"type": "auth", "access_token": bob.access_token})
        self.assertEqual((await ws.next("error"))["errcode"], "M_FORBIDDEN")
        self.assertEqual((await ws.wait_closed())[0], 4003)
        # Every one of those sockets is gone from the server, whichever way it ended.
        for _ in range(50):
            if not server.hs.websocket.sessions:
                break
            await sleep(0.1)
        self.assertEqual(server.hs.websocket.sessions, set())

    async def test_sign_out_ends_the_socket(self) -> None:
        server = await self.server()
        alice = await MatrixClient.register(server.base_url, "alice")
        ws = await subscribe(server.base_url, alice)
        await ws.next("sync")
        await alice.post("/logout")
        error = await ws.next("error")
        self.assertEqual(error["errcode"], "M_UNKNOWN_TOKEN")
        self.assertEqual((await ws.wait_closed(5))[0], 4001)

    async def test_a_refreshed_token_keeps_the_socket(self) -> None:
        server = await self.server()
        alice = await MatrixClient.register(server.base_url, "alice")
        login = await MatrixClient(server.base_url).request(
            "POST",
            "/_matrix/client/v3/login",
            {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"},
             "password": "correct horse", "refresh_token": True},
        )
        alice = MatrixClient(server.base_url, login["access_token"], login["user_id"], login["device_id"])
        ws = await subscribe(server.base_url, alice)
        await ws.next("sync")
        refreshed = await MatrixClient(server.base_url).request(
            "POST", "/_matrix/client/v3/refresh", {"refresh_token": login["refresh_token"]}
        )
        self.assertNotEqual(refreshed["access_token"], alice.access_token)
        ws.send({"type": "auth", "access_token": refreshed["access_token"]})
        ws.send({"type": "ping", "id": "after-auth"})
        self.assertEqual((await ws.next("pong"))["id"], "after-auth")
        await sleep(0.2)
        self.assertFalse(ws.is_closed)

    async def test_bad_frames(self) -> None:
        server = await self.server()
        alice = await MatrixClient.register(server.base_url, "alice")
        for payload, binary, errcode in (
            (b"not json", False, "M_NOT_JSON"),
            (b'{"type": "dance"}', False, "M_UNRECOGNIZED"),
            (b'{"type": "ack"}', False, "M_MISSING_PARAM"),
            (b'{"type": "subscribe", "mode": "carrier-pigeon"}', False, "M_INVALID_PARAM"),
            (b'{"type": "ping"}', True, "M_BAD_JSON"),
        ):
            ws = await WsClient.connect(server.base_url, alice.access_token)
            await ws.next("hello")
            ws.send_raw(payload, binary)
            self.assertEqual((await ws.next("error"))["errcode"], errcode, payload)
            self.assertEqual((await ws.wait_closed())[0], 4000, payload)
        # A sync-mode socket subscribes once.
        ws = await subscribe(server.base_url, alice)
        await ws.next("sync")
        ws.send({"type": "subscribe", "mode": "sync"})
        self.assertEqual((await ws.next("error"))["errcode"], "M_BAD_JSON")
        self.assertEqual((await ws.wait_closed())[0], 4000)
        # A bad since token is /sync's error.
        ws = await subscribe(server.base_url, alice, since="garbage")
        self.assertEqual((await ws.next("error"))["errcode"], "M_UNKNOWN")
        self.assertEqual((await ws.wait_closed())[0], 4000)

    # -- what it carries ---------------------------------------------------------------

    async def test_carries_what_sync_carries_as_it_happens(self) -> None:
        server = await self.server()
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        levels = {"users": {alice.user_id: 100, bob.user_id: 50}}
        room_id = (await alice.post("/createRoom", {"invite": [bob.user_id], "power_level_content_override": levels}))[
            "room_id"
        ]
        await bob.post(f"/join/{quote(room_id)}")
        ws = await subscribe(server.base_url, alice)
        initial = await ws.next("sync")
        ws.send({"type": "ack", "token": initial["token"]})
        self.assertIn(room_id, initial["data"]["rooms"]["join"])
        q = quote(room_id)

        async def expect(what: str, action: Any, found: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
            await action
            frames = await read_until(ws, lambda fs: any(found(f["data"]) for f in fs))
            return next(f for f in frames if found(f["data"]))

        def room(data: dict[str, Any]) -> dict[str, Any]:
            return data["rooms"]["join"].get(room_id) or {"timeline": {"events": []}, "ephemeral": {"events": []}}

        event_id = await bob.send_message(room_id, "hello alice")
        await expect("timeline", defer.succeed(None), lambda d: any(
            e["event_id"] == event_id for e in room(d)["timeline"]["events"]))
        await expect("state", bob.put(f"/rooms/{q}/state/m.room.topic", {"topic": "websockets"}), lambda d: any(
            e["type"] == "m.room.topic" and e["content"].get("topic") == "websockets" for e in room(d)["timeline"]["events"]))
        await expect("typing", bob.put(f"/rooms/{q}/typing/{quote(bob.user_id)}", {"typing": True, "timeout": 30000}),
                     lambda d: any(e["type"] == "m.typing" and bob.user_id in e["content"]["user_ids"]
                                   for e in room(d).get("ephemeral", {}).get("events", [])))
        await expect("receipt", bob.post(f"/rooms/{q}/receipt/m.read/{quote(event_id)}", {}), lambda d: any(
            e["type"] == "m.receipt" and event_id in e["content"] for e in room(d).get("ephemeral", {}).get("events", [])))
        await expect("presence", bob.put(f"/presence/{quote(bob.user_id)}/status", {"presence": "online", "status_msg": "here"}),
                     lambda d: any(e["sender"] == bob.user_id and e["content"].get("status_msg") == "here"
                                   for e in d["presence"]["events"]))
        await expect("account data", alice.put(f"/user/{quote(alice.user_id)}/account_data/org.example.ws", {"n": 1}),
                     lambda d: any(e["type"] == "org.example.ws" for e in d["account_data"]["events"]))
        await expect("to-device", bob.put(f"/sendToDevice/m.test/t{secrets.token_hex(4)}",
                                          {"messages": {alice.user_id: {alice.device_id: {"hi": "there"}}}}),
                     lambda d: any(e["type"] == "m.test" and e["sender"] == bob.user_id for e in d["to_device"]["events"]))
        ed = Ed25519(bob.device_id)
        await expect("device list", bob.post("/keys/upload", {"device_keys": device_keys(bob, ed)}),
                     lambda d: bob.user_id in d["device_lists"]["changed"])
        # Call signalling: the MatrixRTC membership (state) and the media keys (to-device).
        state_key = f"_{bob.user_id}_{bob.device_id}_m.call"
        member = {"application": "m.call", "call_id": "", "scope": "m.room", "device_id": bob.device_id,
                  "expires": 3600000, "focus_active": {"type": "livekit", "focus_selection": "oldest_membership"},
                  "foci_preferred": []}
        await expect("call member", bob.put(f"/rooms/{q}/state/{CALL_MEMBER}/{quote(state_key)}", member), lambda d: any(
            e["type"] == CALL_MEMBER and e["state_key"] == state_key for e in room(d)["timeline"]["events"]))
        keys = {"keys": [{"index": 0, "key": "c2VjcmV0"}], "call_id": "", "device_id": bob.device_id, "room_id": room_id}
        await expect("call keys", bob.put(f"/sendToDevice/{CALL_KEYS}/t{secrets.token_hex(4)}",
                                          {"messages": {alice.user_id: {alice.device_id: keys}}}),
                     lambda d: any(e["type"] == CALL_KEYS and e["content"]["keys"][0]["key"] == "c2VjcmV0"
                                   for e in d["to_device"]["events"]))

    async def test_an_event_committed_behind_a_slower_write_still_comes(self) -> None:
        """The stream position becomes visible only once every earlier one is written: an
        event whose wake-up came while an earlier position was still in flight is sent
        when that one completes, though nothing wakes the user then."""
        server = await self.server()
        alice = await MatrixClient.register(server.base_url, "alice")
        room_id = (await alice.post("/createRoom", {}))["room_id"]
        ws = await subscribe(server.base_url, alice)
        first = await ws.next("sync")
        ws.send({"type": "ack", "token": first["token"]})
        streams = server.hs.streams
        held = streams.allocate()  # a write still in flight
        event_id = await alice.send_message(room_id, "behind")
        await sleep(0.3)
        self.assertNotIn(event_id, [e["event_id"] for f in ws.frames if f["type"] == "sync" for e in timeline(f, room_id)])
        streams.complete(held)
        frames = await read_until(ws, lambda fs: any(timeline(f, room_id) for f in fs), timeout=5)
        self.assertEqual([e["event_id"] for f in frames for e in timeline(f, room_id)], [event_id])

    async def test_frames_are_the_sync_responses(self) -> None:
        """A frame is what GET /sync from the previous token returns (same rooms, same
        events): a client can hand it to its /sync processing."""
        server = await self.server()
        alice = await MatrixClient.register(server.base_url, "alice")
        room_id = (await alice.post("/createRoom", {"name": "frames"}))["room_id"]
        ws = await subscribe(server.base_url, alice)
        first = await ws.next("sync")
        ws.send({"type": "ack", "token": first["token"]})
        await alice.send_message(room_id, "one")
        frame = (await read_until(ws, lambda fs: any(timeline(f, room_id) for f in fs)))[-1]
        previous = first["token"]
        body = await alice.sync(since=previous)
        self.assertEqual(
            [e["event_id"] for e in body["rooms"]["join"][room_id]["timeline"]["events"]],
            [e["event_id"] for e in timeline(frame, room_id)],
        )
        self.assertEqual(set(frame["data"]), set(body))

    # -- resumption ----------------------------------------------------------------------

    async def test_resume_mid_stream_while_1000_events_flow(self) -> None:
        """The client drops its connection twice (once without a close frame) while 1,000
        messages and 100 to-device messages flow, and resumes each time from the token of
        the last frame it processed: every event and message arrives exactly once, in
        order."""
        server = await self.server()
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        room_id = (await alice.post("/createRoom", {"invite": [bob.user_id]}))["room_id"]
        await bob.post(f"/join/{quote(room_id)}")
        initial = await alice.sync(filter=BIG_TIMELINE)
        since = initial["next_batch"]
        log = RoomLog(alice, room_id, initial["rooms"]["join"][room_id]["timeline"]["events"])
        total, to_device_total = 1000, 100

        async def send_all() -> None:
            async def sender(k: int) -> None:
                for i in range(k, total, 10):
                    await bob.send_message(room_id, f"m{i}", n=i)
                    if i % 10 == 0:
                        await bob.put(f"/sendToDevice/m.test/d{i}", {"messages": {alice.user_id: {alice.device_id: {"n": i}}}})

            await defer.gatherResults([defer.ensureDeferred(sender(k)) for k in range(10)])

        sending = defer.ensureDeferred(send_all())
        to_device: list[int] = []
        token = since
        drops = [(300, "abort"), (650, "close")]
        while len(log.messages()) < total or len(to_device) < to_device_total:
            ws = await subscribe(server.base_url, alice, since=token, filter=BIG_TIMELINE)
            while len(log.messages()) < total or len(to_device) < to_device_total:
                frame = await ws.next("sync", timeout=60)
                await log.add(frame)
                to_device += [e["content"]["n"] for e in frame["data"]["to_device"]["events"]]
                token = frame["token"]
                ws.send({"type": "ack", "token": token})
                if drops and len(log.messages()) >= drops[0][0]:
                    how = drops.pop(0)[1]
                    if how == "abort":
                        ws.abort()  # the frames in flight are never read
                    else:
                        ws.close()
                    await ws.wait_closed()
                    break
        await sending
        self.assertEqual(drops, [])
        received = log.messages("n")
        self.assertEqual(len(received), total, "duplicates or losses")
        self.assertEqual(sorted(received), list(range(total)))
        for k in range(10):  # each sender's messages in the order sent
            mine = [n for n in received if n % 10 == k]
            self.assertEqual(mine, sorted(mine))
        self.assertEqual(sorted(to_device), list(range(0, total, 10)))

    async def test_to_device_kept_until_acknowledged(self) -> None:
        server = await self.server()
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        ws = await subscribe(server.base_url, alice)
        first = await ws.next("sync")
        ws.send({"type": "ack", "token": first["token"]})
        def to_device(frames: list[dict[str, Any]]) -> list[int]:
            return [e["content"]["n"] for f in frames for e in f["data"]["to_device"]["events"]]

        await bob.put("/sendToDevice/m.test/a", {"messages": {alice.user_id: {alice.device_id: {"n": 1}}}})
        frames = await read_until(ws, lambda fs: to_device(fs) != [], ack=False)
        self.assertEqual(to_device(frames), [1])
        # The next frame goes out before the client acknowledges: only what is new.
        await bob.put("/sendToDevice/m.test/b", {"messages": {alice.user_id: {alice.device_id: {"n": 2}}}})
        frames = await read_until(ws, lambda fs: to_device(fs) != [], ack=False)
        self.assertEqual(to_device(frames), [2])
        # Never acknowledged: the client did not process them. Resuming from the older
        # token brings them again.
        ws.abort()
        await ws.wait_closed()
        ws = await subscribe(server.base_url, alice, since=first["token"])
        again = await read_until(ws, lambda fs: len(to_device(fs)) >= 2)
        self.assertEqual(to_device(again), [1, 2])
        ws.close()
        await ws.wait_closed()
        # Acknowledged now: gone, also for /sync from the older token.
        for _ in range(50):
            body = await alice.sync(since=first["token"])
            if not body["to_device"]["events"]:
                break
            await sleep(0.1)
        self.assertEqual(body["to_device"]["events"], [])

    async def test_resume_after_a_server_restart(self) -> None:
        """Sync-mode tokens need no server memory: a client whose server restarted (it
        got 1001) resumes from its token on the new process."""
        server = await self.server()
        alice = await MatrixClient.register(server.base_url, "alice")
        room_id = (await alice.post("/createRoom", {}))["room_id"]
        ws = await subscribe(server.base_url, alice)
        first = await ws.next("sync")
        ws.send({"type": "ack", "token": first["token"]})
        before = await alice.send_message(room_id, "before")
        frames = await read_until(ws, lambda fs: any(timeline(f, room_id) for f in fs))
        token = frames[-1]["token"]
        await server.hs.stop()
        self.assertEqual((await ws.wait_closed(5))[0], 1001)
        hs = HomeServer(load_config(server.config_path))
        await hs.start()
        self.addCleanup(lambda: defer.ensureDeferred(hs.stop()))
        base_url = f"http://127.0.0.1:{hs.client_port}"
        alice2 = MatrixClient(base_url, alice.access_token, alice.user_id, alice.device_id)
        after = await alice2.send_message(room_id, "after")
        ws = await subscribe(base_url, alice2, since=token)
        frames = await read_until(ws, lambda fs: any(timeline(f, room_id) for f in fs))
        ids = [e["event_id"] for f in frames for e in timeline(f, room_id)]
        self.assertEqual(ids, [after])
        self.assertNotIn(before, ids)
        ws.close()

    # -- back-pressure -----------------------------------------------------------------

    async def test_a_client_that_does_not_acknowledge_is_dropped_and_resumes(self) -> None:
        server = await self.server(max_unacked_frames=3, slow_client_timeout_ms=1000)
        alice = await MatrixClient.register(server.base_url, "alice")
        room_id = (await alice.post("/createRoom", {}))["room_id"]
        ws = await subscribe(server.base_url, alice, filter=BIG_TIMELINE)
        sent = []
        for i in range(12):
            sent.append(await alice.send_message(room_id, f"m{i}"))
            await sleep(0.05)
        code, _ = await ws.wait_closed(10)
        self.assertEqual(code, 4008)
        data = [f for f in ws.frames if f["type"] == "sync"]
        self.assertLessEqual(len(data), 3, "the window holds, nothing is queued past it")
        await self.resume_and_check(server, alice, room_id, data, sent)

    async def resume_and_check(
        self, server: Any, alice: MatrixClient, room_id: str, data: list[dict[str, Any]], sent: list[str]
    ) -> None:
        """Resumes from the last frame received: every message sent arrives exactly once."""
        log = RoomLog(alice, room_id)
        for frame in data:
            await log.add(frame)
        ws = await subscribe(server.base_url, alice, since=data[-1]["token"], filter=BIG_TIMELINE)
        while sent[-1] not in log.ids:
            frame = await ws.next("sync")
            await log.add(frame)
            ws.send({"type": "ack", "token": frame["token"]})
        self.assertEqual(log.messages(), sent)
        ws.close()

    async def test_a_client_that_stops_reading_is_dropped_and_resumes(self) -> None:
        """TCP back-pressure: the client stops reading, the server's send buffer fills,
        the stream holds and the client is dropped; after reading what was buffered it
        resumes from its last frame's token."""
        server = await self.server(max_unacked_frames=100_000, max_unacked_bytes=1 << 30, slow_client_timeout_ms=1500)
        alice = await MatrixClient.register(server.base_url, "alice")
        room_id = (await alice.post("/createRoom", {}))["room_id"]
        ws = await subscribe(server.base_url, alice, filter=BIG_TIMELINE)
        await ws.next("sync")
        ws.pause_reading()
        padding = "x" * 60_000
        sent: list[str] = []
        (session,) = server.hs.websocket.sessions
        for i in range(400):
            sent.append(await alice.send_message(room_id, f"m{i}", padding=padding))
            if session.closed:  # its close frame is queued behind what it did not read
                break
        self.assertTrue(session.closed, f"still open after {len(sent)} messages of 60 kB")
        ws.resume_reading()
        code, _ = await ws.wait_closed(15)
        self.assertEqual(code, 4008)
        data = [f for f in ws.frames if f["type"] == "sync"]
        self.assertLess(len([e for f in data for e in timeline(f, room_id) if e["event_id"] in sent]), len(sent))
        await self.resume_and_check(server, alice, room_id, data, sent)

    # -- heartbeats ----------------------------------------------------------------------

    async def test_heartbeats(self) -> None:
        server = await self.server(heartbeat_ms=300, ping_timeout_ms=2000)
        alice = await MatrixClient.register(server.base_url, "alice")
        ws = await subscribe(server.base_url, alice)
        first = await ws.next("sync")
        idle = await ws.next("idle", timeout=5)
        self.assertEqual(idle["token"], first["token"])
        ws.send({"type": "ping", "id": 7})
        self.assertEqual((await ws.next("pong"))["id"], 7)
        # An acknowledged idle token counts as every frame before it.
        ws.send({"type": "ack", "token": idle["token"]})
        # Protocol pings are answered by the client library: still open a few periods on.
        await sleep(1.5)
        self.assertFalse(ws.is_closed)
        # A client that reads nothing any more answers no ping: dropped.
        ws.pause_reading()
        for _ in range(50):
            if not server.hs.websocket.sessions:
                break
            await sleep(0.1)
        self.assertEqual(server.hs.websocket.sessions, set())
        ws.resume_reading()
        await ws.wait_closed()

    # -- sliding sync mode ---------------------------------------------------------------

    async def test_sliding_sync_mode(self) -> None:
        server = await self.server()
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        room_id = (await alice.post("/createRoom", {"name": "ss", "invite": [bob.user_id]}))["room_id"]
        await bob.post(f"/join/{quote(room_id)}")
        body = {
            "lists": {"all": {"ranges": [[0, 10]], "timeline_limit": 5, "required_state": [["m.room.name", ""]]}},
            "extensions": {"to_device": {"enabled": True}, "e2ee": {"enabled": True}},
        }
        ws = await WsClient.connect(server.base_url, alice.access_token)
        await ws.next("hello")
        ws.send({"type": "subscribe", "mode": "sliding_sync", "body": body})
        first = await ws.next("sliding_sync")
        self.assertEqual(first["token"], first["data"]["pos"])
        self.assertEqual(first["data"]["rooms"][room_id]["name"], "ss")
        # Not acknowledged: the next frame waits (a window of one).
        event_id = await bob.send_message(room_id, "over sliding sync")
        await bob.put("/sendToDevice/m.test/ss1", {"messages": {alice.user_id: {alice.device_id: {"n": 1}}}})
        await sleep(0.5)
        self.assertEqual([f["type"] for f in ws.frames].count("sliding_sync"), 1)
        ws.send({"type": "ack", "token": first["token"]})
        got: list[dict[str, Any]] = []
        while not (
            any(event_id in [e["event_id"] for e in f["data"]["rooms"].get(room_id, {}).get("timeline", [])] for f in got)
            and any(f["data"]["extensions"].get("to_device", {}).get("events") for f in got)
        ):
            frame = await ws.next("sliding_sync")
            got.append(frame)
            ws.send({"type": "ack", "token": frame["token"]})
        entry = next(f["data"]["rooms"][room_id] for f in got if room_id in f["data"]["rooms"])
        self.assertNotIn("initial", entry)  # an update, not the room from scratch
        last = got[-1]["token"]
        # Resume on a new socket from the last pos: carries on, nothing again.
        ws.close()
        await ws.wait_closed()
        again = await bob.send_message(room_id, "after the reconnect")
        ws = await WsClient.connect(server.base_url, alice.access_token)
        ws.send({"type": "subscribe", "mode": "sliding_sync", "pos": last, "body": body})
        frame = await ws.next("sliding_sync")
        ws.send({"type": "ack", "token": frame["token"]})
        while again not in [e["event_id"] for e in frame["data"]["rooms"].get(room_id, {}).get("timeline", [])]:
            frame = await ws.next("sliding_sync")
            ws.send({"type": "ack", "token": frame["token"]})
        events = [e["event_id"] for e in frame["data"]["rooms"][room_id]["timeline"]]
        self.assertNotIn(event_id, events)
        self.assertEqual(frame["data"]["extensions"]["to_device"]["events"], [])
        # Another body on the same socket: a room subscription answered at once.
        other = (await bob.post("/createRoom", {"name": "sub", "invite": [alice.user_id]}))["room_id"]
        await alice.post(f"/join/{quote(other)}")
        ws.send({"type": "subscribe", "mode": "sliding_sync",
                 "body": {**body, "room_subscriptions": {other: {"timeline_limit": 1, "required_state": [["m.room.name", ""]]}}}})
        for _ in range(10):
            frame = await ws.next("sliding_sync")
            ws.send({"type": "ack", "token": frame["token"]})
            if frame["data"]["rooms"].get(other, {}).get("name") == "sub":
                break
        else:
            self.fail("the subscription's room never came")
        ws.close()
        # A position this server does not know (e.g. from before a restart).
        ws = await WsClient.connect(server.base_url, alice.access_token)
        ws.send({"type": "subscribe", "mode": "sliding_sync", "pos": "999999/s1_0_0", "body": body})
        self.assertEqual((await ws.next("error"))["errcode"], "M_UNKNOWN_POS")
        self.assertEqual((await ws.wait_closed())[0], 4004)

    # -- limits and shutdown ---------------------------------------------------------------

    async def test_sockets_per_device_and_shutdown(self) -> None:
        server = await self.server(max_per_device=2)
        alice = await MatrixClient.register(server.base_url, "alice")
        sockets = []
        for _ in range(3):
            ws = await WsClient.connect(server.base_url, alice.access_token)
            await ws.next("hello")
            sockets.append(ws)
        self.assertEqual((await sockets[0].wait_closed())[0], 4029)
        self.assertFalse(sockets[1].is_closed)
        await server.hs.websocket.stop()
        for ws in sockets[1:]:
            self.assertEqual((await ws.wait_closed())[0], 1001)


class WebSocketTest(WebSocketMixin, unittest.TestCase):
    timeout = 240


class WebSocketTestPostgres(WebSocketMixin, unittest.TestCase):
    database = "postgresql"
    timeout = 240
