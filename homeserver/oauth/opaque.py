"""OPAQUE (RFC 9807) password sign-in, when ``password_auth: opaque``.

The browser runs the client with ``@serenity-kit/opaque`` (opaque-ke 4.0.1 compiled to
WASM, vendored as ``static/opaque-1.1.0.js``); this server runs the server side with
``opaquepy`` (Python bindings of opaque-ke 3.0.0: the same RFC 9807 wire format,
proven in tests/homeserver/oauth/test_opaque.py against serenity-kit running in Node).
The cipher suite is both libraries' default: ristretto255 OPRF, 3DH over ristretto255
with SHA-512. The client's key stretching is Argon2id with m=19456 KiB, t=2, p=1 (the
cost of the server's own argon2id hashes), which the browser is told explicitly: it is
also what opaquepy's client uses, so that the legacy ``m.login.password`` endpoint,
which receives the password itself, can check it against the same record.

What the server keeps per user is the registration record (the client's public key, a
masking key and the sealed envelope) in ``opaque_records``; the users' password hash is
dropped. It never receives the password or anything computed from it alone.

Accounts created before (argon2id hash) move over at their next sign-in on the pages:
``/login/start`` answers ``{"legacy": true}`` for them, the page sends the password once
(checked against the hash), then registers for OPAQUE in the same page, and the hash is
deleted. Unknown users get an answer from a fake record, so that the exchange looks the
same for them (RFC 9807 section 10.9).
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

from opaquepy import lib as opaque
from twisted.internet import threads

from homeserver.http.errors import MatrixError
from homeserver.oauth.login_flow import FlowState, Step, StepContext, StepResult
from homeserver.util.ids import now_ms

if TYPE_CHECKING:
    from homeserver.app import HomeServer

logger = logging.getLogger(__name__)

# The vendored @serenity-kit/opaque build (see static/opaque-1.1.0.LICENSE.txt).
LIBRARY = "/_wspr/static/opaque-1.1.0.js"
SCRIPT = "/_wspr/static/opaque.js"
# The key stretching the browser uses, by the name stored with each record.
KSF = "argon2id-m19456-t2-p1"
KSF_BROWSER = {"argon2id-custom": {"memory": 19456, "iterations": 2, "parallelism": 1}}
# A login exchange must finish within this long.
EXCHANGE_LIFETIME_MS = 2 * 60 * 1000
MAX_MESSAGE = 4096


class OpaqueError(Exception):
    pass


def _message(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_MESSAGE:
        raise OpaqueError("missing or malformed OPAQUE message")
    return value


class Opaque:
    """The OPAQUE server (``hs.sign_in_factors.opaque``)."""

    def __init__(self, hs: HomeServer, server_setup: str) -> None:
        self.hs = hs
        self.store = hs.store
        self._setup = server_setup
        self._fake_record: str | None = None

    @property
    def enabled(self) -> bool:
        return self.hs.config.auth.password_auth == "opaque"

    def _fake(self) -> str:
        """A record for users that do not exist (made once per process, from a random
        password nobody knows)."""
        if self._fake_record is None:
            password = secrets.token_urlsafe(24)
            request, state = opaque.register_client(password)
            response = opaque.register(self._setup, request, "@fake:" + secrets.token_hex(8))
            self._fake_record = opaque.register_finish(opaque.register_client_finish(state, password, response))
        return self._fake_record

    # -- registration -------------------------------------------------------------------

    def registration_response(self, user_id: str, request: Any) -> str:
        try:
            return opaque.register(self._setup, _message(request), user_id)
        except (ValueError, OpaqueError) as e:
            raise OpaqueError(str(e)) from None

    @staticmethod
    def parse_upload(upload: Any) -> str:
        """The record in a client's final registration message (OpaqueError if malformed)."""
        try:
            return opaque.register_finish(_message(upload))
        except (ValueError, OpaqueError) as e:
            raise OpaqueError(str(e)) from None

    async def set_record(self, user_id: str, record: str) -> None:
        """The record replaces any password (hash or record) the user had."""
        await self.store.set_opaque_record(user_id, record, KSF, now_ms())

    # -- login --------------------------------------------------------------------------

    async def login_start(self, user_id: str | None, request: Any) -> tuple[str, dict[str, Any]]:
        """The server's answer and the state to keep until the client finishes. Unknown
        users get an answer from the fake record (and can never finish)."""
        record = await self.store.get_opaque_record(user_id) if user_id else None
        stored = record.record if record is not None else self._fake()
        try:
            response, state = opaque.login(self._setup, stored, _message(request), user_id or "@unknown:invalid")
        except (ValueError, OpaqueError) as e:
            raise OpaqueError(str(e)) from None
        return response, {"user_id": user_id if record else None, "state": state, "expires": now_ms() + EXCHANGE_LIFETIME_MS}

    @staticmethod
    def login_finish(exchange: dict[str, Any] | None, finish: Any) -> str | None:
        """The user signed in by the exchange, or None (wrong password, unknown user,
        expired, malformed)."""
        if not exchange or exchange.get("expires", 0) < now_ms() or not exchange.get("user_id"):
            return None
        try:
            opaque.login_finish(_message(finish), exchange["state"])
        except (ValueError, OpaqueError):
            # opaquepy raises ValueError for a wrong password as for a malformed message.
            return None
        return str(exchange["user_id"])

    async def check_password(self, user_id: str, password: str) -> bool:
        """The legacy ``m.login.password`` (and UIA) for an OPAQUE account: the server got
        the password anyway, so it runs the client side itself against the record."""
        record = await self.store.get_opaque_record(user_id)
        if record is None or record.ksf != KSF:
            return False

        def run() -> bool:
            request, client_state = opaque.login_client(password)
            response, server_state = opaque.login(self._setup, record.record, request, user_id)
            try:
                finish, _key = opaque.login_client_finish(client_state, password, response)
                opaque.login_finish(finish, server_state)
            except ValueError:
                return False
            return True

        return await threads.deferToThread(run)


# -- the sign-in step ---------------------------------------------------------------------


class OpaqueStep(Step):
    """The first factor with ``password_auth: opaque``: user name and password, with the
    password never leaving the page (its input has no name: it is never posted). The
    page's script talks to ``/_wspr/opaque/login/start`` (or ``/login/legacy`` for an
    account that still has a password hash), then posts the final message here."""

    name = "opaque"
    title = "Sign in"
    script = SCRIPT

    def __init__(self, opaque_server: Opaque) -> None:
        self.opaque = opaque_server

    def render(self, ctx: StepContext, state: FlowState, error: str | None) -> str:
        from homeserver.oauth.rest import html

        fixed = state.purpose == "reauth" and state.user_id is not None
        username = html.text_input("username", "User name", autocomplete="username", value=state.user_id or "", readonly=fixed)
        return opaque_form(
            "login",
            "/_wspr/login",
            [html.hidden("step", self.name), username, password_field("f-password", "Password", "current-password")],
            "Continue" if fixed else "Sign in",
            error,
        )

    async def submit(self, ctx: StepContext, state: FlowState, form: dict[str, str]) -> StepResult:
        exchange = state.data.pop(self.name, None)
        if isinstance(exchange, dict) and exchange.get("migrate") and form.get("record"):
            # An argon2id account moving to OPAQUE: its password was checked by /legacy.
            user_id = str(exchange["migrate"])
            if exchange.get("expires", 0) < now_ms():
                return StepResult.retry("That took too long. Please sign in again.")
            try:
                await self.opaque.set_record(user_id, self.opaque.parse_upload(form.get("record")))
            except OpaqueError:
                return StepResult.retry("Your browser sent a malformed message. Please try again.")
            logger.info("moved %s to OPAQUE", user_id)
            state.user_id = user_id
            return StepResult.done()
        signed_in = self.opaque.login_finish(exchange if isinstance(exchange, dict) else None, form.get("finish"))
        if signed_in is None:
            return StepResult.retry("Wrong user name or password.")
        if state.purpose == "reauth" and state.user_id and signed_in != state.user_id:
            return StepResult.retry("Wrong user name or password.")
        state.user_id = signed_in
        return StepResult.done()


def password_field(ident: str, label: str, autocomplete: str) -> str:
    """A password input without a name: browsers never post it."""
    from homeserver.oauth.rest import html

    return (
        f'<label for="{html.esc(ident)}">{html.esc(label)}</label>'
        f'<input type="password" id="{html.esc(ident)}" data-opaque-password="{html.esc(ident)}"'
        f' autocomplete="{html.esc(autocomplete)}" required>'
    )


def opaque_form(kind: str, action: str, fields: list[str], submit: str, error: str | None, *, extra: str = "") -> str:
    """A form the OPAQUE script runs: ``kind`` "login" or "register" (sign-up, password
    change, reset: ``data-purpose`` in ``extra``). The script fills ``finish`` or
    ``record`` and posts the form; without JavaScript it cannot work, and says so."""
    from homeserver.oauth.rest import html

    described = ' aria-describedby="form-error"' if error else ""
    return (
        f"{html.error_box(error)}"
        f'<form method="post" action="{html.esc(action)}" data-opaque="{html.esc(kind)}"'
        f' data-ksf="{html.esc(_ksf_json())}"{extra}{described}>'
        + html.csrf_field()
        + "".join(fields)
        + html.hidden("finish", "")
        + html.hidden("record", "")
        + f'<div class="actions"><button type="submit">{html.esc(submit)}</button></div>'
        + "<noscript><p class=\"error\">This page needs JavaScript: your password is checked without being sent.</p></noscript>"
        + "</form>"
    )


def _ksf_json() -> str:
    import json

    return json.dumps(KSF_BROWSER)


async def resolve_for_login(hs: HomeServer, username: str) -> str | None:
    """The user a sign-in names, or None (unknown, deactivated)."""
    try:
        user_id = await hs.login.resolve_identifier({"identifier": {"type": "m.id.user", "user": username}})
    except MatrixError:
        return None
    user = await hs.store.get_user(user_id)
    if user is None or user.deactivated:
        return None
    return user_id
