"""Federation failures, as MatrixErrors so they render as spec errors when they reach a client."""

from __future__ import annotations

from typing import Any

from homeserver.http.errors import MatrixError


class FederationError(MatrixError):
    """A remote server answered with an error (its status and errcode are kept), or could
    not be reached (status 502, errcode M_UNKNOWN) or was refused by our policy (403)."""

    def __init__(self, code: int, errcode: str, msg: str, destination: str = "", body: Any = None, **extra: Any) -> None:
        super().__init__(code, errcode, msg, **extra)
        self.destination = destination
        self.body = body


class FederationUnreachable(FederationError):
    """No answer: DNS, connection, TLS or timeout failure."""

    def __init__(self, destination: str, reason: str) -> None:
        super().__init__(502, "M_UNKNOWN", f"Failed to reach {destination}: {reason}", destination)


class FederationDenied(FederationError):
    """Our own policy forbids talking to this destination (domain allowlist, IP blocklist)."""

    def __init__(self, destination: str, reason: str) -> None:
        super().__init__(403, "M_FORBIDDEN", f"Federation with {destination} is not allowed: {reason}", destination)


def is_unknown_endpoint(e: FederationError) -> bool:
    """Synapse's ``is_unknown_endpoint``: the server does not have the endpoint (Matrix
    1.6: 404/405 ``M_UNRECOGNIZED``; older servers: no JSON error at all, or 400)."""
    if e.code in (404, 405):
        return e.body is None or e.errcode == "M_UNRECOGNIZED"
    return e.code == 400 and e.errcode == "M_UNRECOGNIZED"


def unauthorized(msg: str) -> MatrixError:
    return MatrixError(401, "M_UNAUTHORIZED", msg)
