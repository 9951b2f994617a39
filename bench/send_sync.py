#!/usr/bin/env python
"""Send/sync benchmark: N users in one room, M messages from C concurrent senders, everyone syncing.

    python bench/send_sync.py [--server wspr|synapse|both] [--users 20] [--messages 2000] [--concurrency 20]

Each server is started fresh on this machine (Synapse via tests/support/synapse.py, WSPR via
`wspr init` + `wspr run`), users are registered with the shared-secret admin API, user 0
creates a public room and everyone joins. Every user then runs a /sync long-poll loop
(timeout 30 s, the lean filter in bench/common.py) while C sender tasks (senders are users,
round-robin) push M messages with PUT /rooms/{id}/send/m.room.message/{txn}, each sender
sending its next message as soon as the previous one returned (closed loop).

Measured (see bench/README.md):
  msg/s            M / (last send returned - first send started)
  send latency     PUT start -> PUT response, over all M messages
  send->sync       PUT start -> the /sync response carrying the event returns, aggregated over
                   every (message, receiver) pair with receiver != sender; also "all": the time
                   until the last of the other N-1 users has it
  CPU/message      server process tree utime+stime (/proc/PID/stat, descendants included)
                   from the first send until every receiver has every message, / M
  peak RSS         VmHWM of the server process tree at the end of the run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import (  # noqa: E402
    SYNC_FILTER,
    Client,
    bench_workdir,
    exit_on_sigterm,
    fmt_ms,
    make_server,
    new_session,
    percentile,
    self_cpu_seconds,
    server_kinds,
    tree_cpu_seconds,
    tree_peak_rss_mb,
)


class Receiver:
    def __init__(self, client: Client, index: int, sync_filter: str | None) -> None:
        self.client = client
        self.filter = sync_filter
        self.index = index
        self.since: str | None = None
        self.received: dict[str, float] = {}  # bench id -> monotonic arrival time
        self.errors = 0
        self.limited = 0
        self.syncs = 0

    async def initial_sync(self, room_id: str) -> None:
        r = await self.client.sync(None, 0, self.filter)
        self.since = r["next_batch"]

    async def loop(self, room_id: str, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                r = await self.client.sync(self.since, 30000, self.filter)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.errors += 1
                await asyncio.sleep(0.2)
                continue
            now = time.monotonic()
            self.syncs += 1
            self.since = r["next_batch"]
            room = r.get("rooms", {}).get("join", {}).get(room_id)
            if not room:
                continue
            tl = room.get("timeline", {})
            if tl.get("limited"):
                self.limited += 1
            for ev in tl.get("events", ()):
                if ev.get("type") != "m.room.message":
                    continue
                bid = ev.get("content", {}).get("bench_id")
                if bid is not None and bid not in self.received:
                    self.received[bid] = now


async def run_load(server, args) -> dict:
    n_users = args.users
    users = []
    t0 = time.monotonic()
    # Registration is not measured. Registration hashes passwords: keep it sequential-ish.
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(4)

    async def reg(i):
        async with sem:
            return await loop.run_in_executor(None, server.register_user, f"bench{i}", f"pw-{i}-secret", False)

    users = await asyncio.gather(*(reg(i) for i in range(n_users)))
    print(f"  registered {n_users} users in {time.monotonic() - t0:.1f}s", flush=True)

    async with new_session() as session:
        clients = [Client(session, server.client_url, u) for u in users]
        room_id = await clients[0].create_room(preset="public_chat", name="bench")
        for c in clients[1:]:
            await c.join(room_id)
        sync_filter = SYNC_FILTER if args.sync_filter == "lean" else None
        receivers = [Receiver(c, i, sync_filter) for i, c in enumerate(clients)]
        await asyncio.gather(*(r.initial_sync(room_id) for r in receivers))
        stop = asyncio.Event()
        sync_tasks = [asyncio.create_task(r.loop(room_id, stop)) for r in receivers]

        sent: dict[str, tuple[int, float, float]] = {}  # bench id -> (sender index, start, end)
        send_errors = 0

        async def sender(si: int, ids: list[str]) -> None:
            nonlocal send_errors
            c = clients[si % n_users]
            for bid in ids:
                content = {"msgtype": "m.text", "body": f"bench message {bid}", "bench_id": bid}
                st = time.monotonic()
                for attempt in range(5):
                    try:
                        await c.send_message(room_id, content, txn=f"t{bid}")
                        break
                    except Exception as e:  # noqa: BLE001
                        send_errors += 1
                        if attempt == 4:
                            print(f"  send {bid} failed: {e}", file=sys.stderr)
                            st = None
                            break
                        await asyncio.sleep(0.2)
                if st is not None:
                    sent[bid] = (si % n_users, st, time.monotonic())

        async def phase(prefix: str, total: int) -> tuple[float, float]:
            ids = [f"{prefix}{i}" for i in range(total)]
            per = [ids[k::args.concurrency] for k in range(args.concurrency)]
            t_start = time.monotonic()
            await asyncio.gather(*(sender(k, per[k]) for k in range(args.concurrency)))
            t_sent = time.monotonic()
            # wait for delivery to all receivers
            deadline = t_sent + args.drain_timeout
            pending = {b for b in ids if b in sent}
            while pending and time.monotonic() < deadline:
                pending = {b for b in pending
                           if any(sent[b][0] != r.index and b not in r.received for r in receivers)}
                if pending:
                    await asyncio.sleep(0.05)
            return t_start, t_sent

        # warm-up (not measured)
        if args.warmup:
            await phase("w", args.warmup)
            await asyncio.sleep(0.5)

        cpu0 = tree_cpu_seconds(server.pid)
        gen0 = self_cpu_seconds()
        t_start, t_sent = await phase("m", args.messages)
        t_done = time.monotonic()
        cpu1 = tree_cpu_seconds(server.pid)
        gen1 = self_cpu_seconds()

        stop.set()
        for t in sync_tasks:
            t.cancel()
        await asyncio.gather(*sync_tasks, return_exceptions=True)

    ids = [b for b in sent if b.startswith("m")]
    send_lat = [sent[b][2] - sent[b][1] for b in ids]
    first_start = min(sent[b][1] for b in ids)
    last_end = max(sent[b][2] for b in ids)
    e2e, e2e_all, e2e_recv0 = [], [], []
    missing = 0
    for b in ids:
        si, st, _ = sent[b]
        worst = 0.0
        complete = True
        for r in receivers:
            if r.index == si:
                continue
            t = r.received.get(b)
            if t is None:
                missing += 1
                complete = False
                continue
            e2e.append(t - st)
            worst = max(worst, t - st)
            if r.index == 0:
                e2e_recv0.append(t - st)
        if complete:
            e2e_all.append(worst)
    peak = tree_peak_rss_mb(server.pid)
    return {
        "server": server.kind,
        "users": n_users,
        "messages": len(ids),
        "concurrency": args.concurrency,
        "send_errors": send_errors,
        "msgs_per_s": len(ids) / (last_end - first_start),
        "send_p50": percentile(send_lat, 50),
        "send_p99": percentile(send_lat, 99),
        "e2e_p50": percentile(e2e, 50),
        "e2e_p99": percentile(e2e, 99),
        "e2e_all_p50": percentile(e2e_all, 50),
        "e2e_all_p99": percentile(e2e_all, 99),
        "e2e_recv0_p50": percentile(e2e_recv0, 50),
        "e2e_recv0_p99": percentile(e2e_recv0, 99),
        "deliveries": len(e2e),
        "missing_deliveries": missing,
        "limited_syncs": sum(r.limited for r in receivers),
        "sync_errors": sum(r.errors for r in receivers),
        "syncs": sum(r.syncs for r in receivers),
        "wall_s": t_done - t_start,
        "send_wall_s": t_sent - t_start,
        "server_cpu_s": cpu1 - cpu0,
        "cpu_ms_per_msg": (cpu1 - cpu0) * 1000 / max(1, len(ids)),
        "server_cpu_util": (cpu1 - cpu0) / (t_done - t_start),
        "generator_cpu_util": (gen1 - gen0) / (t_done - t_start),
        "peak_rss_mb": peak,
    }


def print_result(r: dict) -> None:
    print(f"\n== {r['server']}: {r['users']} users, {r['messages']} messages, {r['concurrency']} senders")
    print(f"  throughput            {r['msgs_per_s']:.1f} msg/s   (send phase {r['send_wall_s']:.1f}s,"
          f" until fully delivered {r['wall_s']:.1f}s)")
    print(f"  send latency          p50 {fmt_ms(r['send_p50'])}   p99 {fmt_ms(r['send_p99'])}")
    print(f"  send->sync (all rcv)  p50 {fmt_ms(r['e2e_p50'])}   p99 {fmt_ms(r['e2e_p99'])}"
          f"   ({r['deliveries']} (message, receiver) pairs)")
    print(f"  send->sync (last rcv) p50 {fmt_ms(r['e2e_all_p50'])}   p99 {fmt_ms(r['e2e_all_p99'])}")
    print(f"  send->sync (user 0)   p50 {fmt_ms(r['e2e_recv0_p50'])}   p99 {fmt_ms(r['e2e_recv0_p99'])}")
    print(f"  server CPU            {r['cpu_ms_per_msg']:.2f} ms/message   ({r['server_cpu_s']:.1f}s total,"
          f" {r['server_cpu_util'] * 100:.0f}% of a core)")
    print(f"  peak RSS              {r['peak_rss_mb']:.0f} MiB")
    print(f"  load generator CPU    {r['generator_cpu_util'] * 100:.0f}% of a core")
    print(f"  errors: send retries {r['send_errors']}, sync errors {r['sync_errors']},"
          f" missing deliveries {r['missing_deliveries']}, limited timelines {r['limited_syncs']},"
          f" /sync responses {r['syncs']}")
    if r["generator_cpu_util"] > 0.8:
        print("  WARNING: the load generator used >80% of a core; it may be the bottleneck")


def print_ratio(w: dict, s: dict) -> None:
    print("\n== WSPR / Synapse ratio (lower is better except throughput)")
    for key, label in [("msgs_per_s", "throughput"), ("send_p50", "send p50"), ("send_p99", "send p99"),
                       ("e2e_p50", "send->sync p50"), ("e2e_p99", "send->sync p99"),
                       ("cpu_ms_per_msg", "CPU/message"), ("peak_rss_mb", "peak RSS")]:
        ratio = w[key] / s[key] if s[key] else float("nan")
        print(f"  {label:16s} {ratio:6.2f}x   (wspr {w[key]:.4g}, synapse {s[key]:.4g})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", choices=["wspr", "synapse", "both"], default="both")
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=40, help="unmeasured messages sent first")
    ap.add_argument("--drain-timeout", type=float, default=60.0,
                    help="seconds to wait after the last send for /sync delivery")
    ap.add_argument("--synapse-db", default=None, metavar="URL",
                    help="PostgreSQL URL for Synapse (default SQLite), e.g. postgresql://postgres@127.0.0.1:5432")
    ap.add_argument("--synapse-log-level", default="INFO")
    ap.add_argument("--sync-filter", choices=["lean", "none"], default="lean",
                    help="lean: inline filter from bench/common.py (no presence, lazy-loaded members); "
                         "none: unfiltered /sync")
    ap.add_argument("--workdir", default=None, help="parent directory for server state (default: /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep server directories")
    ap.add_argument("--json", default=None, help="also write results to this JSON file")
    args = ap.parse_args()
    exit_on_sigterm()

    results = {}
    for kind in server_kinds(args.server):
        wd = bench_workdir(f"bench-send-{kind}-", args.workdir)
        kw = {}
        if kind == "synapse":
            kw = {"database_url": args.synapse_db, "log_level": args.synapse_log_level}
        server = make_server(kind, wd, **kw)
        print(f"starting {kind} in {wd}", flush=True)
        try:
            server.start()
            waited = server.settle()
            print(f"  ready; waited {waited:.1f}s for start-up background work", flush=True)
            res = asyncio.run(run_load(server, args))
        finally:
            server.stop()
            if not args.keep:
                shutil.rmtree(wd, ignore_errors=True)
        results[kind] = res
        print_result(res)
    if "wspr" in results and "synapse" in results:
        print_ratio(results["wspr"], results["synapse"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
