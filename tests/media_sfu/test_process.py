"""``python -m media_sfu --config wspr.yaml`` as ``wspr run`` spawns it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from twisted.trial import unittest

from tests.support.txaio_framework import asyncio_txaio

from .asyncio_helper import run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def _join_once(url: str) -> str:
    import aiohttp
    from livekit.protocol import rtc

    from media_sfu.tokens import mint_access_token

    token = mint_access_token("wspr", "q" * 32, "alice", "room")
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{url}/rtc", headers={"Authorization": f"Bearer {token}"})
        msg = await ws.receive()
        join = rtc.SignalResponse.FromString(msg.data).join
        await ws.close()
        return join.participant.sid[:3]


class ThreadTests(unittest.TestCase):
    def test_start_in_thread_from_non_asyncio_code(self):
        from media_sfu.server import SFUServer

        from .livekit_call import sfu_config

        server = SFUServer(sfu_config())
        with asyncio_txaio():
            url = server.start_in_thread()
            try:
                with urllib.request.urlopen(url.replace("ws://", "http://") + "/healthz", timeout=5) as r:
                    self.assertEqual(r.read(), b"OK")
            finally:
                server.stop_in_thread()
        self.assertIsNone(server._thread)


class ProcessTests(unittest.TestCase):
    def write_config(self, text: str) -> str:
        fd, path = tempfile.mkstemp(suffix=".yaml")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        self.addCleanup(os.unlink, path)
        return path

    def spawn(self, path: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "media_sfu", "--config", path], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def test_runs_and_stops_on_sigterm(self):
        port = free_port()
        path = self.write_config(
            f"server_name: example.org\nsfu:\n  port: {port}\n  api_secret: {'q' * 32}\n"
            f"  rtc: {{public_ip: 127.0.0.1, udp_port_min: 43000, udp_port_max: 43100}}\n")
        proc = self.spawn(path)
        assert proc.stdout is not None
        try:
            deadline = time.monotonic() + 15
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                        self.assertEqual(r.status, 200)
                        break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        self.fail(f"SFU did not come up: {proc.stdout.read().decode() if proc.poll() is not None else ''}")
                    time.sleep(0.1)
            # a client joins the child process over LiveKit signalling
            self.assertEqual(run(_join_once(f"ws://127.0.0.1:{port}"), 20), "PA_")
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=10), 0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()

    def test_bad_config_exits_2_naming_the_key(self):
        proc = self.spawn(self.write_config("sfu:\n  port: -1\n  api_secret: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"))
        out, _ = proc.communicate(timeout=20)
        self.assertEqual(proc.returncode, 2)
        self.assertIn(b"sfu.port", out)
