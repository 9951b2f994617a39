"""The OAuth 2.0 API's HTTP endpoints: server metadata discovery (with the unstable
MSC2965 paths and the issuer's ``/.well-known`` documents), dynamic client registration,
the token and revocation endpoints, the public keys, and the ``m.oauth`` UIA fallback.

With ``password_login: oauth_only`` this module also answers the legacy authentication
endpoints the way Synapse does when its authentication is delegated to MAS (the servlets
are not registered there): 404 ``M_UNRECOGNIZED`` for /login (unless
``org.matrix.login.jwt`` is on), /refresh, /logout, password change, deactivation and
device deletion, and /register refuses everything but application services. It is
registered before the modules that serve those paths otherwise, so its routes win.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from twisted.web.server import Request

from homeserver.http.errors import MatrixError, Unrecognized
from homeserver.http.request import read_body
from homeserver.http.server import CLIENT_V3, RawResponse, Router, json_bytes
from homeserver.protocol.oauth import ACTION_CROSS_SIGNING_RESET

if TYPE_CHECKING:
    from homeserver.app import HomeServer

MAX_BODY = 64 * 1024
# As Synapse serves auth_metadata: cacheable, briefly.
METADATA_CACHE = "public, max-age=600, s-maxage=3600, stale-while-revalidate=600"


def _json_response(status: int, body: Any, headers: list[tuple[str, str]] | dict[str, str] | None = None) -> RawResponse:
    out = {"Content-Type": "application/json", "Cache-Control": "no-store", "Pragma": "no-cache"}
    for k, v in (headers.items() if isinstance(headers, dict) else headers or []):
        out[k] = v
    return RawResponse(status, json_bytes(body) if body != "" else b"", out)


def _form(request: Request) -> dict[str, list[str]]:
    ctype = (request.getHeader(b"Content-Type") or b"").decode("ascii", "replace").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        return {}
    return parse_qs(read_body(request, MAX_BODY).decode("utf-8", "replace"), keep_blank_values=True)


def _headers(request: Request) -> dict[str, str]:
    return {k.decode("latin-1"): v[0].decode("latin-1") for k, v in request.requestHeaders.getAllRawHeaders()}


def register(hs: HomeServer, router: Router) -> None:
    config = hs.config.auth
    provider = hs.oauth
    if config.password_login == "oauth_only":
        _shadow_legacy_auth(hs, router)
    if not config.oauth_enabled:
        return

    async def metadata(request: Request) -> RawResponse:
        return RawResponse(
            200, json_bytes(provider.metadata()), {"Content-Type": "application/json", "Cache-Control": METADATA_CACHE}
        )

    async def issuer(request: Request) -> tuple[int, Any]:
        return 200, {"issuer": provider.base}

    async def register_client(request: Request) -> RawResponse:
        try:
            body = json.loads(read_body(request, MAX_BODY).decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return _json_response(400, {"error": "invalid_client_metadata", "error_description": "The body is not JSON"})
        if not isinstance(body, dict):
            return _json_response(400, {"error": "invalid_client_metadata", "error_description": "The body must be an object"})
        status, payload, headers = await provider.register_client(body, _headers(request))
        return _json_response(status, payload, headers)

    async def token(request: Request) -> RawResponse:
        status, payload, headers = await provider.token(_form(request), _headers(request))
        return _json_response(status, payload, headers)

    async def revoke(request: Request) -> RawResponse:
        status, payload, headers = await provider.revoke(_form(request), _headers(request))
        return _json_response(status, payload, headers)

    async def keys(request: Request) -> RawResponse:
        return RawResponse(
            200,
            json_bytes(hs.auth.sessions.codec.keys.public_jwks()),
            {"Content-Type": "application/json", "Cache-Control": "public, max-age=300"},
        )

    async def oauth_fallback(request: Request, stage: str) -> RawResponse:
        # The UIA fallback of the m.oauth stage (and its MSC4312 name) opens the account
        # page that approves the reset, as Synapse redirects to MAS.
        location = f"{provider.account_url}?action={ACTION_CROSS_SIGNING_RESET}"
        return RawResponse(302, b"", {"Location": location, "Cache-Control": "no-store"})

    router.register("GET", "/_matrix/client/v1/auth_metadata", metadata)
    router.register("GET", "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata", metadata)
    router.register("GET", "/_matrix/client/unstable/org.matrix.msc2965/auth_issuer", issuer)
    # The issuer's own discovery documents, for clients that go through the issuer
    # (RFC 8414 and OpenID Connect Discovery paths; the issuer is public_baseurl).
    router.register("GET", "/.well-known/openid-configuration", metadata)
    router.register("GET", "/.well-known/oauth-authorization-server", metadata)
    router.register("POST", "/_wspr/oauth2/register", register_client)
    router.register("POST", "/_wspr/oauth2/token", token)
    router.register("POST", "/_wspr/oauth2/revoke", revoke)
    router.register("GET", "/_wspr/oauth2/keys.json", keys)
    router.register_prefixes(
        "GET", CLIENT_V3, "/auth/(?P<stage>m\\.oauth|org\\.matrix\\.cross_signing_reset)/fallback/web", oauth_fallback
    )
    # Older clients read the issuer from /.well-known/matrix/client (MSC2965's first form).
    hs.well_known_extra["org.matrix.msc2965.authentication"] = {"issuer": provider.base, "account": provider.account_url}


def _shadow_legacy_auth(hs: HomeServer, router: Router) -> None:
    async def unrecognized(request: Request, **_: str) -> Any:
        raise Unrecognized()

    async def register_refused(request: Request) -> Any:
        # Synapse's RegisterAppServiceOnlyRestServlet; WSPR has no application services.
        raise MatrixError(
            403, "M_FORBIDDEN", "Registration has been disabled. Only m.login.application_service registrations are allowed."
        )

    if not hs.config.auth.jwt_login.enabled:
        router.register_prefixes(["GET", "POST"], CLIENT_V3, "/login", unrecognized)
    router.register_prefixes("POST", CLIENT_V3, "/register", register_refused)
    router.register_prefixes("GET", CLIENT_V3, "/register/available", unrecognized)
    router.register_prefixes("POST", CLIENT_V3 + ["/_matrix/client/v1"], "/refresh", unrecognized)
    router.register_prefixes("POST", CLIENT_V3, "/logout", unrecognized)
    router.register_prefixes("POST", CLIENT_V3, "/logout/all", unrecognized)
    router.register_prefixes("POST", CLIENT_V3, "/account/password", unrecognized)
    router.register_prefixes("POST", CLIENT_V3, "/account/deactivate", unrecognized)
    router.register_prefixes("DELETE", CLIENT_V3, "/devices/(?P<device_id>[^/]+)", unrecognized)
    router.register_prefixes("POST", CLIENT_V3, "/delete_devices", unrecognized)
