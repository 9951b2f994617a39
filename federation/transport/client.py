"""Outbound federation HTTP: signed requests over TLS with treq, server discovery and the
IP range blocklist applied at connect time (so a well-known or SRV answer pointing at an
internal address is refused too).

URLs use a private ``matrix-federation://<server name>/path`` scheme (as Synapse does):
the endpoint factory resolves the name (SRV, port 8448) when connecting; the well-known
step runs before the request so the ``Host`` header and TLS name are the delegated name.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from io import BytesIO
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode

import treq
from OpenSSL import SSL
from treq.client import HTTPClient
from twisted.internet import defer, ssl, threads
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IStreamClientEndpoint
from twisted.web.client import (
    Agent,
    FileBodyProducer,
    HTTPConnectionPool,
    RequestTransmissionFailed,
    ResponseNeverReceived,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from federation.discovery import (
    MAX_WELL_KNOWN_BYTES,
    Candidate,
    ServerDiscovery,
    is_ip_literal,
    parse_cache_control,
    split_server_name,
    twisted_srv_lookup,
)
from federation.errors import FederationDenied, FederationError, FederationUnreachable
from federation.transport.xmatrix import sign_request
from homeserver.util.ip_filter import IPFilter

if TYPE_CHECKING:
    from homeserver.app import HomeServer

logger = logging.getLogger(__name__)

T = TypeVar("T")

SCHEME = b"matrix-federation"
CONNECT_TIMEOUT_S = 10
DEFAULT_TIMEOUT_S = 60
MAX_RESPONSE_BYTES = 100 * 1024 * 1024
MAX_ERROR_BYTES = 64 * 1024
USER_AGENT = b"WSPR"
MAX_CONNECTIONS_PER_DESTINATION = 20


def host_header(server_name: str) -> bytes:
    """A server name as the ``Host`` header and URL authority want it: IDNA for a DNS
    name, as it is for an IP literal (``127.0.0.1:8448``, ``[::1]:8448``)."""
    host, port = split_server_name(server_name)
    encoded = host.encode("ascii") if is_ip_literal(host) else host.encode("idna")
    return encoded if port is None else encoded + b":%d" % port


@implementer(IOpenSSLClientConnectionCreator)
class _NoVerifyCreator:
    """TLS without certificate checks (``federation.verify_certificates: false``), still
    sending SNI so the peer picks the right certificate."""

    def __init__(self, ctx: SSL.Context, hostname: str) -> None:
        self._ctx = ctx
        self._sni = None if is_ip_literal(hostname) else hostname.encode("idna")

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        conn = SSL.Connection(self._ctx, None)
        conn.set_app_data(tlsProtocol)
        if self._sni:
            conn.set_tlsext_host_name(self._sni)
        return conn


class TLSPolicy:
    def __init__(self, verify: bool, ca_file: str | None) -> None:
        self.verify = verify
        self._trust: Any = None
        if verify:
            if ca_file:
                with open(ca_file, "rb") as f:
                    pem = f.read()
                marker = b"-----BEGIN CERTIFICATE-----"
                certs = [ssl.Certificate.loadPEM(marker + part) for part in pem.split(marker)[1:]]
                self._trust = ssl.trustRootFromCertificates(certs)
            else:
                self._trust = ssl.platformTrust()
        else:
            self._ctx = ssl.CertificateOptions(verify=False).getContext()

    def creator_for(self, hostname: str) -> Any:
        if not self.verify:
            return _NoVerifyCreator(self._ctx, hostname)
        return ssl.optionsForClientTLS(hostname, trustRoot=self._trust)


@implementer(IStreamClientEndpoint)
class _FederationEndpoint:
    """Connects to one server name: candidates from discovery (or the URL's host:port for
    plain https), each resolved to IPs checked against the blocklist, then TLS."""

    def __init__(self, transport: FederationTransport, scheme: bytes, host: str, port: int) -> None:
        self._t = transport
        self._scheme = scheme
        self._host = host
        self._port = port

    def connect(self, protocolFactory: Any) -> defer.Deferred[Any]:
        return defer.ensureDeferred(self._connect(protocolFactory))

    async def _connect(self, protocolFactory: Any) -> Any:
        if self._scheme == SCHEME:
            name = f"{self._host}:{self._port}" if self._port else self._host
            candidates = await self._t.discovery.resolve_delegated(name)
            tls_name = split_server_name(name)[0].strip("[]")
        else:
            candidates = [Candidate(self._host, self._port)]
            tls_name = self._host.strip("[]")
        last_error: Exception | None = None
        blocked = False
        for cand in candidates:
            try:
                addresses = await self._t.resolve_ips(cand.host, cand.port)
            except Exception as e:
                last_error = e
                continue
            for family, ip in addresses:
                if not self._t.ip_filter.is_allowed(ip):
                    blocked = True
                    continue
                cls = TCP6ClientEndpoint if family == socket.AF_INET6 else TCP4ClientEndpoint
                tcp = cls(self._t.reactor, ip, cand.port, timeout=CONNECT_TIMEOUT_S)
                endpoint = wrapClientTLS(self._t.tls.creator_for(tls_name), tcp)
                try:
                    return await endpoint.connect(protocolFactory)
                except Exception as e:
                    last_error = e
        if blocked and last_error is None:
            raise FederationDenied(self._host, "address is in a blocked IP range")
        raise last_error or FederationUnreachable(self._host, "no address")


@implementer(IAgentEndpointFactory)
class _EndpointFactory:
    def __init__(self, transport: FederationTransport) -> None:
        self._t = transport

    def endpointForURI(self, uri: Any) -> IStreamClientEndpoint:
        if uri.scheme == SCHEME:
            # URI.fromBytes fills in port 80 when there is none; the netloc tells the truth.
            host, port = split_server_name(uri.netloc.decode("ascii"))
            return _FederationEndpoint(self._t, SCHEME, host, port or 0)
        return _FederationEndpoint(self._t, uri.scheme, uri.host.decode("ascii"), uri.port)


class _TooLarge(Exception):
    pass


async def _read_limited(resp: Any, limit: int) -> bytes:
    """The response body, refusing (and dropping the connection) past ``limit`` bytes."""
    if resp.length is not None and isinstance(resp.length, int) and resp.length > limit:
        resp.deliverBody(_Discard())
        raise _TooLarge(f"response of {resp.length} bytes")
    chunks: list[bytes] = []
    size = 0

    def collect(data: bytes) -> None:
        nonlocal size
        size += len(data)
        if size > limit:
            raise _TooLarge(f"response larger than {limit} bytes")
        chunks.append(data)

    await treq.collect(resp, collect)
    return b"".join(chunks)


class _Discard:
    def makeConnection(self, transport: Any) -> None:
        transport.stopProducing()

    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Any) -> None:
        pass


def _remote_error(destination: str, code: int, raw: bytes) -> FederationError:
    """The remote's error answer, with its status and errcode."""
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    errcode = parsed.get("errcode") if isinstance(parsed, dict) else None
    if not isinstance(errcode, str):
        errcode = "M_UNKNOWN"
    msg = parsed.get("error") if isinstance(parsed, dict) and isinstance(parsed.get("error"), str) else f"HTTP {code}"
    return FederationError(code, errcode, f"{destination}: {msg}", destination, parsed)


def _reason(e: Exception) -> str:
    reasons = getattr(e, "reasons", None)
    if reasons:
        return str(reasons[0].value) or type(reasons[0].value).__name__
    return type(e).__name__ + (f": {e}" if str(e) else "")


class FederationTransport:
    """Signed JSON requests to other servers. ``request`` is the one entry point."""

    def __init__(self, hs: HomeServer, discovery: ServerDiscovery | None = None) -> None:
        self.hs = hs
        self.reactor = hs.reactor
        cfg = hs.config.federation
        self.tls = TLSPolicy(cfg.verify_certificates, cfg.ca_file)
        self.ip_filter = IPFilter(cfg.ip_range_blocklist, cfg.ip_range_allowlist)
        self.domain_allowlist = set(cfg.domain_allowlist) if cfg.domain_allowlist is not None else None
        self.pool = HTTPConnectionPool(self.reactor, persistent=True)
        # Requests to one destination share this many kept-alive connections: beyond it
        # they queue (see _slots) instead of each paying for a new TLS handshake.
        self.pool.maxPersistentPerHost = MAX_CONNECTIONS_PER_DESTINATION
        self._slots: dict[str, defer.DeferredSemaphore] = {}
        self._inflight: set[defer.Deferred[Any]] = set()
        self.pool.cachedConnectionTimeout = 60
        # Federation requests go to the agent itself: treq re-encodes a URL's host with IDNA,
        # which refuses an IPv6 literal such as [::1]:8448.
        self.agent = Agent.usingEndpointFactory(self.reactor, _EndpointFactory(self), pool=self.pool)
        self.http = HTTPClient(self.agent)
        self.discovery = discovery or ServerDiscovery(self.reactor.seconds, self._fetch_well_known, twisted_srv_lookup)

    async def close(self) -> None:
        for d in list(self._inflight):
            d.cancel()
        await self.pool.closeCachedConnections()

    def check_destination(self, destination: str) -> None:
        if not self.hs.config.federation.enabled:
            raise FederationDenied(destination, "federation is disabled on this server")
        if destination == self.hs.server_name:
            raise FederationDenied(destination, "that is this server")
        try:
            split_server_name(destination)
        except ValueError:
            raise FederationDenied(destination, "invalid server name") from None
        if self.domain_allowlist is not None and destination not in self.domain_allowlist:
            raise FederationDenied(destination, "not in federation.domain_allowlist")

    async def resolve_ips(self, host: str, port: int) -> list[tuple[int, str]]:
        if is_ip_literal(host):
            ip = host.strip("[]")
            return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip)]
        infos = await threads.deferToThreadPool(
            self.reactor, self.reactor.getThreadPool(), socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM
        )
        seen: list[tuple[int, str]] = []
        for family, _, _, _, sockaddr in infos:
            item = (family, str(sockaddr[0]))
            if item not in seen and family in (socket.AF_INET, socket.AF_INET6):
                seen.append(item)
        return seen

    async def _fetch_well_known(self, host: str) -> tuple[int | None, bytes, int | None]:
        resp = await self.http.get(
            f"https://{host}/.well-known/matrix/server".encode("idna"), timeout=CONNECT_TIMEOUT_S, allow_redirects=True
        )
        body = await _read_limited(resp, MAX_WELL_KNOWN_BYTES)
        cc = resp.headers.getRawHeaders(b"cache-control")
        return resp.code, body, parse_cache_control(cc[0].decode("latin-1") if cc else None)

    async def request(
        self,
        destination: str,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> Any:
        """Send one signed request; returns the parsed JSON of a 200 answer.

        ``path`` is already percent-encoded. Raises FederationError with the remote's
        status/errcode, FederationUnreachable, or FederationDenied.
        """
        delegated, url, data, headers = await self._prepare(destination, method, path, query, body)
        slots = self._acquire_slot(delegated)
        await slots.acquire()
        try:
            resp, raw = await self._send(destination, method, url, data, headers, timeout)
        finally:
            self._release_slot(delegated, slots)
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        if resp.code == 200:
            if parsed is None and raw:
                raise FederationError(502, "M_UNKNOWN", f"{destination} answered with invalid JSON", destination)
            return parsed
        raise _remote_error(destination, resp.code, raw)

    async def stream(
        self,
        destination: str,
        path: str,
        consume: Callable[[Any], Awaitable[T]],
        *,
        query: Mapping[str, Any] | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> T:
        """A signed GET whose answer (status below 400) is handed to ``consume(response)``
        unread, to stream its body (``homeserver.util.outbound_http.read_body``); an
        error status raises FederationError as ``request`` does. Such a request does not
        take one of the destination's slots: a slow download must not hold up the
        transactions to it (the caller bounds how many it streams at once)."""
        _, url, _, headers = await self._prepare(destination, "GET", path, query, None)
        resp = await self._send_streaming(destination, url, headers, timeout)
        if resp.code >= 400:
            try:
                raw = await _read_limited(resp, MAX_ERROR_BYTES)
            except Exception:
                raw = b""
            raise _remote_error(destination, resp.code, raw)
        return await consume(resp)

    async def _prepare(
        self, destination: str, method: str, path: str, query: Mapping[str, Any] | None, body: Any
    ) -> tuple[str, bytes, bytes | None, Headers]:
        self.check_destination(destination)
        uri = path
        if query:
            uri += "?" + urlencode({k: v for k, v in query.items() if v is not None}, doseq=True)
        auth = sign_request(self.hs.signing_key, self.hs.server_name, destination, method, uri, body)
        try:
            delegated = await self._delegated_name(destination)
        except Exception as e:
            raise FederationUnreachable(destination, f"discovery failed: {e}") from None
        headers = Headers(
            {
                b"Authorization": [auth.encode("utf-8")],
                b"User-Agent": [USER_AGENT],
                b"Host": [host_header(delegated)],
            }
        )
        data = None
        if body is not None:
            data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            headers.addRawHeader(b"Content-Type", b"application/json")
        url = b"matrix-federation://" + host_header(delegated) + uri.encode("utf-8")
        return delegated, url, data, headers

    def _acquire_slot(self, delegated: str) -> defer.DeferredSemaphore:
        slots = self._slots.get(delegated)
        if slots is None:
            slots = self._slots[delegated] = defer.DeferredSemaphore(MAX_CONNECTIONS_PER_DESTINATION)
        return slots

    def _release_slot(self, delegated: str, slots: defer.DeferredSemaphore) -> None:
        slots.release()
        if slots.tokens == slots.limit and not slots.waiting:
            self._slots.pop(delegated, None)

    async def _send_streaming(self, destination: str, url: bytes, headers: Headers, timeout: float) -> Any:
        attempts = 2
        while True:
            attempts -= 1
            try:
                d = self.agent.request(b"GET", url, headers, None)
                timer = self.reactor.callLater(timeout, d.cancel)
                try:
                    return await self._tracked(d)
                finally:
                    if timer.active():
                        timer.cancel()
            except (ResponseNeverReceived, RequestTransmissionFailed) as e:
                if attempts > 0:
                    continue  # a kept-alive connection the peer had closed (see _send)
                raise FederationUnreachable(destination, _reason(e)) from None
            except FederationError:
                raise
            except Exception as e:
                raise FederationUnreachable(destination, _reason(e)) from None

    async def _send(
        self, destination: str, method: str, url: bytes, data: bytes | None, headers: Headers, timeout: float
    ) -> tuple[Any, bytes]:
        attempts = 2 if method in ("GET", "PUT") else 1
        while True:
            attempts -= 1
            try:
                return await self._tracked(self._request_once(method, url, data, headers, timeout))
            except (ResponseNeverReceived, RequestTransmissionFailed) as e:
                # A kept-alive connection the peer had closed: GET and PUT (transactions are
                # deduplicated by id) are safe to send again at once on a new one.
                if attempts > 0:
                    continue
                raise FederationUnreachable(destination, _reason(e)) from None
            except FederationError:
                raise
            except Exception as e:
                raise FederationUnreachable(destination, _reason(e)) from None

    async def _request_once(
        self, method: str, url: bytes, data: bytes | None, headers: Headers, timeout: float
    ) -> tuple[Any, bytes]:
        body = FileBodyProducer(BytesIO(data)) if data is not None else None
        d = self.agent.request(method.encode("ascii"), url, headers, body)
        # Like treq's timeout: the response (status and headers) must arrive in time.
        timer = self.reactor.callLater(timeout, d.cancel)
        try:
            resp = await d
        finally:
            if timer.active():
                timer.cancel()
        return resp, await _read_limited(resp, MAX_RESPONSE_BYTES)

    def _tracked(self, coro: Any) -> defer.Deferred[Any]:
        # close() cancels what is still in flight, so no connection outlives the server.
        d = defer.ensureDeferred(coro)
        if not d.called:
            self._inflight.add(d)

            def untrack(result: Any) -> Any:
                self._inflight.discard(d)
                return result

            d.addBoth(untrack)
        return d

    async def _delegated_name(self, destination: str) -> str:
        return await self.discovery.delegated_name(destination)
