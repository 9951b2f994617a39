"""Harness for the ports of Complement's federation tests (``tests/federation_*_test.go`` and
the federation parts of others, matrix-org/complement) in this package.

Complement drives the homeserver under test from a fake remote server; here that is
``tests/support/fake_homeserver.py`` (a real HTTPS server on loopback with its own key). A
scenario takes the server under test as a ``Side`` (client URL and server name) and a
``case`` context manager naming Complement's sub-tests:

    async def scenario(side: Side, case: CaseFn) -> None:
        srv = await start_fake_homeserver(test)
        alice = await side.register("alice")
        with case("send_join of a banned user is refused"):
            ...
    await on_wspr_and_synapse(self, scenario)

``on_wspr_and_synapse`` runs it against a real Synapse first (Complement's reference: a case
Synapse fails is a mistake in the port) and then against a fresh federating WSPR; the test
fails listing every failed case. ``WSPR_CONFORMANCE_SYNAPSE=0`` skips the Synapse runs.

Scenarios with two homeservers of the implementation under test (Complement's hs1, hs2) use
``two_wspr`` (two federating WSPRs).
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.trial import unittest

from tests.conformance.complement import CaseFn, _Cases, complement_synapse
from tests.federation.helpers import start_federating
from tests.support.differential import Side
from tests.support.wspr import RunningHomeServer

Scenario = Callable[[Side, CaseFn], Awaitable[None]]


def synapse_runs_enabled() -> bool:
    return os.environ.get("WSPR_CONFORMANCE_SYNAPSE", "1") != "0"


def wspr_side(hs: RunningHomeServer, label: str = "WSPR") -> Side:
    return Side(label, hs.base_url, hs.server_name)


async def on_wspr_and_synapse(test: unittest.TestCase, scenario: Scenario, synapse: bool = True, **wspr_federation: Any) -> None:
    """Run ``scenario`` on Complement's Synapse (unless ``synapse`` is off), then on a fresh
    federating WSPR; fail listing the failed cases."""
    sides: list[Side] = []
    if synapse and synapse_runs_enabled():
        syn = await complement_synapse()
        sides.append(Side("Synapse", syn.client_url, syn.server_name))
    hs = await start_federating(test, **wspr_federation)
    sides.append(wspr_side(hs))
    results: list[_Cases] = []
    for side in sides:
        cases = _Cases(side.label)
        try:
            await scenario(side, cases.case)
        except unittest.SkipTest:
            raise
        except Exception as e:  # noqa: BLE001 - set-up outside a case failed: report it like a case
            tb = "".join(traceback.format_exception(type(e), e, e.__traceback__, limit=-4))
            cases.failures.append(f"[{side.label}] (outside a case) {e!r}\n{tb}")
        results.append(cases)
    wspr = results[-1]
    reference = results[:-1]
    if reference and reference[0].failures:
        raise AssertionError("the port is wrong: Synapse fails it\n" + "\n".join(reference[0].failures + wspr.failures))
    if wspr.failures:
        raise AssertionError(f"WSPR fails {len(wspr.failures)} case(s):\n" + "\n".join(wspr.failures))


async def run_cases(label: str, scenario: Callable[[CaseFn], Awaitable[None]]) -> None:
    """One run of a scenario's cases (for scenarios between WSPR servers only)."""
    cases = _Cases(label)
    try:
        await scenario(cases.case)
    except unittest.SkipTest:
        raise
    except Exception as e:  # noqa: BLE001
        tb = "".join(traceback.format_exception(type(e), e, e.__traceback__, limit=-4))
        cases.failures.append(f"[{label}] (outside a case) {e!r}\n{tb}")
    if cases.failures:
        raise AssertionError(f"{len(cases.failures)} case(s) failed:\n" + "\n".join(cases.failures))


async def default_room_version(client: Any) -> str:
    caps = await client.get("/capabilities")
    return str(caps["capabilities"]["m.room_versions"]["default"])


async def start_federating_on(test: unittest.TestCase, host: str, **federation: Any) -> RunningHomeServer:
    """A federating WSPR named ``host:PORT`` (its federation listener takes every loopback
    address): server ACLs ignore ports, so a server to be denied needs a host of its own
    (127.0.0.2 next to the others' 127.0.0.1)."""
    from tests.federation.helpers import LOOPBACK_FEDERATION
    from tests.support.synapse import free_port
    from tests.support.wspr import start_homeserver

    port = free_port()
    fed = dict(LOOPBACK_FEDERATION)
    fed.update(federation)
    return await start_homeserver(test, server_name=f"{host}:{port}", federation_port=port, start_extras=True, federation=fed)


async def stop_server(rs: RunningHomeServer) -> None:
    """Stops a server started by ``start_federating`` (its memory goes with it)."""
    await rs.hs.stop_extras()
    await rs.hs.stop()


async def start_again(test: unittest.TestCase, rs: RunningHomeServer) -> RunningHomeServer:
    """The same server (configuration, database, federation port) started afresh; its
    client port is new: clients need ``base_url`` of the returned server."""
    from twisted.internet import defer

    from homeserver.app import HomeServer
    from homeserver.config import load_config

    hs = HomeServer(load_config(rs.config_path))
    await hs.start()
    await hs.start_extras()

    async def stop() -> None:
        await hs.stop_extras()
        await hs.stop()

    test.addCleanup(lambda: defer.ensureDeferred(stop()))
    return RunningHomeServer(hs, rs.config_path)


async def cut_federation(rs: RunningHomeServer) -> None:
    """The server's federation port goes away, with the connections open on it."""
    from tests.federation.helpers import drop_listener

    await drop_listener(rs.hs.federation.listener)
    rs.hs.federation.listener = None


def restore_federation(rs: RunningHomeServer) -> None:
    from federation.transport.server import start_federation_listener

    rs.hs.federation.listener = start_federation_listener(rs.hs)
