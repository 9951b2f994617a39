"""E-mail on the account pages: ``/_wspr/account/email`` (the account's addresses: add one
by a link sent to it, remove one), ``/_wspr/email/verify`` (where that link lands), and
password reset: ``/_wspr/password/forgot`` (asks for the address) and
``/_wspr/password/reset`` (where the e-mailed link lands: a new password, argon2id or
OPAQUE as the server is configured). A reset signs every session out."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from twisted.web.server import Request

from homeserver.http.errors import MatrixError
from homeserver.http.server import RawResponse, Router, client_ip
from homeserver.oauth.email import PURPOSE_ADD, PURPOSE_RESET, normalise_email
from homeserver.oauth.opaque import SCRIPT as OPAQUE_SCRIPT
from homeserver.oauth.opaque import OpaqueError, opaque_form, password_field
from homeserver.oauth.rest import html

if TYPE_CHECKING:
    from homeserver.oauth.rest.pages import Pages

PAGE = "/_wspr/account/email"

E2EE_NOTICE = (
    "Resetting your password does not reset your encryption. Your devices are signed out; when you sign in"
    " again, your encrypted message history comes back with your recovery key (or security phrase), as on a"
    " new device. Without it, older encrypted messages cannot be read."
)


def _email_input(name: str, label: str, value: str = "") -> str:
    return (
        f'<label for="f-{html.esc(name)}">{html.esc(label)}</label>'
        f'<input type="email" id="f-{html.esc(name)}" name="{html.esc(name)}" value="{html.esc(value)}"'
        ' autocomplete="email" required>'
    )


class EmailPages:
    def __init__(self, pages: Pages) -> None:
        self.pages = pages
        self.hs = pages.hs
        self.email = pages.factors.email

    def register(self, router: Router) -> None:
        r = router.register
        r("GET", PAGE, self.addresses)
        r("POST", PAGE + "/add", self.add)
        r("POST", PAGE + "/remove", self.remove)
        r("GET", "/_wspr/email/verify", self.verify)
        r(["GET", "POST"], "/_wspr/password/forgot", self.forgot)
        r(["GET", "POST"], "/_wspr/password/reset", self.reset)

    async def addresses(self, request: Request, message: str | None = None, error: str | None = None) -> RawResponse:
        session = await self.pages._require_user(request)
        if isinstance(session, RawResponse):
            return session
        assert session.user_id is not None
        mails = [t for t in await self.hs.store.get_threepids(session.user_id) if t.medium == "email"]
        body = (html.notice(message) if message else "") + html.error_box(error)
        if mails:
            items = "".join(
                f"<li><strong>{html.esc(t.address)}</strong>"
                + html.button_form(PAGE + "/remove", "Remove", [html.hidden("address", t.address)], secondary=True)
                + "</li>"
                for t in mails
            )
            body += f'<ul class="list">{items}</ul>'
        else:
            body += "<p>No e-mail address. Add one to be able to reset your password if you forget it.</p>"
        if self.email.enabled:
            body += "<h2>Add an address</h2>" + html.form(PAGE + "/add", [_email_input("address", "E-mail address")], "Send a confirmation link")
        else:
            body += '<p class="muted">This server cannot send e-mail.</p>'
        return self.pages._html(400 if error else 200, "Email", body, session, nav=True)

    async def add(self, request: Request) -> RawResponse:
        from homeserver.oauth.rest.pages import _form

        session = await self.pages._require_user(request, sensitive=True, back=PAGE)
        if isinstance(session, RawResponse):
            return session
        form = _form(request)
        if not self.pages._csrf_ok(session, form):
            return await self.addresses(request, error="Your session changed. Please try again.")
        address = normalise_email(form.get("address", ""))
        try:
            await self.email.request_token(
                PURPOSE_ADD, secrets.token_urlsafe(16), address, 1, client_ip(request), user_id=session.user_id
            )
        except MatrixError as e:
            error = {
                "M_THREEPID_IN_USE": "That address belongs to an account already.",
                "M_INVALID_PARAM": "That is not an e-mail address.",
                "M_LIMIT_EXCEEDED": "Too many e-mails were asked for. Wait a few minutes and try again.",
            }.get(e.errcode, "The e-mail could not be sent. Try again later.")
            return await self.addresses(request, error=error)
        return await self.addresses(request, message=f"We sent a link to {address}. Open it to add the address.")

    async def remove(self, request: Request) -> RawResponse:
        from homeserver.oauth.rest.pages import _form

        session = await self.pages._require_user(request, sensitive=True, back=PAGE)
        if isinstance(session, RawResponse):
            return session
        assert session.user_id is not None
        form = _form(request)
        if not self.pages._csrf_ok(session, form):
            return await self.addresses(request, error="Your session changed. Please try again.")
        await self.email.remove(session.user_id, form.get("address", ""))
        return self.pages._redirect(PAGE, session)

    async def verify(self, request: Request) -> RawResponse:
        from homeserver.oauth.rest.pages import _qs

        token = (_qs(request).get("token") or [""])[0]
        session = await self.pages._session(request)
        try:
            validated = await self.email.open_verification_link(token)
        except MatrixError as e:
            return self.pages._error(400, "Address not added", e.msg, session)
        if validated is None:
            return self.pages._error(
                400, "Link not valid", "This link has expired or was used already. Ask for a new one.", session
            )
        if validated.user_id is not None:
            body = f"<p><strong>{html.esc(validated.address)}</strong> was added to your account.</p>"
            body += f'<p><a href="{PAGE}">Your e-mail addresses</a></p>'
        else:
            body = f"<p><strong>{html.esc(validated.address)}</strong> is confirmed. Go back to your application to finish.</p>"
        return self.pages._html(200, "Address confirmed", body, session)

    async def forgot(self, request: Request) -> RawResponse:
        from homeserver.oauth.rest.pages import _form

        session = await self.pages._session_or_new(request)
        if not self.email.enabled:
            await self.pages.accounts.save(session)
            return self.pages._error(404, "Reset your password", "This server cannot send e-mail.", session)
        message = error = None
        if request.method == b"POST":
            form = _form(request)
            address = normalise_email(form.get("address", ""))
            if not self.pages._csrf_ok(session, form):
                error = "Your session changed. Please try again."
            else:
                try:
                    await self.email.request_token(PURPOSE_RESET, secrets.token_urlsafe(16), address, 1, client_ip(request))
                except MatrixError as e:
                    if e.errcode == "M_LIMIT_EXCEEDED":
                        error = "Too many e-mails were asked for. Wait a few minutes and try again."
                    elif e.errcode == "M_INVALID_PARAM":
                        error = "That is not an e-mail address."
                    elif e.errcode != "M_THREEPID_NOT_FOUND":
                        error = "The e-mail could not be sent. Try again later."
                if error is None:
                    # The same answer whether or not an account has the address.
                    message = f"If an account has the address {address}, we sent it a link to reset the password."
        await self.pages.accounts.save(session)
        body = (html.notice(message) if message else "") + (
            "<p>Enter the e-mail address of your account. We will send you a link to choose a new password.</p>"
            + html.form("/_wspr/password/forgot", [_email_input("address", "E-mail address")], "Send the link", error=error)
            + '<p class="muted"><a href="/_wspr/login">Back to sign in</a></p>'
        )
        return self.pages._html(400 if error else 200, "Reset your password", body, session)

    async def reset(self, request: Request) -> RawResponse:
        from homeserver.oauth.rest.pages import _form, _qs

        session = await self.pages._session_or_new(request)
        form = _form(request) if request.method == b"POST" else {}
        token = form.get("reset_token") or (_qs(request).get("token") or [""])[0]
        link = await self.email.session_for_link(token, PURPOSE_RESET)
        await self.pages.accounts.save(session)
        if link is None or link.user_id is None:
            return self.pages._error(
                400, "Link not valid", "This link has expired or was used already. Ask for a new one.", session
            )
        opaque = self.pages.factors.opaque
        error = None
        if request.method == b"POST":
            new, confirm = form.get("new_password", ""), form.get("confirm", "")
            record: str | None = None
            if not self.pages._csrf_ok(session, form):
                error = "Your session changed. Please try again."
            elif opaque.enabled:
                try:
                    record = opaque.parse_upload(form.get("record", ""))
                except OpaqueError:
                    error = "Your browser sent a malformed message. Please try again."
            elif not new:
                error = "Choose a new password."
            elif new != confirm:
                error = "The passwords do not match."
            if error is None:
                try:
                    user_id = await self.email.reset_password(link, client_ip(request))
                except MatrixError:
                    return self.pages._error(400, "Link not valid", "This link was used already.", session)
                if record is not None:
                    await opaque.set_record(user_id, record)
                else:
                    await self.hs.store.set_password_hash(user_id, await self.hs.auth.hash_password(new))
                await self.pages.accounts.sign_out_everywhere(user_id)
                body = (
                    html.notice("Your password has been changed, and you were signed out everywhere.")
                    + f"<p>{html.esc(E2EE_NOTICE)}</p>"
                    + '<p><a href="/_wspr/login">Sign in</a></p>'
                )
                return self.pages._html(200, "Password changed", body, session)
        intro = f"<p>Choose a new password for <strong>{html.esc(link.user_id)}</strong>.</p>" + html.notice(E2EE_NOTICE)
        if opaque.enabled:
            fields = [
                html.hidden("reset_token", token),
                password_field("f-new", "New password", "new-password"),
                password_field("f-confirm", "New password again", "new-password"),
            ]
            form_html = opaque_form("register", "/_wspr/password/reset", fields, "Set the new password", error, extra=' data-purpose="reset"')
        else:
            fields = [
                html.hidden("reset_token", token),
                html.password_input("new_password", "New password", autocomplete="new-password"),
                html.password_input("confirm", "New password again", autocomplete="new-password"),
            ]
            form_html = html.form("/_wspr/password/reset", fields, "Set the new password", error=error)
        return self.pages._html(
            400 if error else 200, "Choose a new password", intro + form_html, session, script=OPAQUE_SCRIPT if opaque.enabled else None
        )
