"""Second factors: TOTP authenticators (RFC 6238, pyotp), single-use recovery codes, and
the sign-in steps that ask for them or enrol one when ``mfa.required``.

TOTP: 6 digits, 30 s, SHA-1 (what every authenticator app reads from an ``otpauth://``
QR code), one step of clock drift either way; a code is accepted once (the last step
used is stored). Wrong codes are limited per account (``login_failed_attempts``): the
password is already known to whoever is guessing, so the budget is the account's, not
the address's.

Recovery codes: ten, 60 random bits each, shown once, stored as HMAC-SHA256 under the
server's recovery-code key (homeserver.oauth.secrets); each works once. A new set
replaces the old. They exist only next to another second factor: removing the last one
removes them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import TYPE_CHECKING
from urllib.parse import quote

import pyotp
import segno

from homeserver.handlers.audit import AuditEvent
from homeserver.http.errors import MatrixError
from homeserver.oauth.login_flow import FlowState, Step, StepContext, StepResult
from homeserver.storage.users import UserRecord
from homeserver.util.ids import now_ms

if TYPE_CHECKING:
    from homeserver.app import HomeServer

TOTP_DIGITS = 6
TOTP_INTERVAL = 30
RECOVERY_CODE_COUNT = 10
# No 0/o, 1/l/i: codes are read off paper.
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_RECOVERY_LENGTH = 12


def normalise_code(code: str) -> str:
    return "".join(c for c in code.lower() if c.isalnum())


class Mfa:
    """TOTP and recovery codes (``hs.sign_in_factors.mfa``)."""

    def __init__(self, hs: HomeServer, recovery_code_key: bytes) -> None:
        self.hs = hs
        self.store = hs.store
        self._recovery_key = recovery_code_key
        self.issuer = hs.config.auth.mfa.totp_issuer or hs.server_name

    # -- TOTP ---------------------------------------------------------------------------

    @staticmethod
    def new_totp_secret() -> str:
        return pyotp.random_base32(32)

    def totp_uri(self, user_id: str, secret: str) -> str:
        return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_INTERVAL).provisioning_uri(
            name=user_id, issuer_name=self.issuer
        )

    @staticmethod
    def qr_svg(uri: str) -> str:
        """The QR code as inline SVG (no image request, nothing external)."""
        return segno.make(uri, error="m").svg_inline(scale=5, border=2, dark="#000", light="#fff")

    @staticmethod
    def matching_step(secret: str, code: str, at: float | None = None) -> int | None:
        """The time step whose code this is (now, or one step either side), or None."""
        code = normalise_code(code)
        if len(code) != TOTP_DIGITS or not code.isdigit():
            return None
        totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_INTERVAL)
        now = time.time() if at is None else at
        step = int(now // TOTP_INTERVAL)
        found = None
        for s in (step - 1, step, step + 1):
            # Every candidate is compared (no early exit on a match).
            if hmac.compare_digest(totp.at(s * TOTP_INTERVAL), code):
                found = s
        return found

    def _check_guesses(self, user_id: str) -> None:
        self.hs.ratelimiter.check("login_failed_attempts", ("second-factor", user_id.lower()), update=False)

    def _record_wrong_guess(self, user_id: str) -> None:
        self.hs.ratelimiter.record("login_failed_attempts", ("second-factor", user_id.lower()))

    async def enrol_totp(self, user_id: str, secret: str, code: str, ip: str) -> bool:
        """Confirms a new authenticator with a code from it; stores it (replacing any
        other) when the code is right."""
        step = self.matching_step(secret, code)
        if step is None:
            return False
        await self.store.set_totp(user_id, secret, now_ms())
        await self.store.use_totp_step(user_id, step)
        await self.hs.audit.record(AuditEvent.MFA_ENROLLED, user_id, user_id, ip, {"method": "totp"})
        return True

    async def check_totp(self, user_id: str, code: str, ip: str) -> bool:
        """Raises M_LIMIT_EXCEEDED after too many wrong codes."""
        self._check_guesses(user_id)
        record = await self.store.get_totp(user_id)
        step = self.matching_step(record.secret, code) if record else None
        if step is not None and await self.store.use_totp_step(user_id, step):
            return True
        self._record_wrong_guess(user_id)
        await self.hs.audit.record(AuditEvent.MFA_FAILED, user_id, None, ip, {"method": "totp"})
        return False

    async def remove_totp(self, user_id: str, ip: str) -> bool:
        if not await self.store.delete_totp(user_id):
            return False
        await self.hs.audit.record(AuditEvent.MFA_REMOVED, user_id, user_id, ip, {"method": "totp"})
        await self.after_factor_removed(user_id)
        return True

    # -- recovery codes -------------------------------------------------------------------

    def _code_hash(self, code: str) -> str:
        return hmac.new(self._recovery_key, normalise_code(code).encode(), hashlib.sha256).hexdigest()

    async def new_recovery_codes(self, user_id: str, ip: str) -> list[str]:
        """A new set (the old one stops working); the only time the codes are seen."""
        codes = []
        for _ in range(RECOVERY_CODE_COUNT):
            raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH))
            codes.append("-".join(raw[i : i + 4] for i in range(0, _RECOVERY_LENGTH, 4)))
        await self.store.replace_recovery_codes(user_id, [self._code_hash(c) for c in codes], now_ms())
        await self.hs.audit.record(AuditEvent.MFA_ENROLLED, user_id, user_id, ip, {"method": "recovery_codes"})
        return codes

    async def use_recovery_code(self, user_id: str, code: str, ip: str) -> bool:
        self._check_guesses(user_id)
        if normalise_code(code) and await self.store.use_recovery_code(user_id, self._code_hash(code), now_ms()):
            left = await self.store.count_unused_recovery_codes(user_id)
            await self.hs.audit.record(AuditEvent.RECOVERY_CODE_USED, user_id, user_id, ip, {"remaining": left})
            return True
        self._record_wrong_guess(user_id)
        await self.hs.audit.record(AuditEvent.MFA_FAILED, user_id, None, ip, {"method": "recovery_code"})
        return False

    # -- what a user has -------------------------------------------------------------------

    async def methods(self, user_id: str) -> list[str]:
        """The second factors the user has: "totp", "webauthn" (recovery codes are not one
        on their own)."""
        found = []
        if await self.store.get_totp(user_id) is not None:
            found.append("totp")
        if await self.store.get_webauthn_credentials(user_id):
            found.append("webauthn")
        return found

    async def after_factor_removed(self, user_id: str) -> None:
        if not await self.methods(user_id):
            await self.store.delete_recovery_codes(user_id)


# -- sign-in steps -------------------------------------------------------------------------


def _code_input(name: str, label: str, *, numeric: bool) -> str:
    from homeserver.oauth.rest import html

    mode = ' inputmode="numeric" pattern="[0-9 ]*"' if numeric else ""
    return (
        f'<label for="f-{html.esc(name)}">{html.esc(label)}</label>'
        f'<input type="text" id="f-{html.esc(name)}" name="{html.esc(name)}" autocomplete="one-time-code"'
        f' autocapitalize="none" spellcheck="false" required{mode}>'
    )


def _limited(e: MatrixError) -> StepResult:
    if e.errcode == "M_LIMIT_EXCEEDED":
        return StepResult.retry("Too many wrong codes. Wait a minute and try again.")
    raise e


class TotpStep(Step):
    """A code from the user's authenticator app."""

    name = "totp"
    title = "Enter your code"

    def __init__(self, mfa: Mfa) -> None:
        self.mfa = mfa

    async def needed(self, ctx: StepContext, state: FlowState, user: UserRecord) -> bool:
        return await ctx.hs.store.get_totp(user.user_id) is not None

    def render(self, ctx: StepContext, state: FlowState, error: str | None) -> str:
        from homeserver.oauth.rest import html

        return "<p>Open your authenticator app and enter the 6-digit code it shows for this account.</p>" + html.step_form(
            self.name, [_code_input("code", "Code", numeric=True)], "Verify", error=error
        )

    async def submit(self, ctx: StepContext, state: FlowState, form: dict[str, str]) -> StepResult:
        assert state.user_id is not None
        try:
            ok = await self.mfa.check_totp(state.user_id, form.get("code", ""), ctx.client_ip)
        except MatrixError as e:
            return _limited(e)
        return StepResult.done() if ok else StepResult.retry("That code is not right. Try the newest one.")


class RecoveryCodeStep(Step):
    """One of the user's recovery codes, when their other factors are lost."""

    name = "recovery_code"
    title = "Use a recovery code"

    def __init__(self, mfa: Mfa) -> None:
        self.mfa = mfa

    async def needed(self, ctx: StepContext, state: FlowState, user: UserRecord) -> bool:
        return await ctx.hs.store.count_unused_recovery_codes(user.user_id) > 0

    def render(self, ctx: StepContext, state: FlowState, error: str | None) -> str:
        from homeserver.oauth.rest import html

        return "<p>Enter one of the recovery codes you saved. Each code works once.</p>" + html.step_form(
            self.name, [_code_input("code", "Recovery code", numeric=False)], "Verify", error=error
        )

    async def submit(self, ctx: StepContext, state: FlowState, form: dict[str, str]) -> StepResult:
        assert state.user_id is not None
        try:
            ok = await self.mfa.use_recovery_code(state.user_id, form.get("code", ""), ctx.client_ip)
        except MatrixError as e:
            return _limited(e)
        if not ok:
            return StepResult.retry("That recovery code is not valid, or it was used already.")
        return StepResult.done()


class MfaEnrolStep(Step):
    """With ``mfa.required``, a user without a second factor sets one up before the
    sign-in completes: an authenticator app here, or a passkey (homeserver.oauth.webauthn
    adds its button when the browser can)."""

    name = "mfa_enrol"
    title = "Set up two-factor authentication"

    def __init__(self, mfa: Mfa) -> None:
        self.mfa = mfa
        # Extra ways to enrol, rendered below the authenticator app (a passkey).
        self.alternatives: list[Step] = []

    async def needed(self, ctx: StepContext, state: FlowState, user: UserRecord) -> bool:
        return ctx.hs.config.auth.mfa.required and not await self.mfa.methods(user.user_id)

    async def prepare(self, ctx: StepContext, state: FlowState) -> None:
        data = state.data.setdefault(self.name, {})
        if not data.get("secret"):
            data["secret"] = self.mfa.new_totp_secret()
        for alt in self.alternatives:
            await alt.prepare(ctx, state)

    def render(self, ctx: StepContext, state: FlowState, error: str | None) -> str:
        from homeserver.oauth.rest import html

        secret = state.data.get(self.name, {}).get("secret", "")
        body = (
            "<p>This server asks everyone to use a second factor when signing in.</p>"
            + totp_enrolment_html(self.mfa, state.user_id or "", secret)
            + html.step_form(self.name, [html.hidden("kind", "totp"), _code_input("code", "Code from the app", numeric=True)],
                             "Confirm", error=error)
        )
        for alt in self.alternatives:
            body += alt.render(ctx, state, None)
        return body

    @property
    def script(self) -> str | None:
        return next((alt.script for alt in self.alternatives if alt.script), None)

    async def submit(self, ctx: StepContext, state: FlowState, form: dict[str, str]) -> StepResult:
        assert state.user_id is not None
        kind = form.get("kind", "totp")
        for alt in self.alternatives:
            if alt.name == kind:
                result = await alt.submit(ctx, state, form)
                if result.ok:
                    # Enrolling proved the new factor: it is this sign-in's second factor.
                    state.factors.append("webauthn")
                    state.data["show_recovery_codes"] = await self.mfa.new_recovery_codes(state.user_id, ctx.client_ip)
                return result
        secret = state.data.get(self.name, {}).get("secret", "")
        if not secret or not await self.mfa.enrol_totp(state.user_id, secret, form.get("code", ""), ctx.client_ip):
            return StepResult.retry("That code is not right. Check the app's clock and enter the newest code.")
        state.data.pop(self.name, None)
        state.factors.append(TotpStep.name)
        state.data["show_recovery_codes"] = await self.mfa.new_recovery_codes(state.user_id, ctx.client_ip)
        return StepResult.done()


class ShowRecoveryCodesStep(Step):
    """Right after enrolment during sign-in: the recovery codes, shown once."""

    name = "recovery_codes_shown"
    title = "Save your recovery codes"

    async def needed(self, ctx: StepContext, state: FlowState, user: UserRecord) -> bool:
        return bool(state.data.get("show_recovery_codes"))

    def render(self, ctx: StepContext, state: FlowState, error: str | None) -> str:
        from homeserver.oauth.rest import html

        return recovery_codes_html(state.data.get("show_recovery_codes", [])) + html.step_form(
            self.name, [], "I have saved them", error=error
        )

    async def submit(self, ctx: StepContext, state: FlowState, form: dict[str, str]) -> StepResult:
        state.data.pop("show_recovery_codes", None)
        return StepResult.done()


def totp_enrolment_html(mfa: Mfa, user_id: str, secret: str) -> str:
    from homeserver.oauth.rest import html

    uri = mfa.totp_uri(user_id, secret)
    grouped = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    return (
        "<p>Scan this code with an authenticator app (such as Aegis, FreeOTP, Google Authenticator or 1Password),"
        " then enter the 6-digit code it shows.</p>"
        f'<figure class="qr" role="img" aria-label="QR code for your authenticator app">{mfa.qr_svg(uri)}</figure>'
        "<details><summary>Can't scan it?</summary>"
        f'<p>Enter this key in the app: <code class="secret">{html.esc(grouped)}</code></p>'
        f'<p class="muted">Or open <a href="{html.esc(uri)}">this link</a> on the device with the app'
        f" (<code>{html.esc(quote(mfa.issuer))}</code>, 6 digits, 30 seconds).</p></details>"
    )


def recovery_codes_html(codes: list[str]) -> str:
    from homeserver.oauth.rest import html

    items = "".join(f"<li><code>{html.esc(c)}</code></li>" for c in codes)
    return (
        "<p>If you lose your phone or security key, each of these codes lets you sign in once."
        " Keep them somewhere safe (a password manager, or printed). <strong>They will not be shown again.</strong></p>"
        f'<ul class="codes" aria-label="Recovery codes">{items}</ul>'
    )
