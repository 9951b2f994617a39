"""Inbound federation: the TLS listener and X-Matrix authentication of requests.

Endpoints are registered on ``hs.federation_router`` wrapped with
``InboundRequests.authenticated`` (``hs.federation.authenticated``)::

    hs.federation_router.register("GET", r"/_matrix/federation/v1/thing/(?P<room_id>[^/]*)",
                                  fed.authenticated(handler))

    async def handler(request, origin, room_id) -> (code, json)

``authenticated`` checks the X-Matrix signature against the origin's keys, that the
request was meant for us (``destination``), and ``federation.domain_allowlist``; it
raises 401 M_UNAUTHORIZED / 403 M_FORBIDDEN otherwise. ``json_body(request)`` gives the
parsed JSON body.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from OpenSSL import SSL
from twisted.internet import defer, ssl
from twisted.internet.tcp import Port
from twisted.web.server import Request

from federation.errors import unauthorized
from federation.transport.xmatrix import parse_auth_header, request_json
from homeserver.http.errors import BadJson, Forbidden, LimitExceeded, MatrixError, NotJson
from homeserver.http.listeners import listen, listener_site
from homeserver.http.request import MAX_FEDERATION_BODY, read_body

if TYPE_CHECKING:
    from federation.service import Federation
    from homeserver.app import HomeServer

logger = logging.getLogger(__name__)


FederationHandler = Callable[..., Awaitable[Any]]

# The parsed body of each authenticated request (the signature covers it, so it is
# parsed before the handler runs).
_BODIES: WeakKeyDictionary[Request, Any] = WeakKeyDictionary()


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
    body = _BODIES.get(request)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise BadJson("Content must be a JSON object.")
    return body


async def authenticate_request(hs: HomeServer, fed: Federation, request: Request) -> str:
    """The origin server of a request with a valid X-Matrix signature for us."""
    content = _parse_body(request)
    _BODIES[request] = content
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
    await fed.keyring.verify_json_for_server(origin, signed)
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


class InboundRequests:
    """Wraps the handlers of requests from other servers: X-Matrix authentication, at
    most ``OriginLimiter.MAX_CONCURRENT`` at once per origin, and the sender told that
    the origin is alive (its backoff resets)."""

    def __init__(self, hs: HomeServer, fed: Federation) -> None:
        self.hs = hs
        self.fed = fed
        self.limiter = OriginLimiter()

    def authenticated(self, handler: FederationHandler) -> Callable[..., Awaitable[Any]]:
        """Wrap ``handler(request, origin, **groups)`` with X-Matrix authentication."""
        hs, fed = self.hs, self.fed

        async def wrapper(request: Request, **groups: str) -> Any:
            if not hs.config.federation.enabled:
                raise Forbidden("Federation is disabled on this server")
            origin = await authenticate_request(hs, fed, request)
            try:
                fed.sender.on_remote_alive(origin)
            except Exception:
                logger.exception("resetting the backoff of %s failed", origin)
            return await self.limiter.run(origin, lambda: handler(request, origin, **groups))

        wrapper.__name__ = getattr(handler, "__name__", "federation_handler")
        return wrapper

    def unauthenticated(self, handler: FederationHandler) -> Callable[..., Awaitable[Any]]:
        """For the few endpoints anyone may call (keys, version, openid/userinfo)."""
        hs = self.hs

        async def wrapper(request: Request, **groups: str) -> Any:
            if not hs.config.federation.enabled:
                raise Forbidden("Federation is disabled on this server")
            return await handler(request, **groups)

        return wrapper


def authenticated(hs: HomeServer, handler: FederationHandler) -> Callable[..., Awaitable[Any]]:
    """``hs.federation.authenticated(handler)``, for endpoints registered outside
    ``federation/`` (federation media, ``rest/client/media.py``)."""
    return hs.federation.authenticated(handler)


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


def start_federation_listener(hs: HomeServer) -> Port:
    """The TLS federation listener (``hs.federation_router``, or the resources its
    configuration names); returns the port. Federation endpoints take at most
    MAX_FEDERATION_BODY (``hs.federation_router``'s limit), refused before reading."""
    fl = hs.config.federation_listener
    tls = _ServerTLSContext(fl.tls_certificate, fl.tls_private_key)
    port: Port = listen(hs, "listeners.federation", fl, listener_site(hs, fl), tls)
    logger.info("federation API listening on https://%s:%d (%s)", fl.bind_address, port.getHost().port, ", ".join(fl.resources))
    return port


async def stop_federation_listener(port: Port) -> None:
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


__all__ = ["InboundRequests", "MatrixError", "authenticate_request", "authenticated", "json_body", "start_federation_listener", "stop_federation_listener"]
