"""The sign-in and account pages (server-rendered HTML, plain forms, no script).

Sign-in: ``/_wspr/oauth2/authorize`` (the OAuth authorisation endpoint) validates the
client's request and sends the browser to ``/_wspr/login`` (or ``/_wspr/register`` for
``prompt=create``), which runs the login flow (homeserver.oauth.login_flow) one step per
page, then to ``/_wspr/consent``, which sends the browser back to the client.

Account: ``/_wspr/account`` is the account management URL (``?action=...&device_id=``
deep links), with ``profile``, ``sessions``, ``session``, ``session/end``, ``password``
and ``cross_signing_reset`` under it. Sensitive actions need a recent sign-in.

Every form carries a CSRF token derived from the session cookie; every page is sent
with a strict Content-Security-Policy, no caching, and cannot be framed.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from twisted.web.server import Request

from homeserver.handlers.audit import AuditEvent
from homeserver.http.errors import MatrixError
from homeserver.http.request import read_body
from homeserver.http.server import RawResponse, Router, client_ip
from homeserver.oauth.accounts import WebSession
from homeserver.oauth.login_flow import FlowState, Step, StepContext
from homeserver.oauth.opaque import SCRIPT as OPAQUE_SCRIPT
from homeserver.oauth.opaque import OpaqueError, opaque_form, password_field
from homeserver.oauth.provider import AuthorizationError, AuthorizationRequest
from homeserver.oauth.rest import html
from homeserver.protocol import oauth as spec

if TYPE_CHECKING:
    from homeserver.app import HomeServer

COOKIE = "wspr_session"
MAX_FORM_BODY = 64 * 1024
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; "
    "frame-ancestors 'none'"
)
STATIC_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "static")
_STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


def _load_static() -> dict[str, bytes]:
    """The pages' scripts, read once (a few hundred kB: the OPAQUE library)."""
    files = {}
    for name in os.listdir(STATIC_DIR):
        if name.endswith(".js"):
            with open(os.path.join(STATIC_DIR, name), "rb") as f:
                files[name] = f.read()
    return files


_STATIC = _load_static()


def csp(script: str | None) -> str:
    """The page's policy: no script at all, or its one script from this server (the
    OPAQUE library compiles WebAssembly: 'wasm-unsafe-eval', which allows no JS eval)."""
    if script is None:
        return CSP
    wasm = " 'wasm-unsafe-eval'" if script == OPAQUE_SCRIPT else ""
    return CSP + f"; script-src 'self'{wasm}; connect-src 'self'"


def register(hs: HomeServer, router: Router) -> None:
    Pages(hs).register(router)


def _qs(request: Request) -> dict[str, list[str]]:
    query = request.uri.split(b"?", 1)[1] if b"?" in request.uri else b""
    return parse_qs(query.decode("utf-8", "replace"), keep_blank_values=True)


def _form(request: Request) -> dict[str, str]:
    ctype = (request.getHeader(b"Content-Type") or b"").decode("ascii", "replace").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        return {}
    body = read_body(request, MAX_FORM_BODY).decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


def _safe_next(value: str | None) -> str | None:
    """Only a path of these pages: never an open redirect."""
    if not value or not value.startswith("/_wspr/") or value.startswith("//") or "\\" in value:
        return None
    return value


# How each step is offered as another way to sign in.
_ALTERNATIVE = {
    "password": "Sign in with your password",
    "opaque": "Sign in with your password",
    "passkey": "Sign in with a passkey",
    "totp": "Use your authenticator app",
    "webauthn": "Use a passkey or security key",
    "recovery_code": "Use a recovery code",
}


def _fmt_ts(ts: int | None) -> str:
    if not ts:
        return "never"
    return datetime.fromtimestamp(ts / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


class Pages:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.accounts = hs.account_pages
        self.flow = hs.login_flow
        self.secure_cookie = hs.config.public_baseurl.startswith("https://")
        self.factors = hs.sign_in_factors

    def register(self, router: Router) -> None:
        r = router.register
        r("GET", "/_wspr/static/account.css", self.css)
        r("GET", "/_wspr/static/(?P<name>[a-z0-9][a-z0-9.\\-]*\\.js)", self.static)
        r("GET", "/_wspr/oauth2/authorize", self.authorize)
        r(["GET", "POST"], "/_wspr/login", self.login)
        r(["GET", "POST"], "/_wspr/register", self.sign_up)
        r(["GET", "POST"], "/_wspr/consent", self.consent)
        r("POST", "/_wspr/logout", self.logout)
        r("GET", "/_wspr/account/?", self.account)
        r(["GET", "POST"], "/_wspr/account/profile", self.profile)
        r("GET", "/_wspr/account/sessions", self.sessions)
        r("GET", "/_wspr/account/session", self.session_view)
        r(["GET", "POST"], "/_wspr/account/session/end", self.session_end)
        r(["GET", "POST"], "/_wspr/account/password", self.password)
        r(["GET", "POST"], "/_wspr/account/cross_signing_reset", self.cross_signing_reset)
        from homeserver.oauth.rest.email_pages import EmailPages
        from homeserver.oauth.rest.opaque_endpoints import OpaqueEndpoints
        from homeserver.oauth.rest.security_pages import SecurityPages

        SecurityPages(self).register(router)
        EmailPages(self).register(router)
        OpaqueEndpoints(self).register(router)

    # -- responses ---------------------------------------------------------------------

    def _headers(
        self, session: WebSession | None, content_type: str = "text/html; charset=utf-8", script: str | None = None
    ) -> dict[str, str]:
        headers = {
            "Content-Type": content_type,
            "Cache-Control": "no-store",
            "Content-Security-Policy": csp(script),
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }
        if session is not None:
            cookie = f"{COOKIE}={session.token}; Path=/_wspr/; HttpOnly; SameSite=Lax; Max-Age=86400"
            headers["Set-Cookie"] = cookie + ("; Secure" if self.secure_cookie else "")
        return headers

    def _html(
        self, status: int, title: str, body: str, session: WebSession | None, *, nav: bool = False, script: str | None = None
    ) -> RawResponse:
        text = html.page(title, body, nav=self._nav(session) if nav else "", script=script)
        text = text.replace("{{csrf}}", html.esc(session.csrf) if session is not None else "")
        return RawResponse(status, text.encode("utf-8"), self._headers(session, script=script))

    def _json(self, status: int, value: Any, session: WebSession | None = None) -> RawResponse:
        import json

        return RawResponse(status, json.dumps(value).encode(), self._headers(session, "application/json"))

    def _redirect(self, location: str, session: WebSession | None = None) -> RawResponse:
        headers = self._headers(session)
        headers["Location"] = location
        return RawResponse(303, b"", headers)

    def _error(self, status: int, title: str, message: str, session: WebSession | None = None) -> RawResponse:
        return self._html(status, title, f"<p>{html.esc(message)}</p>", session)

    def _nav(self, session: WebSession | None) -> str:
        if session is None or session.user_id is None:
            return ""
        links = [("/_wspr/account", "Account"), ("/_wspr/account/profile", "Profile"),
                 ("/_wspr/account/sessions", "Sessions"), ("/_wspr/account/security", "Security"),
                 ("/_wspr/account/email", "Email"), ("/_wspr/account/password", "Password")]
        items = "".join(f'<a href="{html.esc(href)}">{html.esc(text)}</a>' for href, text in links)
        return f'<nav aria-label="Account">{items}</nav>'

    async def css(self, request: Request) -> RawResponse:
        return RawResponse(
            200,
            html.CSS.encode(),
            {"Content-Type": "text/css; charset=utf-8", "Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    async def static(self, request: Request, name: str) -> RawResponse:
        body = _STATIC.get(name)
        if body is None:
            return RawResponse(404, b"", {"Content-Type": "text/plain"})
        # Versioned files (opaque-1.1.0.js) never change under their name.
        cache = "public, max-age=31536000, immutable" if any(c.isdigit() for c in name) else "public, max-age=3600"
        return RawResponse(
            200, body, {"Content-Type": _STATIC_TYPES[".js"], "Cache-Control": cache, "X-Content-Type-Options": "nosniff"}
        )

    # -- sessions ------------------------------------------------------------------------

    async def _session(self, request: Request) -> WebSession | None:
        raw = request.getCookie(COOKIE.encode())
        return await self.accounts.load_web_session(raw.decode("ascii", "replace") if raw else None)

    async def _session_or_new(self, request: Request) -> WebSession:
        return await self._session(request) or await self.accounts.new_web_session()

    def _ctx(self, request: Request, session: WebSession) -> StepContext:
        return StepContext(self.hs, client_ip(request), session.user_id)

    @staticmethod
    def _csrf_ok(session: WebSession, form: dict[str, str]) -> bool:
        import hmac

        return hmac.compare_digest(form.get("csrf", ""), session.csrf)

    async def _require_user(
        self, request: Request, *, sensitive: bool = False, back: str | None = None
    ) -> WebSession | RawResponse:
        """The signed-in session, or a redirect to sign in (again, for a sensitive action),
        then back to this page (or to ``back``: the page of a form posted here)."""
        session = await self._session_or_new(request)
        path = back or (request.uri.decode("utf-8", "replace") if request.method == b"GET" else request.path.decode())
        if session.user_id is None:
            session.flow = FlowState(purpose="account", next=_safe_next(path) or "/_wspr/account")
            await self.accounts.save(session)
            return self._redirect("/_wspr/login", session)
        if sensitive and not session.recently_authenticated():
            session.flow = FlowState(
                purpose="reauth", user_id=session.user_id, next=_safe_next(path) or "/_wspr/account"
            )
            await self.accounts.save(session)
            return self._redirect("/_wspr/login", session)
        return session

    # -- OAuth authorisation -------------------------------------------------------------

    async def authorize(self, request: Request) -> RawResponse:
        params = _qs(request)
        try:
            auth = await self.hs.oauth.check_authorization_request(params)
        except AuthorizationError as e:
            if e.redirect:
                return self._redirect(e.redirect)
            return self._error(400, "This sign-in link is not valid", f"{e.error}: {e.description}")
        session = await self._session_or_new(request)
        wants_sign_up = auth.prompt == "create" and self.accounts.registration_open()
        if session.user_id is not None and auth.prompt not in ("login", "create"):
            session.flow = FlowState(purpose="account", authorize=params)
            await self.accounts.save(session)
            return self._redirect("/_wspr/consent", session)
        session.flow = FlowState(purpose="authorize", authorize=params, next="/_wspr/consent")
        await self.accounts.save(session)
        return self._redirect("/_wspr/register" if wants_sign_up else "/_wspr/login", session)

    async def consent(self, request: Request) -> RawResponse:
        session = await self._session(request)
        if session is None or session.user_id is None:
            return self._redirect("/_wspr/login")
        params = session.flow.authorize
        if not params:
            return self._error(400, "Nothing to approve", "No application is waiting for your approval.", session)
        try:
            auth = await self.hs.oauth.check_authorization_request(params)
        except AuthorizationError as e:
            session.flow = FlowState()
            await self.accounts.save(session)
            if e.redirect:
                return self._redirect(e.redirect, session)
            return self._error(400, "This sign-in link is not valid", e.description, session)
        if request.method == b"GET":
            return self._consent_page(session, auth)
        form = _form(request)
        if not self._csrf_ok(session, form):
            return self._consent_page(session, auth, "Your session changed. Please try again.")
        session.flow = FlowState()
        await self.accounts.save(session)
        if form.get("decision") != "approve":
            return self._redirect(self.hs.oauth.deny(auth), session)
        user = await self.hs.store.get_user(session.user_id)
        if user is None or user.deactivated:
            return self._redirect("/_wspr/login", session)
        try:
            location = await self.hs.oauth.grant(params, user, session.record.auth_time or 0)
        except AuthorizationError as e:
            return self._error(400, "Sign-in failed", e.description, session)
        return self._redirect(location, session)

    def _consent_page(self, session: WebSession, auth: AuthorizationRequest, error: str | None = None) -> RawResponse:
        client = auth.client
        uri = client.metadata.get("client_uri", "")
        links = "".join(
            f'<li><a href="{html.esc(client.metadata[k])}" rel="noopener noreferrer">{label}</a></li>'
            for k, label in (("tos_uri", "Terms of service"), ("policy_uri", "Privacy policy"))
            if client.metadata.get(k)
        )
        host = urlsplit(auth.redirect_uri).hostname or urlsplit(auth.redirect_uri).scheme
        body = (
            html.error_box(error)
            + f"<p><strong>{html.esc(client.name)}</strong> "
            + f'(<a href="{html.esc(uri)}" rel="noopener noreferrer">{html.esc(uri)}</a>) wants to sign in to your account'
            + f" <strong>{html.esc(session.user_id)}</strong>.</p>"
            + "<h2>It will be able to</h2><ul>"
            + "<li>read and send your messages and use everything your account can do</li>"
            + f"<li>appear in your sessions as device <code>{html.esc(auth.device_id)}</code></li></ul>"
            + f'<p class="muted">You will be returned to {html.esc(host)}.</p>'
            + (f'<ul class="list">{links}</ul>' if links else "")
            + '<div class="actions">'
            + html.button_form("/_wspr/consent", "Allow", [html.hidden("decision", "approve")])
            + html.button_form("/_wspr/consent", "Deny", [html.hidden("decision", "deny")], secondary=True)
            + "</div>"
            + '<p class="muted">Not you? '
            + html.button_form("/_wspr/logout", "Sign out", secondary=True)
            + "</p>"
        )
        return self._html(200 if error is None else 400, "Allow access?", body, session)

    # -- sign-in ------------------------------------------------------------------------

    async def login(self, request: Request) -> RawResponse:
        session = await self._session_or_new(request)
        flow = session.flow
        ctx = self._ctx(request, session)
        if request.method == b"GET":
            query = _qs(request)
            next_path = _safe_next(next(iter(query.get("next", [])), None))
            if next_path and flow.purpose == "account" and flow.user_id is None:
                flow.next = next_path
            if query.get("method"):
                flow.data["method"] = query["method"][0]
            in_progress = flow.purpose in ("authorize", "reauth") or flow.factors or flow.user_id
            if session.user_id is not None and not in_progress:
                await self.accounts.save(session)
                return self._redirect(flow.next or "/_wspr/account", session)
            step = await self.flow.current_step(ctx, flow)
            if step is None:
                return self._redirect(await self.accounts.complete_sign_in(session), session)
            return await self._step_page(ctx, session, step, None)
        form = _form(request)
        if not self._csrf_ok(session, form):
            await self.accounts.save(session)
            return self._redirect("/_wspr/login", session)
        result = await self.flow.submit(ctx, flow, form.get("step", ""), form)
        await self.accounts.save(session)
        step = await self.flow.current_step(ctx, flow)
        if not result.ok and step is not None:
            return await self._step_page(ctx, session, step, result.error, status=400)
        if step is None:
            return self._redirect(await self.accounts.complete_sign_in(session), session)
        return self._redirect("/_wspr/login", session)

    async def _step_page(
        self, ctx: StepContext, session: WebSession, step: Step, error: str | None, status: int = 200
    ) -> RawResponse:
        """Renders the step (after its ``prepare``), with the other ways to pass it, and
        saves the flow (a step may have put a new challenge in it)."""
        flow = session.flow
        await step.prepare(ctx, flow)
        body = step.render(ctx, flow, error)
        others: list[Step] = []
        if step in self.flow.first_factors:
            others = [s for s in self.flow.first_factors if s is not step]
        elif step in self.flow.second_factors and flow.user_id is not None:
            user = await self.hs.store.get_user(flow.user_id)
            if user is not None:
                others = [s for s in self.flow.second_factors if s is not step and await s.needed(ctx, flow, user)]
        if others:
            links = "".join(
                f'<li><a href="/_wspr/login?{urlencode({"method": s.name})}">{html.esc(_ALTERNATIVE.get(s.name, s.title))}</a></li>'
                for s in others
            )
            body += f'<h2>Other ways</h2><ul class="list">{links}</ul>'
        if flow.purpose != "reauth" and step in self.flow.first_factors:
            if self.factors.email.enabled:
                body += '<p class="muted"><a href="/_wspr/password/forgot">Forgot your password?</a></p>'
            if self.accounts.registration_open():
                body += '<p class="muted">New here? <a href="/_wspr/register">Create an account</a></p>'
        if flow.purpose == "reauth":
            body = html.notice("Confirm it is you to continue.") + body
        await self.accounts.save(session)
        return self._html(status, step.title, body, session, script=step.script)

    async def sign_up(self, request: Request) -> RawResponse:
        session = await self._session_or_new(request)
        if not self.accounts.registration_open():
            await self.accounts.save(session)
            return self._html(
                403,
                "Registration is closed",
                '<p>This server does not accept new accounts.</p><p><a href="/_wspr/login">Sign in</a></p>',
                session,
            )
        query = _qs(request)
        if request.method == b"GET":
            await self.accounts.save(session)
            return self._sign_up_page(session, None, token=(query.get("token") or [""])[0])
        form = _form(request)
        username = form.get("username", "").strip()
        password, confirm, token = form.get("password", ""), form.get("confirm", ""), form.get("token") or None
        opaque = self.factors.opaque
        record = form.get("record", "")
        error = None
        if not self._csrf_ok(session, form):
            error = "Your session changed. Please try again."
        elif opaque.enabled:
            # OPAQUE: the page registered the password with /_wspr/opaque/register/start
            # and sends the record only.
            if not username or not record:
                error = "Choose a user name and a password."
            else:
                try:
                    record = opaque.parse_upload(record)
                except OpaqueError:
                    error = "Your browser sent a malformed message. Please try again."
        elif not username or not password:
            error = "Choose a user name and a password."
        elif password != confirm:
            error = "The passwords do not match."
        if error is None:
            try:
                user_id = await self.accounts.sign_up(username, "" if opaque.enabled else password, token, client_ip(request))
                if opaque.enabled:
                    await opaque.set_record(user_id, record)
            except MatrixError as e:
                error = {
                    "M_USER_IN_USE": "That user name is taken.",
                    "M_LIMIT_EXCEEDED": "Too many attempts. Wait a minute and try again.",
                }.get(e.errcode, e.msg)
        if error is not None:
            await self.accounts.save(session)
            return self._sign_up_page(session, error, username=username, token=token or "", status=400)
        flow = session.flow
        if flow.purpose not in ("authorize",):
            flow = FlowState(purpose="account", next=flow.next)
        # Choosing a password at sign-up proves the first factor.
        flow.user_id, flow.factors = user_id, [self.flow.first_factors[0].name]
        session.flow = flow
        step = await self.flow.current_step(self._ctx(request, session), flow)
        if step is None:
            return self._redirect(await self.accounts.complete_sign_in(session), session)
        await self.accounts.save(session)
        return self._redirect("/_wspr/login", session)

    def _sign_up_page(
        self, session: WebSession, error: str | None, *, username: str = "", token: str = "", status: int = 200
    ) -> RawResponse:
        fields = [
            html.text_input("username", "User name", autocomplete="username", value=username),
            f'<p class="muted">Your address will be @name:{html.esc(self.hs.server_name)}</p>',
        ]
        opaque = self.factors.opaque.enabled
        if opaque:
            fields += [password_field("f-password", "Password", "new-password"), password_field("f-confirm", "Password again", "new-password")]
        else:
            fields += [
                html.password_input("password", "Password", autocomplete="new-password"),
                html.password_input("confirm", "Password again", autocomplete="new-password"),
            ]
        if self.hs.config.registration_requires_token:
            fields.append(html.text_input("token", "Registration token", value=token))
        if opaque:
            body = opaque_form("register", "/_wspr/register", fields, "Create account", error, extra=' data-purpose="sign_up"')
        else:
            body = html.form("/_wspr/register", fields, "Create account", error=error)
        body += '<p class="muted">Have an account? <a href="/_wspr/login">Sign in</a></p>'
        return self._html(status, "Create an account", body, session, script=OPAQUE_SCRIPT if opaque else None)

    async def logout(self, request: Request) -> RawResponse:
        session = await self._session(request)
        if session is not None and self._csrf_ok(session, _form(request)):
            await self.accounts.sign_out(session)
        return self._redirect("/_wspr/login")

    # -- account pages ---------------------------------------------------------------------

    async def account(self, request: Request) -> RawResponse:
        query = _qs(request)
        action = (query.get("action") or [""])[0]
        device_id = (query.get("device_id") or [""])[0]
        page = spec.ACCOUNT_ACTIONS.get(action)
        if page is not None:
            target = {
                "profile": "/_wspr/account/profile",
                "sessions": "/_wspr/account/sessions",
                "session": "/_wspr/account/session",
                "session_end": "/_wspr/account/session/end",
                "cross_signing_reset": "/_wspr/account/cross_signing_reset",
            }[page]
            if device_id and page in ("session", "session_end"):
                target += "?" + urlencode({"device_id": device_id})
            return self._redirect(target)
        session = await self._require_user(request)
        if isinstance(session, RawResponse):
            return session
        body = (
            f"<p>Signed in as <strong>{html.esc(session.user_id)}</strong>.</p>"
            '<ul class="list">'
            '<li><a href="/_wspr/account/profile">Profile</a> <span class="muted">— your display name</span></li>'
            '<li><a href="/_wspr/account/sessions">Sessions</a> <span class="muted">— where you are signed in</span></li>'
            '<li><a href="/_wspr/account/security">Security</a> <span class="muted">— two-factor authentication, passkeys, recovery codes</span></li>'
            '<li><a href="/_wspr/account/email">Email</a> <span class="muted">— addresses for account recovery</span></li>'
            '<li><a href="/_wspr/account/password">Password</a> <span class="muted">— change it</span></li>'
            "</ul>"
            '<div class="actions">' + html.button_form("/_wspr/logout", "Sign out of this page", secondary=True) + "</div>"
        )
        return self._html(200, "Your account", body, session, nav=True)

    async def profile(self, request: Request) -> RawResponse:
        session = await self._require_user(request)
        if isinstance(session, RawResponse):
            return session
        assert session.user_id is not None
        message = error = None
        if request.method == b"POST":
            form = _form(request)
            if not self._csrf_ok(session, form):
                error = "Your session changed. Please try again."
            else:
                try:
                    await self.accounts.set_display_name(session.user_id, form.get("displayname", "").strip())
                    message = "Saved."
                except MatrixError as e:
                    error = e.msg
        user = await self.hs.store.get_user(session.user_id)
        name = (user.displayname if user else None) or ""
        body = (html.notice(message) if message else "") + html.form(
            "/_wspr/account/profile",
            [html.text_input("displayname", "Display name", autocomplete="nickname", value=name, required=False)],
            "Save",
            error=error,
        )
        return self._html(400 if error else 200, "Profile", body, session, nav=True)

    async def sessions(self, request: Request) -> RawResponse:
        session = await self._require_user(request)
        if isinstance(session, RawResponse):
            return session
        assert session.user_id is not None
        items = []
        for view in await self.accounts.list_sessions(session.user_id):
            label = view.display_name or view.client_name or view.device_id
            link = "/_wspr/account/session?" + urlencode({"device_id": view.device_id})
            items.append(
                f'<li><a href="{html.esc(link)}"><strong>{html.esc(label)}</strong></a><br>'
                f'<span class="muted">Device {html.esc(view.device_id)} · last active {html.esc(_fmt_ts(view.last_seen_ts))}</span></li>'
            )
        body = f'<ul class="list">{"".join(items)}</ul>' if items else "<p>You are not signed in anywhere.</p>"
        return self._html(200, "Sessions", body, session, nav=True)

    async def session_view(self, request: Request) -> RawResponse:
        session = await self._require_user(request)
        if isinstance(session, RawResponse):
            return session
        assert session.user_id is not None
        device_id = (_qs(request).get("device_id") or [""])[0]
        view = next((v for v in await self.accounts.list_sessions(session.user_id) if v.device_id == device_id), None)
        if view is None:
            return self._html(404, "Session not found", "<p>There is no such session.</p>", session, nav=True)
        rows = [
            ("Name", view.display_name or "—"),
            ("Device ID", view.device_id),
            ("Application", view.client_name or ("Signed in with a password" if view.kind else "—")),
            ("Application site", view.client_uri or "—"),
            ("Signed in", _fmt_ts(view.created_ts)),
            ("Last active", _fmt_ts(view.last_seen_ts)),
            ("Last address", view.last_seen_ip or "—"),
        ]
        dl = "".join(f"<dt>{html.esc(k)}</dt><dd>{html.esc(v)}</dd>" for k, v in rows)
        end = "/_wspr/account/session/end?" + urlencode({"device_id": device_id})
        body = f"<dl>{dl}</dl>" + f'<div class="actions"><a href="{html.esc(end)}">Sign out this session…</a></div>'
        return self._html(200, "Session", body, session, nav=True)

    async def session_end(self, request: Request) -> RawResponse:
        session = await self._require_user(request, sensitive=True)
        if isinstance(session, RawResponse):
            return session
        assert session.user_id is not None
        if request.method == b"GET":
            device_id = (_qs(request).get("device_id") or [""])[0]
            if await self.hs.store.get_device(session.user_id, device_id) is None:
                return self._html(404, "Session not found", "<p>There is no such session.</p>", session, nav=True)
            body = (
                f"<p>Sign out device <strong>{html.esc(device_id)}</strong>? The application on it will have to sign"
                " in again, and its encryption keys will be deleted from the server.</p>"
                + html.form("/_wspr/account/session/end", [html.hidden("device_id", device_id)], "Sign out", danger=True)
            )
            return self._html(200, "Sign out a session", body, session, nav=True)
        form = _form(request)
        if not self._csrf_ok(session, form):
            return self._error(400, "Sign out a session", "Your session changed. Please try again.", session)
        if not await self.accounts.end_session(session.user_id, form.get("device_id", "")):
            return self._html(404, "Session not found", "<p>There is no such session.</p>", session, nav=True)
        return self._redirect("/_wspr/account/sessions", session)

    async def password(self, request: Request) -> RawResponse:
        session = await self._require_user(request, sensitive=True)
        if isinstance(session, RawResponse):
            return session
        assert session.user_id is not None
        opaque = self.factors.opaque
        error = message = None
        if request.method == b"POST":
            form = _form(request)
            new, confirm = form.get("new_password", ""), form.get("confirm", "")
            sign_out = form.get("sign_out") == "on"
            if not self._csrf_ok(session, form):
                error = "Your session changed. Please try again."
            elif opaque.enabled:
                try:
                    await opaque.set_record(session.user_id, opaque.parse_upload(form.get("record", "")))
                except OpaqueError:
                    error = "Your browser sent a malformed message. Please try again."
                else:
                    if sign_out:
                        await self.accounts.sign_out_everywhere(session.user_id, keep=session)
                    message = "Your password has been changed."
            elif not new:
                error = "Choose a new password."
            elif new != confirm:
                error = "The passwords do not match."
            else:
                await self.accounts.change_password(session, new, sign_out)
                message = "Your password has been changed."
            if message:
                await self.hs.audit.record(
                    AuditEvent.PASSWORD_CHANGED, session.user_id, session.user_id, client_ip(request),
                    {"via": "account_page", "logout_devices": sign_out},
                )
        sign_out_box = '<label><input type="checkbox" name="sign_out" checked> Sign out everywhere else</label>'
        if opaque.enabled:
            fields = [
                password_field("f-new", "New password", "new-password"),
                password_field("f-confirm", "New password again", "new-password"),
                sign_out_box,
            ]
            form_html = opaque_form("register", "/_wspr/account/password", fields, "Change password", error, extra=' data-purpose="change"')
        else:
            fields = [
                html.password_input("new_password", "New password", autocomplete="new-password"),
                html.password_input("confirm", "New password again", autocomplete="new-password"),
                sign_out_box,
            ]
            form_html = html.form("/_wspr/account/password", fields, "Change password", error=error)
        body = (html.notice(message) if message else "") + form_html
        return self._html(
            400 if error else 200, "Change password", body, session, nav=True, script=OPAQUE_SCRIPT if opaque.enabled else None
        )

    async def cross_signing_reset(self, request: Request) -> RawResponse:
        session = await self._require_user(request, sensitive=True)
        if isinstance(session, RawResponse):
            return session
        assert session.user_id is not None
        if request.method == b"POST":
            form = _form(request)
            if not self._csrf_ok(session, form):
                return self._error(400, "Reset your identity", "Your session changed. Please try again.", session)
            await self.accounts.approve_cross_signing_reset(session.user_id)
            body = html.notice(
                "Approved. Go back to your application and continue: it may reset your identity in the next 10 minutes."
            )
            return self._html(200, "Reset your identity", body, session, nav=True)
        body = (
            "<p>Resetting your cross-signing identity means your other devices and the people you talk to will"
            " have to verify you again. Do this only if you have lost access to all your verified devices and your"
            " recovery key.</p>"
            + html.form("/_wspr/account/cross_signing_reset", [], "Allow the reset", danger=True)
        )
        return self._html(200, "Reset your identity", body, session, nav=True)


__all__ = ["Pages", "quote", "register"]
