"""Real HTTP(S) servers on loopback for the remote media and URL preview tests: a media
origin that speaks the federation media endpoints the way a test needs (an older server
without them, a slow one, one that streams without end, one that redirects), and plain
HTTP sites. Each records the requests it got and how many bytes it managed to send."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from twisted.internet import reactor, ssl
from twisted.internet.interfaces import IPushProducer
from twisted.web import server
from twisted.web.resource import Resource
from zope.interface import implementer

from tests.support.synapse import _self_signed_cert

Handler = Callable[[server.Request], "bytes | None"]


@dataclass
class Hit:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


class _Dispatch(Resource):
    isLeaf = True

    def __init__(self, site: LoopbackSite) -> None:
        super().__init__()
        self._site = site

    def render(self, request: server.Request) -> Any:
        uri = request.uri.decode("utf-8")
        parts = urlsplit(uri)
        self._site.hits.append(
            Hit(parts.path, parse_qs(parts.query), {k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()})
        )
        for prefix, handler in self._site.routes:
            if parts.path.startswith(prefix):
                result = handler(request)
                return server.NOT_DONE_YET if result is None else result
        request.setResponseCode(404)
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps({"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}).encode()


@dataclass
class LoopbackSite:
    """An HTTP or HTTPS server on ``host`` (127.0.0.1 unless said), routes by path prefix."""

    host: str = "127.0.0.1"
    tls: bool = False
    routes: list[tuple[str, Handler]] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    sent: int = 0  # bytes written by the streaming helpers
    port: int = 0
    _listener: Any = None

    def route(self, prefix: str, handler: Handler) -> None:
        self.routes.append((prefix, handler))

    def hits_on(self, prefix: str) -> list[Hit]:
        return [h for h in self.hits if h.path.startswith(prefix)]

    def start(self, test: Any, port: int = 0) -> LoopbackSite:
        site = _TrackingSite(_Dispatch(self))
        site.displayTracebacks = False
        if self.tls:
            directory = tempfile.mkdtemp(prefix="wspr-origin-")
            cert, key = os.path.join(directory, "tls.crt"), os.path.join(directory, "tls.key")
            _self_signed_cert(cert, key, [self.host])
            self._listener = reactor.listenSSL(port, site, ssl.DefaultOpenSSLContextFactory(key, cert), interface=self.host)
        else:
            self._listener = reactor.listenTCP(port, site, interface=self.host)
        self.port = self._listener.getHost().port
        test.addCleanup(self.stop)
        return self

    async def stop(self) -> None:
        if self._listener is not None:
            listener, self._listener = self._listener, None
            site = getattr(listener.factory, "wrappedFactory", listener.factory)
            await listener.stopListening()
            for proto in list(site.open):
                transport = getattr(proto, "transport", None)
                if transport is not None:
                    transport.abortConnection()

    @property
    def server_name(self) -> str:
        return f"{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}{path}"

    # -- responses ------------------------------------------------------------------------

    def stream(self, request: server.Request, head: bytes, chunk: bytes, total: int, content_type: bytes, length: int | None = None) -> None:
        """Writes ``head`` then ``chunk`` repeatedly up to ``total`` bytes (no
        Content-Length unless given), only as fast as the peer reads (a push producer the
        transport pauses when its buffer is full); counts what it handed over."""
        request.setHeader(b"Content-Type", content_type)
        if length is not None:
            request.setHeader(b"Content-Length", str(length).encode())
        self.sent += len(head)
        request.write(head)
        request.registerProducer(_Streamer(self, request, chunk, total), True)


@implementer(IPushProducer)
class _Streamer:
    def __init__(self, site: LoopbackSite, request: server.Request, chunk: bytes, total: int) -> None:
        self._site = site
        self._request = request
        self._chunk = chunk
        self._left = total
        self._paused = False
        self._stopped = False
        request.notifyFinish().addBoth(lambda _: self.stopProducing())
        reactor.callLater(0, self._pump)

    def _pump(self) -> None:
        while not self._paused and not self._stopped:
            if self._left <= 0:
                self._stopped = True
                self._request.unregisterProducer()
                self._request.finish()
                return
            piece = self._chunk[: self._left]
            self._left -= len(piece)
            self._site.sent += len(piece)
            self._request.write(piece)

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        if self._paused:
            self._paused = False
            reactor.callLater(0, self._pump)

    def stopProducing(self) -> None:
        self._stopped = True


class _TrackingSite(server.Site):
    def __init__(self, resource: Resource) -> None:
        super().__init__(resource)
        self.open: set[Any] = set()

    def buildProtocol(self, addr: Any) -> Any:
        proto = super().buildProtocol(addr)
        if proto is None:
            return None
        lost = proto.connectionLost

        def connection_lost(reason: Any) -> None:
            self.open.discard(proto)
            lost(reason)

        proto.connectionLost = connection_lost  # type: ignore[method-assign]
        self.open.add(proto)
        return proto


def multipart(content: bytes, part_headers: dict[str, str], boundary: str = "6e2d8a9c0b7f4e1a") -> tuple[bytes, bytes]:
    """(body, Content-Type) of a federation media answer, as Synapse builds it."""
    head = "".join(f"{k}: {v}\r\n" for k, v in part_headers.items())
    body = (
        f"--{boundary}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n--{boundary}\r\n{head}\r\n".encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/mixed; boundary={boundary}".encode()


def json_error(request: server.Request, code: int, errcode: str, error: str = "") -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"application/json")
    return json.dumps({"errcode": errcode, "error": error or errcode}).encode()
