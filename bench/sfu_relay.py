"""Baseline for sfu_bench.py: a transcoding relay built from aiortc's MediaRelay.

This is what an SFU built on aiortc's public API looks like: every published track is
decoded once and re-encoded for every subscriber. Minimal HTTP signalling (not LiveKit):
  POST /publish?name=N      body: SDP offer  -> SDP answer
  POST /subscribe?name=N    body: SDP offer with one recvonly video m-line per other
                            publisher -> SDP answer carrying their relayed tracks
Run: python bench/sfu_relay.py PORT
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay


def pc_config() -> RTCConfiguration:
    return RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


class Relay:
    def __init__(self) -> None:
        self.relay = MediaRelay()
        self.tracks: dict[str, object] = {}
        self.pcs: list[RTCPeerConnection] = []

    async def publish(self, request: web.Request) -> web.Response:
        name = request.query["name"]
        pc = RTCPeerConnection(pc_config())
        self.pcs.append(pc)
        pc.on("track", lambda track: self.tracks.__setitem__(name, track))
        await pc.setRemoteDescription(RTCSessionDescription(sdp=await request.text(), type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return web.Response(text=pc.localDescription.sdp)

    async def subscribe(self, request: web.Request) -> web.Response:
        name = request.query["name"]
        pc = RTCPeerConnection(pc_config())
        self.pcs.append(pc)
        for other, track in sorted(self.tracks.items()):
            if other != name:
                pc.addTrack(self.relay.subscribe(track))
        await pc.setRemoteDescription(RTCSessionDescription(sdp=await request.text(), type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return web.Response(text=pc.localDescription.sdp)

    async def reset(self, request: web.Request) -> web.Response:
        pcs, self.pcs = self.pcs, []
        await asyncio.gather(*(pc.close() for pc in pcs))
        self.tracks.clear()
        self.relay = MediaRelay()
        return web.Response(text="ok")


def main() -> None:
    port = int(sys.argv[1])
    r = Relay()
    app = web.Application()
    app.add_routes([web.post("/publish", r.publish), web.post("/subscribe", r.subscribe),
                    web.post("/reset", r.reset), web.get("/healthz", lambda req: web.Response(text="ok"))])
    web.run_app(app, host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    main()
