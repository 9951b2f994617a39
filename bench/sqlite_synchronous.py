#!/usr/bin/env python
"""What `database.synchronous: full` costs against `normal` (SQLite), issue 9 finding 12.

    python bench/sqlite_synchronous.py [--rounds 2] [--users 10] [--messages 2000] [--concurrency 20] [--json out.json]

Runs the send/sync load of bench/send_sync.py (its `run_load`: users in one room, every
user long-polling /sync, `--concurrency` closed-loop senders) against a fresh WSPR per run,
alternating normal and full `--rounds` times so background load hits both alike, and
prints each run and the full/normal ratios of the medians (throughput, send latency,
server CPU per message). First, as a floor, the raw cost: `--commits` one-row write
transactions in a row through WSPR's Database layer with each setting (what one fsync per
commit costs on this disk, without batching).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import WsprServer, bench_workdir, exit_on_sigterm, fmt_ms  # noqa: E402
from bench.send_sync import run_load  # noqa: E402


def one_run(setting: str, args: argparse.Namespace) -> dict:
    workdir = bench_workdir(f"wspr-sync-{setting}-", args.workdir)
    server = WsprServer(
        os.path.join(workdir, "hs"),
        extra_config={"database": {"synchronous": setting}, "log_level": "WARNING", "web_client": {"enabled": False}},
    )
    try:
        server.start()
        result = asyncio.run(run_load(server, args))
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    result["synchronous"] = setting
    print(
        f"  {setting:6s} {result['msgs_per_s']:7.1f} msg/s   send p50 {fmt_ms(result['send_p50'])}"
        f" p99 {fmt_ms(result['send_p99'])}   CPU {result['cpu_ms_per_msg']:.2f} ms/msg"
        f"   errors {result['send_errors']}/{result['missing_deliveries']}",
        flush=True,
    )
    return result


def commit_rate(setting: str, n: int, base: str | None) -> float:
    """One-row write transactions per second, one after the other, on a fresh database."""
    import tempfile
    import time

    from homeserver.storage.database import Database

    directory = tempfile.mkdtemp(prefix=f"wspr-commits-{setting}-", dir=base)
    db = Database("sqlite:///" + os.path.join(directory, "t.db"), synchronous=setting)
    try:
        db.run_sync(lambda txn: txn.execute("CREATE TABLE t (i INTEGER, v TEXT)"))
        start = time.perf_counter()
        for i in range(n):
            db.run_sync(lambda txn, i=i: txn.execute("INSERT INTO t VALUES (?, ?)", (i, "x" * 200)))
        return n / (time.perf_counter() - start)
    finally:
        db.close()
        shutil.rmtree(directory, ignore_errors=True)


def main() -> int:
    exit_on_sigterm()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--users", type=int, default=10)
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--warmup", type=int, default=40)
    p.add_argument("--drain-timeout", type=float, default=60.0)
    p.add_argument("--workdir", default=None)
    p.add_argument("--commits", type=int, default=2000)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    args.sync_filter = "lean"
    rates = {s: statistics.median(commit_rate(s, args.commits, args.workdir) for _ in range(3)) for s in ("normal", "full")}
    print(f"== single-row commits/s: normal {rates['normal']:.0f}, full {rates['full']:.0f}"
          f" (full/normal {rates['full'] / rates['normal']:.2f}x)\n", flush=True)
    runs: list[dict] = []
    for _ in range(args.rounds):
        for setting in ("normal", "full"):
            runs.append(one_run(setting, args))
    med = {
        s: {k: statistics.median(r[k] for r in runs if r["synchronous"] == s) for k in ("msgs_per_s", "send_p50", "send_p99", "cpu_ms_per_msg")}
        for s in ("normal", "full")
    }
    print("\n== full / normal (medians)")
    for key, label in (("msgs_per_s", "throughput"), ("send_p50", "send p50"), ("send_p99", "send p99"), ("cpu_ms_per_msg", "CPU/message")):
        print(f"  {label:12s} {med['full'][key] / med['normal'][key]:5.2f}x   (normal {med['normal'][key]:.4g}, full {med['full'][key]:.4g})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"commits_per_s": rates, "runs": runs, "medians": med}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
