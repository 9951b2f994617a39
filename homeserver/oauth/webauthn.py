"""WebAuthn (passkeys and security keys) with py_webauthn: registration and
authentication ceremonies, and the sign-in steps that use them.

The relying party is this server's public address: RP ID = the host of
``public_baseurl``, origin = its scheme, host and port (browsers allow WebAuthn on
https:// origins and on http://localhost). A credential is a second factor
(``WebAuthnStep``), or a whole sign-in on its own (``PasskeySignInStep``: a discoverable
credential names its user by the user handle, and with user verification (PIN or
biometrics on the device) it is two factors in one). Attestation is not asked for:
any authenticator the user owns will do.

The browser side is ``/_wspr/static/webauthn.js``: forms carrying ``data-webauthn``
("create" or "get") and the options as JSON run the ceremony and post the credential
back as JSON in the ``credential`` field.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers.exceptions import (
    InvalidAuthenticationResponse,
    InvalidRegistrationResponse,
)
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from homeserver.handlers.audit import AuditEvent
from homeserver.http.errors import MatrixError
from homeserver.oauth.login_flow import FlowState, Step, StepContext, StepResult
from homeserver.storage.sign_in_factors import WebAuthnCredential
from homeserver.storage.users import UserRecord
from homeserver.util.ids import now_ms

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.oauth.mfa import Mfa

logger = logging.getLogger(__name__)

SCRIPT = "/_wspr/static/webauthn.js"
# A ceremony's challenge is good for this long.
CHALLENGE_LIFETIME_MS = 5 * 60 * 1000
MAX_CREDENTIAL_JSON = 16 * 1024
MAX_NAME = 64


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Ceremony:
    """Options for the browser (JSON) and the challenge to check the answer against."""

    options_json: str
    challenge: str

    def to_state(self) -> dict[str, Any]:
        return {"challenge": self.challenge, "options": self.options_json, "expires": now_ms() + CHALLENGE_LIFETIME_MS}


def _challenge_from(data: dict[str, Any] | None) -> bytes | None:
    if not data or not isinstance(data.get("challenge"), str) or data.get("expires", 0) < now_ms():
        return None
    return unb64url(data["challenge"])


def _parse_credential(raw: str) -> dict[str, Any] | None:
    if not raw or len(raw) > MAX_CREDENTIAL_JSON:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) and isinstance(value.get("id"), str) else None


class WebAuthn:
    """The relying party (``hs.sign_in_factors.webauthn``)."""

    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store
        base = urlsplit(hs.config.public_baseurl)
        self.rp_id = base.hostname or "localhost"
        self.origin = f"{base.scheme}://{base.netloc}"
        self.rp_name = hs.server_name

    async def _user_handle(self, user_id: str) -> bytes:
        handle = await self.store.get_or_create_webauthn_user_handle(user_id, b64url(secrets.token_bytes(32)))
        return unb64url(handle)

    async def registration(self, user_id: str) -> Ceremony:
        existing = await self.store.get_webauthn_credentials(user_id)
        options = generate_registration_options(
            rp_id=self.rp_id,
            rp_name=self.rp_name,
            user_name=user_id,
            user_id=await self._user_handle(user_id),
            user_display_name=user_id,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
            exclude_credentials=[PublicKeyCredentialDescriptor(id=unb64url(c.credential_id)) for c in existing],
        )
        return Ceremony(options_to_json(options), b64url(options.challenge))

    async def register(self, user_id: str, state: dict[str, Any] | None, credential_json: str, name: str, ip: str) -> str | None:
        """Verifies a registration and stores the credential; returns an error message,
        or None on success."""
        challenge = _challenge_from(state)
        credential = _parse_credential(credential_json)
        if challenge is None:
            return "That took too long. Please try again."
        if credential is None:
            return "Your browser did not create a passkey."
        try:
            verified = verify_registration_response(
                credential=credential, expected_challenge=challenge, expected_rp_id=self.rp_id, expected_origin=self.origin
            )
        except (InvalidRegistrationResponse, ValueError, KeyError, TypeError) as e:
            logger.info("passkey registration for %s refused: %s", user_id, e)
            return "That passkey could not be verified."
        transports = credential.get("response", {}).get("transports") or []
        known = {t.value for t in AuthenticatorTransport}
        record = WebAuthnCredential(
            credential_id=b64url(verified.credential_id),
            user_id=user_id,
            public_key=b64url(verified.credential_public_key),
            sign_count=verified.sign_count,
            transports=[t for t in transports if isinstance(t, str) and t in known],
            name=(name.strip() or "Passkey")[:MAX_NAME],
            created_ts=now_ms(),
            last_used_ts=None,
        )
        if not await self.store.add_webauthn_credential(record):
            return "That passkey is registered already."
        await self.hs.audit.record(AuditEvent.MFA_ENROLLED, user_id, user_id, ip, {"method": "webauthn", "name": record.name})
        return None

    async def authentication(self, user_id: str | None) -> Ceremony:
        """Options for a sign-in: with the user's credentials listed, or none (any
        discoverable credential for this site: a passkey sign-in)."""
        allow = None
        if user_id is not None:
            allow = [
                PublicKeyCredentialDescriptor(
                    id=unb64url(c.credential_id), transports=[AuthenticatorTransport(t) for t in c.transports]
                )
                for c in await self.store.get_webauthn_credentials(user_id)
            ]
        options = generate_authentication_options(
            rp_id=self.rp_id, allow_credentials=allow, user_verification=UserVerificationRequirement.PREFERRED
        )
        return Ceremony(options_to_json(options), b64url(options.challenge))

    async def authenticate(
        self, state: dict[str, Any] | None, credential_json: str, expected_user: str | None, ip: str
    ) -> tuple[str, bool] | None:
        """Checks an assertion; returns (user, user verified) or None."""
        challenge = _challenge_from(state)
        credential = _parse_credential(credential_json)
        if challenge is None or credential is None:
            return None
        stored = await self.store.get_webauthn_credential(credential["id"])
        if stored is None or (expected_user is not None and stored.user_id != expected_user):
            return None
        handle = credential.get("response", {}).get("userHandle")
        if handle and handle != b64url(await self._user_handle(stored.user_id)):
            return None
        try:
            verified = verify_authentication_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=self.origin,
                credential_public_key=unb64url(stored.public_key),
                credential_current_sign_count=stored.sign_count,
            )
        except (InvalidAuthenticationResponse, ValueError, KeyError, TypeError) as e:
            logger.info("passkey sign-in for %s refused: %s", stored.user_id, e)
            await self.hs.audit.record(AuditEvent.MFA_FAILED, stored.user_id, None, ip, {"method": "webauthn"})
            return None
        await self.store.update_webauthn_sign_count(stored.credential_id, verified.new_sign_count, now_ms())
        return stored.user_id, verified.user_verified

    async def remove(self, user_id: str, credential_id: str, ip: str, mfa: Mfa) -> bool:
        if not await self.store.delete_webauthn_credential(user_id, credential_id):
            return False
        await self.hs.audit.record(AuditEvent.MFA_REMOVED, user_id, user_id, ip, {"method": "webauthn"})
        await mfa.after_factor_removed(user_id)
        return True


# -- HTML ---------------------------------------------------------------------------------


def ceremony_form(action: str, kind: str, ceremony_state: dict[str, Any], fields: list[str], button: str) -> str:
    """A form the script runs a ceremony for: the button starts it, the credential goes
    in the hidden ``credential`` field, then the form is posted."""
    from homeserver.oauth.rest import html

    return (
        f'<form method="post" action="{html.esc(action)}" data-webauthn="{html.esc(kind)}"'
        f' data-options="{html.esc(ceremony_state.get("options", ""))}">'
        + html.csrf_field()
        + "".join(fields)
        + html.hidden("credential", "")
        + f'<div class="actions"><button type="submit">{html.esc(button)}</button></div>'
        + '<p class="muted webauthn-unsupported" hidden>This browser cannot use passkeys.</p>'
        + "</form>"
    )


# -- sign-in steps ------------------------------------------------------------------------


class WebAuthnStep(Step):
    """Second factor: one of the user's passkeys or security keys."""

    name = "webauthn"
    title = "Use your passkey"
    script = SCRIPT

    def __init__(self, webauthn: WebAuthn) -> None:
        self.webauthn = webauthn

    async def needed(self, ctx: StepContext, state: FlowState, user: UserRecord) -> bool:
        return bool(await ctx.hs.store.get_webauthn_credentials(user.user_id))

    async def prepare(self, ctx: StepContext, state: FlowState) -> None:
        state.data[self.name] = (await self.webauthn.authentication(state.user_id)).to_state()

    def render(self, ctx: StepContext, state: FlowState, error: str | None) -> str:
        from homeserver.oauth.rest import html

        return (
            html.error_box(error)
            + "<p>Confirm with a passkey or security key you added to this account.</p>"
            + ceremony_form("/_wspr/login", "get", state.data.get(self.name, {}), [html.hidden("step", self.name)], "Use passkey")
        )

    async def submit(self, ctx: StepContext, state: FlowState, form: dict[str, str]) -> StepResult:
        result = await self.webauthn.authenticate(state.data.pop(self.name, None), form.get("credential", ""), state.user_id, ctx.client_ip)
        if result is None:
            return StepResult.retry("That passkey did not work. Try again, or choose another way.")
        return StepResult.done()


class PasskeySignInStep(Step):
    """First factor: a passkey alone. With user verification it is also the second
    factor (the device checked a PIN or biometrics)."""

    name = "passkey"
    title = "Sign in with a passkey"
    script = SCRIPT

    def __init__(self, webauthn: WebAuthn) -> None:
        self.webauthn = webauthn

    async def prepare(self, ctx: StepContext, state: FlowState) -> None:
        fixed = state.user_id if state.purpose == "reauth" else None
        state.data[self.name] = (await self.webauthn.authentication(fixed)).to_state()

    def render(self, ctx: StepContext, state: FlowState, error: str | None) -> str:
        from homeserver.oauth.rest import html

        return (
            html.error_box(error)
            + "<p>Use a passkey saved on this device, your phone or a security key.</p>"
            + ceremony_form("/_wspr/login", "get", state.data.get(self.name, {}), [html.hidden("step", self.name)], "Use passkey")
        )

    async def submit(self, ctx: StepContext, state: FlowState, form: dict[str, str]) -> StepResult:
        fixed = state.user_id if state.purpose == "reauth" else None
        try:
            ctx.hs.ratelimiter.check("login", ctx.client_ip)
        except MatrixError:
            return StepResult.retry("Too many attempts. Wait a minute and try again.")
        result = await self.webauthn.authenticate(state.data.pop(self.name, None), form.get("credential", ""), fixed, ctx.client_ip)
        if result is None:
            return StepResult.retry("That passkey did not work for this server.")
        user_id, verified = result
        user = await ctx.hs.store.get_user(user_id)
        if user is None or user.deactivated:
            return StepResult.retry("That passkey did not work for this server.")
        state.user_id = user_id
        if verified and WebAuthnStep.name not in state.factors:
            state.factors.append(WebAuthnStep.name)
        return StepResult.done()


class PasskeyEnrolment(Step):
    """A passkey as the second factor asked for by ``mfa.required`` (rendered inside
    homeserver.oauth.mfa.MfaEnrolStep, which posts ``kind=webauthn_enrol``)."""

    name = "webauthn_enrol"
    title = "Add a passkey"
    script = SCRIPT

    def __init__(self, webauthn: WebAuthn, parent: str) -> None:
        self.webauthn = webauthn
        self.parent = parent

    async def prepare(self, ctx: StepContext, state: FlowState) -> None:
        assert state.user_id is not None
        state.data[self.name] = (await self.webauthn.registration(state.user_id)).to_state()

    def render(self, ctx: StepContext, state: FlowState, error: str | None) -> str:
        from homeserver.oauth.rest import html

        return "<h2>Or use a passkey</h2>" + ceremony_form(
            "/_wspr/login",
            "create",
            state.data.get(self.name, {}),
            [html.hidden("step", self.parent), html.hidden("kind", self.name), html.hidden("name", "Passkey")],
            "Add a passkey",
        )

    async def submit(self, ctx: StepContext, state: FlowState, form: dict[str, str]) -> StepResult:
        assert state.user_id is not None
        error = await self.webauthn.register(
            state.user_id, state.data.pop(self.name, None), form.get("credential", ""), form.get("name", ""), ctx.client_ip
        )
        return StepResult.retry(error) if error else StepResult.done()
