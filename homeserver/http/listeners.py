"""The listeners: which requests each serves (its ``resources``), and opening its port.

A listener serves the resources its configuration names, as Synapse's
``listeners[].resources[].names``, so one plain-HTTP listener behind a TLS-terminating
proxy can carry both the client and the federation API. Each request is sent by its
path to the router that holds it (``hs.client_router``, ``hs.federation_router``, the
metrics), or answered 404 when the listener does not serve that resource.

A port that cannot be opened is a ``ConfigError`` naming the listener's key
(``listeners.client.port: port 8008 is already in use``).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from prometheus_client.twisted import MetricsResource
from twisted.internet.error import CannotListenError
from twisted.web import resource, server
from twisted.web.server import Request

from homeserver.config import ConfigError, ListenerConfig
from homeserver.http.forwarded import listener_client_address
from homeserver.http.server import Router, Site, write_json

if TYPE_CHECKING:
    from homeserver.app import HomeServer

# Which resource names serve a path of each kind (Synapse's _configure_named_resource:
# /_matrix/media is in client, federation and media; the client and federation media
# endpoints in media too; the web client in client and static).
_SERVED_BY = {
    "federation": {"federation"},
    "federation_media": {"federation", "media"},
    "legacy_media": {"client", "federation", "media"},
    "client_media": {"client", "media"},
    "metrics": {"metrics"},
    "client": {"client"},
    "web": {"client", "static"},
}
# API paths: never answered with the web client's shell.
_API_PREFIXES = ("/_matrix/", "/_synapse/", "/_wspr/", "/.well-known/")
METRICS_PATHS = ("/metrics", "/_synapse/metrics")


def path_kind(path: str) -> str:
    """The kind of a request path (a key of ``_SERVED_BY``)."""
    if path.startswith("/_matrix/federation/v1/media/"):
        return "federation_media"
    if path.startswith(("/_matrix/federation/", "/_matrix/key/")):
        return "federation"
    if path.startswith("/_matrix/media/"):
        return "legacy_media"
    if path.startswith("/_matrix/client/v1/media/"):
        return "client_media"
    if path.rstrip("/") in METRICS_PATHS:
        return "metrics"
    if path.startswith(_API_PREFIXES):
        return "client"
    return "web"


class ListenerResource(resource.Resource):
    """Sends each request to the router of its path, if the listener serves it."""

    isLeaf = True

    def __init__(self, hs: HomeServer, names: tuple[str, ...]) -> None:
        super().__init__()
        self.names = frozenset(names)
        self._client = hs.client_router
        self._federation = hs.federation_router
        self._metrics = MetricsResource()

    def _target(self, path: bytes) -> Any:
        """The resource that serves ``path`` here (a Router, the metrics' WSGI resource,
        the web client), or None."""
        kind = path_kind(path.decode("utf-8", "replace"))
        if not self.names & _SERVED_BY[kind]:
            return None
        if kind in ("federation", "federation_media"):
            return self._federation
        if kind == "metrics":
            return self._metrics
        if kind == "web" and "client" not in self.names:
            return self._client.fallback  # the web client alone ("static"); None when disabled
        return self._client

    def body_limit(self, method: bytes, path: bytes) -> int | None:
        target = self._target(path)
        return target.body_limit(method, path) if isinstance(target, Router) else None

    def render(self, request: Request) -> Any:
        target = self._target(request.path)
        if target is None:
            write_json(request, 404, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"})
            return server.NOT_DONE_YET
        return target.render(request)


def listener_site(hs: HomeServer, listener: ListenerConfig) -> Site:
    """The site of one listener: its resources, and its policy for the client's address."""
    site = Site(ListenerResource(hs, listener.resources))
    site.displayTracebacks = False
    site.client_address = listener_client_address(listener)
    return site


def listen(hs: HomeServer, key: str, listener: ListenerConfig, site: Site, tls: Any = None) -> Any:
    """Opens a listener's port (TLS with ``tls``, a context factory); a port that cannot
    be opened is a ConfigError naming ``key`` (``listeners.client``...)."""
    reactor: Any = hs.reactor
    try:
        if tls is not None:
            return reactor.listenSSL(listener.port, site, tls, interface=listener.bind_address)
        return reactor.listenTCP(listener.port, site, interface=listener.bind_address)
    except CannotListenError as e:
        raise listen_error(key, listener.bind_address, listener.port, e.socketError) from None


def listen_error(key: str, bind_address: str, port: int, error: BaseException) -> ConfigError:
    """The one line for a port that cannot be opened (the SFU's process uses it too)."""
    code = getattr(error, "errno", None)
    if code == errno.EADDRINUSE:
        return ConfigError(f"{key}.port", f"port {port} is already in use")
    if code == errno.EACCES:
        return ConfigError(f"{key}.port", f"no permission to listen on port {port}")
    if code == errno.EADDRNOTAVAIL:
        return ConfigError(f"{key}.bind_address", f"{bind_address} is not an address of this machine")
    return ConfigError(f"{key}.port", f"cannot listen on {bind_address}:{port}: {getattr(error, 'strerror', None) or error}")
