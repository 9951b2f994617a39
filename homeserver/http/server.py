"""The HTTP front: a router of JSON endpoints on Twisted Web.

Servlets register ``(method, path regex, async handler)``. The router matches the raw
(still percent-encoded) path, decodes each captured segment, awaits the handler, and
turns its ``(status, json)`` result or its ``MatrixError`` into a response with CORS
headers. Anything unexpected becomes a logged ``M_UNKNOWN`` 500 without a traceback on
the wire.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable
from urllib.parse import unquote

from prometheus_client import Counter, Histogram
from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.web import resource, server
from twisted.web.server import Request

from homeserver.http.errors import MatrixError

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

    def __init__(self) -> None:
        super().__init__()
        self._routes: dict[str, list[Route]] = {}
        self._all: list[Route] = []
        self.fallback: resource.Resource | None = None

    def register(self, method: str | list[str], path: str, handler: Handler, name: str | None = None) -> None:
        """``path`` is a regex over the raw path, with named groups for parameters."""
        methods = [method] if isinstance(method, str) else method
        pattern = re.compile("^" + path + "$")
        for m in methods:
            route = Route(m, pattern, handler, name or path)
            self._routes.setdefault(m, []).append(route)
            self._all.append(route)

    def register_prefixes(self, method: str | list[str], prefixes: list[str], path: str, handler: Handler) -> None:
        """The same endpoint under several API prefixes (v3 plus the r0 aliases clients still use)."""
        for prefix in prefixes:
            self.register(method, prefix + path, handler, name=prefixes[0] + path)

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
        if request._disconnected or request.finished:  # type: ignore[attr-defined]
            return
        try:
            if isinstance(result, Failure):
                exc = result.value
                if isinstance(exc, MatrixError):
                    code = exc.code
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
                pass  # the handler wrote the response itself
            else:
                code, body = result
                write_json(request, code, body)
        finally:
            REQUESTS.labels(method, route.name, str(code)).inc()
            LATENCY.labels(method, route.name).observe(time.perf_counter() - start)


class Site(server.Site):
    """A Twisted site that does not log every request through twisted's logger, and that
    can drop its open connections at shutdown (stopListening leaves them open, and a
    peer's request on one would then wait on a server whose database is gone)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.open_connections: set[Any] = set()

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

    def abort_connections(self) -> None:
        for proto in list(self.open_connections):
            # Twisted wraps HTTPChannel in _GenericHTTPChannelProtocol, whose transport is the
            # inner channel's.
            transport = getattr(proto, "transport", None) or getattr(getattr(proto, "_channel", None), "transport", None)
            if transport is not None:
                transport.abortConnection()
        self.open_connections.clear()

    def log(self, request: Request) -> None:
        pass


async def close_listener(port: Any) -> None:
    """Stops listening and drops the connections still open on that port."""
    await defer.maybeDeferred(port.stopListening)
    site = getattr(port, "factory", None)
    site = getattr(site, "wrappedFactory", site)  # TLS listeners wrap the site
    if isinstance(site, Site):
        site.abort_connections()


def client_ip(request: Request) -> str:
    peer = request.getClientAddress()
    return getattr(peer, "host", "unknown")


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
