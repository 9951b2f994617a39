#!/usr/bin/env python
"""Server-side search (POST /search), WSPR against Synapse, and what the full-text index
costs WSPR when events are stored.

    python bench/search.py [--server wspr|synapse|both] [--database sqlite|postgresql]
                           [--messages 3000] [--rooms 3] [--requests 100] [--index-cost 2000]

Search: alice and bob share ``--rooms`` rooms; ``--messages`` messages are sent across them
(four senders at a time), each a few words drawn from a vocabulary in which word k has
weight 1/k (so "w0" is in most messages and "w399" in a handful). Then
alice searches, one request at a time, ``--requests`` times per query:

  common/rank     "w0", rank order (default), limit 10
  common/recent   "w0", recent order, limit 10
  rare/rank       "w399", rank order
  two words       "w1 w2", rank order
  phrase          the quoted "w0 w1", rank order
  with context    "w0", recent order, event_context 5/5 with profiles, include_state

Printed per server and query: latency p50/p99 and server CPU per request (utime+stime of the
server's process tree, /proc). With ``--server both``, WSPR/Synapse ratios. On PostgreSQL
both servers get a fresh database on 127.0.0.1:5432.

Index cost (WSPR only, in this process, on the chosen engine): ``--index-cost`` events
persisted one batch each through the storage layer, an m.room.message (indexed) and an
m.room.encrypted of the same size (not indexed) in turn; printed as the ratio of the mean
persist time of the two.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
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

VOCABULARY = [f"w{k}" for k in range(400)]
WEIGHTS = [1 / (k + 1) for k in range(len(VOCABULARY))]


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choices(VOCABULARY, WEIGHTS, k=rng.randint(4, 12)))


def search_body(term: str, **room_events: Any) -> dict[str, Any]:
    return {"search_categories": {"room_events": {"search_term": term, **room_events}}}


QUERIES: dict[str, dict[str, Any]] = {
    "common/rank": search_body("w0"),
    "common/recent": search_body("w0", order_by="recent"),
    "rare/rank": search_body("w399"),
    "two words": search_body("w1 w2"),
    "phrase": search_body('"w0 w1"'),
    "with context": search_body(
        "w0", order_by="recent", include_state=True, event_context={"before_limit": 5, "after_limit": 5, "include_profile": True}
    ),
}


async def populate(alice: Client, bob: Client, rooms: int, messages: int) -> None:
    room_ids = []
    for _ in range(rooms):
        room = await alice.create_room(preset="public_chat")
        await bob.join(room)
        room_ids.append(room)
    rng = random.Random(42)
    texts = [(room_ids[i % rooms], sentence(rng)) for i in range(messages)]

    async def sender(k: int) -> None:
        client = alice if k % 2 == 0 else bob
        for i in range(k, len(texts), 4):
            room, text = texts[i]
            await client.send_message(room, {"msgtype": "m.text", "body": text})

    await asyncio.gather(*(sender(k) for k in range(4)))


async def measure(server: Any, client: Client, n: int, body: dict[str, Any]) -> dict[str, float]:
    latencies = []
    cpu0 = tree_cpu_seconds(server.pid)
    for _ in range(n):
        t0 = time.monotonic()
        answer = await client.call("POST", "/search", body)
        latencies.append(time.monotonic() - t0)
    cpu = tree_cpu_seconds(server.pid) - cpu0
    count = answer["search_categories"]["room_events"]["count"]
    return {"p50": percentile(latencies, 50), "p99": percentile(latencies, 99), "cpu_ms": cpu / n * 1000, "count": count}


async def run_server(kind: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    workdir = bench_workdir(f"bench-search-{kind}-", args.workdir)
    pg_url = None
    kw: dict[str, Any] = {}
    if args.database == "postgresql":
        if kind == "synapse":
            kw["database_url"] = "postgresql://postgres@127.0.0.1:5432"
        else:
            from tests.support.wspr import create_postgres_database

            pg_url = create_postgres_database()
            kw["extra_config"] = {"database": {"url": pg_url}}
    server = make_server(kind, workdir, **kw)
    server.start()
    try:
        server.settle()
        users = [server.register_user(name, "pw-" + name) for name in ("alice", "bob")]
        async with new_session() as session:
            alice, bob = (Client(session, server.client_url, u) for u in users)
            t0 = time.monotonic()
            await populate(alice, bob, args.rooms, args.messages)
            print(f"[{kind}] {args.messages} messages sent in {time.monotonic() - t0:.1f}s", flush=True)
            results = {}
            for name, body in QUERIES.items():
                r = results[name] = await measure(server, alice, args.requests, body)
                print(
                    f"[{kind}] {name:14} p50 {fmt_ms(r['p50']):>8}  p99 {fmt_ms(r['p99']):>8}"
                    f"  CPU/request {r['cpu_ms']:7.2f} ms  count {r['count']}",
                    flush=True,
                )
            return results
    finally:
        server.stop()
        if pg_url:
            from tests.support.wspr import drop_postgres_database

            drop_postgres_database(pg_url)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def index_cost(args: argparse.Namespace) -> float:
    """Mean persist time of an indexed message over that of an unindexed event of the same
    size, each its own single-event batch, alternating."""
    from homeserver.events.event import Event
    from homeserver.storage import Database, DataStore, prepare_database
    from homeserver.storage.events import PersistBatch

    pg_url = None
    if args.database == "postgresql":
        from tests.support.wspr import create_postgres_database

        url = pg_url = create_postgres_database()
    else:
        url = "sqlite:///" + tempfile.mkdtemp(prefix="bench-search-index-") + "/db.sqlite"
    db = Database(url)
    prepare_database(db)
    store = DataStore(db)
    rng = random.Random(7)
    times: dict[str, list[float]] = {"m.room.message": [], "m.room.encrypted": []}
    try:
        db.run_sync(lambda txn: txn.execute("INSERT INTO rooms (room_id, room_version, created_ts) VALUES ('!r:x', '11', 0)"))
        for i in range(1, 2 * args.index_cost + 1):
            event_type = "m.room.message" if i % 2 else "m.room.encrypted"
            text = sentence(rng)
            content = {"msgtype": "m.text", "body": text} if i % 2 else {"algorithm": "x", "ciphertext": text, "bod": "xxxxxx"}
            pdu = {"type": event_type, "room_id": "!r:x", "sender": "@a:x", "content": content, "depth": i,
                   "origin_server_ts": i, "prev_events": [], "auth_events": []}
            batch = PersistBatch(events=[Event(f"$e{i}", pdu, "11", stream_ordering=i)])
            t0 = time.perf_counter()
            db.run_sync(store._persist_batch_txn, batch)
            times[event_type].append(time.perf_counter() - t0)
    finally:
        db.close()
        if pg_url:
            from tests.support.wspr import drop_postgres_database

            drop_postgres_database(pg_url)
    indexed = sum(times["m.room.message"]) / len(times["m.room.message"])
    plain = sum(times["m.room.encrypted"]) / len(times["m.room.encrypted"])
    print(f"[index cost, {args.database}] persist of an indexed message {indexed * 1e3:.3f} ms,"
          f" of an unindexed event {plain * 1e3:.3f} ms: x{indexed / plain:.2f}", flush=True)
    return indexed / plain


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", default="both", choices=("wspr", "synapse", "both"))
    ap.add_argument("--database", default="sqlite", choices=("sqlite", "postgresql"))
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--rooms", type=int, default=3)
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--index-cost", type=int, default=2000, help="events per kind for the index cost (0: skip)")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json", default=None, help="also write results to this JSON file")
    args = ap.parse_args()
    exit_on_sigterm()
    out: dict[str, Any] = {}
    if args.index_cost:
        out["index_cost_ratio"] = index_cost(args)
    if args.messages:
        results = {kind: asyncio.run(run_server(kind, args)) for kind in server_kinds(args.server)}
        out.update(results)
        if len(results) == 2:
            for name, w in results["wspr"].items():
                s = results["synapse"][name]
                print(f"WSPR/Synapse {name:14} p50 x{w['p50'] / s['p50']:.2f}  CPU/request x{w['cpu_ms'] / max(s['cpu_ms'], 1e-9):.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
