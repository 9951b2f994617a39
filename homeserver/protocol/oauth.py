"""The Matrix OAuth 2.0 API's own rules (client-server spec v1.15+, "OAuth 2.0 API"):
scope tokens (MSC2967), client metadata and redirect URI validation (MSC2966, RFC 8252
section 7), redirect URI matching, and the account management actions (MSC4191).

Pure functions: no I/O, no server state. The OAuth protocol machinery itself (grants,
PKCE, error responses) is authlib's; these are the Matrix-specific constraints it is
configured with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# -- scopes -------------------------------------------------------------------

API_SCOPE = "urn:matrix:client:api:*"
DEVICE_SCOPE_PREFIX = "urn:matrix:client:device:"
# The unstable forms of MSC2967 that current clients (matrix-rust-sdk, Element X, older
# matrix-js-sdk) still send; granted under the name they were asked for.
UNSTABLE_API_SCOPE = "urn:matrix:org.matrix.msc2967.client:api:*"
UNSTABLE_DEVICE_SCOPE_PREFIX = "urn:matrix:org.matrix.msc2967.client:device:"

# RFC 3986 unreserved characters: what the spec asks clients to build device ids from
# (and what the server MAY require). Anything else is refused.
_DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9\-._~]{1,255}$")
# RFC 6749 section 3.3 scope-token characters.
_SCOPE_TOKEN_RE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")


class ScopeError(ValueError):
    """The requested scope cannot be granted (OAuth error ``invalid_scope``)."""


@dataclass(frozen=True)
class MatrixScope:
    """A parsed scope: what it grants and the exact tokens granted."""

    api: bool
    device_id: str | None
    # The tokens granted, in the order requested (unknown tokens are dropped: RFC 6749
    # lets the server grant less than asked, and the token response says what it gave).
    granted: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        return " ".join(self.granted)


def parse_scope(scope: str | None) -> MatrixScope:
    """Parses a requested scope. There must be exactly one device token (spec: "MUST be
    exactly one"), and the full-API token, since a WSPR token grants nothing else."""
    if not scope or not scope.strip():
        raise ScopeError("A scope is required")
    tokens = scope.split(" ")
    if any(not t or not _SCOPE_TOKEN_RE.match(t) for t in tokens):
        raise ScopeError("Malformed scope")
    api = False
    device_ids: list[str] = []
    granted: list[str] = []
    for token in tokens:
        if token in (API_SCOPE, UNSTABLE_API_SCOPE):
            api = True
        elif token.startswith((DEVICE_SCOPE_PREFIX, UNSTABLE_DEVICE_SCOPE_PREFIX)):
            prefix = DEVICE_SCOPE_PREFIX if token.startswith(DEVICE_SCOPE_PREFIX) else UNSTABLE_DEVICE_SCOPE_PREFIX
            device_id = token[len(prefix) :]
            if not _DEVICE_ID_RE.match(device_id):
                raise ScopeError("The device ID must use only the RFC 3986 unreserved characters")
            device_ids.append(device_id)
        else:
            continue
        if token not in granted:
            granted.append(token)
    if len(set(device_ids)) != 1:
        raise ScopeError("The scope must contain exactly one urn:matrix:client:device:<device_id> token")
    if not api:
        raise ScopeError("The scope must contain urn:matrix:client:api:*")
    return MatrixScope(api=True, device_id=device_ids[0], granted=tuple(granted))


# -- client metadata ---------------------------------------------------------

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")
SUPPORTED_GRANT_TYPES = ("authorization_code", "refresh_token")
URI_FIELDS = ("logo_uri", "tos_uri", "policy_uri")


class ClientMetadataError(ValueError):
    """Registration refused. ``error`` is RFC 7591's code: ``invalid_redirect_uri`` or
    ``invalid_client_metadata``."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def _host(netloc_host: str | None) -> str:
    return (netloc_host or "").lower()


def _is_loopback_http(parts: Any) -> bool:
    return parts.scheme == "http" and _host(parts.hostname) in ("localhost", "127.0.0.1", "::1")


def _has_common_base(client: Any, uri: Any) -> bool:
    """Same host as the client URI, or a subdomain of it (the spec's "common base")."""
    base, host = _host(client.hostname), _host(uri.hostname)
    return bool(base) and (host == base or host.endswith("." + base))


def _check_https_uri(name: str, value: Any, client: Any, *, loopback_ok: bool) -> Any:
    if not isinstance(value, str) or not value:
        raise ClientMetadataError("invalid_client_metadata", f"{name} must be a URL")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ClientMetadataError("invalid_client_metadata", f"{name} is not a valid URL") from None
    if parts.scheme != "https" and not (loopback_ok and _is_loopback_http(parts)):
        raise ClientMetadataError("invalid_client_metadata", f"{name} must use https")
    if not parts.hostname:
        raise ClientMetadataError("invalid_client_metadata", f"{name} must have a host")
    if parts.username is not None or parts.password is not None:
        raise ClientMetadataError("invalid_client_metadata", f"{name} must not contain a user or password")
    if parts.fragment:
        raise ClientMetadataError("invalid_client_metadata", f"{name} must not have a fragment")
    if client is not None and not _has_common_base(client, parts):
        raise ClientMetadataError("invalid_client_metadata", f"{name} must be on the host of client_uri or a subdomain")
    return parts


def check_redirect_uri(uri: Any, client_uri: Any, application_type: str) -> None:
    """The spec's "Redirect URI validation" for one URI; raises ClientMetadataError."""
    def bad(why: str) -> ClientMetadataError:
        return ClientMetadataError("invalid_redirect_uri", f"Invalid redirect URI {uri!r}: {why}")

    if not isinstance(uri, str) or not uri:
        raise bad("not a string")
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        raise bad("not a valid URI") from None
    if "#" in uri:
        raise bad("it must not have a fragment")
    if not parts.scheme:
        raise bad("it has no scheme")
    if application_type == "native":
        if parts.scheme == "http":
            # Loopback interface: no port (any port is accepted at authorisation).
            if _host(parts.hostname) not in ("localhost", "127.0.0.1", "::1"):
                raise bad("an http redirect URI must be on the loopback interface")
            if port is not None:
                raise bad("a loopback redirect URI must not have a port")
            if parts.username is not None or parts.password is not None:
                raise bad("it must not contain a user or password")
            return
        if parts.scheme == "https":
            # Claimed https scheme: the rules of web clients.
            if _host(parts.hostname) in ("localhost", "127.0.0.1", "::1"):
                raise bad("a loopback redirect URI must use http")
        else:
            # Private-use scheme: the client URI's host in reverse-DNS order as its prefix,
            # and no authority component.
            if uri[len(parts.scheme) + 1 :].startswith("//"):
                raise bad("a private-use URI scheme must not have an authority component")
            host = _host(client_uri.hostname)
            reverse = ".".join(reversed(host.split(".")))
            scheme = parts.scheme.lower()
            if not (scheme == reverse or scheme.startswith(reverse + ".")):
                raise bad(f"a private-use URI scheme must start with {reverse!r}")
            return
    elif parts.scheme != "https" and not _is_loopback_http(parts):
        # Web clients: https. WSPR also takes loopback http for web clients, so that a
        # client under development on http://localhost can sign in (see check_client_uri).
        raise bad("a web client's redirect URI must use https")
    if parts.username is not None or parts.password is not None:
        raise bad("it must not contain a user or password")
    if not _has_common_base(client_uri, parts):
        raise bad("it must be on the host of client_uri or a subdomain")


def validate_client_metadata(data: dict[str, Any]) -> dict[str, Any]:
    """Checks a dynamic registration request (RFC 7591 with the spec's constraints) and
    returns the metadata to store and echo back. Values the server does not support are
    dropped, as the spec's example shows (localised variants, unknown grant types)."""
    if not isinstance(data, dict):
        raise ClientMetadataError("invalid_client_metadata", "The body must be a JSON object")
    application_type = data.get("application_type", "web")
    if application_type not in ("web", "native"):
        raise ClientMetadataError("invalid_client_metadata", "application_type must be web or native")
    # The spec says client_uri MUST be https. Deviation: http on a loopback host is taken
    # too, for clients under development (the redirect can only reach this machine).
    client = _check_https_uri("client_uri", data.get("client_uri"), None, loopback_ok=True)
    out: dict[str, Any] = {"client_uri": data["client_uri"], "application_type": application_type}
    name = data.get("client_name")
    if name is not None:
        if not isinstance(name, str) or len(name) > 255:
            raise ClientMetadataError("invalid_client_metadata", "client_name must be a string")
        out["client_name"] = name
    for key in URI_FIELDS:
        if data.get(key) is not None:
            _check_https_uri(key, data[key], client, loopback_ok=True)
            out[key] = data[key]
    redirect_uris = data.get("redirect_uris", [])
    if not isinstance(redirect_uris, list) or not all(isinstance(u, str) for u in redirect_uris):
        raise ClientMetadataError("invalid_redirect_uri", "redirect_uris must be a list of URIs")
    for uri in redirect_uris:
        check_redirect_uri(uri, client, application_type)
    out["redirect_uris"] = list(dict.fromkeys(redirect_uris))
    grant_types = data.get("grant_types", ["authorization_code"])
    response_types = data.get("response_types", ["code"])
    for key, value in (("grant_types", grant_types), ("response_types", response_types)):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ClientMetadataError("invalid_client_metadata", f"{key} must be a list of strings")
    out["grant_types"] = [g for g in SUPPORTED_GRANT_TYPES if g in grant_types]
    out["response_types"] = ["code"] if "code" in response_types else []
    if "authorization_code" in out["grant_types"]:
        if not out["redirect_uris"]:
            raise ClientMetadataError("invalid_redirect_uri", "The authorization code grant needs a redirect URI")
        if not out["response_types"]:
            raise ClientMetadataError("invalid_client_metadata", "The authorization code grant needs response type code")
    method = data.get("token_endpoint_auth_method", "none")
    if method != "none":
        # Matrix clients are public clients; the spec requires only "none".
        raise ClientMetadataError("invalid_client_metadata", "token_endpoint_auth_method must be none")
    out["token_endpoint_auth_method"] = "none"
    return out


def redirect_uri_matches(registered: str, requested: str) -> bool:
    """Exact string match, except that a loopback http URI registered without a port
    matches the same URI on any port (RFC 8252 section 7.3, and the spec)."""
    if registered == requested:
        return True
    try:
        reg, req = urlsplit(registered), urlsplit(requested)
        reg_port, req_port = reg.port, req.port
    except ValueError:
        return False
    if not (_is_loopback_http(reg) and reg_port is None and req_port is not None):
        return False
    return (
        req.scheme == "http"
        and _host(req.hostname) == _host(reg.hostname)
        and req.path == reg.path
        and req.query == reg.query
        and not req.fragment
        and req.username is None
        and req.password is None
    )


# -- account management (MSC4191, spec v1.18) ----------------------------------

ACTION_PROFILE = "org.matrix.profile"
ACTION_DEVICES_LIST = "org.matrix.devices_list"
ACTION_DEVICE_VIEW = "org.matrix.device_view"
ACTION_DEVICE_DELETE = "org.matrix.device_delete"
ACTION_ACCOUNT_DEACTIVATE = "org.matrix.account_deactivate"
ACTION_CROSS_SIGNING_RESET = "org.matrix.cross_signing_reset"
# MSC4191's earlier names, which clients released before spec v1.18 send.
ACTION_SESSIONS_LIST = "org.matrix.sessions_list"
ACTION_SESSION_VIEW = "org.matrix.session_view"
ACTION_SESSION_END = "org.matrix.session_end"

# The page each action opens ("device" pages take device_id).
ACCOUNT_ACTIONS: dict[str, str] = {
    ACTION_PROFILE: "profile",
    ACTION_DEVICES_LIST: "sessions",
    ACTION_SESSIONS_LIST: "sessions",
    ACTION_DEVICE_VIEW: "session",
    ACTION_SESSION_VIEW: "session",
    ACTION_DEVICE_DELETE: "session_end",
    ACTION_SESSION_END: "session_end",
    ACTION_CROSS_SIGNING_RESET: "cross_signing_reset",
}
