"""A push gateway on loopback for tests: a real HTTP server that records every
``POST /_matrix/push/v1/notify`` it receives and answers as a script says.

    gateway = await PushGateway.start(test)                 # 127.0.0.1, any free port
    gateway = await PushGateway.start(test, host="::1")     # an IPv6 literal URL
    gateway.script = [500, 500]                             # the next answers' statuses (then 200)
    await gateway.wait_for(3)                               # until three requests have arrived
    gateway.notifications                                   # the bodies' "notification" objects
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer, reactor
from twisted.trial import unittest
from twisted.web import resource, server

NOTIFY_PATH = "/_matrix/push/v1/notify"


@dataclass
class Received:
    at: float  # time.monotonic() of arrival
    path: str
    body: Any
    status: int  # what the gateway answered


class PushGateway:
    def __init__(self, host: str) -> None:
        self.host = host
        self.received: list[Received] = []
        # Statuses for the next requests, in order; once used up every answer is 200.
        self.script: list[int] = []
        # Pushkeys answered as rejected (only on 200 answers).
        self.reject: set[str] = set()
        # Called with each body before the answer is chosen; may return a status.
        self.decide: Callable[[Any], int | None] | None = None
        self._waiters: list[tuple[int, defer.Deferred[None]]] = []
        self.port: Any = None

    @classmethod
    async def start(cls, test: unittest.TestCase, host: str = "127.0.0.1") -> PushGateway:
        gateway = cls(host)
        site = _Site(_Notify(gateway))
        gateway.port = reactor.listenTCP(0, site, interface=host)  # type: ignore[attr-defined]

        async def stop() -> None:
            await defer.maybeDeferred(gateway.port.stopListening)
            # A server may keep its connection to the gateway open (Synapse does).
            await site.close_connections()

        test.addCleanup(lambda: defer.ensureDeferred(stop()))
        return gateway

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port.getHost().port}{NOTIFY_PATH}"

    @property
    def notifications(self) -> list[dict[str, Any]]:
        return [r.body["notification"] for r in self.received if isinstance(r.body, dict)]

    def _answer(self, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        status = None
        if self.decide is not None:
            status = self.decide(body)
        if status is None:
            status = self.script.pop(0) if self.script else 200
        self.received.append(Received(time.monotonic(), path, body, status))
        devices = body.get("notification", {}).get("devices", []) if isinstance(body, dict) else []
        rejected = [d.get("pushkey") for d in devices if d.get("pushkey") in self.reject]
        for n, d in list(self._waiters):
            if len(self.received) >= n:
                self._waiters.remove((n, d))
                reactor.callLater(0, d.callback, None)  # type: ignore[attr-defined]
        if status != 200:
            return status, {"errcode": "M_UNKNOWN", "error": "scripted failure"}
        return 200, {"rejected": rejected}

    async def wait_for(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Waits until ``count`` requests have arrived (all of them, failed ones too)."""
        if len(self.received) < count:
            d: defer.Deferred[None] = defer.Deferred()
            self._waiters.append((count, d))
            d.addTimeout(timeout, reactor)
            try:
                await d
            except defer.TimeoutError:
                raise AssertionError(
                    f"the gateway got {len(self.received)} requests, not {count}: {[r.body for r in self.received]}"
                ) from None
        return self.notifications

    async def quiet(self, seconds: float = 0.5) -> None:
        """Lets ``seconds`` pass (to check that nothing more arrives)."""
        d: defer.Deferred[None] = defer.Deferred()
        reactor.callLater(seconds, d.callback, None)  # type: ignore[attr-defined]
        await d


class _Site(server.Site):
    def __init__(self, root: resource.Resource) -> None:
        super().__init__(root)
        self.open: set[Any] = set()

    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        site = self
        lost = protocol.connectionLost

        def connection_lost(reason: Any) -> None:
            site.open.discard(protocol)
            lost(reason)

        protocol.connectionLost = connection_lost  # type: ignore[method-assign]
        self.open.add(protocol)
        return protocol

    async def close_connections(self) -> None:
        for protocol in list(self.open):
            # (The HTTP/1.1-or-2 wrapper keeps its transport on the channel it wraps.)
            transport = getattr(protocol, "transport", None) or getattr(getattr(protocol, "_channel", None), "transport", None)
            if transport is not None:
                transport.abortConnection()
            else:
                self.open.discard(protocol)
        while self.open:
            d: defer.Deferred[None] = defer.Deferred()
            reactor.callLater(0.01, d.callback, None)  # type: ignore[attr-defined]
            await d


class _Notify(resource.Resource):
    isLeaf = True

    def __init__(self, gateway: PushGateway) -> None:
        super().__init__()
        self.gateway = gateway

    def render_POST(self, request: Any) -> bytes:
        try:
            body = json.loads(request.content.read())
        except ValueError:
            body = None
        status, answer = self.gateway._answer(request.path.decode(), body)
        request.setResponseCode(status)
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps(answer).encode()
