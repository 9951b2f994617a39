"""Who is asking: access tokens, passwords (argon2id) and user-interactive auth."""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from twisted.internet import defer, threads
from twisted.web.server import Request

from homeserver.http.errors import Forbidden, GuestAccessForbidden, MatrixError, MissingToken, UnknownToken
from homeserver.http.server import client_ip, get_access_token
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
    # Extra facts gathered by stages (e.g. the validated registration token).
    results: dict[str, Any] = field(default_factory=dict)


UIA_SESSION_LIFETIME_S = 30 * 60


class AuthHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self.hs = hs
        self.store = hs.store
        self._uia_sessions: dict[str, UIASession] = {}
        self._last_seen: dict[tuple[str, str], int] = {}

    # -- passwords -----------------------------------------------------------

    async def hash_password(self, password: str) -> str:
        # argon2 is deliberately slow: keep it off the reactor thread.
        return await threads.deferToThread(hash_password_sync, password)

    async def check_password(self, user_id: str, password: str) -> bool:
        user = await self.store.get_user(user_id)
        if user is None or user.deactivated:
            return False
        return await threads.deferToThread(check_password_sync, user.password_hash, password)

    # -- tokens ----------------------------------------------------------------

    async def get_user_by_req(self, request: Request, allow_guest: bool = False) -> Requester:
        token = get_access_token(request)
        if token is None:
            raise MissingToken()
        requester = await self.get_user_by_token(token)
        if requester.is_guest and not allow_guest:
            raise GuestAccessForbidden("Guest access not allowed")
        self._record_last_seen(requester, client_ip(request))
        return requester

    async def get_user_by_token(self, token: str) -> Requester:
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

    async def create_login(
        self,
        user_id: str,
        device_id: str | None,
        initial_display_name: str | None,
        want_refresh: bool = False,
    ) -> dict[str, Any]:
        """Creates a device session and returns the login response fields."""
        device_id = device_id or random_string(10).upper()
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
        result: dict[str, Any] = {"user_id": user_id, "access_token": access_token, "device_id": device_id}
        if refresh_token:
            result["refresh_token"] = refresh_token
            if expires_ts:
                result["expires_in_ms"] = expires_ts - now_ms()
        return result

    async def refresh(self, refresh_token: str) -> dict[str, Any]:
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

    # -- user-interactive auth ------------------------------------------------

    async def check_ui_auth(
        self,
        request_body: dict[str, Any],
        flows: list[list[str]],
        purpose: str,
        requester: Requester | None = None,
        params: dict[str, Any] | None = None,
    ) -> UIASession:
        """Runs one UIA step; returns the session once a flow is complete, else raises the 401."""
        self._expire_uia_sessions()
        auth = request_body.get("auth")
        session: UIASession | None = None
        if isinstance(auth, dict) and isinstance(auth.get("session"), str):
            session = self._uia_sessions.get(auth["session"])
            if session is None:
                raise MatrixError(400, "M_UNKNOWN", "Unknown UIA session")
            if session.purpose != purpose:
                raise Forbidden("UIA session was started for a different request")
        if session is None:
            session = UIASession(secrets.token_urlsafe(16), flows, params or {}, purpose=purpose)
            self._uia_sessions[session.session_id] = session
        error: MatrixError | None = None
        if isinstance(auth, dict) and isinstance(auth.get("type"), str):
            try:
                await self._run_stage(session, auth, requester)
            except MatrixError as e:
                error = e
        for flow in session.flows:
            if all(stage in session.completed for stage in flow):
                del self._uia_sessions[session.session_id]
                return session
        body: dict[str, Any] = {
            "flows": [{"stages": f} for f in session.flows],
            "params": session.params,
            "session": session.session_id,
        }
        if session.completed:
            body["completed"] = list(session.completed)
        if error is not None:
            body["errcode"] = error.errcode
            body["error"] = error.msg
        raise UIARequired(body)

    async def _run_stage(self, session: UIASession, auth: dict[str, Any], requester: Requester | None) -> None:
        stage = auth["type"]
        allowed = {s for flow in session.flows for s in flow}
        if stage not in allowed:
            raise MatrixError(400, "M_UNRECOGNIZED", f"Unknown auth stage {stage}")
        if stage == "m.login.dummy":
            pass
        elif stage == "m.login.password":
            user_id = await self.hs.login.resolve_identifier(auth)
            if requester is not None and user_id != requester.user_id:
                raise Forbidden("Invalid password")
            password = auth.get("password")
            if not isinstance(password, str) or not await self.check_password(user_id, password):
                raise Forbidden("Invalid password")
        elif stage == "m.login.registration_token":
            token = auth.get("token")
            if not isinstance(token, str) or not await self.store.registration_token_valid(token):
                raise MatrixError(401, "M_FORBIDDEN", "Invalid registration token")
            session.results["registration_token"] = token
        else:
            raise MatrixError(400, "M_UNRECOGNIZED", f"Unsupported auth stage {stage}")
        if stage not in session.completed:
            session.completed.append(stage)

    def _expire_uia_sessions(self) -> None:
        cutoff = time.monotonic() - UIA_SESSION_LIFETIME_S
        for sid in [s for s, sess in self._uia_sessions.items() if sess.created < cutoff]:
            del self._uia_sessions[sid]


class UIARequired(MatrixError):
    """The 401 of user-interactive auth: the body is the flows/session object itself."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(401, body.get("errcode", ""), body.get("error", "Additional authentication required"))
        self.body = body

    def to_json(self) -> dict[str, Any]:
        return self.body
