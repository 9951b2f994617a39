"""A group call the way users reach it: each participant asks its own homeserver for an
OpenID token, WSPR's token service checks it (locally, or with the user's homeserver over
federation) and hands out a LiveKit JWT, and the real LiveKit SDK joins the SFU that
`wspr run` started as its own process. Participants come from WSPR itself, from a second
WSPR, and from Synapse."""

from __future__ import annotations

import secrets
import socket
import time
from urllib.parse import quote

from twisted.internet import reactor, task, threads
from twisted.trial import unittest

from homeserver.handlers.call_tokens import livekit_identity_for
from tests.federation.helpers import LOOPBACK_FEDERATION, start_federating
from tests.support.synapse import free_port, start_synapse_peer, synapse_client
from tests.support.wspr import MatrixClient, start_homeserver

from .asyncio_helper import run
from .livekit_call import COLOURS, CallClient, colour_close, leave_all, wait_for

MIN_VIDEO_FRAMES = 10
MIN_LOUD_AUDIO_FRAMES = 20


async def _port_open(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        await task.deferLater(reactor, 0.2, lambda: None)
    raise AssertionError(f"the SFU did not start listening on {port}")


class CallThroughHomeserverTest(unittest.TestCase):
    timeout = 240

    async def test_users_of_three_homeservers_share_a_call(self) -> None:
        sfu_port = free_port()
        fed_port = free_port()
        api_secret = secrets.token_urlsafe(32)
        # WSPR "A" hosts the room, the token service and the SFU (spawned by its startup hooks).
        a = await start_homeserver(
            self,
            server_name=f"127.0.0.1:{fed_port}",
            federation_port=fed_port,
            start_extras=True,
            federation=dict(LOOPBACK_FEDERATION),
            sfu={
                "enabled": True,
                "bind_address": "127.0.0.1",
                "port": sfu_port,
                "api_key": "wspr",
                "api_secret": api_secret,
                "rtc": {"public_ip": "127.0.0.1", "udp_port_min": 42000, "udp_port_max": 42999},
            },
            rtc_token_service={"full_access_homeservers": [f"127.0.0.1:{fed_port}"]},
        )
        b = await start_federating(self)
        syn = await start_synapse_peer(self, "wspr-call-synapse-")
        await _port_open(sfu_port)

        alice = await MatrixClient.register(a.base_url, "alice")
        bob = await MatrixClient.register(a.base_url, "bob")
        carol = await MatrixClient.register(b.base_url, "carol")
        dave = await synapse_client(syn, "dave")

        # Clients find the token service through the MSC4143 transports endpoint.
        transports = await alice.request("GET", "/_matrix/client/unstable/org.matrix.msc4143/rtc/transports")
        service = transports["rtc_transports"][0]["livekit_service_url"]
        self.assertTrue(service.endswith("/_wspr/livekit/jwt"))
        room_id = (await alice.post("/createRoom", {"name": "Standup"}))["room_id"]

        async def token_for(client: MatrixClient, member_id: str) -> dict:
            openid = await client.request(
                "POST", f"/_matrix/client/v3/user/{quote(client.user_id)}/openid/request_token", {}
            )
            # (The advertised URL carries the configured public_baseurl; the test server
            # listens on a random port.)
            anon = MatrixClient(a.base_url)
            return await anon.request(
                "POST",
                "/_wspr/livekit/jwt/get_token",
                {
                    "room_id": room_id,
                    "slot_id": "m.call#ROOM",
                    "openid_token": openid,
                    "member": {"id": member_id, "claimed_user_id": client.user_id, "claimed_device_id": client.device_id},
                },
            )

        people = (alice, bob, carol, dave)
        grants = {c.user_id: await token_for(c, f"m-{i}") for i, c in enumerate(people)}
        urls = {g["url"] for g in grants.values()}
        self.assertEqual(urls, {f"ws://127.0.0.1:{sfu_port}"})
        # LiveKit identities are derived as lk-jwt-service does (Element Call matches on them).
        identities = [livekit_identity_for(c.user_id, c.device_id, f"m-{i}") for i, c in enumerate(people)]
        users = [c.user_id for c in people]

        def scenario() -> dict:
            async def go() -> dict:
                clients = [CallClient(identity, i) for i, identity in enumerate(identities)]
                try:
                    # The three first ones publish camera and microphone; dave only watches.
                    for c in clients[:3]:
                        grant = grants[users[c.index]]
                        await c.join(grant["url"], "", token=grant["jwt"])
                        await c.publish()
                    await clients[3].join(grants[users[3]]["url"], "", token=grants[users[3]]["jwt"])
                    names = {p.identity: p.name for c in clients for p in c.room.remote_participants.values()}

                    def media_ok() -> bool:
                        for c in clients:
                            for o in clients[:3]:
                                if o is c:
                                    continue
                                v, au = c.rx(o.identity, "video"), c.rx(o.identity, "audio")
                                if v.video_frames < MIN_VIDEO_FRAMES or au.loud_audio_frames < MIN_LOUD_AUDIO_FRAMES:
                                    return False
                                if not colour_close(v.colour, COLOURS[o.index][:3]):
                                    return False
                        return True

                    ok = await wait_for(media_ok, 60)
                    report = {
                        c.identity: {f"{k[0]}/{k[1]}": (v.video_frames, v.colour, v.loud_audio_frames) for k, v in c.received.items()}
                        for c in clients
                    }
                    await clients[2].leave()  # carol hangs up
                    gone = await wait_for(lambda: all(identities[2] in c.disconnected_peers for c in (clients[0], clients[1], clients[3])), 15)
                    return {"ok": ok, "report": report, "gone": gone, "names": names}
                finally:
                    await leave_all(clients)

            return run(go(), timeout=150)

        result = await threads.deferToThread(scenario)
        self.assertTrue(result["ok"], f"media incomplete: {result['report']}")
        self.assertTrue(result["gone"], "the others did not see carol leave")
        # Dave (Synapse) and carol (the second WSPR) were verified over federation.
        # Participants carry their Matrix user id as their name.
        self.assertEqual({result["names"][i] for i in identities[:3]}, set(users[:3]))
        self.assertIn(f"{identities[2]}/video", result["report"][identities[3]])
