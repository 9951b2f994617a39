"""Inbound federation: the TLS listener and X-Matrix authentication of requests.

Endpoints are registered on ``hs.federation_router`` wrapped with ``authenticated``::

    hs.federation_router.register("GET", r"/_matrix/federation/v1/thing/(?P<room_id>[^/]*)",
                                  authenticated(hs, handler))

    async def handler(request, origin, room_id) -> (code, json)

``authenticated`` checks the X-Matrix signature against the origin's keys, that the
request was meant for us (``destination``), and ``federation.domain_allowlist``; it
raises 401 M_UNAUTHORIZED / 403 M_FORBIDDEN otherwise. The parsed JSON body (or None)
is on ``request.federation_json`` (see ``json_body``).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from OpenSSL import SSL
from twisted.internet import defer, ssl
from twisted.web.server import Request

from federation.errors import unauthorized
from federation.transport.xmatrix import parse_auth_header, request_json
from homeserver.http.errors import BadJson, Forbidden, LimitExceeded, MatrixError, NotJson
from homeserver.http.request import read_body
from homeserver.http.server import Site

if TYPE_CHECKING:
    from homeserver.app import HomeServer

logger = logging.getLogger(__name__)

# Transactions carry up to 50 PDUs of 64 KiB each plus EDUs.
MAX_FEDERATION_BODY = 10 * 1024 * 1024

FederationHandler = Callable[..., Awaitable[Any]]


def _parse_body(request: Request) -> Any:
    raw = read_body(request, MAX_FEDERATION_BODY)
    if not raw.strip():
        return None
    try:
        return json.loads(raw, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise NotJson("Content not JSON.") from None


def json_body(request: Request) -> dict[str, Any]:
    """The JSON object body of an authenticated request ({} when there was none)."""
    body = getattr(request, "federation_json", None)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise BadJson("Content must be a JSON object.")
    return body


async def authenticate_request(hs: "HomeServer", request: Request) -> str:
    """The origin server of a request with a valid X-Matrix signature for us."""
    content = _parse_body(request)
    request.federation_json = content  # type: ignore[attr-defined]
    method = request.method.decode("ascii")
    uri = request.uri.decode("utf-8", "replace")
    origin: str | None = None
    signatures: dict[str, str] = {}
    for raw in request.requestHeaders.getRawHeaders(b"Authorization") or []:
        value = raw.decode("utf-8", "replace")
        if not value.lower().startswith("x-matrix"):
            continue
        try:
            auth = parse_auth_header(value)
        except ValueError as e:
            raise unauthorized(f"Malformed Authorization header: {e}") from None
        if auth.destination is not None and auth.destination != hs.server_name:
            raise unauthorized(f"Request is for {auth.destination}, this is {hs.server_name}")
        if origin is not None and auth.origin != origin:
            raise unauthorized("Authorization headers name different origins")
        origin = auth.origin
        signatures[auth.key] = auth.sig
    if origin is None:
        raise unauthorized("Missing Authorization headers")
    allow = hs.config.federation.domain_allowlist
    if allow is not None and origin not in allow:
        raise Forbidden(f"Federation denied with {origin}")
    signed = request_json(method, uri, origin, hs.server_name, content)
    signed["signatures"] = {origin: signatures}
    await hs.keyring.verify_json_for_server(origin, signed)
    return origin


class OriginLimiter:
    """At most MAX_CONCURRENT requests per origin run at once; a few hundred more may wait,
    beyond that 429 (like Synapse's rc_federation concurrency limit), so one busy or
    hostile server cannot take all our workers."""

    MAX_CONCURRENT = 10
    MAX_WAITING = 200

    def __init__(self) -> None:
        self._sems: dict[str, defer.DeferredSemaphore] = {}

    async def run(self, origin: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        sem = self._sems.get(origin)
        if sem is None:
            sem = self._sems[origin] = defer.DeferredSemaphore(self.MAX_CONCURRENT)
        if len(sem.waiting) >= self.MAX_WAITING:
            raise LimitExceeded(1000)
        await sem.acquire()
        try:
            return await fn()
        finally:
            sem.release()
            if sem.tokens == sem.limit and not sem.waiting:
                self._sems.pop(origin, None)


def authenticated(hs: "HomeServer", handler: FederationHandler) -> Callable[..., Awaitable[Any]]:
    """Wrap ``handler(request, origin, **groups)`` with X-Matrix authentication."""
    limiter = getattr(hs, "federation_origin_limiter", None)
    if limiter is None:
        limiter = hs.federation_origin_limiter = OriginLimiter()  # type: ignore[attr-defined]

    async def wrapper(request: Request, **groups: str) -> Any:
        if not hs.config.federation.enabled:
            raise Forbidden("Federation is disabled on this server")
        origin = await authenticate_request(hs, request)
        for hook in getattr(hs, "federation_inbound_hooks", ()):
            try:
                hook(origin)
            except Exception:
                logger.exception("inbound federation hook failed")
        return await limiter.run(origin, lambda: handler(request, origin, **groups))

    wrapper.__name__ = getattr(handler, "__name__", "federation_handler")
    return wrapper


def unauthenticated(hs: "HomeServer", handler: FederationHandler) -> Callable[..., Awaitable[Any]]:
    """For the few endpoints anyone may call (keys, version, openid/userinfo)."""

    async def wrapper(request: Request, **groups: str) -> Any:
        if not hs.config.federation.enabled:
            raise Forbidden("Federation is disabled on this server")
        return await handler(request, **groups)

    return wrapper


class _ServerTLSContext(ssl.ContextFactory):
    def __init__(self, cert_path: str, key_path: str) -> None:
        ctx = SSL.Context(SSL.TLS_METHOD)
        ctx.set_options(SSL.OP_NO_SSLv2 | SSL.OP_NO_SSLv3 | SSL.OP_NO_TLSv1 | SSL.OP_NO_TLSv1_1 | SSL.OP_NO_COMPRESSION)
        ctx.use_certificate_chain_file(cert_path)
        ctx.use_privatekey_file(key_path)
        ctx.check_privatekey()
        self._ctx = ctx

    def getContext(self) -> SSL.Context:
        return self._ctx


def start_federation_listener(hs: "HomeServer") -> Any:
    """Serve ``hs.federation_router`` over TLS on the federation listener; returns the port."""
    fl = hs.config.federation_listener
    site = Site(hs.federation_router)
    site.displayTracebacks = False
    port = hs.reactor.listenSSL(fl.port, site, _ServerTLSContext(fl.tls_certificate, fl.tls_private_key), interface=fl.bind_address)
    logger.info("federation API listening on https://%s:%d", fl.bind_address, port.getHost().port)
    return port


async def stop_federation_listener(port: Any) -> None:
    """Stop listening and abort the connections still open (a peer's request must not
    hang on a stopped server). Twisted's _GenericHTTPChannelProtocol proxy has no
    ``transport`` of its own, so look behind it to its channel."""
    from homeserver.http.server import close_listener

    site = getattr(port.factory, "wrappedFactory", port.factory)
    protos = list(getattr(site, "open_connections", ()))
    await close_listener(port)
    for proto in protos:
        transport = getattr(proto, "transport", None) or getattr(getattr(proto, "_channel", None), "transport", None)
        if transport is not None:
            transport.abortConnection()


__all__ = ["MatrixError", "authenticate_request", "authenticated", "json_body", "start_federation_listener", "stop_federation_listener", "unauthenticated"]
