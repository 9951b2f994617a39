"""The sign-in factors beyond a password (``hs.sign_in_factors``): second factors (TOTP,
WebAuthn, recovery codes: homeserver.oauth.mfa and .webauthn), OPAQUE passwords
(.opaque) and e-mail (.email), and where their steps go in the login flow."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeserver.oauth.email import Email
from homeserver.oauth.login_flow import LoginFlow, PasswordStep
from homeserver.oauth.mfa import (
    Mfa,
    MfaEnrolStep,
    RecoveryCodeStep,
    ShowRecoveryCodesStep,
    TotpStep,
)
from homeserver.oauth.opaque import Opaque, OpaqueStep
from homeserver.oauth.secrets import SignInSecrets
from homeserver.oauth.webauthn import (
    PasskeyEnrolment,
    PasskeySignInStep,
    WebAuthn,
    WebAuthnStep,
)

if TYPE_CHECKING:
    from homeserver.app import HomeServer


class SignInFactors:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.secrets = SignInSecrets.load_or_create(hs.config.auth.secrets_path)
        self.mfa = Mfa(hs, self.secrets.recovery_code_key)
        self.webauthn = WebAuthn(hs)
        self.opaque = Opaque(hs, self.secrets.opaque_server_setup)
        self.email = Email(hs)

    def install(self, flow: LoginFlow) -> None:
        """Puts the steps in the flow: the password (argon2id or OPAQUE) or a passkey
        first; then one of TOTP, a passkey or a recovery code for users who have one;
        then enrolment when ``mfa.required`` and the new recovery codes."""
        if self.opaque.enabled:
            flow.first_factors[:] = [OpaqueStep(self.opaque) if isinstance(s, PasswordStep) else s for s in flow.first_factors]
        flow.first_factors.append(PasskeySignInStep(self.webauthn))
        flow.second_factors.extend([TotpStep(self.mfa), WebAuthnStep(self.webauthn), RecoveryCodeStep(self.mfa)])
        enrol = MfaEnrolStep(self.mfa)
        enrol.alternatives.append(PasskeyEnrolment(self.webauthn, enrol.name))
        flow.after_steps.extend([enrol, ShowRecoveryCodesStep()])
