#!/usr/bin/env python
"""The WebSocket stream (docs/websocket.md) against long-polled /sync, and how many idle
sockets one WSPR process holds.

    python bench/websocket.py [--receivers 5] [--messages 400] [--rate 20]
                              [--idle 10000] [--idle-procs 4] [--json out.json]

One WSPR server (``wspr run``, SQLite), started here with the file-descriptor limit raised
to the hard limit (``resource.setrlimit``; the server inherits it).

1. **Latency.** A sender and ``--receivers`` receivers on each transport share one room:
   half the receivers read the WebSocket stream (sync mode, acknowledging each frame), half
   long-poll ``/sync`` (``timeout=30000``), all with the same filter (``SYNC_FILTER`` of
   bench/common.py). The sender sends ``--messages`` messages at ``--rate`` per second
   (open loop: each send starts on schedule), each carrying a ``bench_id``. For every
   (message, receiver) pair: the time from the start of the PUT to the frame or /sync
   response carrying the event. p50/p99 per transport, measured in the same run, interleaved.
   Then the same with every receiver on the WebSocket, and with every receiver on /sync
   (new users and room each time): the server CPU each transport costs per delivery.
2. **Idle sockets.** ``--idle`` sockets (``--idle-procs`` client processes, asyncio +
   aiohttp, loopback) connect, authenticate with the header, subscribe (sync mode, from a
   token, so no initial sync) and then only answer pings. The server's RSS (VmRSS) before
   and after, once every socket got its hello and subscribed: memory per idle socket and
   sockets per GiB. Sockets belong to ``--idle-users`` users (one device each: the bench
   raises ``websocket.max_per_device``; per-socket memory does not depend on it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import resource
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import (
    SYNC_FILTER,
    Client,
    bench_workdir,
    exit_on_sigterm,
    make_server,
    new_session,
    percentile,
    self_cpu_seconds,
    tree_cpu_seconds,
)

WS_PATH = "/_matrix/client/unstable/org.wspr.websocket"
PASSWORD = "bench-password"


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://", 1) + WS_PATH


def bench_ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["content"]["bench_id"] for e in events if isinstance(e.get("content"), dict) and "bench_id" in e["content"]]


# --------------------------------------------------------------------------- latency
async def ws_receiver(session: Any, base_url: str, client: Client, since: str, room_id: str,
                      seen: dict[str, float], ready: asyncio.Event, stop: asyncio.Event, errors: list[str]) -> None:
    async with session.ws_connect(ws_url(base_url), headers=client.headers, max_msg_size=0) as ws:
        await ws.send_json({"type": "subscribe", "mode": "sync", "since": since, "filter": json.loads(SYNC_FILTER)})
        ready.set()
        while not stop.is_set():
            try:
                msg = await asyncio.wait_for(ws.receive(), 1.0)
            except TimeoutError:
                continue
            if msg.type != 1:  # aiohttp.WSMsgType.TEXT
                errors.append(f"ws closed: {msg.type} {msg.data}")
                return
            now = time.perf_counter()
            frame = json.loads(msg.data)
            if frame["type"] == "sync":
                room = frame["data"]["rooms"]["join"].get(room_id)
                if room:
                    if room["timeline"]["limited"]:
                        errors.append("ws: limited timeline")
                    for bid in bench_ids(room["timeline"]["events"]):
                        seen.setdefault(bid, now)
                await ws.send_json({"type": "ack", "token": frame["token"]})


async def sync_receiver(client: Client, since: str, room_id: str, seen: dict[str, float],
                        stop: asyncio.Event, errors: list[str]) -> None:
    token = since
    while not stop.is_set():
        try:
            body = await client.sync(token, 30000, SYNC_FILTER)
        except Exception as e:  # noqa: BLE001 - reported, the loop goes on
            errors.append(f"/sync: {e}")
            await asyncio.sleep(0.5)
            continue
        now = time.perf_counter()
        token = body["next_batch"]
        room = body["rooms"]["join"].get(room_id)
        if room:
            if room["timeline"]["limited"]:
                errors.append("/sync: limited timeline")
            for bid in bench_ids(room["timeline"]["events"]):
                seen.setdefault(bid, now)


async def latency(server: Any, users: list[dict], args: argparse.Namespace, n_ws: int) -> dict[str, Any]:
    """``n_ws`` of the receivers on the WebSocket, the others on /sync."""
    async with new_session() as session:
        clients = [Client(session, server.client_url, u) for u in users]
        sender, receivers = clients[0], clients[1:]
        room_id = await sender.create_room(preset="public_chat")
        for c in receivers:
            await c.join(room_id)
        ws_clients, sync_clients = receivers[:n_ws], receivers[n_ws:]
        seen = {c.user_id: {} for c in receivers}  # type: dict[str, dict[str, float]]
        stop = asyncio.Event()
        errors: list[str] = []
        tasks = []
        for c in receivers:
            since = (await c.sync(None, 0, SYNC_FILTER))["next_batch"]
            if c in ws_clients:
                ready = asyncio.Event()
                tasks.append(asyncio.create_task(
                    ws_receiver(session, server.client_url, c, since, room_id, seen[c.user_id], ready, stop, errors)))
                await ready.wait()
            else:
                tasks.append(asyncio.create_task(sync_receiver(c, since, room_id, seen[c.user_id], stop, errors)))
        await asyncio.sleep(1.0)
        # warm-up
        for i in range(10):
            await sender.send_message(room_id, {"msgtype": "m.text", "body": "warm", "bench_id": f"w{i}"})
        await asyncio.sleep(1.0)

        sent: dict[str, float] = {}
        cpu0, own0 = tree_cpu_seconds(server.pid), self_cpu_seconds()
        t0 = time.perf_counter()

        async def send_one(i: int) -> None:
            bid = f"m{i}"
            sent[bid] = time.perf_counter()
            await sender.send_message(room_id, {"msgtype": "m.text", "body": f"message {i}", "bench_id": bid})

        sends = []
        for i in range(args.messages):
            delay = t0 + i / args.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sends.append(asyncio.create_task(send_one(i)))
        await asyncio.gather(*sends)
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline and not all(len([b for b in s if b in sent]) == len(sent) for s in seen.values()):
            await asyncio.sleep(0.1)
        elapsed = time.perf_counter() - t0
        cpu = tree_cpu_seconds(server.pid) - cpu0
        own = self_cpu_seconds() - own0
        stop.set()
        for t in tasks:
            t.cancel()  # parked long-polls end with the cancelled requests
        await asyncio.gather(*tasks, return_exceptions=True)

    def delays(group: list[Client]) -> tuple[list[float], int]:
        out, missing = [], 0
        for c in group:
            for bid, t in sent.items():
                if bid in seen[c.user_id]:
                    out.append(seen[c.user_id][bid] - t)
                else:
                    missing += 1
        return out, missing

    ws_d, ws_missing = delays(ws_clients)
    sync_d, sync_missing = delays(sync_clients)
    return {
        "messages": args.messages,
        "rate_per_s": args.rate,
        "receivers_per_transport": {"websocket": len(ws_clients), "sync": len(sync_clients)},
        "websocket_ms": {"p50": percentile(ws_d, 50) * 1000, "p99": percentile(ws_d, 99) * 1000, "missing": ws_missing},
        "sync_ms": {"p50": percentile(sync_d, 50) * 1000, "p99": percentile(sync_d, 99) * 1000, "missing": sync_missing},
        "server_cpu_per_message_ms": cpu / args.messages * 1000,
        "server_cpu_per_delivery_ms": cpu / (args.messages * len(receivers)) * 1000,
        "load_generator_cpu_pct": own / elapsed * 100,
        "errors": errors[:10],
        "error_count": len(errors),
    }


# --------------------------------------------------------------------------- idle sockets
def idle_worker(base_url: str, tokens: list[tuple[str, str]], count: int, conn: Any) -> None:
    """A client process: ``count`` idle sockets spread over ``tokens``; reports, then holds
    them until told to stop."""
    raise_fd_limit()

    async def main() -> None:
        import aiohttp

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        sockets: list[Any] = []
        readers: list[asyncio.Task[None]] = []
        failures: dict[str, int] = {}
        sem = asyncio.Semaphore(100)  # the listen backlog is small: connect in waves

        async def reader(ws: Any) -> None:
            # Reading answers the server's pings (autoping); idle frames are dropped.
            async for _ in ws:
                pass

        async def one(i: int) -> None:
            token, since = tokens[i % len(tokens)]
            for attempt in range(5):
                if attempt:
                    # As clients reconnect: back off (the listen backlog overflowed).
                    await asyncio.sleep(2 ** attempt * (0.5 + random.random()))
                async with sem:
                    try:
                        ws = await session.ws_connect(
                            ws_url(base_url), headers={"Authorization": f"Bearer {token}"}, autoping=True,
                            heartbeat=None, timeout=aiohttp.ClientWSTimeout(ws_close=5),
                        )
                        hello = await asyncio.wait_for(ws.receive_json(), 60)
                        assert hello["type"] == "hello", hello
                        await ws.send_json({"type": "subscribe", "mode": "sync", "since": since,
                                            "filter": json.loads(SYNC_FILTER)})
                        sockets.append(ws)
                        readers.append(asyncio.create_task(reader(ws)))
                        return
                    except Exception as e:  # noqa: BLE001 - counted by kind, retried
                        failures[type(e).__name__] = failures.get(type(e).__name__, 0) + 1

        await asyncio.gather(*(one(i) for i in range(count)))
        conn.send({"connected": len(sockets), "failures": failures})
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, conn.recv)  # until told to stop
        closed = sum(1 for ws in sockets if ws.closed)
        for t in readers:
            t.cancel()
        await session.close()
        conn.send({"closed_by_server": closed})

    asyncio.run(main())


def idle(server: Any, tokens: list[tuple[str, str]], args: argparse.Namespace) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    time.sleep(2.0)
    before = rss_kib(server.pid)
    cpu0 = tree_cpu_seconds(server.pid)
    t0 = time.perf_counter()
    per_proc = [args.idle // args.idle_procs + (1 if i < args.idle % args.idle_procs else 0) for i in range(args.idle_procs)]
    workers = []
    for i, count in enumerate(per_proc):
        parent, child = ctx.Pipe()
        p = ctx.Process(target=idle_worker, args=(server.client_url, tokens[i::args.idle_procs] or tokens, count, child))
        p.start()
        workers.append((p, parent))
    reports = [conn.recv() for _, conn in workers]
    connect_s = time.perf_counter() - t0
    connected = sum(r["connected"] for r in reports)
    # Let the subscriptions settle (their first generations, presence refreshes).
    time.sleep(max(5.0, args.idle / 2000))
    after = rss_kib(server.pid)
    cpu = tree_cpu_seconds(server.pid) - cpu0
    # Idle for a while: heartbeats and pings only.
    cpu_idle0 = tree_cpu_seconds(server.pid)
    time.sleep(args.idle_hold)
    cpu_idle = tree_cpu_seconds(server.pid) - cpu_idle0
    held = rss_kib(server.pid)
    for _, conn in workers:
        conn.send("stop")
    closed = sum(conn.recv()["closed_by_server"] for _, conn in workers)
    for p, _ in workers:
        p.join(30)
    per_client_kib = (after - before) / connected if connected else float("nan")
    return {
        "requested": args.idle,
        "connected": connected,
        # failed attempts (retried with back-off, as reconnecting clients do)
        "failures": sum(sum(r["failures"].values()) for r in reports),
        "failure_kinds": [r["failures"] for r in reports if r["failures"]],
        "connect_seconds": connect_s,
        "server_cpu_to_connect_s": cpu,
        "rss_before_mib": before / 1024,
        "rss_after_mib": after / 1024,
        "rss_after_hold_mib": held / 1024,
        "per_client_kib": per_client_kib,
        "clients_per_gib": (1024 * 1024) / per_client_kib if connected else 0,
        "hold_seconds": args.idle_hold,
        "server_cpu_idle_pct": cpu_idle / args.idle_hold * 100,
        "closed_by_server_while_idle": closed,
    }


# --------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--receivers", type=int, default=10, help="receivers per phase (half per transport in the first)")
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--idle", type=int, default=10000)
    parser.add_argument("--idle-procs", type=int, default=4)
    parser.add_argument("--idle-users", type=int, default=100)
    parser.add_argument("--idle-hold", type=float, default=70.0, help="seconds the idle sockets are held (heartbeats)")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-idle", action="store_true")
    parser.add_argument("--workdir")
    parser.add_argument("--json")
    args = parser.parse_args()
    exit_on_sigterm()
    fd_limit = raise_fd_limit()
    if not args.skip_idle and args.idle + 500 > fd_limit:
        sys.exit(f"--idle {args.idle} needs more file descriptors than the hard limit ({fd_limit})")

    server = make_server("wspr", bench_workdir("wspr-ws-bench-", args.workdir),
                         extra_config={"websocket": {"max_per_device": 100_000}, "log_level": "WARNING"})
    server.start()
    results: dict[str, Any] = {"fd_limit": fd_limit}
    try:
        if not args.skip_latency:
            n = args.receivers
            users = [server.register_user(f"lat{i}", PASSWORD) for i in range(3 * (n + 1))]
            groups = [users[i * (n + 1):(i + 1) * (n + 1)] for i in range(3)]
            # Interleaved in one room: the latency comparison. Then each transport alone:
            # the server CPU each costs per delivered message.
            lat = results["latency"] = asyncio.run(latency(server, groups[0], args, n // 2))
            ws_only = results["websocket_only"] = asyncio.run(latency(server, groups[1], args, n))
            sync_only = results["sync_only"] = asyncio.run(latency(server, groups[2], args, 0))
            print(f"latency ({args.messages} messages at {args.rate}/s, {lat['receivers_per_transport']} receivers):")
            for name in ("websocket", "sync"):
                d = lat[f"{name}_ms"]
                print(f"  {name:9s} p50 {d['p50']:6.1f} ms   p99 {d['p99']:6.1f} ms   missing {d['missing']}")
            print(f"  ratio websocket/sync: p50 {lat['websocket_ms']['p50'] / lat['sync_ms']['p50']:.2f}"
                  f"  p99 {lat['websocket_ms']['p99'] / lat['sync_ms']['p99']:.2f}")
            print(f"  server CPU {lat['server_cpu_per_message_ms']:.1f} ms/message, load generator "
                  f"{lat['load_generator_cpu_pct']:.0f}% of a core, errors {lat['error_count']}")
            for name, r, key in (("websocket only", ws_only, "websocket_ms"), ("/sync only", sync_only, "sync_ms")):
                print(f"{name} ({n} receivers): p50 {r[key]['p50']:.1f} ms p99 {r[key]['p99']:.1f} ms, server CPU "
                      f"{r['server_cpu_per_message_ms']:.1f} ms/message = {r['server_cpu_per_delivery_ms']:.2f} ms per "
                      f"delivery, missing {r[key]['missing']}, errors {r['error_count']}")
            print(f"  CPU per delivery websocket/sync: "
                  f"{ws_only['server_cpu_per_delivery_ms'] / sync_only['server_cpu_per_delivery_ms']:.2f}")
        if not args.skip_idle:
            users = [server.register_user(f"idle{i}", PASSWORD) for i in range(args.idle_users)]

            async def tokens() -> list[tuple[str, str]]:
                async with new_session() as session:
                    out = []
                    for u in users:
                        c = Client(session, server.client_url, u)
                        out.append((u["access_token"], (await c.sync(None, 0, SYNC_FILTER))["next_batch"]))
                    return out

            results["idle"] = idle(server, asyncio.run(tokens()), args)
            r = results["idle"]
            print(f"idle sockets: {r['connected']}/{r['requested']} connected in {r['connect_seconds']:.1f} s "
                  f"({r['failures']} attempts retried {r['failure_kinds']}), server RSS {r['rss_before_mib']:.0f} -> {r['rss_after_mib']:.0f} MiB "
                  f"({r['rss_after_hold_mib']:.0f} after {r['hold_seconds']:.0f} s idle)")
            print(f"  {r['per_client_kib']:.1f} KiB per idle socket = {r['clients_per_gib']:.0f} sockets per GiB; "
                  f"server CPU while idle {r['server_cpu_idle_pct']:.1f}% of a core; "
                  f"closed by the server while idle: {r['closed_by_server_while_idle']}")
    finally:
        server.stop()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
