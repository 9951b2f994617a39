"""SFU benchmark: CPU, forwarded packets/s per core and SFU-added latency vs call size.

    python bench/sfu_bench.py [--sizes 2,3,4,5,6,7,8,9,10] [--duration 8] [--baseline-sizes 2,3]

The SFU runs as its own process (``python -m media_sfu``, as ``wspr run`` starts it) and is
measured from /proc. Participants are synthetic LiveKit clients (bench/sfu_client.py) in this
process: real signalling and SRTP, cameras on (640x360-class 600 kbps VP8-sized video at
30 fps + 50 packets/s audio), no encoding or decoding, so the clients fit on the other core.

Reported per call size n:
* SFU CPU as % of one core (utime+stime of the SFU process over the window);
* forwarded packets/s and packets/s per core of SFU CPU;
* SFU-added latency p50/p99: kernel receive timestamp of each incoming datagram (SIOCGSTAMP)
  to the forwarded copy handed to the socket, measured inside the SFU (sfu.debug_stats);
* end-to-end latency p50/p99 publisher -> SFU -> subscriber (both in this process);
* upload per client: measured with the SFU, and what a full mesh would need ((n-1) copies).

Baseline: bench/sfu_relay.py, an aiortc MediaRelay transcoding relay (decode once, encode per
subscriber), fed real VP8 of the same size; video only, small n (it needs a core per ~6
subscriber streams).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

import aiohttp  # noqa: E402
from aiortc import RTCSessionDescription  # noqa: E402
from sfu_client import SyntheticClient, pace, pc_config  # noqa: E402

from media_sfu.tokens import mint_access_token  # noqa: E402

API_KEY, API_SECRET = "bench", "b" * 40
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def proc_cpu(pid: int) -> float:
    """utime+stime of a process, including its threads, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def self_cpu() -> float:
    t = os.times()
    return t.user + t.system


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


async def wait_http(url: str, proc: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{url}: process exited {proc.returncode}")
            try:
                async with s.get(url) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


# ---- SFU ---------------------------------------------------------------------------------


def start_sfu(port: int, nice: int = 0) -> tuple[subprocess.Popen, str]:
    fd, path = tempfile.mkstemp(suffix=".yaml", prefix="sfu_bench_")
    with os.fdopen(fd, "w") as f:
        f.write(
            "sfu:\n"
            f"  port: {port}\n  api_key: {API_KEY}\n  api_secret: {API_SECRET}\n"
            "  debug_stats: true\n  log_level: WARNING\n"
            "  rtc: {public_ip: 127.0.0.1, bind_ip: 127.0.0.1, udp_port_min: 44000, udp_port_max: 44999}\n"
        )
    # --sfu-nice < 0 approximates "the SFU has its own core" on a shared machine
    proc = subprocess.Popen([sys.executable, "-m", "media_sfu", "--config", path], cwd=ROOT,
                            preexec_fn=(lambda: os.nice(nice)) if nice else None)
    return proc, path


async def sfu_stats(session: aiohttp.ClientSession, base: str, query: str = "") -> dict:
    async with session.get(f"{base}/debug/stats{query}") as r:
        return await r.json()


async def run_sfu_size(n: int, base_http: str, ws_url: str, pid: int, duration: float, warmup: float) -> dict:
    room = f"bench-{n}-{int(time.time())}"
    async with aiohttp.ClientSession() as session:
        clients = [SyntheticClient(f"p{i}", ws_url, mint_access_token(API_KEY, API_SECRET, f"p{i}", room))
                   for i in range(n)]
        for c in clients:
            await c.connect(session)
        for c in clients:
            await c.publish()
        pacer = asyncio.ensure_future(pace(clients, warmup + duration + 30))
        try:
            deadline = time.monotonic() + 20
            while any(c.subscribed_tracks < 2 * (n - 1) for c in clients):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"n={n}: subscriptions incomplete: {[c.subscribed_tracks for c in clients]}")
                await asyncio.sleep(0.1)
            await asyncio.sleep(warmup)
            await sfu_stats(session, base_http, "?reset=1&latency=1")
            for c in clients:
                c.rx.latencies.clear()
            tx0 = [c.tx_bytes for c in clients]
            rx0 = sum(c.rx.packets for c in clients)
            cpu0, me0, t0 = proc_cpu(pid), self_cpu(), time.monotonic()
            await asyncio.sleep(duration)
            cpu1, me1, t1 = proc_cpu(pid), self_cpu(), time.monotonic()
            st = await sfu_stats(session, base_http, "?reset=1&latency=0")
            rx1 = sum(c.rx.packets for c in clients)
        finally:
            pacer.cancel()
            for c in clients:
                await c.close()
    dt = t1 - t0
    cpu = (cpu1 - cpu0) / dt
    out_pps = st["packets_out"] / dt
    e2e = [x for c in clients for x in c.rx.latencies]
    up = statistics.mean((c.tx_bytes - b) * 8 / dt / 1000 for c, b in zip(clients, tx0, strict=True))
    expected_out = (n - 1) * st["packets_in"]
    return {
        "n": n,
        "sfu_cpu_pct": round(cpu * 100, 1),
        "packets_in_per_s": round(st["packets_in"] / dt),
        "forwarded_per_s": round(out_pps),
        "forwarded_per_core_s": round(out_pps / cpu) if cpu > 0 else None,
        "delivered_ratio": round((rx1 - rx0) / expected_out, 3) if expected_out else None,
        "sfu_latency_p50_ms": round(st["latency_ms"]["p50"], 3) if st["latency_ms"]["p50"] is not None else None,
        "sfu_latency_p99_ms": round(st["latency_ms"]["p99"], 3) if st["latency_ms"]["p99"] is not None else None,
        "sfu_processing_p50_ms": round(st["processing_ms"]["p50"], 3) if st["processing_ms"]["p50"] is not None else None,
        "sfu_processing_p99_ms": round(st["processing_ms"]["p99"], 3) if st["processing_ms"]["p99"] is not None else None,
        "e2e_latency_p50_ms": round(pct(e2e, 0.5) * 1000, 2) if e2e else None,
        "e2e_latency_p99_ms": round(pct(e2e, 0.99) * 1000, 2) if e2e else None,
        "upload_kbps_per_client_sfu": round(up),
        "upload_kbps_per_client_mesh": round(up * (n - 1)),
        "client_process_cpu_pct": round((me1 - me0) / dt * 100, 1),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


# ---- transcoding baseline ----------------------------------------------------------------


def encode_vp8_clip(frames: int = 90, width: int = 640, height: int = 360, kbps: int = 600) -> list[list[bytes]]:
    """Real VP8 RTP payloads (with descriptors) for a moving test pattern, encoded once."""
    import av
    import numpy as np
    from aiortc.codecs.vpx import Vp8Encoder

    enc = Vp8Encoder()
    enc.target_bitrate = kbps * 1000
    out = []
    for i in range(frames):
        img = np.zeros((height, width, 3), dtype=np.uint8)
        img[:, :, 0] = (np.arange(width) + i * 4) % 256
        img[:, :, 1] = ((np.arange(height) + i * 2) % 256)[:, None]
        img[:, :, 2] = 128
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts, frame.time_base = i * 3000, Fraction(1, 90000)
        payloads, _ = enc.encode(frame, force_keyframe=(i == 0))
        out.append(payloads)
    return out


class RelayClient(SyntheticClient):
    """Same sending path as SyntheticClient, plain HTTP signalling to sfu_relay.py."""

    async def relay_publish(self, session: aiohttp.ClientSession, base: str) -> None:
        from aiortc import RTCPeerConnection
        from sfu_client import StreamState

        from media_sfu.aiortc_internals import ForwardingSender, SilentTrack

        self.pub = RTCPeerConnection(pc_config())
        t = self.pub.addTransceiver(SilentTrack("video", self.identity), direction="sendonly")
        self.video = StreamState(ForwardingSender(t.sender, lambda: None), 90000)
        await self.pub.setLocalDescription(await self.pub.createOffer())
        async with session.post(f"{base}/publish?name={self.identity}", data=self.pub.localDescription.sdp) as r:
            answer = await r.text()
        await self.pub.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def relay_subscribe(self, session: aiohttp.ClientSession, base: str, count: int) -> None:
        from aiortc import RTCPeerConnection

        self.sub = RTCPeerConnection(pc_config())
        self.sub.on("track", self._on_track)
        for _ in range(count):
            self.sub.addTransceiver("video", direction="recvonly")
        await self.sub.setLocalDescription(await self.sub.createOffer())
        async with session.post(f"{base}/subscribe?name={self.identity}", data=self.sub.localDescription.sdp) as r:
            answer = await r.text()
        await self.sub.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))


async def run_relay_size(n: int, base: str, pid: int, clip, duration: float, warmup: float) -> dict:
    async with aiohttp.ClientSession() as session:
        clients = [RelayClient(f"r{i}", "", "", audio=False, video_payloads=clip) for i in range(n)]
        for c in clients:
            await c.relay_publish(session, base)
        for _ in range(100):
            if all(c.video.sender.ready for c in clients):
                break
            await asyncio.sleep(0.05)
        pacer = asyncio.ensure_future(pace(clients, warmup + duration + 30))
        try:
            await asyncio.sleep(0.5)
            for c in clients:
                await c.relay_subscribe(session, base, n - 1)
            await asyncio.sleep(warmup)
            rx0 = sum(c.rx.packets for c in clients)
            f0 = sum(c.rx.frames for c in clients)
            cpu0, t0 = proc_cpu(pid), time.monotonic()
            await asyncio.sleep(duration)
            cpu1, t1 = proc_cpu(pid), time.monotonic()
            rx1 = sum(c.rx.packets for c in clients)
            f1 = sum(c.rx.frames for c in clients)
        finally:
            pacer.cancel()
            for c in clients:
                await c.close()
            async with session.post(f"{base}/reset") as r:
                await r.text()
    dt = t1 - t0
    cpu = (cpu1 - cpu0) / dt
    streams = n * (n - 1)
    return {
        "n": n,
        "relay_cpu_pct": round(cpu * 100, 1),
        "subscriber_streams": streams,
        "cpu_pct_per_subscriber_stream": round(cpu * 100 / streams, 1),
        "delivered_per_s": round((rx1 - rx0) / dt),
        "fps_per_subscriber_stream": round((f1 - f0) / dt / streams, 1),
    }


# ---- main --------------------------------------------------------------------------------


async def main_async(args) -> dict:
    results: dict = {"sfu": [], "baseline_mediarelay": []}
    sizes = [int(x) for x in args.sizes.split(",") if x]
    if sizes:
        port = free_port()
        proc, cfg = start_sfu(port, args.sfu_nice)
        try:
            await wait_http(f"http://127.0.0.1:{port}/healthz", proc)
            for n in sizes:
                r = await run_sfu_size(n, f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", proc.pid,
                                       args.duration, args.warmup)
                print(json.dumps(r), flush=True)
                results["sfu"].append(r)
                await asyncio.sleep(1.0)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            os.unlink(cfg)
    bsizes = [int(x) for x in args.baseline_sizes.split(",") if x]
    if bsizes:
        clip = encode_vp8_clip()
        port = free_port()
        proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "bench", "sfu_relay.py"), str(port)], cwd=ROOT)
        try:
            await wait_http(f"http://127.0.0.1:{port}/healthz", proc)
            for n in bsizes:
                r = await run_relay_size(n, f"http://127.0.0.1:{port}", proc.pid, clip, args.duration, args.warmup)
                print(json.dumps(r), flush=True)
                results["baseline_mediarelay"].append(r)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="2,3,4,5,6,7,8,9,10")
    ap.add_argument("--baseline-sizes", default="2,3")
    ap.add_argument("--duration", type=float, default=8.0, help="measurement window per size, seconds")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--json", help="write all results to this file")
    ap.add_argument("--sfu-nice", type=int, default=0,
                    help="nice value for the SFU process (negative needs root; isolates it from other load)")
    args = ap.parse_args()
    results = asyncio.run(main_async(args))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    print_table(results)


def print_table(results: dict) -> None:
    rows = results["sfu"]
    if rows:
        print("\nSFU (packet forwarding)")
        print(f"{'n':>3} {'CPU%':>6} {'in pps':>7} {'fwd pps':>8} {'fwd/core':>9} {'deliv':>6} "
              f"{'sfu p50':>8} {'sfu p99':>8} {'proc p50':>8} {'proc p99':>8} {'e2e p50':>8} {'e2e p99':>8} "
              f"{'up kbps':>8} {'mesh kbps':>9} {'load':>5}")
        for r in rows:
            print(f"{r['n']:>3} {r['sfu_cpu_pct']:>6} {r['packets_in_per_s']:>7} {r['forwarded_per_s']:>8} "
                  f"{r['forwarded_per_core_s'] or '-':>9} {r['delivered_ratio']:>6} {r['sfu_latency_p50_ms']:>8} "
                  f"{r['sfu_latency_p99_ms']:>8} {r['sfu_processing_p50_ms']:>8} {r['sfu_processing_p99_ms']:>8} "
                  f"{r['e2e_latency_p50_ms']:>8} {r['e2e_latency_p99_ms']:>8} "
                  f"{r['upload_kbps_per_client_sfu']:>8} {r['upload_kbps_per_client_mesh']:>9} {r['loadavg_1m']:>5}")
    rows = results["baseline_mediarelay"]
    if rows:
        print("\nBaseline: aiortc MediaRelay transcoding relay (video only)")
        for r in rows:
            print(f"n={r['n']}: {r['relay_cpu_pct']}% CPU for {r['subscriber_streams']} subscriber streams "
                  f"({r['cpu_pct_per_subscriber_stream']}% per stream), {r['delivered_per_s']} pkts/s delivered, "
                  f"{r['fps_per_subscriber_stream']} fps per stream")


if __name__ == "__main__":
    main()
