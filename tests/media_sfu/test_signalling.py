"""LiveKit signalling over WebSocket, driven with raw protobuf frames (aiohttp client)."""

from __future__ import annotations

import asyncio

import aiohttp
from livekit.protocol import models, rtc
from twisted.trial import unittest

from media_sfu.tokens import mint_access_token

from .asyncio_helper import run
from .livekit_call import API_KEY, API_SECRET, start_sfu


def token(identity: str, room: str = "r", **kw) -> str:
    return mint_access_token(API_KEY, API_SECRET, identity, room, **kw)


async def recv(ws, kind: str, timeout: float = 5) -> rtc.SignalResponse:
    """Next SignalResponse of the given kind (others are skipped)."""
    async def _loop():
        while True:
            msg = await ws.receive()
            if msg.type != aiohttp.WSMsgType.BINARY:
                raise AssertionError(f"unexpected frame {msg.type}")
            resp = rtc.SignalResponse.FromString(msg.data)
            if resp.WhichOneof("message") == kind:
                return resp

    return await asyncio.wait_for(_loop(), timeout)


async def send(ws, req: rtc.SignalRequest) -> None:
    await ws.send_bytes(req.SerializeToString())


class SignallingTests(unittest.TestCase):
    def scenario(self, fn, timeout=30):
        async def wrapper():
            server = await start_sfu()
            http = server.url.replace("ws://", "http://")
            try:
                async with aiohttp.ClientSession() as session:
                    await fn(server, http, session)
            finally:
                await server.stop()

        run(wrapper(), timeout)

    def test_http_routes(self):
        async def fn(server, http, session):
            # no single-PC mode: 404 on the upgrade and on validate, readable cross-origin
            with self.assertRaises(aiohttp.WSServerHandshakeError) as cm:
                await session.ws_connect(f"{server.url}/rtc/v1?access_token={token('a')}")
            self.assertEqual(cm.exception.status, 404)
            async with session.get(f"{http}/rtc/v1/validate?access_token={token('a')}") as r:
                self.assertEqual(r.status, 404)
                self.assertEqual(r.headers["Access-Control-Allow-Origin"], "*")
                self.assertNotIn("requested room does not exist", await r.text())
            async with session.get(f"{http}/rtc/validate?access_token={token('a')}") as r:
                self.assertEqual((r.status, await r.text()), (200, "success"))
            async with session.get(f"{http}/rtc/validate", headers={"Authorization": "Bearer junk"}) as r:
                self.assertEqual(r.status, 401)
            async with session.options(f"{http}/rtc/validate") as r:
                self.assertEqual(r.status, 204)
                self.assertEqual(r.headers["Access-Control-Allow-Origin"], "*")

        self.scenario(fn)

    def test_bad_tokens_get_401_before_upgrade(self):
        async def fn(server, http, session):
            bad = [
                "garbage",
                mint_access_token(API_KEY, "w" * 40, "a", "r"),
                mint_access_token(API_KEY, API_SECRET, "a", "r", ttl=10, now=0),
            ]
            for t in bad:
                with self.assertRaises(aiohttp.WSServerHandshakeError) as cm:
                    await session.ws_connect(f"{server.url}/rtc?access_token={t}")
                self.assertEqual(cm.exception.status, 401)
            with self.assertRaises(aiohttp.WSServerHandshakeError) as cm:
                await session.ws_connect(f"{server.url}/rtc")
            self.assertEqual(cm.exception.status, 401)
            # resume is refused so that clients do a full rejoin
            with self.assertRaises(aiohttp.WSServerHandshakeError) as cm:
                await session.ws_connect(f"{server.url}/rtc?reconnect=1&sid=PA_x&access_token={token('a')}")
            self.assertEqual(cm.exception.status, 409)
            # joining a room that does not exist without roomCreate
            with self.assertRaises(aiohttp.WSServerHandshakeError) as cm:
                await session.ws_connect(f"{server.url}/rtc?access_token={token('a', 'nope', can_create_room=False)}")
            self.assertEqual(cm.exception.status, 404)

        self.scenario(fn)

    def test_join_ping_publish_mute_leave(self):
        async def fn(server, http, session):
            # Rust-core style: Bearer header only
            a = await session.ws_connect(f"{server.url}/rtc?auto_subscribe=1&protocol=16",
                                         headers={"Authorization": f"Bearer {token('alice', name='Alice')}"})
            ja = (await recv(a, "join")).join
            self.assertTrue(ja.participant.sid.startswith("PA_"))
            self.assertEqual((ja.participant.identity, ja.participant.name), ("alice", "Alice"))
            self.assertTrue(ja.participant.permission.can_publish and ja.participant.permission.can_subscribe)
            self.assertTrue(ja.room.sid.startswith("RM_"))
            self.assertEqual(ja.room.name, "r")
            self.assertTrue(ja.server_info.version and ja.server_version)
            self.assertGreater(ja.ping_timeout, ja.ping_interval)
            self.assertGreater(ja.ping_interval, 0)
            self.assertFalse(ja.subscriber_primary)
            self.assertEqual(len(ja.other_participants), 0)

            await send(a, rtc.SignalRequest(ping_req=rtc.Ping(timestamp=12345)))
            self.assertEqual((await recv(a, "pong_resp")).pong_resp.last_ping_timestamp, 12345)
            await send(a, rtc.SignalRequest(ping=777))
            self.assertGreater((await recv(a, "pong")).pong, 0)

            # browser style: token in the query
            b = await session.ws_connect(f"{server.url}/rtc?access_token={token('bob')}")
            jb = (await recv(b, "join")).join
            self.assertEqual([p.identity for p in jb.other_participants], ["alice"])
            upd = (await recv(a, "update")).update
            self.assertEqual(upd.participants[0].identity, "bob")

            await send(a, rtc.SignalRequest(add_track=rtc.AddTrackRequest(
                cid="cam-1", name="camera", type=models.TrackType.VIDEO, source=models.TrackSource.CAMERA,
                width=640, height=360, encryption=models.Encryption.GCM)))
            tp = (await recv(a, "track_published")).track_published
            self.assertEqual(tp.cid, "cam-1")
            self.assertTrue(tp.track.sid.startswith("TR_"))
            self.assertEqual((tp.track.width, tp.track.height, tp.track.name), (640, 360, "camera"))
            # E2EE only runs if the server echoes the encryption type
            self.assertEqual(tp.track.encryption, models.Encryption.GCM)

            # mute of an unknown track changes nothing; of a known one is broadcast
            await send(a, rtc.SignalRequest(mute=rtc.MuteTrackRequest(sid=tp.track.sid, muted=True)))
            upd = (await recv(b, "update")).update
            self.assertEqual(upd.participants[0].identity, "alice")

            # bob drops without a leave: alice hears he is gone within seconds
            await b.close()
            upd = (await recv(a, "update", timeout=5)).update
            self.assertEqual(upd.participants[0].identity, "bob")
            self.assertEqual(upd.participants[0].state, models.ParticipantInfo.State.DISCONNECTED)

            # duplicate identity: the older connection is told to leave
            a2 = await session.ws_connect(f"{server.url}/rtc?access_token={token('alice')}")
            await recv(a2, "join")
            leave = (await recv(a, "leave")).leave
            self.assertEqual(leave.reason, models.DisconnectReason.DUPLICATE_IDENTITY)
            await send(a2, rtc.SignalRequest(leave=rtc.LeaveRequest(reason=models.DisconnectReason.CLIENT_INITIATED)))
            for _ in range(50):
                if server.rooms.get("r") is None:
                    break
                await asyncio.sleep(0.05)
            self.assertIsNone(server.rooms.get("r"), "empty room not cleaned up")
            await a.close()
            await a2.close()

        self.scenario(fn)


class LifecycleTests(unittest.TestCase):
    def test_ice_servers_from_config_in_join(self):
        async def scenario():
            server = await start_sfu(ice_servers=[
                {"urls": ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"],
                 "username": "u", "credential": "c"},
                {"urls": "stun:stun.example.org:3478"}])
            try:
                async with aiohttp.ClientSession() as session:
                    a = await session.ws_connect(f"{server.url}/rtc?access_token={token('a')}")
                    join = (await recv(a, "join")).join
                    self.assertEqual(
                        [(list(s.urls), s.username, s.credential) for s in join.ice_servers],
                        [(["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"], "u", "c"),
                         (["stun:stun.example.org:3478"], "", "")])
                    await a.close()
            finally:
                await server.stop()

        run(scenario(), 30)

    def test_silent_client_is_dropped_after_ping_timeout(self):
        async def scenario():
            server = await start_sfu(ping_interval=1, ping_timeout=2)
            try:
                async with aiohttp.ClientSession() as session:
                    a = await session.ws_connect(f"{server.url}/rtc?access_token={token('a')}")
                    await recv(a, "join")
                    b = await session.ws_connect(f"{server.url}/rtc?access_token={token('b')}")
                    await recv(b, "join")
                    await recv(a, "update")
                    # a keeps pinging, b says nothing
                    t0 = asyncio.get_running_loop().time()
                    gone = None
                    while gone is None and asyncio.get_running_loop().time() - t0 < 6:
                        await send(a, rtc.SignalRequest(ping_req=rtc.Ping(timestamp=1)))
                        try:
                            upd = (await recv(a, "update", timeout=0.5)).update
                            if upd.participants[0].state == models.ParticipantInfo.State.DISCONNECTED:
                                gone = upd.participants[0].identity
                        except TimeoutError:
                            pass
                    self.assertEqual(gone, "b")
                    self.assertLess(asyncio.get_running_loop().time() - t0, 5)
                    await a.close()
                    await b.close()
            finally:
                await server.stop()

        run(scenario(), 30)

    def test_token_refresh(self):
        async def scenario():
            from media_sfu.tokens import verify_access_token

            server = await start_sfu(token_refresh_interval=1)
            try:
                async with aiohttp.ClientSession() as session:
                    t = token("carol", "r", name="Carol", can_create_room=False, can_publish=False)
                    # the room must exist for a token without roomCreate
                    a = await session.ws_connect(f"{server.url}/rtc?access_token={token('a')}")
                    await recv(a, "join")
                    c = await session.ws_connect(f"{server.url}/rtc?access_token={t}")
                    await recv(c, "join")
                    fresh = (await recv(c, "refresh_token", timeout=5)).refresh_token
                    claims = verify_access_token(fresh, {API_KEY: API_SECRET})
                    self.assertEqual((claims.identity, claims.name, claims.video.room), ("carol", "Carol", "r"))
                    # same grants, no escalation
                    self.assertFalse(claims.video.can_publish)
                    self.assertFalse(claims.video.room_create)
                    self.assertGreater(claims.expires_at, verify_access_token(t, {API_KEY: API_SECRET}).expires_at - 3600)
                    await a.close()
                    await c.close()
            finally:
                await server.stop()

        run(scenario(), 30)

    def test_shutdown_tells_clients(self):
        async def scenario():
            server = await start_sfu()
            async with aiohttp.ClientSession() as session:
                a = await session.ws_connect(f"{server.url}/rtc?access_token={token('a')}")
                await recv(a, "join")
                stopping = asyncio.ensure_future(server.stop())
                leave = (await recv(a, "leave")).leave
                self.assertEqual(leave.reason, models.DisconnectReason.SERVER_SHUTDOWN)
                await stopping
                await a.close()

        run(scenario(), 30)
