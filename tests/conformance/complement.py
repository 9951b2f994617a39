"""Harness for the ports of Complement's client-server tests (``tests/csapi/`` of
matrix-org/complement) in ``tests/conformance/test_csapi_*.py``.

Each port is a scenario that takes one server (a ``Side``: a fresh WSPR, or a Synapse set up as
Complement sets up its own, see ``COMPLEMENT_SYNAPSE_CONFIG``) and a
``case`` context manager naming Complement's sub-tests. ``on_both`` runs the scenario on the
shared Synapse first and then on a fresh WSPR: a case that fails on Synapse is a mistake in
the port (Synapse 1.163 passes all of Complement), a case that fails only on WSPR is a
conformance failure. Like Complement's ``t.Run``, a failing case does not stop the cases
after it; the test fails at the end listing every failed case of each server.

    async def scenario(side: Side, case: CaseFn) -> None:
        alice = await side.register("alice")
        with case("GET /devices lists the device"):
            devices = await alice.get("/devices")
            assert ...
    await on_both(self, scenario)
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import shutil
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import quote

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial import unittest

from tests.support.differential import ServerPair, Side
from tests.support.synapse import SynapseServer
from tests.support.wspr import MatrixClient, start_homeserver

V1 = "/_matrix/client/v1"
V3 = "/_matrix/client/v3"

CaseFn = Callable[[str], contextlib.AbstractContextManager[None]]
Scenario = Callable[[Side, CaseFn], Awaitable[None]]


class _Cases:
    def __init__(self, label: str) -> None:
        self.label = label
        self.failures: list[str] = []
        self.passed: list[str] = []

    @contextlib.contextmanager
    def case(self, name: str) -> Iterator[None]:
        try:
            yield
        except unittest.SkipTest:
            raise
        except Exception as e:  # noqa: BLE001 - every failure of a case is reported, the next case runs
            tb = "".join(traceback.format_exception(type(e), e, e.__traceback__, limit=-3))
            self.failures.append(f"[{self.label}] {name}: {e!r}\n{tb}")
        else:
            self.passed.append(name)


# Complement's Synapse configuration (synapse's docker/complement/conf/workers-shared-extra.yaml.j2)
# where it matters to the client API: no /sync response cache (an initial /sync repeated
# within two minutes would get the first answer), rooms may be published to the directory.
# Rooms default to version 11 as on WSPR: Synapse 1.163 defaults to 12, where a creator
# must not appear in the power levels' users, which Complement's cases put there.
COMPLEMENT_SYNAPSE_CONFIG: dict[str, Any] = {
    "allow_guest_access": True,
    "caches": {"sync_response_cache_duration": 0},
    "room_list_publication_rules": [{"action": "allow"}],
    "default_room_version": "11",
    "url_preview_enabled": False,
}

_synapse: SynapseServer | None = None


async def complement_synapse() -> SynapseServer:
    """One Synapse configured as Complement's for every port in the process."""
    global _synapse
    if _synapse is None:
        try:
            import synapse  # noqa: F401
        except ImportError as e:
            raise unittest.SkipTest("matrix-synapse is not installed (pip install matrix-synapse)") from e
        workdir = tempfile.mkdtemp(prefix="wspr-complement-synapse-")
        server = SynapseServer(workdir, log_level="WARNING", extra_config=COMPLEMENT_SYNAPSE_CONFIG)
        await server.start_async()
        _synapse = server

        def stop() -> None:
            server.stop()
            shutil.rmtree(workdir, True)

        atexit.register(stop)
    return _synapse


async def on_both(test: unittest.TestCase, scenario: Scenario, **wspr_overrides: Any) -> ServerPair:
    """Run ``scenario`` on Synapse, then on a fresh WSPR; fail listing the failed cases."""
    syn = await complement_synapse()
    hs = await start_homeserver(test, **wspr_overrides)
    pair = ServerPair(Side("WSPR", hs.base_url, hs.server_name), Side("Synapse", syn.client_url, syn.server_name))
    results: list[_Cases] = []
    for side in (pair.synapse, pair.wspr):
        cases = _Cases(side.label)
        try:
            await scenario(side, cases.case)
        except unittest.SkipTest:
            raise
        except Exception as e:  # noqa: BLE001 - set-up outside a case failed: report it like a case
            tb = "".join(traceback.format_exception(type(e), e, e.__traceback__, limit=-4))
            cases.failures.append(f"[{side.label}] (outside a case) {e!r}\n{tb}")
        results.append(cases)
    syn, wspr = results
    if syn.failures:
        raise AssertionError("the port is wrong: Synapse fails it\n" + "\n".join(syn.failures + wspr.failures))
    if wspr.failures:
        raise AssertionError(f"WSPR fails {len(wspr.failures)} case(s):\n" + "\n".join(wspr.failures))
    return pair


# --- client steps that Complement's client offers as helpers ---------------------------------


def q(value: str) -> str:
    return quote(value, safe="")


async def sleep(seconds: float) -> None:
    await deferLater(reactor, seconds, lambda: None)


async def expect(client: MatrixClient, method: str, path: str, body: Any = None, *, status: int = 200,
                 errcode: str | None = None, **kw: Any) -> Any:
    """One request whose status (and errcode) must be as given; returns the JSON body."""
    code, got = await client.raw(method, path, body, **kw)
    assert code == status, f"{method} {path}: HTTP {code} (wanted {status}): {got!r}"
    if errcode is not None:
        assert isinstance(got, dict) and got.get("errcode") == errcode, f"{method} {path}: {got!r}, wanted {errcode}"
    return got


_user_numbers = itertools.count(1)


async def new_user(side: Side, name: str, password: str = "correct horse") -> MatrixClient:
    """A fresh account on ``side``, however many were made with the same name."""
    return await side.register(f"{name}{next(_user_numbers)}", password)


async def login(side: Side, user: str, password: str = "correct horse", **extra: Any) -> MatrixClient:
    return await MatrixClient.login(side.base_url, user, password, **extra)


async def create_room(client: MatrixClient, **body: Any) -> str:
    return str((await client.post("/createRoom", body))["room_id"])


async def join(client: MatrixClient, room_id_or_alias: str, **body: Any) -> str:
    return str((await client.post(f"/join/{q(room_id_or_alias)}", body))["room_id"])


async def invite(client: MatrixClient, room_id: str, user_id: str, **body: Any) -> None:
    await client.post(f"/rooms/{q(room_id)}/invite", {"user_id": user_id, **body})


async def leave(client: MatrixClient, room_id: str, **body: Any) -> None:
    await client.post(f"/rooms/{q(room_id)}/leave", body)


async def send(client: MatrixClient, room_id: str, event_type: str, content: dict[str, Any]) -> str:
    client._txn += 1
    path = f"/rooms/{q(room_id)}/send/{q(event_type)}/c{client._txn}-{time.monotonic_ns()}"
    return str((await client.put(path, content))["event_id"])


async def send_state(client: MatrixClient, room_id: str, event_type: str, content: dict[str, Any], state_key: str = "") -> str:
    path = f"/rooms/{q(room_id)}/state/{q(event_type)}/{q(state_key)}"
    return str((await client.put(path, content))["event_id"])


async def get_state(client: MatrixClient, room_id: str, event_type: str, state_key: str = "") -> Any:
    return await client.get(f"/rooms/{q(room_id)}/state/{q(event_type)}/{q(state_key)}")


def sync_path(since: str | None = None, flt: Any = None, timeout: int = 0, **params: str) -> str:
    parts = [f"timeout={timeout}"]
    if since:
        parts.append(f"since={q(since)}")
    if flt is not None:
        parts.append("filter=" + q(flt if isinstance(flt, str) else json.dumps(flt)))
    parts += [f"{k}={q(v)}" for k, v in params.items()]
    return f"{V3}/sync?" + "&".join(parts)


async def sync_until(client: MatrixClient, check: Callable[[dict[str, Any]], bool], since: str | None = None,
                     flt: Any = None, wait: float = 10.0, **params: str) -> tuple[dict[str, Any], str]:
    """Complement's MustSyncUntil: incremental syncs from ``since`` until one response passes
    ``check``; returns that response and its next_batch."""
    deadline = time.monotonic() + wait
    seen = 0
    while True:
        body = await client.request("GET", sync_path(since, flt, timeout=1000 if since else 0, **params))
        seen += 1
        if check(body):
            return body, str(body["next_batch"])
        since = str(body["next_batch"])
        if time.monotonic() > deadline:
            raise AssertionError(f"sync_until: no matching sync in {seen} responses ({wait}s); last {json.dumps(body)[:1500]}")


def each(*checks: Callable[[dict[str, Any]], bool]) -> Callable[[dict[str, Any]], bool]:
    """Complement's MustSyncUntil with several checks: each must pass on some response
    (not necessarily the same one)."""
    passed = [False] * len(checks)

    def check(body: dict[str, Any]) -> bool:
        for i, c in enumerate(checks):
            passed[i] = passed[i] or c(body)
        return all(passed)

    return check


def joined_room(body: dict[str, Any], room_id: str) -> dict[str, Any]:
    return body.get("rooms", {}).get("join", {}).get(room_id, {})


def timeline(body: dict[str, Any], room_id: str, section: str = "join") -> list[dict[str, Any]]:
    return list(body.get("rooms", {}).get(section, {}).get(room_id, {}).get("timeline", {}).get("events", []))


def timeline_has(room_id: str, pred: Callable[[dict[str, Any]], bool], section: str = "join") -> Callable[[dict[str, Any]], bool]:
    return lambda body: any(pred(ev) for ev in timeline(body, room_id, section))


def has_event(event_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda ev: ev.get("event_id") == event_id


def joined_to(user_id: str, room_id: str) -> Callable[[dict[str, Any]], bool]:
    """Complement's SyncJoinedTo: the room is joined and the user's join is in its state or timeline."""

    def check(body: dict[str, Any]) -> bool:
        room = joined_room(body, room_id)
        events = room.get("state", {}).get("events", []) + room.get("timeline", {}).get("events", [])
        return any(
            e.get("type") == "m.room.member" and e.get("state_key") == user_id and e.get("content", {}).get("membership") == "join"
            for e in events
        )

    return check


def invited_to(room_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda body: room_id in body.get("rooms", {}).get("invite", {})


def left_room(room_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda body: room_id in body.get("rooms", {}).get("leave", {})


async def messages(client: MatrixClient, room_id: str, **params: Any) -> dict[str, Any]:
    query = "&".join(f"{k}={q(v if isinstance(v, str) else json.dumps(v))}" for k, v in {"dir": "b", **params}.items())
    return dict(await client.get(f"/rooms/{q(room_id)}/messages?{query}"))


async def eventually(probe: Callable[[], Awaitable[bool]], what: str, wait: float = 10.0) -> None:
    deadline = time.monotonic() + wait
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await sleep(0.1)


__all__ = [
    "V1", "V3", "CaseFn", "Side", "MatrixClient", "on_both", "q", "sleep", "expect", "new_user", "login", "create_room", "join",
    "invite", "leave", "send", "send_state", "get_state", "sync_path", "sync_until", "joined_room", "timeline",
    "timeline_has", "has_event", "each", "joined_to", "invited_to", "left_room", "messages", "eventually",
]
