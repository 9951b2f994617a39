"""The HTTP front: a router of JSON endpoints on Twisted Web.

Servlets register ``(method, path regex, async handler)``. The router matches the raw
(still percent-encoded) path, decodes each captured segment, awaits the handler, and
turns its ``(status, json)`` result or its ``MatrixError`` into a response with CORS
headers. Anything unexpected becomes a logged ``M_UNKNOWN`` 500 without a traceback on
the wire.
"""

from __future__ import annotations

import io
import json
import logging
import re
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import unquote

from prometheus_client import Counter, Histogram
from twisted.internet import defer
from twisted.internet.abstract import FileDescriptor
from twisted.internet.interfaces import IDelayedCall, ITCPTransport
from twisted.python.failure import Failure
from twisted.web import resource, server
from twisted.web.http import RESPONSES
from twisted.web.server import Request

from homeserver.http.errors import MatrixError, TooLarge
from homeserver.http.forwarded import ClientAddress
from homeserver.http.request import MAX_JSON_BODY

logger = logging.getLogger(__name__)

REQUESTS = Counter("wspr_http_requests_total", "HTTP requests", ["method", "endpoint", "code"])
LATENCY = Histogram(
    "wspr_http_request_seconds",
    "HTTP request latency",
    ["method", "endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

Handler = Callable[..., Awaitable[Any]]

CORS_HEADERS = {
    b"Access-Control-Allow-Origin": b"*",
    b"Access-Control-Allow-Methods": b"GET, HEAD, POST, PUT, DELETE, OPTIONS",
    b"Access-Control-Allow-Headers": b"X-Requested-With, Content-Type, Authorization, Date",
    b"Access-Control-Expose-Headers": b"ETag, Content-Disposition",
}


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    name: str
    # The largest request body this endpoint accepts; None: the site's default.
    max_body: int | None = None


class RawResponse:
    """A handler result that is not JSON (media downloads, static files)."""

    def __init__(self, code: int, body: bytes, headers: dict[str, str]) -> None:
        self.code = code
        self.body = body
        self.headers = headers


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def write_json(request: Request, code: int, value: Any) -> None:
    body = json_bytes(value)
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Content-Length", str(len(body)).encode())
    # Matrix responses are per-user: never let an intermediary cache them.
    request.setHeader(b"Cache-Control", b"no-cache, no-store, must-revalidate")
    if request.method != b"HEAD":
        request.write(body)
    request.finish()


class Router(resource.Resource):
    """A leaf resource that dispatches every request below it by regex."""

    isLeaf = True

    def __init__(self, max_body: int | None = None) -> None:
        """``max_body``: the body limit of its endpoints without one of their own (None:
        the site's default)."""
        super().__init__()
        self.max_body = max_body
        self._routes: dict[str, list[Route]] = {}
        self._all: list[Route] = []
        self.fallback: resource.Resource | None = None

    def register(
        self, method: str | list[str], path: str, handler: Handler, name: str | None = None, max_body: int | None = None
    ) -> None:
        """``path`` is a regex over the raw path, with named groups for parameters.
        ``max_body``: the largest request body the endpoint takes, when it is not the
        site's default (media uploads); larger bodies are refused before they are read."""
        methods = [method] if isinstance(method, str) else method
        pattern = re.compile("^" + path + "$")
        for m in methods:
            route = Route(m, pattern, handler, name or path, max_body)
            self._routes.setdefault(m, []).append(route)
            self._all.append(route)

    def register_prefixes(
        self, method: str | list[str], prefixes: list[str], path: str, handler: Handler, max_body: int | None = None
    ) -> None:
        """The same endpoint under several API prefixes (v3 plus the r0 aliases clients still use)."""
        for prefix in prefixes:
            self.register(method, prefix + path, handler, name=prefixes[0] + path, max_body=max_body)

    def body_limit(self, method: bytes, path: bytes) -> int | None:
        """The body limit of the endpoint a request goes to (None: no endpoint of its own),
        decided from the request line alone, before any of the body is read."""
        try:
            lookup = "GET" if method == b"HEAD" else method.decode("ascii")
            raw_path = path.decode("utf-8")
        except UnicodeDecodeError:
            return None
        for route in self._routes.get(lookup, ()):
            if route.pattern.match(raw_path):
                return route.max_body if route.max_body is not None else self.max_body
        return self.max_body

    def _match(self, method: str, path: str) -> tuple[Route | None, dict[str, str] | None, bool]:
        for route in self._routes.get(method, ()):
            m = route.pattern.match(path)
            if m:
                return route, {k: unquote(v) for k, v in m.groupdict().items() if v is not None}, True
        path_known = any(r.pattern.match(path) for r in self._all)
        return None, None, path_known

    def render(self, request: Request) -> Any:
        for k, v in CORS_HEADERS.items():
            request.setHeader(k, v)
        method = request.method.decode("ascii", "replace")
        try:
            path = request.path.decode("utf-8")
        except UnicodeDecodeError:
            write_json(request, 400, {"errcode": "M_UNRECOGNIZED", "error": "Path is not UTF-8"})
            return server.NOT_DONE_YET
        lookup = "GET" if method == "HEAD" else method
        route, params, path_known = self._match(lookup, path)
        if route is None:
            if method == "OPTIONS" and path_known:
                write_json(request, 200, {})
                return server.NOT_DONE_YET
            if not path_known and self.fallback is not None:
                return self.fallback.render(request)
            if path_known:
                err = MatrixError(405, "M_UNRECOGNIZED", "Unrecognized request")
            else:
                err = MatrixError(404, "M_UNRECOGNIZED", "Unrecognized request")
            write_json(request, err.code, err.to_json())
            return server.NOT_DONE_YET
        if params and any("\x00" in v for v in params.values()):
            # No Matrix identifier contains NUL, and PostgreSQL cannot store it in text:
            # refuse it here instead of failing deep in a query.
            err = MatrixError(400, "M_INVALID_PARAM", "Path parameter contains a NUL character")
            write_json(request, err.code, err.to_json())
            return server.NOT_DONE_YET
        start = time.perf_counter()
        d = defer.ensureDeferred(self._run(route, request, params or {}))
        d.addBoth(self._finish, request, route, method, start)
        return server.NOT_DONE_YET

    async def _run(self, route: Route, request: Request, params: dict[str, str]) -> Any:
        return await route.handler(request, **params)

    def _finish(self, result: Any, request: Request, route: Route, method: str, start: float) -> None:
        code = 500
        if request._disconnected or request.finished:
            return
        try:
            if isinstance(result, Failure):
                exc = result.value
                if isinstance(exc, MatrixError):
                    code = exc.code
                    for name, value in exc.headers.items():
                        request.setHeader(name.encode("ascii"), value.encode("ascii"))
                    write_json(request, code, exc.to_json())
                elif isinstance(exc, defer.CancelledError):
                    code = 499
                else:
                    logger.error(
                        "%s %s failed: %s",
                        method,
                        request.path.decode("utf-8", "replace"),
                        result.getTraceback(),
                    )
                    code = 500
                    write_json(request, 500, {"errcode": "M_UNKNOWN", "error": "Internal server error"})
            elif isinstance(result, RawResponse):
                code = result.code
                request.setResponseCode(code)
                for k, v in result.headers.items():
                    request.setHeader(k.encode(), v.encode())
                request.setHeader(b"Content-Length", str(len(result.body)).encode())
                if method != "HEAD":
                    request.write(result.body)
                request.finish()
            elif result is None:
                code = request.code  # the handler wrote the response itself (or upgraded: 101)
            else:
                code, body = result
                write_json(request, code, body)
        finally:
            REQUESTS.labels(method, route.name, str(code)).inc()
            LATENCY.labels(method, route.name).observe(time.perf_counter() - start)


# Bodies up to this size stay in memory; beyond it (up to the endpoint's limit) they go to
# a temporary file, so a slow client holds little memory however many connections it opens.
SPOOL_IN_MEMORY = 64 * 1024
# A body must arrive at BODY_MIN_RATE bytes/s on average after a grace period, so a
# client trickling a body (slow loris) cannot hold a connection and its buffer for ever.
BODY_GRACE_S = 30.0
BODY_MIN_RATE = 8 * 1024
# After refusing a body, keep reading (and dropping) what the client still sends this
# long, so it gets to read the answer before the connection is cut.
LINGER_S = 2.0


def _site_of(channel: Any) -> Site:
    """The Site a connection belongs to: Site.buildProtocol sets ``channel.site``, which
    HTTPChannel does not declare."""
    site: Site = channel.site
    return site


class LimitedRequest(Request):
    """A request whose body is bounded before it is read, as Synapse's SynapseRequest does
    with its site's max_request_body_size, but per endpoint: a declared Content-Length
    over the limit is refused with 413 M_TOO_LARGE as soon as the headers are in; a
    chunked body is counted as it arrives and refused the moment it passes the limit.
    Either way the connection is closed and nothing more is stored. Twisted's own Request
    would spool any body, of any size, to a temporary file before anything looks at it."""

    def __init__(self, channel: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(channel, *args, **kwargs)
        self.body_limit = 0
        self._body_bytes = 0
        self._refused = False
        self._body_timer: IDelayedCall | None = None
        self._linger_timer: IDelayedCall | None = None

    def gotLength(self, length: int | None) -> None:
        site = _site_of(self.channel)
        # The channel has parsed the request line but hands it to the request only once
        # the body is complete; the limit has to be known before that.
        method = getattr(self.channel, "_command", b"") or b""
        target = getattr(self.channel, "_path", b"") or b""
        self.body_limit = site.body_limit(method, target.split(b"?", 1)[0])
        if length is not None and length > self.body_limit:
            self.content = io.BytesIO()
            self._refuse(TooLarge(f"Request content is too large (>{self.body_limit})"))
            return
        if length is not None and length <= SPOOL_IN_MEMORY:
            self.content = io.BytesIO()
        else:
            self.content = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
        if length != 0:
            expected = self.body_limit if length is None else length
            self._body_timer = site.reactor.callLater(
                site.body_grace_s + expected / site.body_min_rate, self._body_too_slow
            )

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._body_bytes += len(data)
        if self._body_bytes > self.body_limit:
            self._refuse(TooLarge(f"Request content is too large (>{self.body_limit})"))
            return
        assert self.content is not None  # gotLength made it
        self.content.write(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        self._cancel_body_timer()
        if self._refused:
            return  # already answered; the connection is closing
        super().requestReceived(command, path, version)

    def connectionLost(self, reason: Failure) -> None:
        self._cancel_body_timer()
        if self._linger_timer is not None and self._linger_timer.active():
            self._linger_timer.cancel()
        super().connectionLost(reason)

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None and self._body_timer.active():
            self._body_timer.cancel()
        self._body_timer = None

    def _body_too_slow(self) -> None:
        self._body_timer = None
        self._refuse(MatrixError(408, "M_UNKNOWN", "Request body not received in time"))

    def _refuse(self, err: MatrixError) -> None:
        """Answers ``err`` and closes the connection, before the request is complete. The
        request never reaches a resource, so the response goes straight to the transport."""
        self._refused = True
        self._cancel_body_timer()
        old, self.content = self.content, io.BytesIO()
        if old is not None:
            old.close()
        # The channel would answer "Expect: 100-continue" right after gotLength.
        self.requestHeaders.removeHeader(b"Expect")
        logger.info("refused a request body (%s): %s", err.code, err.msg)
        body = json_bytes(err.to_json())
        head = [
            b"HTTP/1.1 %d %s" % (err.code, RESPONSES.get(err.code, b"Error")),
            b"Content-Type: application/json",
            b"Content-Length: %d" % len(body),
            b"Connection: close",
            b"Cache-Control: no-cache, no-store, must-revalidate",
            *(k + b": " + v for k, v in CORS_HEADERS.items()),
        ]
        transport = self.channel.transport
        if transport is None:
            return
        transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        # Plain TCP: send FIN now, so the client sees the whole answer, while the rest of
        # what it sends is read and dropped until the linger time is over. Not under TLS:
        # the TLS wrapper proxies loseWriteConnection to the socket below, which would cut
        # the encrypted answer short.
        if isinstance(transport, FileDescriptor):
            transport.loseWriteConnection()
        abort = cast(ITCPTransport, transport).abortConnection  # TCP, or TLS over it
        self._linger_timer = _site_of(self.channel).reactor.callLater(LINGER_S, abort)


class Site(server.Site):
    """A Twisted site that bounds request bodies (``LimitedRequest``; ``max_body`` for
    endpoints without a limit of their own), does not log every request through
    twisted's logger, and can drop its open connections at shutdown (stopListening
    leaves them open, and a peer's request on one would then wait on a server whose
    database is gone)."""

    requestFactory = LimitedRequest

    def __init__(
        self,
        resource: resource.Resource,
        *args: Any,
        max_body: int = MAX_JSON_BODY,
        body_grace_s: float = BODY_GRACE_S,
        body_min_rate: float = BODY_MIN_RATE,
        **kwargs: Any,
    ) -> None:
        # No endpoint takes HTML form posts: do not parse bodies into request.args.
        kwargs.setdefault("parsePOSTFormSubmission", False)
        super().__init__(resource, *args, **kwargs)
        self.max_body = max_body
        self.body_grace_s = body_grace_s
        self.body_min_rate = body_min_rate
        self.open_connections: set[Any] = set()

    def body_limit(self, method: bytes, path: bytes) -> int:
        per_endpoint = getattr(self.resource, "body_limit", None)
        limit = per_endpoint(method, path) if per_endpoint is not None else None
        return self.max_body if limit is None else limit

    def buildProtocol(self, addr: Any) -> Any:
        proto = super().buildProtocol(addr)
        if proto is not None:
            self.open_connections.add(proto)
            lost = proto.connectionLost

            def connection_lost(reason: Any, _lost: Any = lost, _proto: Any = proto) -> None:
                self.open_connections.discard(_proto)
                _lost(reason)

            proto.connectionLost = connection_lost
        return proto

    def connection_upgraded(self, proto: Any) -> None:
        """A connection taken over by another protocol (a WebSocket) is no longer this
        site's: whoever took it over closes it (its HTTP channel would otherwise stay
        here, with its request, until the socket closed)."""
        self.open_connections.discard(proto)

    def abort_connections(self) -> None:
        for proto in list(self.open_connections):
            # Twisted wraps HTTPChannel in _GenericHTTPChannelProtocol, whose transport is the
            # inner channel's.
            transport = getattr(proto, "transport", None) or getattr(getattr(proto, "_channel", None), "transport", None)
            if transport is not None:
                transport.abortConnection()
        self.open_connections.clear()

    def log(self, request: object) -> None:
        pass

    # How this listener finds a client's address: None for the TCP peer, a ClientAddress
    # for a listener behind trusted proxies (x_forwarded). Set by whoever opens the listener.
    client_address: ClientAddress | None = None


async def close_listener(port: Any) -> None:
    """Stops listening and drops the connections still open on that port."""
    await defer.maybeDeferred(port.stopListening)
    site = getattr(port, "factory", None)
    site = getattr(site, "wrappedFactory", site)  # TLS listeners wrap the site
    if isinstance(site, Site):
        site.abort_connections()


def client_ip(request: Request) -> str:
    """The client's address, for rate limits and devices' last_seen_ip: the TCP peer, or
    on an x_forwarded listener what its trusted proxies forwarded."""
    peer = getattr(request.getClientAddress(), "host", "unknown")
    site = getattr(request, "site", None)
    policy = site.client_address if isinstance(site, Site) else None
    if policy is None:
        return peer
    return policy.client_ip(peer, request.requestHeaders.getRawHeaders(b"X-Forwarded-For") or [])


def get_access_token(request: Request) -> str | None:
    raw = request.getHeader(b"Authorization")
    if raw:
        auth = raw.decode("utf-8", "replace")
        parts = auth.split(" ", 1)
        if len(parts) == 2 and parts[0].lower() == "bearer":
            return parts[1].strip()
        return None
    values = request.args.get(b"access_token")
    if values:
        return values[0].decode("utf-8", "replace")
    return None


CLIENT_V3 = ["/_matrix/client/v3", "/_matrix/client/r0"]
CLIENT_V1 = ["/_matrix/client/v1"]
CLIENT_UNSTABLE = ["/_matrix/client/unstable"]
CLIENT_ALL = ["/_matrix/client/v3", "/_matrix/client/r0", "/_matrix/client/v1", "/_matrix/client/unstable"]
