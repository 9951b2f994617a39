"""The OAuth 2.0 authorisation server of the Matrix OAuth 2.0 API, on authlib.

authlib does the protocol: request validation, the authorisation code grant with PKCE
(S256 only), the refresh token grant, RFC 7009 revocation, RFC 7591 registration, and
the RFC 6749 error responses. authlib is synchronous and WSPR's storage is not, so every
call here has three steps:

1. load what authlib will ask for (the client, the code, the refresh token's session,
   the user) into a per-request ``_Context``;
2. run authlib on a fresh ``_Server`` over that context: its hooks read the context and
   record what is to be stored (a new code, new tokens) instead of storing it;
3. store the effects; the single-use checks (a code, a refresh token) are made there,
   atomically, so two concurrent requests cannot both use one. Tokens are answered only
   once stored.

The Matrix rules (scopes, redirect URIs, client metadata) are in homeserver.protocol.oauth.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749 import (
    AccessDeniedError,
    AuthorizationServer,
    ClientMixin,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload, JsonRequest
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint
from authlib.oauth2.rfc7591.errors import (
    InvalidClientMetadataError,
    InvalidRedirectURIError,
)
from authlib.oauth2.rfc7636 import CodeChallenge

from homeserver.oauth.sessions import IssuedTokens, RefreshFailed
from homeserver.protocol import oauth as spec
from homeserver.storage.sessions import (
    AuthorizationCodeRecord,
    CodeAlreadyUsed,
    SessionRecord,
)
from homeserver.storage.users import UserRecord
from homeserver.util.ids import hash_token, now_ms

if TYPE_CHECKING:
    from homeserver.app import HomeServer

logger = logging.getLogger(__name__)

# RFC 6749 section 4.1.2 recommends at most 10 minutes.
AUTHORIZATION_CODE_LIFETIME_MS = 10 * 60 * 1000
OAUTH_PREFIX = "_wspr/oauth2"
ACCOUNT_PATH = "_wspr/account"

Response = tuple[int, Any, list[tuple[str, str]]]


# -- models authlib works with ----------------------------------------------------


class OAuthClient(ClientMixin):
    """A registered (public) client."""

    def __init__(self, client_id: str, metadata: dict[str, Any]) -> None:
        self.client_id = client_id
        self.metadata = metadata

    @property
    def name(self) -> str:
        return self.metadata.get("client_name") or self.metadata.get("client_uri", self.client_id)

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # The Matrix flow always sends redirect_uri.
        return None

    def get_allowed_scope(self, scope: str) -> str:
        return scope

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return any(spec.redirect_uri_matches(r, redirect_uri) for r in self.metadata.get("redirect_uris", []))

    def check_client_secret(self, client_secret: str) -> bool:
        return False

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "none"

    def check_response_type(self, response_type: str) -> bool:
        return response_type in self.metadata.get("response_types", [])

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.metadata.get("grant_types", [])


class _AuthCode:
    def __init__(self, record: AuthorizationCodeRecord) -> None:
        self.record = record
        self.code_challenge = record.code_challenge
        self.code_challenge_method = record.code_challenge_method

    def get_redirect_uri(self) -> str:
        return self.record.redirect_uri

    def get_scope(self) -> str:
        return self.record.scope

    def get_auth_time(self) -> int:
        return self.record.auth_time // 1000


class _RefreshCredential:
    def __init__(self, session: SessionRecord) -> None:
        self.session = session

    def check_client(self, client: OAuthClient) -> bool:
        return client.client_id == self.session.client_id

    def get_scope(self) -> str:
        return self.session.scope or ""

    def is_expired(self) -> bool:
        return False

    def is_revoked(self) -> bool:
        return False


@dataclass
class _Context:
    """What one request's authlib run reads (loaded before) and produced (stored after)."""

    client: OAuthClient | None = None
    code: AuthorizationCodeRecord | None = None
    refresh_session: SessionRecord | None = None
    user: UserRecord | None = None
    revocable: SessionRecord | None = None
    # effects
    new_code: str | None = None
    issued: IssuedTokens | None = None
    revoke: list[SessionRecord] = field(default_factory=list)
    registered: dict[str, Any] | None = None


class _Request(OAuth2Request):
    """An authlib request over parameters the HTTP layer parsed (query or form)."""

    def __init__(self, method: str, uri: str, params: dict[str, list[str]], headers: dict[str, str]) -> None:
        super().__init__(method, uri, headers=headers)
        self.payload = _Payload(params)
        self._single = {k: v[0] for k, v in params.items() if v}

    @property
    def args(self) -> dict[str, str]:
        return self._single

    @property
    def form(self) -> dict[str, str]:
        return self._single


class _Payload(BasicOAuth2Payload):
    def __init__(self, params: dict[str, list[str]]) -> None:
        super().__init__({k: v[0] for k, v in params.items() if v})
        self._datalist = dict(params)


class _JsonRequest(JsonRequest):
    def __init__(self, uri: str, body: dict[str, Any], headers: dict[str, str]) -> None:
        super().__init__("POST", uri, headers)
        self.payload = BasicOAuth2Payload(body)


# -- grants and endpoints ------------------------------------------------------------


class _S256Only(CodeChallenge):
    """PKCE is required and only S256 is taken: no challenge, ``plain``, or no method
    (which RFC 7636 reads as plain) is an invalid_request."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: missing 'code_challenge'")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("Only the S256 'code_challenge_method' is supported")
        super().validate_code_challenge(grant, redirect_uri)


class _CodeGrant(AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]

    @property
    def ctx(self) -> _Context:
        return self.server.ctx

    def validate_authorization_request(self) -> str:
        redirect_uri = super().validate_authorization_request()
        mode = self.request.payload.data.get("response_mode")
        if mode not in (None, "query", "fragment"):
            raise InvalidRequestError("response_mode must be query or fragment", redirect_uri=redirect_uri)
        return redirect_uri

    def create_authorization_response(self, redirect_uri: str, grant_user: Any) -> Response:
        if not grant_user:
            raise AccessDeniedError(redirect_uri=redirect_uri)
        self.request.user = grant_user
        code = self.generate_authorization_code()
        self.save_authorization_code(code, self.request)
        params = [("code", code)]
        if self.request.payload.state:
            params.append(("state", self.request.payload.state))
        fragment = self.request.payload.data.get("response_mode") == "fragment"
        return 302, "", [("Location", add_params_to_uri(redirect_uri, params, fragment=fragment))]

    def save_authorization_code(self, code: str, request: Any) -> None:
        self.ctx.new_code = code

    def query_authorization_code(self, code: str, client: OAuthClient) -> _AuthCode | None:
        record = self.ctx.code
        if record is None or record.client_id != client.client_id:
            return None
        if record.used_ts is not None:
            # Used before: RFC 6749 4.1.2 says deny, and revoke what it gave.
            return None
        if record.expires_ts <= now_ms():
            return None
        return _AuthCode(record)

    def delete_authorization_code(self, authorization_code: _AuthCode) -> None:
        pass  # consumed atomically with the session's creation (SessionStore.create_session)

    def authenticate_user(self, authorization_code: _AuthCode) -> UserRecord | None:
        user = self.ctx.user
        return user if user is not None and not user.deactivated else None


class _RefreshGrant(RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    @property
    def ctx(self) -> _Context:
        return self.server.ctx

    def authenticate_refresh_token(self, refresh_token: str) -> _RefreshCredential | None:
        session = self.ctx.refresh_session
        return _RefreshCredential(session) if session is not None else None

    def authenticate_user(self, credential: _RefreshCredential) -> UserRecord | None:
        user = self.ctx.user
        return user if user is not None and not user.deactivated else None

    def revoke_old_credential(self, credential: _RefreshCredential) -> None:
        pass  # the rotation is stored afterwards (SessionHandler.commit_refresh)


class _Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = ["none"]

    def authenticate_endpoint_client(self, request: Any) -> OAuthClient:
        # The spec: "If the client_id is not provided, or does not match the client
        # associated with the token, the server SHOULD still revoke the token" (so that
        # secret scanners can revoke leaked tokens).
        client = self.server.ctx.client
        return client if client is not None else OAuthClient("", {})

    def query_token(self, token_string: str, token_type_hint: str | None) -> _RefreshCredential | None:
        session = self.server.ctx.revocable
        return _AnyClientCredential(session) if session is not None else None

    def revoke_token(self, token: _RefreshCredential, request: Any) -> None:
        self.server.ctx.revoke.append(token.session)


class _AnyClientCredential(_RefreshCredential):
    def check_client(self, client: OAuthClient) -> bool:
        return True


class _Registration(ClientRegistrationEndpoint):
    def authenticate_token(self, request: Any) -> bool:
        return True  # open dynamic registration, as the spec expects

    def extract_client_metadata(self, request: Any) -> dict[str, Any]:
        try:
            return spec.validate_client_metadata(request.payload.data)
        except spec.ClientMetadataError as e:
            if e.error == "invalid_redirect_uri":
                raise InvalidRedirectURIError(e.description) from None
            raise InvalidClientMetadataError(e.description) from None

    def generate_client_info(self, request: Any) -> dict[str, Any]:
        # Public clients: no secret.
        return {"client_id": secrets.token_urlsafe(16)}

    def save_client(self, client_info: dict[str, Any], client_metadata: dict[str, Any], request: Any) -> dict[str, Any]:
        self.server.ctx.registered = {**client_metadata, **client_info}
        return self.server.ctx.registered

    def get_server_metadata(self) -> dict[str, Any]:
        return {}


class _Server(AuthorizationServer):
    """One per request: authlib's server over one request's context."""

    def __init__(self, provider: OAuthProvider, ctx: _Context) -> None:
        super().__init__()
        self.ctx = ctx
        self.provider = provider
        self.register_grant(_CodeGrant, [_S256Only(required=True)])
        self.register_grant(_RefreshGrant)
        self.register_endpoint(_Revocation)
        self.register_endpoint(_Registration)
        self.register_token_generator("default", self._generate_token)

    def query_client(self, client_id: str) -> OAuthClient | None:
        client = self.ctx.client
        return client if client is not None and client.client_id == client_id else None

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        pass  # the issued tokens are in ctx.issued, stored after authlib returns

    def validate_requested_scope(self, scope: str | None) -> None:
        try:
            spec.parse_scope(scope)
        except spec.ScopeError as e:
            raise InvalidScopeError(str(e)) from None

    def _generate_token(
        self, grant_type: str, client: OAuthClient, user: UserRecord | None = None, scope: str | None = None, **_: Any
    ) -> dict[str, Any]:
        assert user is not None
        sessions = self.provider.hs.auth.sessions
        if grant_type == "refresh_token":
            assert self.ctx.refresh_session is not None
            session = self.ctx.refresh_session
        else:
            parsed = spec.parse_scope(scope)
            session = sessions.new_session(
                user.user_id,
                parsed.device_id,
                kind="oauth",
                refreshable=True,
                client_id=client.client_id,
                scope=str(parsed),
            )
        issued = sessions.issue(session, is_guest=user.is_guest)
        self.ctx.issued = issued
        assert issued.expires_in_ms is not None
        return {
            "token_type": "Bearer",
            "access_token": issued.access_token,
            "refresh_token": issued.refresh_token,
            "expires_in": issued.expires_in_ms // 1000,
            "scope": session.scope,
        }

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        return request

    def create_json_request(self, request: Any) -> JsonRequest:
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Response:
        return status, body, list(headers)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass


# -- what the HTTP layer calls -----------------------------------------------------------


@dataclass(frozen=True)
class AuthorizationRequest:
    """A valid authorisation request, waiting for the user to sign in and consent."""

    params: dict[str, list[str]]
    client: OAuthClient
    redirect_uri: str
    scope: spec.MatrixScope
    prompt: str | None

    @property
    def device_id(self) -> str:
        assert self.scope.device_id is not None
        return self.scope.device_id


class AuthorizationError(Exception):
    """An invalid authorisation request. ``redirect`` is where to send the browser with
    the error when the redirect URI was validated; otherwise the user is shown the error
    and never sent to an unvalidated URI."""

    def __init__(self, error: str, description: str, redirect: str | None) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.redirect = redirect


class OAuthProvider:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store
        self.base = hs.config.public_baseurl

    def url(self, path: str) -> str:
        return self.base + path

    @property
    def account_url(self) -> str:
        return self.url(ACCOUNT_PATH)

    def metadata(self) -> dict[str, Any]:
        """RFC 8414 server metadata, with the spec's account management extension."""
        metadata: dict[str, Any] = {
            "issuer": self.base,
            "authorization_endpoint": self.url(f"{OAUTH_PREFIX}/authorize"),
            "token_endpoint": self.url(f"{OAUTH_PREFIX}/token"),
            "revocation_endpoint": self.url(f"{OAUTH_PREFIX}/revoke"),
            "registration_endpoint": self.url(f"{OAUTH_PREFIX}/register"),
            "jwks_uri": self.url(f"{OAUTH_PREFIX}/keys.json"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query", "fragment"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "revocation_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": [spec.API_SCOPE, spec.UNSTABLE_API_SCOPE],
            "account_management_uri": self.account_url,
            "account_management_actions_supported": list(spec.ACCOUNT_ACTIONS),
        }
        if self.hs.config.enable_registration:
            metadata["prompt_values_supported"] = ["create"]
        return metadata

    # -- registration -------------------------------------------------------------------

    async def register_client(self, body: Any, headers: dict[str, str]) -> Response:
        ctx = _Context()
        server = _Server(self, ctx)
        status, payload, hdrs = server.create_endpoint_response(
            "client_registration", _JsonRequest(self.url(f"{OAUTH_PREFIX}/register"), body, headers)
        )
        if status == 201 and ctx.registered is not None:
            metadata = {k: v for k, v in ctx.registered.items() if k != "client_id"}
            digest = hashlib.sha256(json.dumps(metadata, sort_keys=True).encode()).hexdigest()
            client_id = await self.store.store_oauth_client(ctx.registered["client_id"], metadata, digest)
            payload = {"client_id": client_id, **metadata}
        return status, payload, hdrs

    async def get_client(self, client_id: str | None) -> OAuthClient | None:
        if not client_id:
            return None
        metadata = await self.store.get_oauth_client(client_id)
        return OAuthClient(client_id, metadata) if metadata is not None else None

    # -- authorisation ---------------------------------------------------------------

    def _request(self, method: str, path: str, params: dict[str, list[str]], headers: dict[str, str]) -> _Request:
        return _Request(method, self.url(path), params, headers)

    async def check_authorization_request(self, params: dict[str, list[str]]) -> AuthorizationRequest:
        """Validates an authorisation request (before the user signs in)."""
        client = await self.get_client(_first(params, "client_id"))
        server = _Server(self, _Context(client=client))
        request = self._request("GET", f"{OAUTH_PREFIX}/authorize", params, {})
        try:
            grant = server.get_consent_grant(request)
        except OAuth2Error as error:
            raise self._authorization_error(error, params) from None
        assert client is not None
        return AuthorizationRequest(
            params=params,
            client=client,
            redirect_uri=grant.redirect_uri,
            scope=spec.parse_scope(_first(params, "scope")),
            prompt=_first(params, "prompt"),
        )

    async def grant(self, params: dict[str, list[str]], user: UserRecord, auth_time_ms: int) -> str:
        """The user consented: stores a code and returns where to send the browser."""
        auth = await self.check_authorization_request(params)
        ctx = _Context(client=auth.client)
        server = _Server(self, ctx)
        request = self._request("GET", f"{OAUTH_PREFIX}/authorize", params, {})
        grant = server.get_consent_grant(request)
        status, _, headers = server.create_authorization_response(request, grant_user=user, grant=grant)
        location = dict(headers).get("Location", "")
        if status != 302 or ctx.new_code is None:
            raise AuthorizationError("server_error", "The authorization could not be completed", None)
        ts = now_ms()
        await self.store.store_authorization_code(
            AuthorizationCodeRecord(
                code_hash=hash_token(ctx.new_code),
                client_id=auth.client.client_id,
                user_id=user.user_id,
                redirect_uri=auth.redirect_uri,
                scope=str(auth.scope),
                code_challenge=_first(params, "code_challenge") or "",
                code_challenge_method=_first(params, "code_challenge_method") or "",
                auth_time=auth_time_ms,
                created_ts=ts,
                expires_ts=ts + AUTHORIZATION_CODE_LIFETIME_MS,
            )
        )
        return location

    def deny(self, auth: AuthorizationRequest) -> str:
        """The user refused: where to send the browser (access_denied)."""
        error = AccessDeniedError(redirect_uri=auth.redirect_uri)
        error.state = _first(auth.params, "state")
        error.redirect_fragment = _first(auth.params, "response_mode") == "fragment"
        _, _, headers = error()
        return dict(headers)["Location"]

    def _authorization_error(self, error: OAuth2Error, params: dict[str, list[str]]) -> AuthorizationError:
        description = error.get_error_description() or error.error
        redirect_uri = getattr(error, "redirect_uri", None)
        if not redirect_uri:
            return AuthorizationError(error.error, description, None)
        error.state = _first(params, "state")
        error.redirect_fragment = _first(params, "response_mode") == "fragment"
        _, _, headers = error()
        return AuthorizationError(error.error, description, dict(headers).get("Location"))

    # -- token endpoint ---------------------------------------------------------------

    async def token(self, form: dict[str, list[str]], headers: dict[str, str]) -> Response:
        ctx = _Context(client=await self.get_client(_first(form, "client_id")))
        grant_type = _first(form, "grant_type")
        code = _first(form, "code") if grant_type == "authorization_code" else None
        refresh_token = _first(form, "refresh_token") if grant_type == "refresh_token" else None
        if code:
            ctx.code = await self.store.get_authorization_code(hash_token(code))
            if ctx.code is not None:
                ctx.user = await self.store.get_user(ctx.code.user_id)
        if refresh_token and ctx.client is not None:
            try:
                ctx.refresh_session = await self.hs.auth.sessions.session_for_refresh(refresh_token, ctx.client.client_id)
            except RefreshFailed:
                ctx.refresh_session = None
            if ctx.refresh_session is not None:
                ctx.user = await self.store.get_user(ctx.refresh_session.user_id)
        server = _Server(self, ctx)
        request = self._request("POST", f"{OAUTH_PREFIX}/token", form, headers)
        status, body, hdrs = server.create_token_response(request)

        if code and ctx.code is not None and ctx.code.used_ts is not None and ctx.code.session_id:
            # A code presented again: revoke what it was exchanged for (RFC 6749 4.1.2).
            logger.warning("authorization code reused by client %s: session revoked", ctx.code.client_id)
            await self.hs.auth.sessions.revoke([ctx.code.session_id])
        if status != 200 or ctx.issued is None:
            return status, body, hdrs
        try:
            if grant_type == "authorization_code":
                assert code is not None and ctx.client is not None
                await self.hs.auth.sessions.store_new(ctx.issued, ctx.client.name, code_hash=hash_token(code))
            else:
                assert refresh_token is not None
                await self.hs.auth.sessions.commit_refresh(refresh_token, ctx.issued)
        except CodeAlreadyUsed:
            # Used by a concurrent request in the meantime.
            record = await self.store.get_authorization_code(hash_token(code or ""))
            if record is not None and record.session_id:
                await self.hs.auth.sessions.revoke([record.session_id])
            return server.handle_error_response(request, InvalidGrantError("Invalid 'code' in request."))
        except RefreshFailed:
            return server.handle_error_response(request, InvalidGrantError("Invalid 'refresh_token' in request."))
        return status, body, hdrs

    # -- revocation -------------------------------------------------------------------

    async def revoke(self, form: dict[str, list[str]], headers: dict[str, str]) -> Response:
        ctx = _Context(client=await self.get_client(_first(form, "client_id")))
        token = _first(form, "token")
        if _first(form, "token_type_hint") not in (None, "access_token", "refresh_token"):
            # RFC 7009 2.1: the hint only speeds up the search, which covers every type.
            form = {k: v for k, v in form.items() if k != "token_type_hint"}
        if token:
            ctx.revocable = await self.hs.auth.sessions.session_of_token(token)
        server = _Server(self, ctx)
        request = self._request("POST", f"{OAUTH_PREFIX}/revoke", form, headers)
        result = server.create_endpoint_response("revocation", request)
        if ctx.revoke:
            # The spec: revoke both the access and the refresh token, i.e. the session;
            # its device goes too, as with /logout.
            for session in ctx.revoke:
                await self.hs.devices.delete_devices(session.user_id, [session.device_id])
        return result


def _first(params: dict[str, list[str]], key: str) -> str | None:
    values = params.get(key)
    return values[0] if values else None


def form_encode(params: dict[str, str]) -> str:
    return urlencode(params)


__all__ = [
    "AuthorizationError",
    "AuthorizationRequest",
    "InvalidClientError",
    "OAuthClient",
    "OAuthProvider",
]
