"""Who is asking: access tokens, passwords (argon2id) and user-interactive auth.

Access tokens come in two formats: JWTs of a sign-in session (the OAuth 2.0 API always;
the legacy /login and /register with ``access_token_format: jwt``), checked without a
database read by ``homeserver.oauth.sessions``, and opaque random tokens stored hashed
(``access_token_format: opaque``), checked by one indexed lookup."""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from twisted.internet import defer, threads
from twisted.web.server import Request

from homeserver.handlers.client_ips import ClientIpRecorder
from homeserver.http.errors import (
    Forbidden,
    GuestAccessForbidden,
    MatrixError,
    MissingToken,
    UnknownToken,
)
from homeserver.http.server import client_ip, get_access_token
from homeserver.oauth.sessions import (
    REFRESH_TOKEN_PREFIX,
    RefreshFailed,
    SessionHandler,
)
from homeserver.oauth.tokens import InvalidAccessToken, looks_like_jwt
from homeserver.protocol.oauth import ACTION_CROSS_SIGNING_RESET
from homeserver.util.ids import hash_token, new_token, now_ms, random_string

if TYPE_CHECKING:
    from homeserver.app import HomeServer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Requester:
    user_id: str
    device_id: str
    is_guest: bool
    token_hash: str
    # The client's address (behind a trusted proxy, from X-Forwarded-For); "" when the
    # requester did not come from an HTTP request.
    client_ip: str = ""
    # The sign-in session of a JWT access token ("" for an opaque token), and the OAuth
    # client it was granted to (None for the legacy API).
    session_id: str = ""
    oauth_client_id: str | None = None


# argon2id with RFC 9106's second recommended profile scaled for a busy server.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def hash_password_sync(password: str) -> str:
    return _hasher.hash(password)


def check_password_sync(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass
class UIASession:
    session_id: str
    flows: list[list[str]]
    params: dict[str, Any]
    completed: list[str] = field(default_factory=list)
    created: float = field(default_factory=time.monotonic)
    # What the session was started for; a session may not be reused for something else.
    purpose: str = ""
    # The request body (without ``auth``) the session was last given: a client may send
    # only ``auth`` on later steps, and the operation uses these parameters (Synapse's
    # "clientdict").
    clientdict: dict[str, Any] = field(default_factory=dict)
    # What the operation remembers between steps (a registration's password hash and the
    # account it created).
    data: dict[str, Any] = field(default_factory=dict)
    # The user who started it ("" for registration): nobody else may continue it.
    user_id: str = ""
    # Kept after completion until it expires, so that a retry with the same session gets
    # the same outcome (registration); other sessions end when they complete.
    keep: bool = False


class UIAStageFailed(MatrixError):
    """A stage's credentials were wrong or missing: the error goes into the 401 body
    (Synapse's LoginError), not out as the request's answer."""


UIA_SESSION_LIFETIME_S = 30 * 60


class AuthHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store
        self._uia_sessions: dict[str, UIASession] = {}
        self._last_seen: dict[tuple[str, str], int] = {}
        # Writes of last_seen in flight, per user: a device listing waits for them, so the
        # request that lists the devices sees its own address (Synapse reads its pending
        # client-IP batch the same way).
        self._last_seen_writes: dict[str, set[defer.Deferred[None]]] = {}
        self.sessions = SessionHandler(hs)
        self.client_ips = ClientIpRecorder(hs)

    # -- passwords -----------------------------------------------------------

    async def hash_password(self, password: str) -> str:
        # argon2 is deliberately slow: keep it off the reactor thread.
        return await threads.deferToThread(hash_password_sync, password)

    async def check_password(self, user_id: str, password: str) -> bool:
        user = await self.store.get_user(user_id)
        if user is None or user.deactivated:
            return False
        if user.password_hash is None:
            # An OPAQUE account (password_auth: opaque): checked against its record
            # (homeserver/oauth/opaque.py); the password itself is never stored.
            return await self.hs.sign_in_factors.opaque.check_password(user_id, password)
        return await threads.deferToThread(check_password_sync, user.password_hash, password)

    def check_failed_attempts(self, user_id: str, client_ip: str) -> None:
        """429 when this address has guessed this account's password wrong too often."""
        self.hs.ratelimiter.check("login_failed_attempts", _attempts_key(user_id, client_ip), update=False)

    async def validate_password(self, user_id: str, password: str, client_ip: str) -> bool:
        """Checks a password (at /login and in user-interactive auth) under the limit on
        failed attempts, which counts only wrong passwords. Synapse keys that limit by
        account alone, so that anyone can lock an account by guessing; keyed by (account,
        client IP), wrong guesses from one address never block the right password from
        another. The 429 comes before the check, whatever the password. One budget for
        /login and UIA, since both guess the same secret (Synapse 1.163 limits only /login:
        a wrong password in UIA becomes its 401 and never reaches its UIA limiter)."""
        self.check_failed_attempts(user_id, client_ip)
        if await self.check_password(user_id, password):
            return True
        self.record_failed_attempt(user_id, client_ip)
        return False

    def record_failed_attempt(self, user_id: str, client_ip: str) -> None:
        """A wrong password from this address (also for the sign-in pages' OPAQUE)."""
        self.hs.ratelimiter.record("login_failed_attempts", _attempts_key(user_id, client_ip))

    # -- tokens ----------------------------------------------------------------

    async def get_user_by_req(self, request: Request, allow_guest: bool = False) -> Requester:
        token = get_access_token(request)
        if token is None:
            raise MissingToken()
        return await self.authenticate(token, client_ip(request), _user_agent(request), allow_guest)

    async def authenticate(self, token: str, ip: str, user_agent: str, allow_guest: bool = False) -> Requester:
        """A token from a client at ``ip``, checked and recorded (last seen, client IPs)
        as for a request; also for one that came in a WebSocket's auth frame."""
        requester = await self.get_user_by_token(token)
        if requester.is_guest and not allow_guest:
            raise GuestAccessForbidden("Guest access not allowed")
        requester = dataclasses.replace(requester, client_ip=ip)
        self._record_last_seen(requester, requester.client_ip)
        self.client_ips.record(requester, user_agent)
        return requester

    async def get_user_by_token(self, token: str) -> Requester:
        if looks_like_jwt(token):
            try:
                claims = await self.sessions.verify_access_token(token)
            except InvalidAccessToken as e:
                # An expired token gets soft_logout, so the client refreshes instead of
                # logging out; a revoked or forged one does not.
                raise UnknownToken(str(e), soft_logout=e.expired) from None
            return Requester(
                claims.user_id,
                claims.device_id,
                claims.is_guest,
                hash_token(token),
                session_id=claims.session_id,
                oauth_client_id=claims.client_id,
            )
        token_hash = hash_token(token)
        record = await self.store.get_token(token_hash)
        if record is None:
            raise UnknownToken("Unknown access token")
        if record.expires_ts is not None and record.expires_ts < now_ms():
            # Expired (refreshable) tokens get soft_logout so the client refreshes instead of logging out.
            raise UnknownToken("Access token has expired", soft_logout=True)
        return Requester(record.user_id, record.device_id, record.is_guest, token_hash)

    def _record_last_seen(self, requester: Requester, ip: str) -> None:
        # Coalesce: write at most once a minute per device.
        key = (requester.user_id, requester.device_id)
        ts = now_ms()
        if ts - self._last_seen.get(key, 0) < 60_000:
            return
        self._last_seen[key] = ts
        d = defer.ensureDeferred(self.store.update_device_last_seen(requester.user_id, requester.device_id, ip, ts))
        d.addErrback(lambda f: logger.warning("recording last seen failed: %s", f.value))
        if not d.called:
            pending = self._last_seen_writes.setdefault(requester.user_id, set())
            pending.add(d)

            def done(result: None, user_id: str = requester.user_id) -> None:
                waiting = self._last_seen_writes.get(user_id)
                if waiting is not None:
                    waiting.discard(d)
                    if not waiting:
                        del self._last_seen_writes[user_id]
                return result

            d.addBoth(done)

    async def last_seen_written(self, user_id: str) -> None:
        """Waits for the user's last_seen writes in flight (they never fail: logged)."""
        for d in list(self._last_seen_writes.get(user_id, ())):
            await defer.DeferredList([d])

    async def create_login(
        self,
        user_id: str,
        device_id: str | None,
        initial_display_name: str | None,
        want_refresh: bool = False,
        *,
        kind: str = "password",
    ) -> dict[str, Any]:
        """Creates a device session and returns the login response fields. ``kind``
        says how the user signed in (password, register, jwt, ...)."""
        if self.hs.config.auth.access_token_format == "jwt":
            user = await self.store.get_user(user_id)
            issued = await self.sessions.create(
                user_id,
                device_id,
                initial_display_name,
                kind=kind,
                refreshable=want_refresh,
                is_guest=user is not None and user.is_guest,
            )
            result: dict[str, Any] = {
                "user_id": user_id,
                "access_token": issued.access_token,
                "device_id": issued.session.device_id,
            }
            if issued.refresh_token:
                result["refresh_token"] = issued.refresh_token
            if issued.expires_in_ms is not None:
                result["expires_in_ms"] = issued.expires_in_ms
            return result
        device_id = device_id or random_string(10).upper()
        # The device's JWT sessions (from before a switch to opaque tokens) end too.
        await self.sessions.revoke_devices(user_id, [device_id])
        access_token = new_token("wspr_at")
        refresh_token = new_token("wspr_rt") if want_refresh else None
        lifetime = self.hs.config.access_token_lifetime_ms
        if want_refresh and lifetime is None:
            lifetime = 5 * 60 * 1000
        expires_ts = now_ms() + lifetime if (want_refresh and lifetime) else None
        new_device = await self.store.create_device_and_token(
            user_id,
            device_id,
            initial_display_name,
            hash_token(access_token),
            expires_ts,
            hash_token(refresh_token) if refresh_token else None,
        )
        if new_device:
            await self.hs.devices.notify_device_change(user_id)
        result = {"user_id": user_id, "access_token": access_token, "device_id": device_id}
        if refresh_token:
            result["refresh_token"] = refresh_token
            if expires_ts:
                result["expires_in_ms"] = expires_ts - now_ms()
        return result

    async def refresh(self, refresh_token: str) -> dict[str, Any]:
        """The legacy /refresh. Refresh tokens of JWT sessions rotate with reuse
        detection (a reused one ends the session); opaque ones are swapped in place."""
        if refresh_token.startswith(REFRESH_TOKEN_PREFIX + "_"):
            try:
                issued = await self.sessions.refresh(refresh_token)
            except RefreshFailed:
                raise UnknownToken("Unknown refresh token") from None
            out: dict[str, Any] = {"access_token": issued.access_token, "refresh_token": issued.refresh_token}
            if issued.expires_in_ms is not None:
                out["expires_in_ms"] = issued.expires_in_ms
            return out
        access_token = new_token("wspr_at")
        new_refresh = new_token("wspr_rt")
        lifetime = self.hs.config.access_token_lifetime_ms or 5 * 60 * 1000
        expires_ts = now_ms() + lifetime
        result = await self.store.rotate_refresh_token(
            hash_token(refresh_token), hash_token(access_token), hash_token(new_refresh), expires_ts
        )
        if result is None:
            raise UnknownToken("Unknown refresh token")
        return {"access_token": access_token, "refresh_token": new_refresh, "expires_in_ms": lifetime}

    # -- sensitive actions ------------------------------------------------------

    async def check_cross_signing_replacement(self, body: dict[str, Any], requester: Requester) -> None:
        """Replacing cross-signing keys. A legacy session answers user-interactive auth
        with the password. A session of the OAuth 2.0 API cannot do UIA (spec "OAuth 2.0
        API"): it gets the m.oauth stage, whose URL opens the account page where the user
        approves the reset; the client then retries within the approval window. The 401
        body is Synapse's with MAS, which lists MSC4312's unstable stage name too."""
        oauth_session = requester.oauth_client_id is not None or self.hs.config.auth.password_login == "oauth_only"
        if not oauth_session:
            await self.check_ui_auth(body, [["m.login.password"]], "device_signing_upload", requester)
            return
        if await self.store.account_approval_valid(requester.user_id, ACTION_CROSS_SIGNING_RESET):
            return
        url = f"{self.hs.oauth.account_url}?action={ACTION_CROSS_SIGNING_RESET}"
        raise UIARequired(
            {
                "session": "dummy",
                "flows": [{"stages": ["m.oauth"]}, {"stages": [ACTION_CROSS_SIGNING_RESET]}],
                "params": {"m.oauth": {"url": url}, ACTION_CROSS_SIGNING_RESET: {"url": url}},
                "msg": "To reset your end-to-end encryption cross-signing identity, you first need to approve"
                f" it at {url} and then try again.",
            }
        )

    # -- user-interactive auth ------------------------------------------------

    async def check_ui_auth(
        self,
        request_body: dict[str, Any],
        flows: list[list[str]],
        purpose: str,
        requester: Requester | None = None,
        params: dict[str, Any] | None = None,
        *,
        keep: bool = False,
    ) -> UIASession:
        """Runs one UIA step; returns the session once a flow is complete, else raises the
        401. As Synapse's check_ui_auth: the session remembers the request's other fields
        (``session.clientdict``, replaced by each step that sends any), a step with only
        ``auth.session`` completes once a flow is done, the first 401 has no
        ``completed`` and later ones always do, and a stage whose credentials fail puts
        its errcode into the 401."""
        self._expire_uia_sessions()
        if requester is not None:
            # As Synapse's validate_user_via_ui_auth: too many wrong passwords and every
            # request is a 429 until the limit allows another attempt.
            self.check_failed_attempts(requester.user_id, requester.client_ip)
        auth = request_body.get("auth")
        if auth is not None and not isinstance(auth, dict):
            raise MatrixError(400, "M_BAD_JSON", "auth must be an object")
        clientdict = {k: v for k, v in request_body.items() if k != "auth"}
        session: UIASession | None = None
        session_id = auth.get("session") if auth else None
        if session_id is not None:
            if not isinstance(session_id, str) or session_id not in self._uia_sessions:
                raise MatrixError(400, "M_UNKNOWN", f"Unknown session ID: {session_id}")
            session = self._uia_sessions[session_id]
            if session.purpose != purpose or session.user_id != (requester.user_id if requester else ""):
                raise Forbidden("Requested operation has changed during the UI authentication session.")
            if clientdict:
                session.clientdict = clientdict
        else:
            session = UIASession(
                secrets.token_urlsafe(18),
                flows,
                params or {},
                purpose=purpose,
                clientdict=clientdict,
                user_id=requester.user_id if requester else "",
                keep=keep,
            )
            self._uia_sessions[session.session_id] = session
        if not auth:
            raise UIARequired(self._uia_body(session))
        error: MatrixError | None = None
        if "type" in auth:
            try:
                await self._run_stage(session, auth, requester)
            except UIAStageFailed as e:
                error = e
        for flow in session.flows:
            if all(stage in session.completed for stage in flow):
                if not session.keep:
                    del self._uia_sessions[session.session_id]
                return session
        body = self._uia_body(session)
        body["completed"] = list(session.completed)
        if error is not None:
            body["errcode"] = error.errcode
            body["error"] = error.msg
        raise UIARequired(body)

    def uia_session(self, auth: Any) -> UIASession | None:
        """The live session a request's ``auth`` names, if any (what an operation stored
        in it on earlier steps)."""
        if not isinstance(auth, dict) or not isinstance(auth.get("session"), str):
            return None
        return self._uia_sessions.get(auth["session"])

    @staticmethod
    def _uia_body(session: UIASession) -> dict[str, Any]:
        return {
            "session": session.session_id,
            "flows": [{"stages": f} for f in session.flows],
            "params": session.params,
        }

    async def _run_stage(self, session: UIASession, auth: dict[str, Any], requester: Requester | None) -> None:
        stage = auth["type"]
        if not isinstance(stage, str):
            raise MatrixError(400, "M_INVALID_PARAM", "Bad parameter: type")
        if stage == "m.login.dummy":
            pass
        elif stage == "m.login.password":
            password = auth.get("password")
            if not isinstance(password, str):
                raise MatrixError(400, "M_INVALID_PARAM", "Bad parameter: password")
            user_id = await self.hs.login.resolve_identifier(auth)
            client_ip = requester.client_ip if requester is not None else ""
            if not await self.validate_password(user_id, password, client_ip):
                raise UIAStageFailed(403, "M_FORBIDDEN", "Invalid password")
            if requester is not None and user_id != requester.user_id:
                # Another account's valid credentials: a plain 403, not a failed stage to
                # retry, as Synapse's validate_user_via_ui_auth answers.
                raise MatrixError(403, "M_FORBIDDEN", "Invalid auth")
        elif stage == "m.login.registration_token" and session.purpose == "register":
            await self._registration_token_stage(session, auth)
        else:
            # Synapse hands types it has no checker for to its login code, which refuses them.
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid login submission")
        if stage not in session.completed:
            session.completed.append(stage)

    async def _registration_token_stage(self, session: UIASession, auth: dict[str, Any]) -> None:
        """As Synapse's RegistrationTokenAuthChecker: the token is held (``pending``) from
        this stage until the registration completes or the session expires, so that a
        limited token cannot be used up by someone else in between."""
        token = auth.get("token")
        if "token" not in auth:
            raise UIAStageFailed(400, "M_MISSING_PARAM", "Missing registration token")
        if not isinstance(token, str):
            raise UIAStageFailed(400, "M_INVALID_PARAM", "Registration token must be a string")
        held = session.data.get("registration_token")
        if held is not None:
            if token != held:
                raise UIAStageFailed(400, "M_INVALID_PARAM", "Registration token has changed")
            return
        if not await self.store.hold_registration_token(token):
            raise UIAStageFailed(401, "M_UNAUTHORIZED", "Invalid registration token")
        session.data["registration_token"] = token

    def _expire_uia_sessions(self) -> None:
        cutoff = time.monotonic() - UIA_SESSION_LIFETIME_S
        for sid in [s for s, sess in self._uia_sessions.items() if sess.created < cutoff]:
            session = self._uia_sessions.pop(sid)
            token = session.data.get("registration_token")
            if token is not None and not session.data.get("registration_token_used"):
                # The registration never finished: the held use goes back.
                d = defer.ensureDeferred(self.store.release_registration_token(token))
                d.addErrback(lambda f: logger.warning("releasing a registration token failed: %s", f.value))


def _attempts_key(user_id: str, client_ip: str) -> tuple[str, str]:
    return (user_id.lower(), client_ip)


class UIARequired(MatrixError):
    """The 401 of user-interactive auth: the body is the flows/session object itself."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(401, body.get("errcode", ""), body.get("error", "Additional authentication required"))
        self.body = body

    def to_json(self) -> dict[str, Any]:
        return self.body


def _user_agent(request: Request) -> str:
    """The User-Agent header ("" without one, as Synapse records it), bounded in length."""
    value = request.getHeader("User-Agent")
    return value[:512] if value else ""
