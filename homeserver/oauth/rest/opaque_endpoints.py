"""The JSON endpoints the OPAQUE page script talks to (homeserver/oauth/static/opaque.js),
with the page's session cookie and CSRF token:

- ``POST /_wspr/opaque/login/start`` ``{username, request}`` → ``{response}`` (the
  server's half of the login exchange; its state waits in the sign-in flow), or
  ``{legacy: true}`` for an account that still has an argon2id hash;
- ``POST /_wspr/opaque/login/legacy`` ``{username, password, request}``: such an account's
  one-time password check, answered with the registration response that moves it to
  OPAQUE (the page then posts the record to the sign-in step);
- ``POST /_wspr/opaque/register/start`` ``{purpose, request, ...}`` → ``{response}``: the
  registration response for sign-up (``username``, ``token``), a password change (the
  signed-in user, recently authenticated) or a reset (``reset_token`` from the e-mail).

Errors are ``{"error": text}`` with a 4xx status, shown by the page.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.http.errors import MatrixError
from homeserver.http.request import read_body
from homeserver.http.server import RawResponse, Router, client_ip
from homeserver.oauth.email import PURPOSE_RESET
from homeserver.oauth.opaque import OpaqueError, OpaqueStep, resolve_for_login
from homeserver.util.ids import now_ms

if TYPE_CHECKING:
    from homeserver.oauth.accounts import WebSession
    from homeserver.oauth.rest.pages import Pages

MAX_BODY = 16 * 1024
LEGACY_MIGRATION_LIFETIME_MS = 2 * 60 * 1000


class OpaqueEndpoints:
    def __init__(self, pages: Pages) -> None:
        self.pages = pages
        self.hs = pages.hs
        self.opaque = pages.factors.opaque

    def register(self, router: Router) -> None:
        router.register("POST", "/_wspr/opaque/login/start", self.login_start)
        router.register("POST", "/_wspr/opaque/login/legacy", self.login_legacy)
        router.register("POST", "/_wspr/opaque/register/start", self.register_start)

    async def _begin(self, request: Request) -> tuple[WebSession, dict[str, Any]] | RawResponse:
        if not self.opaque.enabled:
            return self.pages._json(404, {"error": "OPAQUE is not enabled on this server."})
        session = await self.pages._session(request)
        try:
            body = json.loads(read_body(request, MAX_BODY) or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self.pages._json(400, {"error": "Malformed request."}, session)
        if session is None or not self.pages._csrf_ok(session, {"csrf": str(body.get("csrf", ""))}):
            return self.pages._json(403, {"error": "Your session changed. Reload the page and try again."}, session)
        return session, body

    async def _at_opaque_step(self, request: Request, session: WebSession) -> bool:
        step = await self.pages.flow.current_step(self.pages._ctx(request, session), session.flow)
        return isinstance(step, OpaqueStep)

    def _username(self, session: WebSession, body: dict[str, Any]) -> str:
        flow = session.flow
        if flow.purpose == "reauth" and flow.user_id:
            return flow.user_id
        value = body.get("username")
        return value.strip() if isinstance(value, str) else ""

    async def login_start(self, request: Request) -> RawResponse:
        begun = await self._begin(request)
        if isinstance(begun, RawResponse):
            return begun
        session, body = begun
        if not await self._at_opaque_step(request, session):
            return self.pages._json(409, {"error": "This page was out of date. Reload it and try again."}, session)
        username = self._username(session, body)
        if not username:
            return self.pages._json(400, {"error": "Enter your user name and password."}, session)
        ip = client_ip(request)
        user_id = await resolve_for_login(self.hs, username)
        try:
            self.hs.ratelimiter.check("login", ip)
            if user_id is not None:
                # Each exchange can test one guess: it counts as an attempt when it starts.
                self.hs.auth.check_failed_attempts(user_id, ip)
                self.hs.auth.record_failed_attempt(user_id, ip)
        except MatrixError:
            return self.pages._json(429, {"error": "Too many attempts. Wait a minute and try again."}, session)
        if user_id is not None:
            user = await self.hs.store.get_user(user_id)
            if user is not None and user.password_hash:
                return self.pages._json(200, {"legacy": True}, session)
        try:
            response, exchange = await self.opaque.login_start(user_id, body.get("request"))
        except OpaqueError:
            return self.pages._json(400, {"error": "Your browser sent a malformed message."}, session)
        session.flow.data[OpaqueStep.name] = exchange
        await self.pages.accounts.save(session)
        return self.pages._json(200, {"response": response}, session)

    async def login_legacy(self, request: Request) -> RawResponse:
        begun = await self._begin(request)
        if isinstance(begun, RawResponse):
            return begun
        session, body = begun
        if not await self._at_opaque_step(request, session):
            return self.pages._json(409, {"error": "This page was out of date. Reload it and try again."}, session)
        username, password = self._username(session, body), body.get("password")
        if not username or not isinstance(password, str) or not password:
            return self.pages._json(400, {"error": "Enter your user name and password."}, session)
        ip = client_ip(request)
        user_id = await resolve_for_login(self.hs, username)
        try:
            self.hs.ratelimiter.check("login", ip)
            ok = user_id is not None and await self.hs.auth.validate_password(user_id, password, ip)
        except MatrixError:
            return self.pages._json(429, {"error": "Too many attempts. Wait a minute and try again."}, session)
        if not ok or user_id is None:
            for listener in self.pages.flow.listeners:
                await listener("sign_in_failed:opaque", user_id, ip, False)
            return self.pages._json(403, {"error": "Wrong user name or password."}, session)
        try:
            response = self.opaque.registration_response(user_id, body.get("request"))
        except OpaqueError:
            return self.pages._json(400, {"error": "Your browser sent a malformed message."}, session)
        session.flow.data[OpaqueStep.name] = {"migrate": user_id, "expires": now_ms() + LEGACY_MIGRATION_LIFETIME_MS}
        await self.pages.accounts.save(session)
        return self.pages._json(200, {"response": response}, session)

    async def register_start(self, request: Request) -> RawResponse:
        begun = await self._begin(request)
        if isinstance(begun, RawResponse):
            return begun
        session, body = begun
        purpose = body.get("purpose")
        ip = client_ip(request)
        user_id: str | None = None
        try:
            if purpose == "sign_up":
                accounts = self.pages.accounts
                if not accounts.registration_open():
                    return self.pages._json(403, {"error": "Registration is closed on this server."}, session)
                self.hs.ratelimiter.check("registration", ip)
                username = body.get("username")
                if not isinstance(username, str) or not username.strip():
                    return self.pages._json(400, {"error": "Choose a user name and a password."}, session)
                user_id = await self.hs.registration.check_username(username.strip().lower())
            elif purpose == "change":
                if session.user_id is None or not session.recently_authenticated():
                    return self.pages._json(403, {"error": "Sign in again to change your password."}, session)
                user_id = session.user_id
            elif purpose == "reset":
                token = body.get("reset_token")
                link = await self.pages.factors.email.session_for_link(token if isinstance(token, str) else "", PURPOSE_RESET)
                if link is None:
                    return self.pages._json(403, {"error": "This link is not valid any more."}, session)
                user_id = link.user_id
            else:
                return self.pages._json(400, {"error": "Malformed request."}, session)
        except MatrixError as e:
            error = {
                "M_USER_IN_USE": "That user name is taken.",
                "M_LIMIT_EXCEEDED": "Too many attempts. Wait a minute and try again.",
            }.get(e.errcode, e.msg)
            return self.pages._json(e.code if 400 <= e.code < 500 else 400, {"error": error}, session)
        assert user_id is not None
        try:
            response = self.opaque.registration_response(user_id, body.get("request"))
        except OpaqueError:
            return self.pages._json(400, {"error": "Your browser sent a malformed message."}, session)
        return self.pages._json(200, {"response": response}, session)
