"""Outbound HTTP(S) to addresses that someone else chose (URL previews, the ``Location``
of a remote media download): every connection goes to an address checked against an
``IPFilter``.

The host name is resolved once per connection, through the reactor's name resolver,
and the connection is made to the very addresses that were checked, so a DNS answer
that changes between the check and the connection (DNS rebinding) cannot reach a
blocked address. As Synapse's blocklisting resolver, a name with any blocked address is
refused as a whole. Redirects are not followed here: a caller that follows one makes a
new request, whose connection is checked again.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from io import BytesIO
from typing import Any, cast
from urllib.parse import quote, urlsplit

from twisted.internet import defer, ssl
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IPushProducer, IResolutionReceiver, IStreamClientEndpoint
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IAgentEndpointFactory, IResponse
from zope.interface import implementer

from homeserver.util.ip_filter import IPFilter, parse_ip

CONNECT_TIMEOUT_S = 10.0


class OutboundError(Exception):
    """A request that could not be made or completed."""


class BlockedAddress(OutboundError):
    """The host is, or resolves to, an address the filter blocks."""


class NoAddress(OutboundError):
    """The host name did not resolve."""


class BodyTooLarge(OutboundError):
    pass


class BodyTimeout(OutboundError):
    pass


class BadURL(OutboundError):
    pass


@implementer(IResolutionReceiver)
class _Collect:
    def __init__(self) -> None:
        self.addresses: list[tuple[int, str]] = []
        self.done: defer.Deferred[list[tuple[int, str]]] = defer.Deferred()

    def resolutionBegan(self, resolution: Any) -> None:
        pass

    def addressResolved(self, address: Any) -> None:
        host = getattr(address, "host", None)
        if isinstance(host, str):
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            if (family, host) not in self.addresses:
                self.addresses.append((family, host))

    def resolutionComplete(self) -> None:
        self.done.callback(self.addresses)


async def resolve(reactor: Any, host: str, port: int) -> list[tuple[int, str]]:
    """The addresses of ``host`` (an IP literal is its own answer), from the reactor's
    name resolver: the one a test replaces to make a name point anywhere."""
    literal = parse_ip(host)
    if literal is not None:
        ip = str(literal)
        return [(socket.AF_INET6 if literal.version == 6 else socket.AF_INET, ip)]
    receiver = _Collect()
    reactor.nameResolver.resolveHostName(receiver, host, portNumber=port)
    return await receiver.done


@implementer(IStreamClientEndpoint)
class _CheckedEndpoint:
    def __init__(self, client: OutboundHttpClient, scheme: str, host: str, port: int) -> None:
        self._client = client
        self._scheme = scheme
        self._host = host
        self._port = port

    def connect(self, protocolFactory: Any) -> defer.Deferred[Any]:
        return defer.ensureDeferred(self._connect(protocolFactory))

    async def _connect(self, protocolFactory: Any) -> Any:
        c = self._client
        addresses = await resolve(c.reactor, self._host, self._port)
        if not addresses:
            raise NoAddress(f"{self._host} did not resolve")
        blocked = [ip for _, ip in addresses if not c.ip_filter.is_allowed(ip)]
        if blocked:
            raise BlockedAddress(f"{self._host} is or resolves to a blocked address ({blocked[0]})")
        last: Exception | None = None
        for family, ip in addresses:
            cls = TCP6ClientEndpoint if family == socket.AF_INET6 else TCP4ClientEndpoint
            endpoint: Any = cls(c.reactor, ip, self._port, timeout=CONNECT_TIMEOUT_S)
            if self._scheme == "https":
                endpoint = wrapClientTLS(c.tls_creator(self._host), endpoint)
            try:
                return await endpoint.connect(protocolFactory)
            except Exception as e:
                last = e
        raise OutboundError(f"cannot connect to {self._host}: {last}")


@implementer(IAgentEndpointFactory)
class _EndpointFactory:
    def __init__(self, client: OutboundHttpClient) -> None:
        self._client = client

    def endpointForURI(self, uri: Any) -> IStreamClientEndpoint:
        return _CheckedEndpoint(self._client, uri.scheme.decode("ascii"), uri.host.decode("ascii"), uri.port)


def _default_tls(hostname: str) -> Any:
    return ssl.optionsForClientTLS(hostname)


_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"


def to_uri(url: str) -> bytes:
    """An http(s) URL as the bytes a request line takes (IDNA host, percent-encoded
    path and query, no fragment); BadURL for anything else."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
        host = parts.hostname
    except ValueError as e:
        raise BadURL(f"invalid URL: {e}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise BadURL("only http and https URLs with a host can be fetched")
    literal = parse_ip(host)
    if literal is not None:
        netloc = f"[{literal}]" if literal.version == 6 else str(literal)
    else:
        try:
            netloc = host.encode("idna").decode("ascii")
        except UnicodeError as e:
            raise BadURL(f"invalid host name: {e}") from None
    if port is not None:
        netloc += f":{port}"
    path = quote(parts.path or "/", safe=_PATH_SAFE)
    query = quote(parts.query, safe=_QUERY_SAFE)
    return f"{parts.scheme}://{netloc}{path}{'?' + query if query else ''}".encode("ascii")


class OutboundHttpClient:
    """GET requests whose connections go only to addresses ``ip_filter`` allows.

    ``tls_creator(hostname)``: the TLS connection creator for https (certificates are
    verified against the system's roots by default)."""

    def __init__(
        self,
        reactor: Any,
        ip_filter: IPFilter,
        tls_creator: Callable[[str], Any] | None = None,
        user_agent: bytes = b"WSPR",
    ) -> None:
        self.reactor = reactor
        self.ip_filter = ip_filter
        self.tls_creator = tls_creator or _default_tls
        self.user_agent = user_agent
        # No kept-alive connections: each request is checked at its own connect.
        self._agent = Agent.usingEndpointFactory(reactor, _EndpointFactory(self), pool=HTTPConnectionPool(reactor, persistent=False))

    async def get(self, url: str, headers: dict[bytes, list[bytes]] | None = None, timeout: float = 30.0) -> IResponse:
        """The response (status and headers) to GET ``url``; its body is for ``read_body``.
        Raises BadURL, BlockedAddress, NoAddress or OutboundError."""
        return await self.request(b"GET", url, headers, None, timeout)

    async def request(
        self,
        method: bytes,
        url: str,
        headers: dict[bytes, list[bytes]] | None = None,
        body: bytes | None = None,
        timeout: float = 30.0,
    ) -> IResponse:
        """As ``get``, for any method, with an optional request body (the push gateways'
        POST)."""
        uri = to_uri(url)
        hdrs = Headers({b"User-Agent": [self.user_agent], **(headers or {})})
        producer = FileBodyProducer(BytesIO(body)) if body is not None else None
        d = self._agent.request(method, uri, hdrs, producer)
        timer = self.reactor.callLater(timeout, d.cancel)
        try:
            return await d
        except OutboundError:
            raise
        except defer.CancelledError:
            raise OutboundError(f"no response within {timeout:g} s") from None
        except Exception as e:
            reasons = getattr(e, "reasons", None)
            if reasons and isinstance(reasons[0].value, OutboundError):
                raise reasons[0].value from None
            raise OutboundError(f"request failed: {reasons[0].value if reasons else e}") from None
        finally:
            if timer.active():
                timer.cancel()


def discard_body(response: IResponse) -> None:
    """Closes the connection of a response whose body is not wanted."""
    response.deliverBody(_Discard())


def _stop_producing(transport: object) -> None:
    """Drops a response body's connection: IResponse.deliverBody gives its protocol an
    IPushProducer as the transport, not the ITransport that Protocol declares."""
    cast(IPushProducer, transport).stopProducing()


class _Discard(Protocol):
    def connectionMade(self) -> None:
        assert self.transport is not None
        _stop_producing(self.transport)

    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        pass


class _LimitedReader(Protocol):
    def __init__(self, write: Callable[[bytes], object], limit: int, done: defer.Deferred[int]) -> None:
        self._write = write
        self._limit = limit
        self._done = done
        self.size = 0

    def _fail(self, error: BaseException) -> None:
        if not self._done.called:
            self._done.errback(error)
        if self.transport is not None:
            # Drop the connection: nothing more is read from a body that is refused.
            _stop_producing(self.transport)

    def dataReceived(self, data: bytes) -> None:
        if self._done.called:
            return
        self.size += len(data)
        if self.size > self._limit:
            self._fail(BodyTooLarge(f"more than {self._limit} bytes"))
            return
        try:
            self._write(data)
        except BaseException as e:
            self._fail(e)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._done.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self._done.callback(self.size)
        else:
            self._done.errback(OutboundError(f"body not received: {reason.value}"))


async def read_body(reactor: Any, response: IResponse, write: Callable[[bytes], object], limit: int, timeout: float) -> int:
    """Passes the body to ``write`` as it arrives; its size. BodyTooLarge past ``limit``
    bytes (from Content-Length before anything is read, or while reading), BodyTimeout
    when it has not all arrived within ``timeout`` seconds: either way the connection is
    dropped, so no more of it is received."""
    if response.length is not UNKNOWN_LENGTH and isinstance(response.length, int) and response.length > limit:
        discard_body(response)
        raise BodyTooLarge(f"Content-Length {response.length} is more than {limit} bytes")
    done: defer.Deferred[int] = defer.Deferred()
    reader = _LimitedReader(write, limit, done)
    response.deliverBody(reader)

    def expire() -> None:
        reader._fail(BodyTimeout(f"body not received within {timeout:g} s"))

    timer = reactor.callLater(timeout, expire)
    try:
        return await done
    except defer.CancelledError:
        # The caller gave up (shutdown): drop the connection rather than leave it open.
        if reader.transport is not None:
            _stop_producing(reader.transport)
        raise
    finally:
        if timer.active():
            timer.cancel()
