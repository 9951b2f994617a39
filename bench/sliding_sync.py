#!/usr/bin/env python
"""Simplified sliding sync (MSC4186) for a user in thousands of rooms, against /sync.

    python bench/sliding_sync.py [--server wspr|synapse|both] [--rooms 2000] [--requests 20] [--no-restart]

Alice is in ``--rooms`` rooms (each created by her, named, with one message). Then the
server is restarted (unless ``--no-restart``: caches cold, as for a client coming back),
and alice, one request at a time:

  ss first          the first sliding sync request after the restart: one list, range
                    [0, 19], timeline_limit 1, Element X's required_state (17 entries: name,
                    avatar, topic, encryption, create, power levels, $ME and $LAZY members,
                    call members, space parents/children...), the e2ee, to_device,
                    account_data, receipts and typing extensions (Element X runs the first
                    two on a connection of their own)
  ss initial        the same request again, ``--requests`` times, each a new connection
  ss incremental    a message goes to a room outside the top 20 (a different one each time),
                    then the connection's next request (its pos, timeout 0): the room moves
                    into the range and is sent; ``--requests`` times
  /sync initial     GET /sync with no token (timeline limit 1, lazy-loaded members): every
                    room; a tenth as many times
  /sync incremental a message as above, then GET /sync?since= (timeout 0); ``--requests`` times

Printed per server and step: latency p50/p99 (ms), server CPU per request (utime+stime of
the server's process tree, /proc) and the response size. With ``--server both`` also the
WSPR/Synapse ratios. Synapse is the venv's matrix-synapse on SQLite, like WSPR.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import (
    Client,
    bench_workdir,
    exit_on_sigterm,
    make_server,
    new_session,
    percentile,
    server_kinds,
    tree_cpu_seconds,
)

SS_PATH = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
# What Element X (matrix-rust-sdk's room list service) asks for.
REQUIRED_STATE = [
    ["m.room.name", ""], ["m.room.encryption", ""], ["m.room.member", "$LAZY"], ["m.room.member", "$ME"],
    ["m.room.topic", ""], ["m.room.avatar", ""], ["m.room.canonical_alias", ""], ["m.room.power_levels", ""],
    ["org.matrix.msc3401.call.member", "*"], ["m.room.join_rules", ""], ["m.room.tombstone", ""],
    ["m.room.create", ""], ["m.room.history_visibility", ""], ["io.element.functional_members", ""],
    ["m.space.parent", "*"], ["m.space.child", "*"], ["m.beacon_info", "*"],
]
EXTENSIONS = {
    "e2ee": {"enabled": True},
    "to_device": {"enabled": True},
    "account_data": {"enabled": True},
    "receipts": {"enabled": True, "rooms": ["*"]},
    "typing": {"enabled": True},
}
SYNC_FILTER = json.dumps({"room": {"timeline": {"limit": 1}, "state": {"lazy_load_members": True}}})
TOP = 20


def ss_body(conn_id: str) -> dict[str, Any]:
    return {
        "conn_id": conn_id,
        "lists": {"all": {"ranges": [[0, TOP - 1]], "timeline_limit": 1, "required_state": REQUIRED_STATE}},
        "extensions": EXTENSIONS,
    }


async def raw(client: Client, method: str, url: str, body: Any = None, params: dict | None = None) -> tuple[dict, int]:
    import aiohttp

    kw: dict[str, Any] = {"headers": {**client.headers, "Content-Type": "application/json"}, "params": params,
                          "timeout": aiohttp.ClientTimeout(total=600)}
    if body is not None:
        kw["data"] = json.dumps(body)
    async with client.session.request(method, url, **kw) as r:
        text = await r.text()
        if r.status != 200:
            raise RuntimeError(f"{method} {url}: HTTP {r.status} {text[:300]}")
        return json.loads(text), len(text)


async def sliding_sync(client: Client, server_url: str, body: dict, pos: str | None = None) -> tuple[dict, int]:
    params = {"timeout": "0"}
    if pos is not None:
        params["pos"] = pos
    return await raw(client, "POST", server_url + SS_PATH, body, params)


async def populate(alice: Client, rooms: int, concurrency: int = 8) -> list[str]:
    ids: list[str] = [""] * rooms
    queue = list(range(rooms))

    async def worker() -> None:
        while queue:
            i = queue.pop(0)
            rid = await alice.create_room(preset="private_chat", name=f"room {i}")
            await alice.send_message(rid, {"msgtype": "m.text", "body": f"first message of room {i}"})
            ids[i] = rid
            if (i + 1) % 250 == 0:
                print(f"  {i + 1} rooms", flush=True)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ids


class Step:
    def __init__(self, server: Any) -> None:
        self.server = server
        self.latencies: list[float] = []
        self.sizes: list[int] = []
        self.cpu = 0.0

    async def measure(self, fn: Any) -> Any:
        cpu0 = tree_cpu_seconds(self.server.pid)
        t0 = time.monotonic()
        result, size = await fn()
        self.latencies.append(time.monotonic() - t0)
        self.cpu += tree_cpu_seconds(self.server.pid) - cpu0
        self.sizes.append(size)
        return result

    def summary(self) -> dict[str, float]:
        n = len(self.latencies)
        return {
            "n": n,
            "p50_ms": percentile(self.latencies, 50) * 1000,
            "p99_ms": percentile(self.latencies, 99) * 1000,
            "cpu_ms": self.cpu / n * 1000 if n else float("nan"),
            "bytes": sum(self.sizes) / n if n else float("nan"),
        }


async def run_server(kind: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    workdir = bench_workdir(f"bench-sliding-sync-{kind}-", args.workdir)
    server = make_server(kind, workdir, **({"log_level": "WARNING"} if kind == "synapse" else {}))
    server.start()
    results: dict[str, dict[str, float]] = {}
    try:
        server.settle()
        alice_user = server.register_user("alice", "pw-alice")
        t0 = time.monotonic()
        async with new_session() as session:
            alice = Client(session, server.client_url, alice_user)
            rooms = await populate(alice, args.rooms)
        print(f"[{kind}] {args.rooms} rooms populated in {time.monotonic() - t0:.1f}s", flush=True)
        if not args.no_restart:
            server.stop()
            server.start()
            server.settle()
        url = server.client_url
        rng = random.Random(1)
        async with new_session() as session:
            alice = Client(session, url, alice_user)

            first = Step(server)
            resp = await first.measure(lambda: sliding_sync(alice, url, ss_body("first")))
            assert len(resp["rooms"]) == TOP, sorted(resp)
            results["ss first"] = first.summary()

            initial = Step(server)
            for i in range(args.requests):
                await initial.measure(lambda i=i: sliding_sync(alice, url, ss_body(f"c{i}")))
            results["ss initial"] = initial.summary()

            incremental = Step(server)
            body = ss_body("inc")
            resp, _ = await sliding_sync(alice, url, body)
            pos = resp["pos"]
            for _ in range(args.requests):
                # a room well below the top 20: it moves to the top and is sent
                target = rooms[rng.randrange(0, len(rooms) - TOP * 2)]
                await alice.send_message(target, {"msgtype": "m.text", "body": "bump"})
                resp = await incremental.measure(lambda pos=pos: sliding_sync(alice, url, body, pos))
                assert target in resp["rooms"], "the bumped room must be sent"
                pos = resp["pos"]
            results["ss incremental"] = incremental.summary()

            sync_initial = Step(server)
            since = None
            for _ in range(max(1, args.requests // 10)):
                resp = await sync_initial.measure(
                    lambda: raw(alice, "GET", alice.base + "/sync", params={"timeout": "0", "filter": SYNC_FILTER})
                )
                since = resp["next_batch"]
                assert len(resp["rooms"]["join"]) == args.rooms
            results["/sync initial"] = sync_initial.summary()

            sync_incremental = Step(server)
            for _ in range(args.requests):
                target = rooms[rng.randrange(0, len(rooms))]
                await alice.send_message(target, {"msgtype": "m.text", "body": "bump"})
                resp = await sync_incremental.measure(
                    lambda since=since: raw(alice, "GET", alice.base + "/sync",
                                            params={"timeout": "0", "filter": SYNC_FILTER, "since": since})
                )
                since = resp["next_batch"]
            results["/sync incremental"] = sync_incremental.summary()
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    for step, r in results.items():
        print(f"[{kind}] {step:18s} p50 {r['p50_ms']:8.1f} ms  p99 {r['p99_ms']:8.1f} ms  "
              f"cpu {r['cpu_ms']:8.1f} ms/req  {r['bytes'] / 1024:8.1f} KiB  (n={r['n']})", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default="both", choices=["wspr", "synapse", "both"])
    parser.add_argument("--rooms", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--no-restart", action="store_true", help="measure without restarting after populating")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()
    exit_on_sigterm()
    all_results = {}
    for kind in server_kinds(args.server):
        all_results[kind] = asyncio.run(run_server(kind, args))
    if "wspr" in all_results and "synapse" in all_results:
        print("\nWSPR / Synapse (lower is better for WSPR):")
        for step in all_results["wspr"]:
            w, s = all_results["wspr"][step], all_results["synapse"][step]
            print(f"  {step:18s} latency p50 x{w['p50_ms'] / s['p50_ms']:.2f}  cpu x{w['cpu_ms'] / s['cpu_ms']:.2f}")
    print("\nSliding sync / /sync on the same server:")
    for kind, res in all_results.items():
        first = res["ss first"]["p50_ms"] / res["/sync initial"]["p50_ms"]
        inc = res["ss incremental"]["p50_ms"] / res["/sync incremental"]["p50_ms"]
        print(f"  [{kind}] first sliding sync / initial /sync x{first:.3f}; incremental x{inc:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(all_results, f, indent=1)


if __name__ == "__main__":
    main()
