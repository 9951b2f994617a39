"""E-mail: verifying an address before it is added to an account, and password reset by
e-mail, with Synapse's request formats (``/account/3pid/email/requestToken``,
``/account/password/email/requestToken``) and the sign-in pages' own forms.

A request makes a validation session (Synapse's ``threepid_validation_session``): the
client's ``client_secret`` and ``send_attempt`` (a repeated attempt number sends
nothing new), and a random token, stored hashed, sent as a link. The link works once,
until ``email.validation_token_lifetime``. Opening an "add" link validates the session
(then ``/account/3pid/add`` with the client secret binds it, or, when the request came
from the account page of a signed-in user, it is bound at once); a "reset" link opens
the page that sets a new password.

Mail goes out through the SMTP server in ``email`` (Synapse's keys: ``smtp_host``,
``smtp_port``, ``smtp_user``, ``smtp_pass``, ``force_tls``, ``require_transport_security``,
``enable_tls``, ``notif_from``) with Twisted's ESMTP client.
"""

from __future__ import annotations

import logging
import re
import secrets
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from io import BytesIO
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.error import ConnectError
from twisted.internet.ssl import CertificateOptions, optionsForClientTLS
from twisted.mail.smtp import ESMTPSenderFactory, SMTPClientError

from homeserver.handlers.audit import AuditEvent
from homeserver.http.errors import MatrixError
from homeserver.storage.sign_in_factors import EmailValidationSession
from homeserver.util.ids import hash_token, now_ms

if TYPE_CHECKING:
    from homeserver.app import HomeServer

logger = logging.getLogger(__name__)

# The spec's client_secret grammar.
CLIENT_SECRET_RE = re.compile(r"^[0-9a-zA-Z.=_\-]{1,255}$")
# Deliberately loose (the link proves the address); no spaces, one @, a dot in the domain.
EMAIL_RE = re.compile(r"^[^\s@]{1,64}@[^\s@]+\.[^\s@]{1,63}$")
MAX_EMAIL = 254
PURPOSE_ADD = "add"
PURPOSE_RESET = "reset"


def normalise_email(address: str) -> str:
    """As Synapse's canonicalise_email: trimmed, lower-cased."""
    return address.strip().lower()


class EmailError(MatrixError):
    pass


class Mailer:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.config = hs.config.email

    async def send(self, to: str, subject: str, text: str) -> None:
        c = self.config
        assert c.smtp_host
        msg = EmailMessage()
        msg["From"] = c.notif_from
        msg["To"] = to
        msg["Subject"] = subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain=self.hs.server_name.split(":")[0])
        msg.set_content(text)
        from_addr = parseaddr(c.notif_from)[1]
        done: defer.Deferred[object] = defer.Deferred()
        context = optionsForClientTLS(c.smtp_host) if c.verify_tls_certificates else CertificateOptions()
        factory = ESMTPSenderFactory(
            c.smtp_user,
            c.smtp_pass,
            from_addr,
            to,
            BytesIO(msg.as_bytes()),
            done,
            retries=0,
            timeout=30,
            # STARTTLS when offered (and required with require_transport_security);
            # none with enable_tls off, or inside implicit TLS.
            contextFactory=context if c.enable_tls and not c.force_tls else None,
            heloFallback=True,
            requireAuthentication=c.smtp_user is not None,
            requireTransportSecurity=c.require_transport_security and not c.force_tls,
        )
        endpoint: Any = HostnameEndpoint(self.hs.reactor, c.smtp_host.encode(), c.smtp_port, timeout=30)
        if c.force_tls:
            endpoint = wrapClientTLS(context, endpoint)
        await endpoint.connect(factory)
        await done


class Email:
    """Address verification and password reset (``hs.sign_in_factors.email``)."""

    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store
        self.config = hs.config.email
        self.mailer = Mailer(hs)

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    def _link(self, path: str, token: str) -> str:
        return self.hs.config.public_baseurl + path + "?" + urlencode({"token": token})

    async def request_token(
        self, purpose: str, client_secret: str, address: str, send_attempt: int, client_ip: str, user_id: str | None = None
    ) -> str:
        """Starts (or repeats) a validation; returns the session ID (``sid``)."""
        if not self.enabled:
            # Synapse: 400 when it has no way to send e-mail.
            raise EmailError(400, "M_UNKNOWN", "E-mail is not configured on this server")
        if not CLIENT_SECRET_RE.match(client_secret):
            raise EmailError(400, "M_INVALID_PARAM", "Invalid client_secret")
        address = normalise_email(address)
        if len(address) > MAX_EMAIL or not EMAIL_RE.match(address):
            raise EmailError(400, "M_INVALID_PARAM", "Unable to parse email address")
        self.hs.ratelimiter.check("email_requests", client_ip)
        owner = await self.store.get_user_by_threepid("email", address)
        if purpose == PURPOSE_ADD and owner is not None:
            raise EmailError(400, "M_THREEPID_IN_USE", "Email is already in use")
        if purpose == PURPOSE_RESET:
            if owner is None:
                raise EmailError(400, "M_THREEPID_NOT_FOUND", "Email not found")
            user_id = owner
        existing = await self.store.find_email_validation_session(client_secret, address, purpose)
        ts = now_ms()
        if existing is not None and existing.used_ts is None and existing.expires_ts > ts and send_attempt <= existing.last_send_attempt:
            # The same attempt again (a retried request): nothing new is sent.
            return existing.session_id
        # Several messages to one address in a short time are refused whoever asks.
        self.hs.ratelimiter.check("email_requests", ("address", address))
        token = secrets.token_urlsafe(32)
        session = EmailValidationSession(
            session_id=existing.session_id if existing is not None and existing.used_ts is None else secrets.token_urlsafe(16),
            purpose=purpose,
            address=address,
            client_secret=client_secret,
            user_id=user_id,
            last_send_attempt=send_attempt,
            token_hash=hash_token(token),
            created_ts=ts,
            expires_ts=ts + self.config.validation_token_lifetime_ms,
            validated_ts=None,
            used_ts=None,
        )
        await self.store.store_email_validation_session(session)
        await self._send(session, token)
        return session.session_id

    async def _send(self, session: EmailValidationSession, token: str) -> None:
        app = self.config.app_name
        minutes = self.config.validation_token_lifetime_ms // 60000
        if session.purpose == PURPOSE_RESET:
            link = self._link("_wspr/password/reset", token)
            subject = f"[{app}] Reset your password"
            text = (
                f"Someone asked to reset the password of {session.user_id} on {self.hs.server_name}.\n\n"
                f"To choose a new password, open this link within {minutes} minutes:\n\n{link}\n\n"
                "If it was not you, ignore this message: your password stays as it is.\n"
            )
        else:
            link = self._link("_wspr/email/verify", token)
            subject = f"[{app}] Confirm your e-mail address"
            text = (
                f"Someone asked to add this address to a Matrix account on {self.hs.server_name}.\n\n"
                f"To confirm it, open this link within {minutes} minutes:\n\n{link}\n\n"
                "If it was not you, ignore this message.\n"
            )
        try:
            await self.mailer.send(session.address, subject, text)
        except (SMTPClientError, ConnectError, TimeoutError, OSError) as e:
            logger.warning("could not send e-mail to %s: %s", session.address, e)
            raise EmailError(500, "M_UNKNOWN", "Could not send the e-mail") from None

    # -- links ------------------------------------------------------------------------------

    async def session_for_link(self, token: str, purpose: str) -> EmailValidationSession | None:
        """The unexpired, unused session a link's token belongs to."""
        if not token:
            return None
        session = await self.store.get_email_validation_session_by_token(hash_token(token))
        if session is None or session.purpose != purpose or session.used_ts is not None or session.expires_ts <= now_ms():
            return None
        return session

    async def open_verification_link(self, token: str) -> EmailValidationSession | None:
        """Validates an "add" session; binds the address at once when a signed-in user
        asked from the account page."""
        session = await self.session_for_link(token, PURPOSE_ADD)
        if session is None or not await self.store.validate_email_session(session.session_id, now_ms()):
            return None
        if session.user_id is not None:
            await self._bind(session, session.user_id)
        return session

    async def _bind(self, session: EmailValidationSession, user_id: str) -> None:
        if not await self.store.use_email_session(session.session_id, now_ms()):
            raise EmailError(400, "M_THREEPID_AUTH_FAILED", "This validation session was used already")
        owner = await self.store.get_user_by_threepid("email", session.address)
        if owner is not None and owner != user_id:
            raise EmailError(400, "M_THREEPID_IN_USE", "Email is already in use")
        ts = now_ms()
        await self.store.add_threepid(user_id, "email", session.address, session.validated_ts or ts, ts)

    async def add_validated(self, user_id: str, sid: str, client_secret: str) -> None:
        """``/account/3pid/add``: binds the address of a session the user validated."""
        session = await self.store.get_email_validation_session(sid)
        if session is None or session.client_secret != client_secret or session.purpose != PURPOSE_ADD:
            raise EmailError(400, "M_THREEPID_AUTH_FAILED", "No validated 3pid session found")
        if session.validated_ts is None:
            raise EmailError(400, "M_THREEPID_AUTH_FAILED", "This e-mail address has not been validated yet")
        if session.used_ts is not None:
            raise EmailError(400, "M_THREEPID_AUTH_FAILED", "This validation session was used already")
        await self._bind(session, user_id)

    async def remove(self, user_id: str, address: str) -> bool:
        address = normalise_email(address)
        if not any(t.medium == "email" and t.address == address for t in await self.store.get_threepids(user_id)):
            return False
        await self.store.remove_threepid(user_id, "email", address)
        return True

    async def reset_password(self, session: EmailValidationSession, client_ip: str) -> str:
        """Consumes a reset link; the caller then sets the new password. Returns the user."""
        assert session.user_id is not None
        if not await self.store.use_email_session(session.session_id, now_ms()):
            raise EmailError(400, "M_THREEPID_AUTH_FAILED", "This link was used already")
        await self.hs.audit.record(
            AuditEvent.PASSWORD_RESET, session.user_id, session.user_id, client_ip, {"via": "email"}
        )
        return session.user_id
