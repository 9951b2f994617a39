"""Two (or more) WSPR servers federating on loopback, and raw signed requests."""

from __future__ import annotations

import json
from typing import Any

import treq
from twisted.internet import defer, reactor, task
from twisted.trial import unittest
from twisted.web.client import Agent, HTTPConnectionPool

from federation.transport.client import TLSPolicy
from tests.support.synapse import free_port
from tests.support.wspr import RunningHomeServer, start_homeserver

LOOPBACK_FEDERATION = {"verify_certificates": False, "ip_range_blocklist": [], "min_retry_interval": 0.2, "max_retry_interval": 1.0}


async def start_federating(test: unittest.TestCase, database: str = "sqlite", **federation: Any) -> RunningHomeServer:
    port = free_port()
    fed = dict(LOOPBACK_FEDERATION)
    fed.update(federation)
    return await start_homeserver(
        test, server_name=f"127.0.0.1:{port}", federation_port=port, start_extras=True, federation=fed, database=database
    )


class _InsecurePolicy:
    def __init__(self) -> None:
        self._tls = TLSPolicy(False, None)

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        return self._tls.creator_for(hostname.decode())


async def raw_federation_request(
    port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """An HTTPS request to a federation listener with exactly the given headers."""
    from twisted.web.iweb import IPolicyForHTTPS
    from zope.interface import implementer

    policy = implementer(IPolicyForHTTPS)(_InsecurePolicy)()
    agent = Agent(reactor, contextFactory=policy, pool=HTTPConnectionPool(reactor, persistent=False))
    data = json.dumps(body).encode() if body is not None else None
    hdrs = {k: [v] for k, v in (headers or {}).items()}
    if data is not None:
        hdrs["Content-Type"] = ["application/json"]
    resp = await treq.request(method, f"https://127.0.0.1:{port}{path}".encode(), data=data, headers=hdrs, agent=agent)
    content = await treq.content(resp)
    try:
        parsed = json.loads(content) if content else None
    except ValueError:
        parsed = content
    return resp.code, parsed


async def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> None:
    """Poll an (async or sync) predicate until it is true."""
    waited = 0.0
    while True:
        value = predicate()
        if isinstance(value, defer.Deferred) or hasattr(value, "__await__"):
            value = await value
        if value:
            return
        if waited >= timeout:
            raise AssertionError("condition not met in time")
        await task.deferLater(reactor, interval, lambda: None)
        waited += interval


async def drop_listener(port: Any) -> None:
    """Stop a federation listener and abort every connection open on it (an outage)."""
    from federation.transport.server import stop_federation_listener

    await stop_federation_listener(port)
