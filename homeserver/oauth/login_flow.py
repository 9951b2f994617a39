"""The sign-in state machine behind the sign-in pages.

A browser's sign-in is a ``FlowState`` kept with its web session (the ``web_sessions``
row). It moves through steps, one page each:

    first factor  →  second factor (if the user has one)  →  after-steps  →  signed in
    (password)       (TOTP, passkey, recovery code: none     (enrol MFA when   → consent, or
                      built in yet)                          required, ...)     the account page

``LoginFlow.current_step`` says which step a flow is at; the pages render it and hand
its form to ``Step.submit``. A step that succeeds records its name in
``FlowState.factors`` (and, for a first factor, the user in ``FlowState.user_id``).

Extension points (for MFA, passkeys, OPAQUE, email verification):

- ``LoginFlow.first_factors``: the ways to prove who you are. The built-in
  ``PasswordStep`` checks the argon2id hash; an OPAQUE step replaces it (or sits next to
  it) when ``password_auth: opaque``; a passkey-only sign-in is another first factor.
  A first factor's ``submit`` must set ``state.user_id``.
- ``LoginFlow.second_factors``: steps whose ``needed()`` is true when the user has
  enrolled that factor (TOTP, WebAuthn, recovery codes). When the user has any, one of
  them must complete (the page offers the others via ``state.data["method"]``).
- ``LoginFlow.after_steps``: steps run once the user is known and verified, each when
  its ``needed()`` says so: MFA enrolment when ``mfa.required``, email verification.
- ``Step.render`` returns the page's body HTML (homeserver.oauth.rest.html helpers);
  ``Step.script``: the path of a script the page needs (WebAuthn, OPAQUE in WASM),
  served by the step's own route and allowed by the page's CSP.
- ``LoginFlow.listeners``: called on every sign-in success and failure (for the audit log).

Sensitive account actions (password change, ending a session, cross-signing reset) need
a recent sign-in: ``REAUTH_MAX_AGE_MS`` after the last complete flow. An older one sends
the browser through the whole flow again (``purpose="reauth"``, the user fixed), second
factor included.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from homeserver.http.errors import MatrixError
from homeserver.storage.users import UserRecord

if TYPE_CHECKING:
    from homeserver.app import HomeServer

logger = logging.getLogger(__name__)

# A sensitive action needs a sign-in at most this old.
REAUTH_MAX_AGE_MS = 5 * 60 * 1000


@dataclass
class FlowState:
    """One sign-in in progress (JSON in the web session)."""

    # "authorize" (an OAuth client waits: consent comes next), "account" (the account
    # pages), "reauth" (a sensitive action asked for a fresh sign-in).
    purpose: str = "account"
    # Where the browser goes once signed in (a path on this server).
    next: str = ""
    # The OAuth authorisation request waiting (its query parameters).
    authorize: dict[str, list[str]] | None = None
    # The account being signed into, once a first factor has identified it (fixed for a
    # reauth).
    user_id: str | None = None
    # Names of the steps completed.
    factors: list[str] = field(default_factory=list)
    # Per-step scratch space (a chosen method, an OPAQUE server state, ...), by step name.
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> FlowState:
        if not isinstance(data, dict):
            return cls()
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True)
class StepContext:
    """What a step sees of the request."""

    hs: HomeServer
    client_ip: str
    # The user of the web session (None before the first sign-in).
    signed_in_user: str | None


@dataclass(frozen=True)
class StepResult:
    """``ok``: the step is complete (the flow moves on). Otherwise ``error`` is shown on
    the step's page again."""

    ok: bool
    error: str | None = None

    @classmethod
    def done(cls) -> StepResult:
        return cls(True)

    @classmethod
    def retry(cls, error: str) -> StepResult:
        return cls(False, error)


class Step:
    """One page of the sign-in. Subclasses set ``name``, ``title`` and implement
    ``render`` and ``submit``; second factors and after-steps implement ``needed``."""

    name = ""
    title = ""

    @property
    def script(self) -> str | None:
        """The path of a script the page needs (None: the page works without JavaScript).
        Subclasses set it as a class attribute, or compute it."""
        return None

    async def needed(self, ctx: StepContext, state: FlowState, user: UserRecord) -> bool:
        return True

    async def prepare(self, ctx: StepContext, state: FlowState) -> None:
        """Called before ``render`` (which is synchronous): what the page needs from the
        database or a new challenge goes into ``state.data`` (saved after rendering)."""

    def render(self, ctx: StepContext, state: FlowState, error: str | None) -> str:
        raise NotImplementedError

    async def submit(self, ctx: StepContext, state: FlowState, form: dict[str, str]) -> StepResult:
        raise NotImplementedError


class PasswordStep(Step):
    """The built-in first factor: user name and password (argon2id), under the same
    limits on guesses as /login."""

    name = "password"
    title = "Sign in"

    def render(self, ctx: StepContext, state: FlowState, error: str | None) -> str:
        from homeserver.oauth.rest import html

        fixed = state.purpose == "reauth" and state.user_id is not None
        username = html.text_input(
            "username", "User name", autocomplete="username", value=state.user_id or "", readonly=fixed
        )
        return html.step_form(
            self.name,
            [username, html.password_input("password", "Password", autocomplete="current-password")],
            "Continue" if fixed else "Sign in",
            error=error,
        )

    async def submit(self, ctx: StepContext, state: FlowState, form: dict[str, str]) -> StepResult:
        hs = ctx.hs
        username = state.user_id if state.purpose == "reauth" and state.user_id else form.get("username", "").strip()
        password = form.get("password", "")
        if not username or not password:
            return StepResult.retry("Enter your user name and password.")
        try:
            hs.ratelimiter.check("login", ctx.client_ip)
            user_id = await hs.login.resolve_identifier({"identifier": {"type": "m.id.user", "user": username}})
            ok = await hs.auth.validate_password(user_id, password, ctx.client_ip)
        except MatrixError as e:
            if e.errcode == "M_LIMIT_EXCEEDED":
                return StepResult.retry("Too many attempts. Wait a minute and try again.")
            return StepResult.retry("Wrong user name or password.")
        if not ok:
            return StepResult.retry("Wrong user name or password.")
        state.user_id = user_id
        return StepResult.done()


Listener = Callable[[str, str | None, str, bool], Awaitable[None]]


class LoginFlow:
    """The steps of the sign-in, in order (see the module docstring)."""

    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.first_factors: list[Step] = [PasswordStep()]
        self.second_factors: list[Step] = []
        self.after_steps: list[Step] = []
        # Called with (event, user_id, client_ip, success) on sign-in events.
        self.listeners: list[Listener] = []

    def step_by_name(self, name: str) -> Step | None:
        for step in (*self.first_factors, *self.second_factors, *self.after_steps):
            if step.name == name:
                return step
        return None

    async def current_step(self, ctx: StepContext, state: FlowState) -> Step | None:
        """The step the flow is at; None once the user is signed in."""
        first_done = state.user_id is not None and any(s.name in state.factors for s in self.first_factors)
        if not first_done:
            chosen = self.step_by_name(state.data.get("method", ""))
            return chosen if chosen in self.first_factors else self.first_factors[0]
        user = await self.hs.store.get_user(state.user_id or "")
        if user is None or user.deactivated:
            state.user_id, state.factors = None, []
            return self.first_factors[0]
        enrolled = [s for s in self.second_factors if await s.needed(ctx, state, user)]
        if enrolled and not any(s.name in state.factors for s in enrolled):
            chosen = self.step_by_name(state.data.get("method", ""))
            return chosen if chosen in enrolled else enrolled[0]
        for step in self.after_steps:
            if step.name not in state.factors and await step.needed(ctx, state, user):
                return step
        return None

    async def submit(self, ctx: StepContext, state: FlowState, step_name: str, form: dict[str, str]) -> StepResult:
        """Runs the current step with the form, if the form is for it."""
        step = await self.current_step(ctx, state)
        if step is None:
            return StepResult.done()
        if step.name != step_name:
            # A stale page (another tab moved the flow on): show the current step.
            return StepResult.retry("This page was out of date. Please try again.")
        result = await step.submit(ctx, state, form)
        if result.ok and step.name not in state.factors:
            state.factors.append(step.name)
        event = "sign_in_step" if result.ok else "sign_in_failed"
        for listener in self.listeners:
            try:
                await listener(f"{event}:{step.name}", state.user_id, ctx.client_ip, result.ok)
            except Exception:
                logger.exception("sign-in listener failed")
        return result
