"""A WebSocket stream client for the tests (autobahn, in the test's reactor): collects the
server's frames, sends client frames, and can stop reading to play a slow client."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from autobahn.twisted.websocket import (
    WebSocketClientFactory,
    WebSocketClientProtocol,
    connectWS,
)
from twisted.internet import defer, reactor

from homeserver.websocket.frames import PATH

# Every client not yet closed, so a test's cleanup can end them (close_all).
_OPEN: set[WsClient] = set()


async def close_all() -> None:
    """Drops every client still connected and waits until they are gone."""
    for client in list(_OPEN):
        client.abort()
    for client in list(_OPEN):
        try:
            await client.wait_closed(5)
        except TimeoutError:
            pass
    _OPEN.clear()


class _Protocol(WebSocketClientProtocol):
    client: WsClient

    def onOpen(self) -> None:
        self.client._opened(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.client._received(json.loads(payload.decode("utf-8")))

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.client._closed_with(code, reason)


class _Factory(WebSocketClientFactory):
    protocol = _Protocol

    def __init__(self, client: WsClient, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client = client

    def buildProtocol(self, addr: Any) -> _Protocol:
        proto: _Protocol = super().buildProtocol(addr)
        proto.client = self.client
        return proto


class WsClient:
    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.proto: _Protocol | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._open: defer.Deferred[None] = defer.Deferred()
        self._closed: defer.Deferred[tuple[int | None, str | None]] = defer.Deferred()
        self._waiters: list[defer.Deferred[None]] = []
        self._read = 0

    @classmethod
    async def connect(
        cls, base_url: str, token: str | None = None, query: str = "", headers: dict[str, str] | None = None
    ) -> WsClient:
        client = cls()
        _OPEN.add(client)
        parts = urlsplit(base_url)
        url = f"ws://{parts.netloc}{PATH}" + (f"?{query}" if query else "")
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        factory = _Factory(client, url, headers=hdrs)
        factory.setProtocolOptions(maxMessagePayloadSize=0, maxFramePayloadSize=0)
        connectWS(factory)
        try:
            await client._open
        finally:
            if client.is_closed:
                _OPEN.discard(client)
        return client

    # -- events from the protocol --------------------------------------------------

    def _opened(self, proto: _Protocol) -> None:
        self.proto = proto
        self._open.callback(None)

    def _received(self, frame: dict[str, Any]) -> None:
        self.frames.append(frame)
        self._wake()

    def _closed_with(self, code: int | None, reason: str | None) -> None:
        self.close_code, self.close_reason = code, reason
        _OPEN.discard(self)
        if not self._open.called:
            self._open.errback(ConnectionError(f"WebSocket refused: {code} {reason}"))
        if not self._closed.called:
            self._closed.callback((code, reason))
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)

    # -- for the tests ---------------------------------------------------------------

    def send(self, frame: dict[str, Any]) -> None:
        assert self.proto is not None
        self.proto.sendMessage(json.dumps(frame).encode("utf-8"), isBinary=False)

    def send_raw(self, payload: bytes, binary: bool = False) -> None:
        assert self.proto is not None
        self.proto.sendMessage(payload, isBinary=binary)

    @property
    def is_closed(self) -> bool:
        return self._closed.called

    async def next(self, kind: str | None = None, timeout: float = 15.0) -> dict[str, Any]:
        """The next unread frame (of that type: others are skipped)."""
        deadline = reactor.seconds() + timeout
        while True:
            while self._read < len(self.frames):
                frame = self.frames[self._read]
                self._read += 1
                if kind is None or frame.get("type") == kind:
                    return frame
            if self.is_closed:
                raise ConnectionError(f"closed ({self.close_code} {self.close_reason}) while waiting for {kind}")
            remaining = deadline - reactor.seconds()
            if remaining <= 0:
                raise TimeoutError(f"no {kind or 'frame'} within {timeout}s; got {[f.get('type') for f in self.frames]}")
            await self._wait(remaining)

    async def _wait(self, timeout: float) -> None:
        d: defer.Deferred[None] = defer.Deferred()
        self._waiters.append(d)
        call = reactor.callLater(timeout, lambda: d.called or d.callback(None))
        try:
            await d
        finally:
            if call.active():
                call.cancel()
            if d in self._waiters:
                self._waiters.remove(d)

    async def wait_closed(self, timeout: float = 15.0) -> tuple[int | None, str | None]:
        deadline = reactor.seconds() + timeout
        while not self.is_closed:
            remaining = deadline - reactor.seconds()
            if remaining <= 0:
                raise TimeoutError(f"still open after {timeout}s")
            await self._wait(remaining)
        return self.close_code, self.close_reason

    def close(self) -> None:
        if self.proto is not None and not self.is_closed:
            self.proto.sendClose(1000)

    def abort(self) -> None:
        """The network goes away: no close frame."""
        if self.proto is not None and self.proto.transport is not None:
            self.proto.transport.abortConnection()

    def pause_reading(self) -> None:
        assert self.proto is not None
        self.proto.transport.pauseProducing()

    def resume_reading(self) -> None:
        assert self.proto is not None
        self.proto.transport.resumeProducing()
