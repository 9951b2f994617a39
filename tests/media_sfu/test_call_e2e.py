"""End to end: three unmodified LiveKit Python SDK clients (Rust/libwebrtc core) in one call."""

from __future__ import annotations

import asyncio
import time

from twisted.trial import unittest

from .asyncio_helper import run
from .livekit_call import (
    COLOURS,
    CallClient,
    colour_close,
    leave_all,
    start_sfu,
    wait_for,
)

MIN_VIDEO_FRAMES = 15
MIN_LOUD_AUDIO_FRAMES = 50  # 0.5 s of clearly audible tone


class ThreePartyCallTest(unittest.TestCase):
    def test_three_party_call(self):
        async def scenario():
            server = await start_sfu()
            clients = [CallClient(f"user{i}", i) for i in range(3)]
            try:
                for c in clients:
                    await c.join(server.url, "call")
                    await c.publish()

                def media_ok():
                    for c in clients:
                        for o in clients:
                            if o is c:
                                continue
                            v, a = c.rx(o.identity, "video"), c.rx(o.identity, "audio")
                            if v.video_frames < MIN_VIDEO_FRAMES or a.loud_audio_frames < MIN_LOUD_AUDIO_FRAMES:
                                return False
                            if not colour_close(v.colour, COLOURS[o.index][:3]):
                                return False
                    return True

                ok = await wait_for(media_ok, 45)
                report = {c.identity: {f"{k[0]}/{k[1]}": (v.video_frames, v.colour, v.loud_audio_frames)
                                       for k, v in c.received.items()} for c in clients}
                self.assertTrue(ok, f"media incomplete: {report}")
                # each client decoded the two other videos (with the right picture) and heard
                # the two other audios, and nobody received their own media back
                for c in clients:
                    self.assertEqual({k for k in c.received}, {(o.identity, kind) for o in clients if o is not c
                                                             for kind in ("video", "audio")})

                # everyone is talking: the SFU's speaker detection reaches the clients
                self.assertTrue(await wait_for(lambda: all(len(c.active_speakers) >= 2 for c in clients), 5),
                                [c.active_speakers for c in clients])

                # data packets are relayed, stamped with the sender, and honour destinations
                await clients[0].room.local_participant.publish_data(b"hello all", topic="chat")
                await clients[1].room.local_participant.publish_data(
                    b"just you", reliable=False, destination_identities=["user2"])
                self.assertTrue(await wait_for(
                    lambda: all(("user0", b"hello all", "chat") in c.data_seen for c in clients[1:])
                    and any(d[:2] == ("user1", b"just you") for d in clients[2].data_seen), 10),
                    [c.data_seen for c in clients])
                self.assertFalse(any(d[1] == b"just you" for d in clients[0].data_seen))

                # mute propagates
                clients[1].local_tracks["audio"].mute()
                self.assertTrue(await wait_for(
                    lambda: all(any(who == "user1" for who, _ in c.muted_seen) for c in (clients[0], clients[2])), 5))

                # user2 stops its camera (unpublish) and starts it again (libwebrtc reuses the
                # m-line): the others see the publication go, come back and play again
                old_sid = clients[2].video_publication.sid
                await clients[2].unpublish_video()
                self.assertTrue(await wait_for(
                    lambda: all(("user2", old_sid) in c.unpublished_seen for c in clients[:2]), 5))
                before = {c.identity: c.rx("user2", "video").video_frames for c in clients[:2]}
                await clients[2].publish(audio=False)
                self.assertNotEqual(clients[2].video_publication.sid, old_sid)
                self.assertTrue(await wait_for(
                    lambda: all(c.rx("user2", "video").video_frames > before[c.identity] + 10 for c in clients[:2]),
                    15), {c.identity: c.rx("user2", "video").video_frames for c in clients[:2]})

                # one leaves: the others see it, the SFU forgets it within seconds
                t0 = time.monotonic()
                await clients[0].leave()
                self.assertTrue(await wait_for(
                    lambda: all("user0" in c.disconnected_peers for c in clients[1:]), 10))
                self.assertTrue(await wait_for(
                    lambda: len(server.rooms.rooms["call"].participants) == 2, 5))
                self.assertLess(time.monotonic() - t0, 5)
                # the remaining two keep receiving each other
                frames_before = clients[1].rx("user2", "video").video_frames
                self.assertTrue(await wait_for(
                    lambda: clients[1].rx("user2", "video").video_frames > frames_before + 5, 10))
            finally:
                await leave_all(clients)
                await server.stop()

        run(scenario(), timeout=120)


class EncryptedCallTest(unittest.TestCase):
    """Element Call always uses E2EE: the SFU must echo the encryption type and forward
    encrypted frames untouched (it never decodes them)."""

    def test_e2ee_call(self):
        async def scenario():
            from livekit import rtc
            from livekit.protocol import models

            server = await start_sfu()
            key = b"wspr-shared-e2ee-key-for-tests!!"
            clients = [CallClient(f"enc{i}", i) for i in range(2)]
            try:
                for c in clients:
                    await c.join(server.url, "secret", e2ee_key=key)
                    await c.publish()

                def ok():
                    return all(
                        c.rx(o.identity, "video").video_frames >= MIN_VIDEO_FRAMES
                        and colour_close(c.rx(o.identity, "video").colour, COLOURS[o.index])
                        and c.rx(o.identity, "audio").loud_audio_frames >= MIN_LOUD_AUDIO_FRAMES
                        for c in clients for o in clients if o is not c)

                self.assertTrue(await wait_for(ok, 30), {c.identity: c.received for c in clients})
                room = server.rooms.rooms["secret"]
                for p in room.participants.values():
                    for info in (p.track_infos[sid] for sid in p.published):
                        self.assertEqual(info.encryption, models.Encryption.GCM)
                for c in clients:
                    for rp in c.room.remote_participants.values():
                        for pub in rp.track_publications.values():
                            self.assertEqual(pub.encryption_type, rtc.EncryptionType.GCM)
            finally:
                await leave_all(clients)
                await server.stop()

        run(scenario(), timeout=90)


class DataBeforeMediaTest(unittest.TestCase):
    """A subscriber PC first negotiated for data channels only must still carry media later."""

    def test_data_then_media(self):
        async def scenario():
            server = await start_sfu()
            clients = [CallClient(f"d{i}", i) for i in range(2)]
            try:
                for c in clients:
                    await c.join(server.url, "chatty")
                await clients[0].room.local_participant.publish_data(b"early", topic="chat")
                self.assertTrue(await wait_for(lambda: ("d0", b"early", "chat") in clients[1].data_seen, 10))
                for c in clients:
                    await c.publish()
                self.assertTrue(await wait_for(
                    lambda: all(c.rx(o.identity, "video").video_frames > 10 for c in clients for o in clients
                                if o is not c), 20))
            finally:
                await leave_all(clients)
                await server.stop()

        run(scenario(), timeout=60)


class SimulcastTest(unittest.TestCase):
    """The Rust core publishes two simulcast layers at 640x480 (rids q and h: 480x360 and
    640x480); each subscriber gets the top one unless it asks for another."""

    def test_layer_selection(self):
        async def scenario():
            from livekit import rtc

            server = await start_sfu()
            pub, sub = CallClient("pub", 0), CallClient("sub", 1)
            try:
                await pub.join(server.url, "layers", dynacast=True)
                await sub.join(server.url, "layers")
                await pub.publish(audio=False, size=(640, 480))
                rx = sub.rx("pub", "video")
                self.assertTrue(await wait_for(lambda: rx.video_frames > 10 and rx.size == (640, 480), 20), rx)
                publisher = server.rooms.rooms["layers"].by_identity("pub")
                assert publisher is not None
                track = next(iter(publisher.published.values()))
                self.assertTrue(track.simulcast)
                self.assertGreaterEqual(len(track.layer_ssrc), 2)

                publication = next(iter(sub.room.remote_participants["pub"].track_publications.values()))
                self.assertTrue(publication.simulcasted)
                low = min(track.info.layers, key=lambda layer: layer.width)
                self.assertLess(low.width, 640)
                publication.set_video_quality(rtc.VideoQuality.VIDEO_QUALITY_LOW)
                self.assertTrue(await wait_for(lambda: rx.size == (low.width, low.height), 10), rx)
                n = rx.video_frames
                self.assertTrue(await wait_for(lambda: rx.video_frames > n + 10, 10))
                self.assertTrue(colour_close(rx.colour, COLOURS[0]))
                # dynacast: nobody wants the top layer any more, so the publisher stops sending it
                self.assertTrue(await wait_for(lambda: track.available_layers() == (0,), 10),
                                track.available_layers())
                publication.set_video_quality(rtc.VideoQuality.VIDEO_QUALITY_HIGH)
                self.assertTrue(await wait_for(lambda: rx.size == (640, 480), 10), rx)
            finally:
                await leave_all((pub, sub))
                await server.stop()

        run(scenario(), timeout=90)


class ManualSubscriptionTest(unittest.TestCase):
    """auto_subscribe=0: nothing is sent until the client subscribes to a track."""

    def test_manual_subscription(self):
        async def scenario():
            server = await start_sfu()
            pub, sub = CallClient("mpub", 0), CallClient("msub", 1)
            try:
                await pub.join(server.url, "manual")
                await sub.join(server.url, "manual", auto_subscribe=False)
                await pub.publish()
                self.assertTrue(await wait_for(lambda: "mpub" in sub.room.remote_participants and len(
                    sub.room.remote_participants["mpub"].track_publications) == 2, 10))
                await asyncio.sleep(1.0)
                self.assertEqual(sub.received, {})
                video = next(p for p in sub.room.remote_participants["mpub"].track_publications.values()
                             if p.kind == rtc_kind_video())
                video.set_subscribed(True)
                self.assertTrue(await wait_for(lambda: sub.rx("mpub", "video").video_frames > 10, 15))
                self.assertNotIn(("mpub", "audio"), sub.received)
            finally:
                await leave_all((pub, sub))
                await server.stop()

        run(scenario(), timeout=60)


def rtc_kind_video():
    from livekit import rtc

    return rtc.TrackKind.KIND_VIDEO


class DropTest(unittest.TestCase):
    """A client process that dies (SIGKILL, no leave) is gone for the others within seconds."""

    def test_killed_client_is_cleaned_up(self):
        async def scenario():
            import os
            import signal
            import sys
            import time

            root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            server = await start_sfu()
            stay = CallClient("stayer", 0)
            proc = None
            try:
                await stay.join(server.url, "crashy")
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "tests.media_sfu.dropper", server.url, "crashy", cwd=root,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
                assert proc.stdout is not None
                line = await asyncio.wait_for(proc.stdout.readline(), 30)
                self.assertEqual(line.strip(), b"READY")
                self.assertTrue(await wait_for(lambda: stay.rx("dropper", "video").video_frames > 5, 15))
                t0 = time.monotonic()
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
                self.assertTrue(await wait_for(lambda: "dropper" in stay.disconnected_peers, 10))
                self.assertLess(time.monotonic() - t0, 5)
                self.assertEqual([p.identity for p in server.rooms.rooms["crashy"].participants.values()], ["stayer"])
            finally:
                if proc is not None and proc.returncode is None:
                    proc.kill()
                    await proc.wait()
                await stay.leave()
                await server.stop()

        run(scenario(), timeout=90)
