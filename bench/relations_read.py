#!/usr/bin/env python
"""Read paths that bundle relations: threads, edits and references as a member and as a
user who left see them.

    python bench/relations_read.py [--server wspr|synapse|both] [--roots 20] [--replies 40] [--requests 200]

One private room: alice posts ``--roots`` messages, each with ``--replies`` thread replies
(alice and bob in turn), two edits and two references; plain messages in between. Bob
leaves; alice adds a quarter as many replies and one more edit to every root. Then carol (a
member who joined at the start) and bob (who left) each read, ``--requests`` times per
path, one request at a time:

  /event        GET /rooms/{id}/event/{root}         (roots in turn)
  /messages     GET /rooms/{id}/messages?dir=b&limit=50
  /relations    GET /v1/rooms/{id}/relations/{root}?limit=50
  /threads      GET /v1/rooms/{id}/threads?limit=20
  /sync         initial GET /sync, timeline limit 50 (bob: include_leave), a tenth as often

Every event of those answers carries its bundled aggregations (thread summary with its
latest event, edit, references), which the server computes per request for the reader.

Printed per server, reader and path: latency p50/p99 and server CPU per request (utime+stime
of the server's process tree, /proc). With ``--server both`` also WSPR/Synapse ratios. To
compare two WSPR builds in one session, run it twice with ``WSPR_CMD`` pointing at each
(see bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import time
import urllib.parse
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import (  # noqa: E402
    Client,
    bench_workdir,
    exit_on_sigterm,
    fmt_ms,
    make_server,
    new_session,
    percentile,
    server_kinds,
    tree_cpu_seconds,
)

V1 = "/_matrix/client/v1"


def thread(root: str) -> dict[str, Any]:
    return {"m.relates_to": {"rel_type": "m.thread", "event_id": root}}


def edit(target: str, body: str) -> dict[str, Any]:
    return {"m.new_content": {"msgtype": "m.text", "body": body}, "m.relates_to": {"rel_type": "m.replace", "event_id": target}}


async def v1(client: Client, path: str, params: dict | None = None) -> Any:
    """A GET under /_matrix/client/v1 (Client.call is rooted at v3)."""
    async with client.session.get(client.base.replace("/v3", "/v1") + path, headers=client.headers, params=params) as r:
        text = await r.text()
        if r.status != 200:
            raise RuntimeError(f"GET {path}: HTTP {r.status} {text[:200]}")
        return json.loads(text)


async def populate(alice: Client, bob: Client, carol: Client, roots: int, replies: int) -> tuple[str, list[str]]:
    room = await alice.create_room(preset="private_chat")
    for user in (bob, carol):
        await alice.call("POST", f"/rooms/{urllib.parse.quote(room)}/invite", {"user_id": user.user_id})
        await user.join(room)
    ids = []
    for i in range(roots):
        root = await alice.send_message(room, {"msgtype": "m.text", "body": f"root {i}"})
        ids.append(root)
        await alice.send_message(room, {"msgtype": "m.text", "body": f"between {i}"})
    for i, root in enumerate(ids):
        for j in range(replies):
            sender = alice if j % 2 == 0 else bob
            await sender.send_message(room, {"msgtype": "m.text", "body": f"reply {i}.{j}", **thread(root)})
        for k in range(2):
            await alice.send_message(room, {"msgtype": "m.text", "body": f"* edit {k}", **edit(root, f"edit {k}")})
            await bob.send_message(room, {"msgtype": "m.text", "body": "ref", "m.relates_to": {"rel_type": "m.reference", "event_id": root}})
    await bob.call("POST", f"/rooms/{urllib.parse.quote(room)}/leave", {})
    for i, root in enumerate(ids):
        for j in range(max(1, replies // 4)):
            await alice.send_message(room, {"msgtype": "m.text", "body": f"later reply {i}.{j}", **thread(root)})
        await alice.send_message(room, {"msgtype": "m.text", "body": "* later edit", **edit(root, "later edit")})
    return room, ids


def requests(reader: Client, room: str, roots: list[str], n: int, left: bool) -> dict[str, tuple[int, Any]]:
    """Per path: how many requests, and the request (a function of its index)."""
    q = urllib.parse.quote(room)
    sync_filter = json.dumps({"room": {"timeline": {"limit": 50}, "include_leave": left}})

    def root(i: int) -> str:
        return urllib.parse.quote(roots[i % len(roots)])

    return {
        "/event": (n, lambda i: reader.call("GET", f"/rooms/{q}/event/{root(i)}")),
        "/messages": (n, lambda i: reader.call("GET", f"/rooms/{q}/messages", params={"dir": "b", "limit": "50"})),
        "/relations": (n, lambda i: v1(reader, f"/rooms/{q}/relations/{root(i)}", {"limit": "50"})),
        "/threads": (n, lambda i: v1(reader, f"/rooms/{q}/threads", {"limit": "20"})),
        "/sync": (max(1, n // 10), lambda i: reader.sync(None, 0, sync_filter)),
    }


async def measure(server: Any, n: int, request: Any) -> dict[str, float]:
    latencies = []
    cpu0 = tree_cpu_seconds(server.pid)
    for i in range(n):
        t0 = time.monotonic()
        await request(i)
        latencies.append(time.monotonic() - t0)
    cpu = tree_cpu_seconds(server.pid) - cpu0
    return {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99), "cpu_ms": cpu / n * 1000}


async def run_server(kind: str, args: argparse.Namespace) -> dict[str, dict[str, dict[str, float]]]:
    workdir = bench_workdir(f"bench-relations-{kind}-", args.workdir)
    server = make_server(kind, workdir)
    server.start()
    try:
        server.settle()
        users = [server.register_user(name, "pw-" + name) for name in ("alice", "bob", "carol")]
        async with new_session() as session:
            alice, bob, carol = (Client(session, server.client_url, u) for u in users)
            t0 = time.monotonic()
            room, roots = await populate(alice, bob, carol, args.roots, args.replies)
            print(f"[{kind}] room populated in {time.monotonic() - t0:.1f}s", flush=True)
            results: dict[str, dict[str, dict[str, float]]] = {}
            for label, reader in (("member", carol), ("left", bob)):
                results[label] = {}
                for path, (n, request) in requests(reader, room, roots, args.requests, label == "left").items():
                    r = results[label][path] = await measure(server, n, request)
                    print(
                        f"[{kind}] {label:6} {path:10}  p50 {fmt_ms(r['p50']):>8}  p99 {fmt_ms(r['p99']):>8}"
                        f"  CPU/request {r['cpu_ms']:7.2f} ms",
                        flush=True,
                    )
            return results
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", default="wspr", choices=("wspr", "synapse", "both"))
    ap.add_argument("--roots", type=int, default=20)
    ap.add_argument("--replies", type=int, default=40)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json", default=None, help="also write results to this JSON file")
    args = ap.parse_args()
    exit_on_sigterm()
    results = {kind: asyncio.run(run_server(kind, args)) for kind in server_kinds(args.server)}
    if len(results) == 2:
        for label in results["wspr"]:
            for path, w in results["wspr"][label].items():
                s = results["synapse"][label][path]
                print(
                    f"WSPR/Synapse {label:6} {path:10}  p50 x{w['p50'] / s['p50']:.2f}"
                    f"  CPU/request x{w['cpu_ms'] / max(s['cpu_ms'], 1e-9):.2f}"
                )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
