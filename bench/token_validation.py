"""How many requests per second one WSPR process authenticates with JWT access tokens,
against the opaque tokens looked up in the database, measured in the same run.

Two measurements:

1. ``validation``: the authentication step alone, in-process: ``AuthHandler.get_user_by_token``
   on a JWT access token (signature, expiry, revocation list; no database read) and on an
   opaque token (one indexed lookup in a database thread), with ``--concurrency`` callers
   in flight. JWTs are measured twice: the same token again and again (its signature is
   checked once and remembered) and a fresh token every call (a signature check each).
2. ``http``: ``GET /_matrix/client/v3/account/whoami`` over HTTP against two ``wspr run``
   processes on this machine, one with ``access_token_format: jwt``, one with ``opaque``,
   with ``--concurrency`` closed-loop aiohttp clients; rounds alternate between them.

Usage (from the repository root, in the venv):

    python bench/token_validation.py [--seconds 3] [--rounds 3] [--concurrency 16]
                                     [--database sqlite|postgresql://postgres@127.0.0.1:5432/postgres]
                                     [--skip-http] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


_created_databases: list[str] = []


def _postgres_database(args: argparse.Namespace) -> str:
    """A fresh PostgreSQL database on the server of --database (dropped at the end)."""
    import os as _os

    from tests.support.wspr import create_postgres_database

    if "://" in args.database:
        _os.environ.setdefault("WSPR_TEST_POSTGRES", args.database)
    url = create_postgres_database()
    _created_databases.append(url)
    return url


# -- 1. in-process validation --------------------------------------------------------


async def _validation(args: argparse.Namespace) -> dict[str, Any]:
    import yaml
    from twisted.internet import defer

    from homeserver.app import HomeServer
    from homeserver.cli import main as wspr_main
    from homeserver.config import load_config

    directory = tempfile.mkdtemp(prefix="wspr-bench-tokens-")
    init = ["init", directory, "--server-name", "localhost", "--http-port", "0", "--federation-port", "0"]
    if args.database.startswith("postgres"):
        init += ["--database", _postgres_database(args)]
    assert wspr_main(init) == 0
    path = os.path.join(directory, "wspr.yaml")
    with open(path) as f:
        cfg = yaml.safe_load(f)
    cfg.update({"access_token_format": "opaque", "rate_limits": {"enabled": False}, "web_client": {"enabled": False}, "log_level": "WARNING"})
    cfg.setdefault("sfu", {})["enabled"] = False
    cfg["listeners"]["federation"]["enabled"] = False
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    hs = HomeServer(load_config(path))
    await hs.start()
    try:
        user_id = await hs.registration.register_user("bench", "pw")
        opaque = (await hs.auth.create_login(user_id, "OPAQUE", None))["access_token"]
        jwt_token = (await hs.auth.sessions.create(user_id, "JWT", None, kind="password", refreshable=True)).access_token
        session = hs.auth.sessions.codec.verify(jwt_token)
        fresh_tokens = [
            hs.auth.sessions.codec.issue(
                user_id=user_id, device_id="JWT", session_id=session.session_id, is_guest=False, lifetime_s=3600
            )
            for _ in range(100_000)
        ]
        fresh_iter = iter(fresh_tokens)

        async def run(kind: str) -> float:
            get_token = {"opaque": lambda: opaque, "jwt": lambda: jwt_token, "jwt-fresh": lambda: next(fresh_iter)}[kind]
            done = 0
            deadline = time.perf_counter() + args.seconds

            async def worker() -> None:
                nonlocal done
                while time.perf_counter() < deadline:
                    await hs.auth.get_user_by_token(get_token())
                    done += 1

            start = time.perf_counter()
            await defer.gatherResults([defer.ensureDeferred(worker()) for _ in range(args.concurrency)])
            return done / (time.perf_counter() - start)

        results: dict[str, list[float]] = {"opaque": [], "jwt": [], "jwt-fresh": []}
        for _ in range(args.rounds):
            for kind in results:
                results[kind].append(await run(kind))
        return {k: statistics.median(v) for k, v in results.items()} | {"rounds": results}
    finally:
        await hs.stop()


# -- 2. over HTTP ------------------------------------------------------------------------


async def _http(args: argparse.Namespace) -> dict[str, Any]:
    from bench.common import WsprServer, new_session, self_cpu_seconds, tree_cpu_seconds

    servers = {}
    extra_db: dict[str, Any] = {}
    for kind in ("jwt", "opaque"):
        workdir = tempfile.mkdtemp(prefix=f"wspr-bench-{kind}-")
        extra: dict[str, Any] = {"access_token_format": kind, "log_level": "WARNING", **extra_db}
        if args.database.startswith("postgres"):
            extra["database"] = {"url": _postgres_database(args)}
        extra["listeners"] = {"federation": {"enabled": False}}
        server = WsprServer(workdir, extra_config=extra)
        server.start()
        servers[kind] = server
    try:
        tokens = {}
        for kind, server in servers.items():
            user = server.register_user("bench", "pw")
            tokens[kind] = user["access_token"]
        assert tokens["jwt"].startswith("eyJ") and not tokens["opaque"].startswith("eyJ")
        results: dict[str, list[float]] = {"jwt": [], "opaque": []}
        cpu: dict[str, list[float]] = {"jwt": [], "opaque": []}
        generator_cpu: list[float] = []
        async with new_session(limit=args.concurrency) as session:
            for _ in range(args.rounds):
                for kind, server in servers.items():
                    url = server.client_url + "/_matrix/client/v3/account/whoami"
                    headers = {"Authorization": "Bearer " + tokens[kind]}
                    done = 0
                    deadline = time.perf_counter() + args.seconds

                    async def worker() -> None:
                        nonlocal done
                        while time.perf_counter() < deadline:
                            async with session.get(url, headers=headers) as r:
                                assert r.status == 200, await r.text()
                                await r.read()
                            done += 1

                    cpu0, gen0, start = tree_cpu_seconds(server.pid), self_cpu_seconds(), time.perf_counter()
                    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
                    elapsed = time.perf_counter() - start
                    results[kind].append(done / elapsed)
                    cpu[kind].append((tree_cpu_seconds(server.pid) - cpu0) / max(done, 1) * 1e6)
                    generator_cpu.append((self_cpu_seconds() - gen0) / elapsed)
        return {
            "jwt": statistics.median(results["jwt"]),
            "opaque": statistics.median(results["opaque"]),
            "server_cpu_us_per_request": {k: statistics.median(v) for k, v in cpu.items()},
            "generator_cpu_share": max(generator_cpu),
            "rounds": results,
        }
    finally:
        for server in servers.values():
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--database", default="sqlite", help="sqlite, postgresql, or an admin DSN postgresql://...")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from twisted.internet import defer, task

    out: dict[str, Any] = {}

    def validation(reactor: Any) -> Any:
        async def go() -> None:
            out["validation"] = await _validation(args)

        return defer.ensureDeferred(go())

    try:
        task.react(validation)
    except SystemExit as e:
        if e.code not in (0, None):
            raise
    v = out["validation"]
    print(f"validation only ({args.database}, {args.concurrency} in flight, median of {args.rounds} x {args.seconds:g} s):")
    print(f"  opaque (database lookup)      {v['opaque']:>10,.0f} /s")
    print(f"  JWT (same token again)        {v['jwt']:>10,.0f} /s   x{v['jwt'] / v['opaque']:.1f}")
    print(f"  JWT (a new token every call)  {v['jwt-fresh']:>10,.0f} /s   x{v['jwt-fresh'] / v['opaque']:.1f}")
    if not args.skip_http:
        h = asyncio.run(_http(args))
        out["http"] = h
        print(f"GET /account/whoami over HTTP ({args.concurrency} clients, median of {args.rounds} x {args.seconds:g} s):")
        print(f"  opaque   {h['opaque']:>8,.0f} req/s   {h['server_cpu_us_per_request']['opaque']:.0f} us server CPU/request")
        print(f"  JWT      {h['jwt']:>8,.0f} req/s   {h['server_cpu_us_per_request']['jwt']:.0f} us server CPU/request   x{h['jwt'] / h['opaque']:.2f}")
        print(f"  load generator CPU: up to {h['generator_cpu_share'] * 100:.0f} % of a core")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    from tests.support.wspr import drop_postgres_database

    for url in _created_databases:
        drop_postgres_database(url)
    return 0


if __name__ == "__main__":
    # task.react stops the reactor; the HTTP part runs on asyncio afterwards.
    sys.exit(main())
