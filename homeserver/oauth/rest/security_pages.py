"""The account's security page, ``/_wspr/account/security``: the authenticator app (set up
with a QR code and a confirming code, or remove), passkeys (add, remove) and recovery
codes (how many are left, a new set shown once).

Every change is a sensitive action: it needs a sign-in less than five minutes old,
second factor included (homeserver.oauth.login_flow), so removing a factor needs a fresh
second factor."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

from twisted.web.server import Request

from homeserver.http.server import RawResponse, Router, client_ip
from homeserver.oauth.mfa import recovery_codes_html, totp_enrolment_html
from homeserver.oauth.rest import html
from homeserver.oauth.webauthn import SCRIPT as WEBAUTHN_SCRIPT
from homeserver.oauth.webauthn import ceremony_form

if TYPE_CHECKING:
    from homeserver.oauth.accounts import WebSession
    from homeserver.oauth.rest.pages import Pages

PAGE = "/_wspr/account/security"
_PASSKEY_ADD = "passkey_add"
_TOTP_SETUP = "totp_setup"


def _fmt(ts: int | None) -> str:
    from homeserver.oauth.rest.pages import _fmt_ts

    return _fmt_ts(ts)


class SecurityPages:
    def __init__(self, pages: Pages) -> None:
        self.pages = pages
        self.hs = pages.hs
        self.mfa = pages.hs.sign_in_factors.mfa
        self.webauthn = pages.hs.sign_in_factors.webauthn

    def register(self, router: Router) -> None:
        r = router.register
        r("GET", PAGE, self.overview)
        r(["GET", "POST"], PAGE + "/totp", self.totp)
        r("POST", PAGE + "/totp/remove", self.totp_remove)
        r("POST", PAGE + "/passkeys", self.passkey_add)
        r("POST", PAGE + "/passkeys/remove", self.passkey_remove)
        r("POST", PAGE + "/recovery_codes", self.recovery_codes)

    async def _sensitive_post(self, request: Request) -> tuple[WebSession, dict[str, str]] | RawResponse:
        from homeserver.oauth.rest.pages import _form

        session = await self.pages._require_user(request, sensitive=True, back=PAGE)
        if isinstance(session, RawResponse):
            return session
        form = _form(request)
        if not self.pages._csrf_ok(session, form):
            return self.pages._error(400, "Security", "Your session changed. Please try again.", session)
        return session, form

    async def overview(self, request: Request, message: str | None = None, error: str | None = None) -> RawResponse:
        session = await self.pages._require_user(request)
        if isinstance(session, RawResponse):
            return session
        user_id = session.user_id
        assert user_id is not None
        store = self.hs.store
        totp = await store.get_totp(user_id)
        creds = await store.get_webauthn_credentials(user_id)
        codes_left = await store.count_unused_recovery_codes(user_id)
        body = (html.notice(message) if message else "") + html.error_box(error)
        body += "<h2>Authenticator app</h2>"
        if totp is not None:
            body += f"<p>Set up on {html.esc(_fmt(totp.created_ts))}.</p>" + html.button_form(
                PAGE + "/totp/remove", "Remove the authenticator app", danger=True
            )
        else:
            body += '<p>Not set up.</p><p><a href="' + PAGE + '/totp">Set up an authenticator app</a></p>'
        body += "<h2>Passkeys and security keys</h2>"
        if creds:
            items = "".join(
                f"<li><strong>{html.esc(c.name)}</strong><br><span class=\"muted\">added {html.esc(_fmt(c.created_ts))}"
                f" · last used {html.esc(_fmt(c.last_used_ts))}</span>"
                + html.button_form(PAGE + "/passkeys/remove", "Remove", [html.hidden("credential_id", c.credential_id)], secondary=True)
                + "</li>"
                for c in creds
            )
            body += f'<ul class="list">{items}</ul>'
        else:
            body += "<p>None yet. A passkey signs you in without a password, and counts as a second factor.</p>"
        ceremony = (await self.webauthn.registration(user_id)).to_state()
        session.flow.data[_PASSKEY_ADD] = ceremony
        body += ceremony_form(
            PAGE + "/passkeys",
            "create",
            ceremony,
            [html.text_input("name", "Name for the new passkey", value="Passkey", required=False)],
            "Add a passkey",
        )
        body += "<h2>Recovery codes</h2>"
        if totp is None and not creds:
            body += "<p>Recovery codes come with a second factor: set one up first.</p>"
        else:
            body += f"<p>{codes_left} unused recovery code{'s' if codes_left != 1 else ''} left.</p>" + html.button_form(
                PAGE + "/recovery_codes", "Make a new set of codes", secondary=True
            )
        await self.pages.accounts.save(session)
        status = 400 if error else 200
        return self.pages._html(status, "Security", body, session, nav=True, script=WEBAUTHN_SCRIPT)

    async def totp(self, request: Request) -> RawResponse:
        from homeserver.oauth.rest.pages import _form

        session = await self.pages._require_user(request, sensitive=True)
        if isinstance(session, RawResponse):
            return session
        user_id = session.user_id
        assert user_id is not None
        error = None
        secret = session.flow.data.get(_TOTP_SETUP)
        if request.method == b"POST":
            form = _form(request)
            if not self.pages._csrf_ok(session, form) or not secret:
                error = "Your session changed. Please try again."
            elif await self.mfa.enrol_totp(user_id, secret, form.get("code", ""), client_ip(request)):
                session.flow.data.pop(_TOTP_SETUP, None)
                await self.pages.accounts.save(session)
                body = html.notice("Your authenticator app is set up. You will be asked for a code when you sign in.")
                if await self.hs.store.count_unused_recovery_codes(user_id) == 0:
                    codes = await self.mfa.new_recovery_codes(user_id, client_ip(request))
                    body += recovery_codes_html(codes)
                body += f'<p><a href="{PAGE}">Back to security</a></p>'
                return self.pages._html(200, "Authenticator app", body, session, nav=True)
            else:
                error = "That code is not right. Check the app's clock and enter the newest code."
        if not secret or request.method == b"GET":
            secret = self.mfa.new_totp_secret()
            session.flow.data[_TOTP_SETUP] = secret
            await self.pages.accounts.save(session)
        from homeserver.oauth.mfa import _code_input

        body = totp_enrolment_html(self.mfa, user_id, secret) + html.form(
            PAGE + "/totp", [_code_input("code", "Code from the app", numeric=True)], "Confirm", error=error
        )
        return self.pages._html(400 if error else 200, "Set up an authenticator app", body, session, nav=True)

    async def totp_remove(self, request: Request) -> RawResponse:
        checked = await self._sensitive_post(request)
        if isinstance(checked, RawResponse):
            return checked
        session, _ = checked
        assert session.user_id is not None
        await self.mfa.remove_totp(session.user_id, client_ip(request))
        return self.pages._redirect(PAGE + "?" + urlencode({"done": "totp_removed"}), session)

    async def passkey_add(self, request: Request) -> RawResponse:
        checked = await self._sensitive_post(request)
        if isinstance(checked, RawResponse):
            return checked
        session, form = checked
        assert session.user_id is not None
        error = await self.webauthn.register(
            session.user_id, session.flow.data.pop(_PASSKEY_ADD, None), form.get("credential", ""), form.get("name", ""),
            client_ip(request),
        )
        await self.pages.accounts.save(session)
        if error:
            return await self.overview(request, error=error)
        body = html.notice("Your passkey was added.")
        if await self.hs.store.count_unused_recovery_codes(session.user_id) == 0:
            body += recovery_codes_html(await self.mfa.new_recovery_codes(session.user_id, client_ip(request)))
        body += f'<p><a href="{PAGE}">Back to security</a></p>'
        return self.pages._html(200, "Passkey added", body, session, nav=True)

    async def passkey_remove(self, request: Request) -> RawResponse:
        checked = await self._sensitive_post(request)
        if isinstance(checked, RawResponse):
            return checked
        session, form = checked
        assert session.user_id is not None
        await self.webauthn.remove(session.user_id, form.get("credential_id", ""), client_ip(request), self.mfa)
        return self.pages._redirect(PAGE + "?" + urlencode({"done": "passkey_removed"}), session)

    async def recovery_codes(self, request: Request) -> RawResponse:
        checked = await self._sensitive_post(request)
        if isinstance(checked, RawResponse):
            return checked
        session, _ = checked
        assert session.user_id is not None
        if not await self.mfa.methods(session.user_id):
            return await self.overview(request, error="Set up a second factor first.")
        codes = await self.mfa.new_recovery_codes(session.user_id, client_ip(request))
        body = recovery_codes_html(codes) + "<p>Your old codes no longer work.</p>" + f'<p><a href="{PAGE}">Back to security</a></p>'
        return self.pages._html(200, "New recovery codes", body, session, nav=True)
