"""The Prometheus /metrics listener (kept off the client port)."""

from __future__ import annotations

from prometheus_client.twisted import MetricsResource
from twisted.web import resource

from homeserver.http.server import Site


def metrics_site() -> Site:
    root = resource.Resource()
    root.putChild(b"metrics", MetricsResource())
    return Site(root)
