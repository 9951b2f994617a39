"""A browser (livekit-client in headless Chromium) and the Python SDK in one call.

Optional: needs node, Chromium and two npm packages that are not part of the Python test
environment. Point WSPR_LIVEKIT_CLIENT_DIR at a directory containing
node_modules/livekit-client (e.g. ``npm install livekit-client@2.21.0``, the version Element
Call pins) and WSPR_PLAYWRIGHT_CORE at playwright-core (default: the frontend's).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile

from twisted.trial import unittest

from media_sfu.tokens import mint_access_token

from .asyncio_helper import run
from .livekit_call import API_KEY, API_SECRET, CallClient, start_sfu, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LK_DIR = os.environ.get("WSPR_LIVEKIT_CLIENT_DIR", "")
PW = os.environ.get("WSPR_PLAYWRIGHT_CORE", os.path.join(ROOT, "frontend", "node_modules", "playwright-core"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def _missing() -> str | None:
    if not shutil.which("node"):
        return "node not installed"
    if not os.path.exists(CHROMIUM):
        return "chromium not installed"
    if not os.path.isdir(PW):
        return "playwright-core not found (WSPR_PLAYWRIGHT_CORE)"
    if not os.path.isfile(os.path.join(LK_DIR, "node_modules", "livekit-client", "dist", "livekit-client.umd.js")):
        return "livekit-client not found (WSPR_LIVEKIT_CLIENT_DIR)"
    return None


class BrowserCallTest(unittest.TestCase):
    skip = _missing()

    def test_browser_and_python_sdk(self):
        self._call(None)

    def test_browser_and_python_sdk_e2ee(self):
        # Element Call's mode: the browser encrypts frames in its E2EE worker, the SFU forwards
        # them untouched, the Python SDK decrypts with the same shared key (and vice versa)
        self._call("wspr-shared-e2ee-key-for-tests!!")

    def _call(self, e2ee_key: str | None) -> None:
        site = tempfile.mkdtemp(prefix="sfu_browser_")
        self.addCleanup(shutil.rmtree, site, True)
        shutil.copy(os.path.join(HERE, "browser", "index.html"), site)
        os.symlink(os.path.join(LK_DIR, "node_modules"), os.path.join(site, "node_modules"))
        http = subprocess.Popen([sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1"], cwd=site,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.addCleanup(http.wait)
        self.addCleanup(http.terminate)  # cleanups run last-in first-out

        async def scenario():
            server = await start_sfu()
            py = CallClient("pyuser", 0)
            node = None
            try:
                assert http.stdout is not None
                line = await asyncio.get_running_loop().run_in_executor(None, http.stdout.readline)
                port = int(line.split("port ")[1].split()[0])
                await py.join(server.url, "mixed", e2ee_key=e2ee_key.encode() if e2ee_key else None)
                await py.publish()
                token = mint_access_token(API_KEY, API_SECRET, "browser", "mixed")
                node = await asyncio.create_subprocess_exec(
                    "node", os.path.join(HERE, "browser", "drive.js"), PW,
                    f"http://localhost:{port}/index.html", server.url, token, "25", e2ee_key or "",
                    stdout=asyncio.subprocess.PIPE, env={**os.environ, "CHROMIUM": CHROMIUM})
                last: dict = {}

                node_out = node.stdout
                assert node_out is not None

                async def read():
                    nonlocal last
                    async for raw in node_out:
                        last = json.loads(raw)

                reader = asyncio.ensure_future(read())

                def ok():
                    v = last.get("v", {}).get("pyuser", {})
                    bv = py.rx("browser", "video")
                    # the browser simulcasts (320x180 / 640x360 / 1280x720); the Python client
                    # asks for nothing, so it gets the best layer the browser currently sends,
                    # which is at least 640 wide once the browser's bandwidth estimate allows
                    return (v.get("decoded", 0) > 30 and v.get("w") == 320 and bv.video_frames > 30
                            and bv.size[0] >= 640 and py.rx("browser", "audio").audio_frames > 100)

                done = await wait_for(ok, 25)
                self.assertTrue(done, f"browser: {last}; python: {py.received}")
                self.assertIsNone(last.get("err"))
                room = server.rooms.rooms["mixed"]
                browser = room.by_identity("browser")
                assert browser is not None
                track = next(t for t in browser.published.values() if t.kind == "video")
                self.assertTrue(track.simulcast)
                self.assertGreaterEqual(len(track.layer_ssrc), 2)
                if e2ee_key:
                    # the browser decoded the Python client's colour: decryption worked there
                    encs = {p.identity: [p.track_infos[s].encryption for s in p.published]
                            for p in room.participants.values()}
                    self.assertTrue(all(e and all(x != 0 for x in e) for e in encs.values()), encs)
                reader.cancel()
            finally:
                if node is not None and node.returncode is None:
                    node.kill()
                    await node.wait()
                await py.leave()
                await server.stop()

        run(scenario(), timeout=90)
