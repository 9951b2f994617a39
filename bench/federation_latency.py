#!/usr/bin/env python
"""Federation benchmarks between two homeservers of the same kind on loopback.

    python bench/federation_latency.py [--server wspr|synapse|both] [--messages 200] [--rate 10]
                                       [--state-events 10000] [--skip-latency] [--skip-big-join]

Two servers A and B are started fresh (server_name 127.0.0.1:<TLS federation port>, self-signed
certificates, loopback allowed).

Part 1, federated send -> remote /sync latency:
  @a:A creates a public room, @b:B joins it over federation (join time reported). Both run a
  /sync long-poll loop. Then @a sends --messages messages at a fixed --rate (open loop: each send
  starts on schedule, whatever the previous one did) and we measure, per message, the time from
  the start of @a's PUT /send on A until @b's /sync on B returns it; then the same from @b to @a.
  Paced on purpose: Synapse drops incoming events when >~100 are staged for one room.

Part 2, joining a room with a large state:
  @a creates a room on A whose state holds --state-events extra state events (type
  org.wspr.bench.state, distinct state keys), put in as `initial_state` of one /createRoom call
  (falls back to PUT /state with 4 concurrent requests if the server refuses the big body).
  Then @b2:B joins it over federation. Reported: creation time, the join request's latency
  (POST /join on B until it returns), and the time until B serves the room's full state
  (GET /rooms/{id}/state on B returns >= the expected number of events; a server doing a
  partial-state "faster join" returns from /join before it has the full state).
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

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import (  # noqa: E402
    SYNC_FILTER,
    Client,
    MatrixError,
    bench_workdir,
    exit_on_sigterm,
    fmt_ms,
    make_server,
    new_session,
    percentile,
    server_kinds,
    tree_cpu_seconds,
    tree_peak_rss_mb,
)

STATE_TYPE = "org.wspr.bench.state"


class SyncWatcher:
    """Long-poll /sync loop recording when each bench_id first arrives and which rooms are joined."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.since: str | None = None
        self.received: dict[str, float] = {}
        self.members: dict[str, set[str]] = {}
        self.errors = 0
        self.changed = asyncio.Event()

    async def initial(self) -> None:
        r = await self.client.sync(None, 0, SYNC_FILTER)
        self.since = r["next_batch"]

    async def loop(self) -> None:
        while True:
            try:
                r = await self.client.sync(self.since, 30000, SYNC_FILTER)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.errors += 1
                await asyncio.sleep(0.2)
                continue
            now = time.monotonic()
            self.since = r["next_batch"]
            for room_id, room in r.get("rooms", {}).get("join", {}).items():
                events = room.get("timeline", {}).get("events", []) + room.get("state", {}).get("events", [])
                for ev in events:
                    if ev.get("type") == "m.room.member":
                        m = self.members.setdefault(room_id, set())
                        if ev.get("content", {}).get("membership") == "join":
                            m.add(ev["state_key"])
                        else:
                            m.discard(ev["state_key"])
                    elif ev.get("type") == "m.room.message":
                        bid = ev.get("content", {}).get("bench_id")
                        if bid is not None and bid not in self.received:
                            self.received[bid] = now
            self.changed.set()
            self.changed = asyncio.Event()

    async def wait_for(self, pred, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not pred():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self.changed.wait(), min(left, 1.0))
            except TimeoutError:
                pass
        return True


async def one_direction(label: str, sender: Client, watcher: SyncWatcher, room_id: str,
                        n: int, rate: float, drain: float) -> dict:
    starts: dict[str, float] = {}
    errors = 0

    async def send(bid: str) -> None:
        nonlocal errors
        st = time.monotonic()
        try:
            await sender.send_message(room_id, {"msgtype": "m.text", "body": f"fed {bid}", "bench_id": bid},
                                      txn=f"f{bid}")
            starts[bid] = st
        except Exception as e:  # noqa: BLE001
            errors += 1
            print(f"  send {bid} failed: {e}", file=sys.stderr)

    tasks = []
    t0 = time.monotonic()
    for i in range(n):
        target = t0 + i / rate
        delay = target - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(f"{label}{i}")))
    await asyncio.gather(*tasks)
    await watcher.wait_for(lambda: all(b in watcher.received for b in starts), drain)
    lat = [watcher.received[b] - starts[b] for b in starts if b in watcher.received]
    return {
        "direction": label,
        "messages": n,
        "delivered": len(lat),
        "send_errors": errors,
        "p50": percentile(lat, 50),
        "p99": percentile(lat, 99),
        "max": max(lat) if lat else float("nan"),
    }


async def latency_part(A, B, args, session) -> dict:
    ua = A.register_user("fed_a", "pw-a-secret")
    ub = B.register_user("fed_b", "pw-b-secret")
    ca, cb = Client(session, A.client_url, ua), Client(session, B.client_url, ub)
    room_id = await ca.create_room(preset="public_chat", name="federation latency")
    wa, wb = SyncWatcher(ca), SyncWatcher(cb)
    await asyncio.gather(wa.initial(), wb.initial())
    tasks = [asyncio.create_task(wa.loop()), asyncio.create_task(wb.loop())]
    try:
        t = time.monotonic()
        await cb.join(room_id, via=[A.server_name])
        join_s = time.monotonic() - t
        ok = await wa.wait_for(lambda: ub["user_id"] in wa.members.get(room_id, ()), 60)
        if not ok:
            # the join may have been delivered before our initial sync; check the member list
            q = urllib.parse.quote(room_id, safe="")
            jm = await ca.call("GET", f"/rooms/{q}/joined_members")
            if ub["user_id"] not in jm.get("joined", {}):
                raise RuntimeError("A never saw B's join")
        # warm-up both ways (key fetches, connection setup), unmeasured
        await one_direction("wab", ca, wb, room_id, 5, args.rate, 60)
        await one_direction("wba", cb, wa, room_id, 5, args.rate, 60)
        ab = await one_direction("ab", ca, wb, room_id, args.messages, args.rate, args.drain_timeout)
        ba = await one_direction("ba", cb, wa, room_id, args.messages, args.rate, args.drain_timeout)
    finally:
        for t_ in tasks:
            t_.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {"small_room_join_s": join_s, "a_to_b": ab, "b_to_a": ba}


async def big_join_part(A, B, args, session) -> dict:
    ua = A.register_user("big_a", "pw-a-secret")
    ub = B.register_user("big_b", "pw-b-secret")
    ca, cb = Client(session, A.client_url, ua), Client(session, B.client_url, ub)
    n = args.state_events
    initial = [{"type": STATE_TYPE, "state_key": f"key{i:05d}", "content": {"i": i, "pad": "x" * 32}}
               for i in range(n)]
    cpu_a0 = tree_cpu_seconds(A.pid)
    t = time.monotonic()
    room_id = None
    if args.state_method == "createroom":
        method = "createRoom initial_state"
        try:
            room_id = await ca.create_room(preset="public_chat", name="big state", initial_state=initial)
        except MatrixError as e:
            print(f"  createRoom with {n} initial_state events refused ({e}); falling back to PUT /state",
                  flush=True)
    if room_id is None:
        method = f"PUT /state x{args.state_concurrency}"
        room_id = await ca.create_room(preset="public_chat", name="big state")
        it = iter(range(n))
        done = 0

        async def worker():
            nonlocal done
            for i in it:
                await ca.send_state(room_id, STATE_TYPE, f"key{i:05d}", initial[i]["content"])
                done += 1
                if done % 1000 == 0:
                    el = time.monotonic() - t
                    print(f"    {done}/{n} state events, {el:.0f}s, {done / el:.0f}/s", flush=True)

        await asyncio.gather(*(worker() for _ in range(args.state_concurrency)))
    create_s = time.monotonic() - t
    cpu_a1 = tree_cpu_seconds(A.pid)
    q = urllib.parse.quote(room_id, safe="")
    state_a = await ca.call("GET", f"/rooms/{q}/state", timeout=600)
    expected = len(state_a) + 1  # + B's membership
    print(f"  room {room_id}: {len(state_a)} state events on A, created in {create_s:.1f}s ({method})",
          flush=True)

    cpu_b0 = tree_cpu_seconds(B.pid)
    cpu_a2 = tree_cpu_seconds(A.pid)
    t = time.monotonic()
    await cb.join(room_id, via=[A.server_name])
    join_s = time.monotonic() - t
    full_s = None
    state_b_count = 0
    deadline = t + args.join_timeout
    while time.monotonic() < deadline:
        try:
            st = await cb.call("GET", f"/rooms/{q}/state", timeout=max(1.0, deadline - time.monotonic()))
            state_b_count = len(st)
            if state_b_count >= expected:
                full_s = time.monotonic() - t
                break
        except Exception:  # noqa: BLE001
            pass
        await asyncio.sleep(0.2)
    cpu_b1 = tree_cpu_seconds(B.pid)
    cpu_a3 = tree_cpu_seconds(A.pid)
    return {
        "state_events": n,
        "room_state_on_A": len(state_a),
        "create_method": method,
        "create_s": create_s,
        "create_cpu_A_s": cpu_a1 - cpu_a0,
        "join_request_s": join_s,
        "full_state_s": full_s,
        "state_on_B": state_b_count,
        "join_cpu_B_s": cpu_b1 - cpu_b0,
        "join_cpu_A_s": cpu_a3 - cpu_a2,
    }


async def run(kind: str, args) -> dict:
    dirs = [bench_workdir(f"bench-fed-{kind}-{x}-", args.workdir) for x in "ab"]
    kw = {"database_url": args.synapse_db} if kind == "synapse" else {}
    A = make_server(kind, dirs[0], federation=True, **kw)
    B = make_server(kind, dirs[1], federation=True, **kw)
    print(f"starting {kind} A in {dirs[0]} and B in {dirs[1]}", flush=True)
    res: dict = {"server": kind}
    try:
        A.start()
        B.start()
        A.settle()
        B.settle()
        print(f"  A = {A.server_name}  B = {B.server_name}", flush=True)
        async with new_session() as session:
            if not args.skip_latency:
                res["latency"] = await latency_part(A, B, args, session)
                print_latency(res["latency"])
            if not args.skip_big_join:
                res["big_join"] = await big_join_part(A, B, args, session)
                print_big_join(res["big_join"])
        res["peak_rss_mb"] = {"A": tree_peak_rss_mb(A.pid), "B": tree_peak_rss_mb(B.pid)}
    finally:
        A.stop()
        B.stop()
        if not args.keep:
            for d in dirs:
                shutil.rmtree(d, ignore_errors=True)
    return res


def _seconds(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 1000:.1f} ms" if v < 10 else f"{v:.1f} s"


def print_latency(r: dict) -> None:
    print(f"  small-room join over federation: {r['small_room_join_s'] * 1000:.0f} ms")
    for key in ("a_to_b", "b_to_a"):
        d = r[key]
        print(f"  send->remote /sync {key.replace('_', ' ')}: p50 {fmt_ms(d['p50'])}  p99 {fmt_ms(d['p99'])}"
              f"  max {fmt_ms(d['max'])}  ({d['delivered']}/{d['messages']} delivered,"
              f" {d['send_errors']} send errors)")


def print_big_join(r: dict) -> None:
    print(f"  room with {r['state_events']} extra state events ({r['room_state_on_A']} state events on A):")
    print(f"    creation ({r['create_method']}): {r['create_s']:.1f}s, A CPU {r['create_cpu_A_s']:.1f}s")
    full = f"{r['full_state_s']:.1f}s" if r["full_state_s"] is not None else "not reached"
    print(f"    remote join: POST /join returned after {r['join_request_s']:.1f}s; full state on B after {full}"
          f" ({r['state_on_B']} events); CPU B {r['join_cpu_B_s']:.1f}s, A {r['join_cpu_A_s']:.1f}s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", choices=["wspr", "synapse", "both"], default="both")
    ap.add_argument("--messages", type=int, default=200, help="messages per direction")
    ap.add_argument("--rate", type=float, default=10.0, help="messages per second (open loop)")
    ap.add_argument("--drain-timeout", type=float, default=60.0)
    ap.add_argument("--state-events", type=int, default=10000)
    ap.add_argument("--join-timeout", type=float, default=900.0)
    ap.add_argument("--state-method", choices=["put", "createroom"], default="put",
                    help="put: PUT /rooms/{id}/state/... with --state-concurrency requests in flight; "
                         "createroom: one /createRoom with initial_state (quadratic in Synapse: "
                         "10,000 events took >3 min and 2 GB RSS without finishing)")
    ap.add_argument("--state-concurrency", type=int, default=4)
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--skip-big-join", action="store_true")
    ap.add_argument("--synapse-db", default=None, metavar="URL", help="PostgreSQL URL for Synapse")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    exit_on_sigterm()

    results = {}
    for kind in server_kinds(args.server):
        results[kind] = asyncio.run(run(kind, args))
    if "wspr" in results and "synapse" in results:
        print("\n== WSPR / Synapse ratio")
        w, s = results["wspr"], results["synapse"]
        rows = []
        if "latency" in w and "latency" in s:
            for d in ("a_to_b", "b_to_a"):
                for p in ("p50", "p99"):
                    rows.append((f"{d} {p}", w["latency"][d][p], s["latency"][d][p]))
        if "big_join" in w and "big_join" in s:
            for k in ("create_s", "join_request_s", "full_state_s"):
                rows.append((k, w["big_join"][k], s["big_join"][k]))
        for label, wv, sv in rows:
            ratio = wv / sv if (wv is not None and sv) else float("nan")
            print(f"  {label:16s} {ratio:7.3f}x   (wspr {_seconds(wv)}, synapse {_seconds(sv)})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
