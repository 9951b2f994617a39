"""Memory soak: does the server's RSS stay flat under steady long-poll traffic?

    python bench/soak.py [--minutes 30] [--clients 200] [--rate 1] [--sample 10] [--idle 120]
                         [--filter none|lean] [--repo DIR] [--json out.json]

Starts WSPR (``wspr init`` / ``wspr run``, loopback only, rate limits off) in a subprocess,
registers ``--clients`` users plus one sender, puts them all in one public room, runs one
/sync long-poll loop per client (``timeout=30000``) and has the sender send ``--rate``
messages a second for ``--minutes`` minutes. The server's RSS (``VmRSS`` summed over its
process tree) is sampled every ``--sample`` seconds. When the traffic stops (sender
stopped, every long-poll connection closed) sampling goes on for ``--idle`` seconds.

Reported: RSS after set-up, at the end of the traffic and after the idle period; the RSS
slope (least squares, MiB per minute) over the last 20 minutes of traffic (the last two
thirds when the run is shorter than 30 minutes: the first minutes are warm-up, while caches
fill to their bounds); the deliveries each client saw. ``--repo DIR`` runs the server from
another checkout (e.g. ``git worktree add /tmp/old <commit>``) to compare with older code.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import (
    SYNC_FILTER,
    Client,
    WsprServer,
    bench_workdir,
    exit_on_sigterm,
    new_session,
    process_tree,
)

MIB = 1024 * 1024


def tree_rss_mib(pid: int) -> float:
    """VmRSS summed over the process tree, in MiB."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total / 1024.0


def slope_mib_per_min(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB) samples, in MiB per minute."""
    n = len(samples)
    if n < 2:
        return float("nan")
    mt = sum(t for t, _ in samples) / n
    mr = sum(r for _, r in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    if var == 0:
        return float("nan")
    cov = sum((t - mt) * (r - mr) for t, r in samples)
    return cov / var * 60.0


class Poller:
    """One client's /sync long-poll loop; counts the soak messages it sees."""

    def __init__(self, client: Client, room_id: str, sync_filter: str | None) -> None:
        self.client = client
        self.room_id = room_id
        self.filter = sync_filter
        self.since: str | None = None
        self.seen: set[int] = set()
        self.syncs = 0
        self.errors = 0
        self.limited = 0

    async def initial_sync(self) -> None:
        self.since = (await self.client.sync(None, 0, self.filter))["next_batch"]

    async def loop(self) -> None:
        while True:
            try:
                r = await self.client.sync(self.since, 30000, self.filter)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - counted, then retried
                self.errors += 1
                await asyncio.sleep(1)
                continue
            self.syncs += 1
            self.since = r["next_batch"]
            tl = r.get("rooms", {}).get("join", {}).get(self.room_id, {}).get("timeline", {})
            if tl.get("limited"):
                self.limited += 1
            for ev in tl.get("events", ()):
                n = ev.get("content", {}).get("soak_n")
                if isinstance(n, int):
                    self.seen.add(n)


async def soak(server: WsprServer, args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(4)  # registration hashes passwords

    async def reg(name: str) -> dict:
        async with sem:
            return await loop.run_in_executor(None, server.register_user, name, f"pw-{name}-soak", False)

    t0 = time.monotonic()
    users = await asyncio.gather(*(reg(f"soak{i}") for i in range(args.clients + 1)))
    print(f"registered {len(users)} users in {time.monotonic() - t0:.0f}s", flush=True)
    samples: list[tuple[float, float, str]] = []  # (seconds since traffic start, MiB, phase)
    phase = "setup"
    start = time.monotonic()

    async def sampler() -> None:
        while True:
            samples.append((time.monotonic() - start, tree_rss_mib(server.pid), phase))
            await asyncio.sleep(args.sample)

    async with new_session() as session:
        clients = [Client(session, server.client_url, u) for u in users]
        sender, receivers = clients[0], clients[1:]
        room_id = await sender.create_room(preset="public_chat", name="soak")
        jsem = asyncio.Semaphore(20)

        async def join(c: Client) -> None:
            async with jsem:
                await c.join(room_id)

        await asyncio.gather(*(join(c) for c in receivers))
        sync_filter = SYNC_FILTER if args.filter == "lean" else None
        pollers = [Poller(c, room_id, sync_filter) for c in receivers]
        await asyncio.gather(*(p.initial_sync() for p in pollers))
        setup_rss = tree_rss_mib(server.pid)
        print(f"set-up done: RSS {setup_rss:.1f} MiB; traffic for {args.minutes} min", flush=True)
        start = time.monotonic()
        phase = "traffic"
        sample_task = asyncio.create_task(sampler())
        tasks = [asyncio.create_task(p.loop()) for p in pollers]
        sent = send_errors = 0
        deadline = start + args.minutes * 60
        next_report = start + 60
        while time.monotonic() < deadline:
            tick = time.monotonic()
            try:
                await sender.send_message(room_id, {"msgtype": "m.text", "body": f"soak {sent}", "soak_n": sent})
                sent += 1
            except Exception as e:  # noqa: BLE001
                send_errors += 1
                print(f"send failed: {e}", file=sys.stderr, flush=True)
            if time.monotonic() >= next_report:
                next_report += 60
                print(f"  {int((time.monotonic() - start) / 60)} min: RSS {samples[-1][1]:.1f} MiB, sent {sent}",
                      flush=True)
            await asyncio.sleep(max(0.0, 1.0 / args.rate - (time.monotonic() - tick)))
        traffic_end = time.monotonic() - start
        # Let the last message reach everyone, then stop the traffic: cancel the loops and
        # close every connection (the session closes when the block ends).
        await asyncio.sleep(2)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    end_rss = tree_rss_mib(server.pid)
    phase = "idle"
    print(f"traffic stopped: RSS {end_rss:.1f} MiB; idle for {args.idle} s", flush=True)
    await asyncio.sleep(args.idle)
    sample_task.cancel()
    idle_rss = tree_rss_mib(server.pid)
    samples.append((time.monotonic() - start, idle_rss, "idle"))

    window_s = 20 * 60 if args.minutes >= 30 else args.minutes * 60 * 2 / 3
    window = [(t, r) for t, r, p in samples if p == "traffic" and t >= traffic_end - window_s]
    traffic = [r for _, r, p in samples if p == "traffic"]
    seen = [len(p.seen) for p in pollers]
    return {
        "minutes": args.minutes,
        "clients": args.clients,
        "rate_per_s": args.rate,
        "filter": args.filter,
        "repo": args.repo or os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        "messages_sent": sent,
        "send_errors": send_errors,
        "deliveries_min": min(seen),
        "deliveries_max": max(seen),
        "syncs": sum(p.syncs for p in pollers),
        "sync_errors": sum(p.errors for p in pollers),
        "limited_timelines": sum(p.limited for p in pollers),
        "rss_setup_mib": round(setup_rss, 1),
        "rss_peak_traffic_mib": round(max(traffic, default=end_rss), 1),
        "rss_end_traffic_mib": round(end_rss, 1),
        "rss_after_idle_mib": round(idle_rss, 1),
        "idle_s": args.idle,
        "slope_window_min": round(window_s / 60, 1),
        "slope_mib_per_min": round(slope_mib_per_min(window), 3),
        "samples": [(round(t, 1), round(r, 2), p) for t, r, p in samples],
    }


def print_result(r: dict[str, Any]) -> None:
    print()
    print(f"soak: {r['clients']} long-polling clients, {r['rate_per_s']} msg/s for {r['minutes']} min "
          f"(sync filter: {r['filter']})")
    print(f"  messages sent          {r['messages_sent']} ({r['send_errors']} send errors)")
    print(f"  deliveries per client  min {r['deliveries_min']}, max {r['deliveries_max']}; "
          f"{r['syncs']} syncs, {r['sync_errors']} errors, {r['limited_timelines']} limited timelines")
    print(f"  RSS after set-up       {r['rss_setup_mib']} MiB")
    print(f"  RSS peak (traffic)     {r['rss_peak_traffic_mib']} MiB")
    print(f"  RSS end of traffic     {r['rss_end_traffic_mib']} MiB")
    print(f"  RSS after {r['idle_s']} s idle    {r['rss_after_idle_mib']} MiB")
    print(f"  slope, last {r['slope_window_min']} min  {r['slope_mib_per_min']:+.3f} MiB/min")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--rate", type=float, default=1.0, help="messages per second")
    ap.add_argument("--sample", type=float, default=10.0, help="seconds between RSS samples")
    ap.add_argument("--idle", type=float, default=120.0, help="seconds of sampling after the traffic stops")
    ap.add_argument("--filter", choices=("none", "lean"), default="none",
                    help="none: plain /sync, as a bare client does; lean: bench/common.py SYNC_FILTER")
    ap.add_argument("--repo", help="run the server from this checkout (default: this one)")
    ap.add_argument("--workdir")
    ap.add_argument("--keep", action="store_true", help="keep the server's directory")
    ap.add_argument("--json", help="write the result (with every sample) here")
    args = ap.parse_args()
    exit_on_sigterm()
    if args.repo:
        repo = os.path.abspath(args.repo)
        os.environ["PYTHONPATH"] = repo + os.pathsep + os.environ.get("PYTHONPATH", "")
        # bench/common.py honours $WSPR_CMD; PYTHONPATH wins over the venv's editable install.
        os.environ["WSPR_CMD"] = f"{sys.executable} -P -m homeserver.cli"  # -P: not the cwd's code
    workdir = args.workdir or bench_workdir("wspr-soak-")
    server = WsprServer(workdir, extra_config={"log_level": "WARNING", "web_client": {"enabled": False}})
    server.start()
    try:
        result = asyncio.run(soak(server, args))
    finally:
        server.stop()
        if not args.keep:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    print_result(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
