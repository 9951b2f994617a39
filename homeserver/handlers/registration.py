"""Account creation: open registration (UIA), registration tokens, guests (and their
upgrade to full accounts), and the Synapse-compatible shared-secret admin API.

What a client sees is Synapse's RegisterRestServlet: the checks come in its order, a UIA
session remembers the request's parameters and the password's hash between steps, and a
retry with the session of a completed registration gets a new login for the same account
instead of a second account or M_USER_IN_USE."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from typing import TYPE_CHECKING, Any

from homeserver.handlers.auth import UIARequired
from homeserver.http.errors import (
    BadJson,
    Forbidden,
    InvalidUsername,
    MatrixError,
    MissingParam,
    UserInUse,
)
from homeserver.util.ids import check_localpart

if TYPE_CHECKING:
    from homeserver.app import HomeServer

NONCE_LIFETIME_S = 60
# Synapse gives every guest this device id (it has nowhere to keep one of the guest's choosing).
GUEST_DEVICE_ID = "guest_device"
# Localparts made only of digits are the ones the server generates (for guests, and for
# registrations that name no user); nobody may ask for one (Synapse's GUEST_USER_ID_PATTERN).
_GENERATED_LOCALPART = re.compile(r"\d+")
# Synapse refuses longer usernames and passwords before looking at them.
MAX_FIELD_LENGTH = 512

# The parameters the login half of a registration uses, and their types: checked before
# the account exists, since a 400 after creating it would leave the name taken.
_LOGIN_PARAMS: tuple[tuple[str, type], ...] = (
    ("device_id", str),
    ("initial_device_display_name", str),
    ("inhibit_login", bool),
    ("refresh_token", bool),
)


class RegistrationHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store
        self._nonces: dict[str, float] = {}

    def flows(self) -> list[list[str]]:
        # Synapse puts the token stage in front of every flow it would otherwise offer.
        if self.hs.config.registration_requires_token:
            return [["m.login.registration_token", "m.login.dummy"]]
        return [["m.login.dummy"]]

    async def check_username(
        self,
        localpart: str,
        *,
        guest_access_token: str | None = None,
        assigned_user_id: str | None = None,
    ) -> str:
        """The user id ``localpart`` would get, or the error registering it gives, in
        Synapse's order. A taken name is fine with the access token of the guest who has
        it (an upgrade); ``assigned_user_id`` is the account a UIA session already made."""
        reason = check_localpart(localpart)
        if reason:
            raise InvalidUsername(reason)
        user_id = f"@{localpart}:{self.hs.server_name}"
        if assigned_user_id is not None:
            if user_id == assigned_user_id:
                return user_id
            raise MatrixError(400, "M_UNKNOWN", "A different user ID has already been registered for this session")
        if len(user_id) > 255:
            raise InvalidUsername("User ID may not be longer than 255 characters")
        if await self.store.get_user_case_insensitive(user_id) is not None:
            if guest_access_token is None:
                raise UserInUse("User ID already taken.")
            guest = await self.hs.auth.get_user_by_token(guest_access_token)
            if not guest.is_guest or guest.user_id != user_id:
                raise Forbidden("Cannot register taken user ID without valid guest credentials for that user.")
        if guest_access_token is None and _GENERATED_LOCALPART.fullmatch(localpart):
            raise InvalidUsername("Numeric user IDs are reserved for guest users.")
        return user_id

    async def register_user(
        self,
        localpart: str | None,
        password: str | None,
        *,
        admin: bool = False,
        guest: bool = False,
        displayname: str | None = None,
        password_hash: str | None = None,
        guest_access_token: str | None = None,
    ) -> str:
        """Creates the account (or, with ``guest_access_token``, makes that guest a full
        account keeping its id, profile and rooms). Without a localpart the id is a
        number, as Synapse generates them. The display name defaults to the localpart."""
        if password_hash is None and password:
            password_hash = await self.hs.auth.hash_password(password)
        if localpart is None:
            for _ in range(10):
                # Synapse counts up; a random number has the same form without a
                # sequence to keep.
                localpart = str(secrets.randbelow(10**12))
                user_id = f"@{localpart}:{self.hs.server_name}"
                if await self.store.create_user(
                    user_id, password_hash, is_admin=admin, is_guest=guest, displayname=displayname or localpart
                ):
                    return user_id
            raise MatrixError(500, "M_UNKNOWN", "Unable to find a suitable user ID")
        user_id = await self.check_username(localpart, guest_access_token=guest_access_token)
        if guest_access_token is not None:
            if not await self.store.upgrade_guest(user_id, password_hash):
                # Synapse 1.163 answers a guest token with a name that is not the guest's
                # with a 404 from its database; a 403 says what is wrong.
                raise Forbidden("guest_access_token does not belong to this user")
            # The guest's sessions end: Synapse refuses a guest's token once the account is
            # a full one. The account keeps its profile, devices and rooms.
            await self.hs.auth.sessions.revoke_user(user_id)
            return user_id
        if not await self.store.create_user(
            user_id, password_hash, is_admin=admin, is_guest=guest, displayname=displayname or localpart
        ):
            raise UserInUse("User ID already taken.")
        return user_id

    async def register_via_client(
        self, body: dict[str, Any], kind: str, client_ip: str, has_access_token: bool = False
    ) -> dict[str, Any]:
        """``POST /register``."""
        self.hs.ratelimiter.check("registration", client_ip)
        if kind == "guest":
            return await self._register_guest(body)
        if kind != "user":
            raise MatrixError(400, "M_UNRECOGNIZED", f"Do not understand membership kind: {kind}")
        for key, expected in _LOGIN_PARAMS:
            _check_type(body, key, expected)
        username = body.get("username")
        if username is not None and (not isinstance(username, str) or len(username) > MAX_FIELD_LENGTH):
            raise BadJson("Invalid username")
        if has_access_token:
            # Synapse takes an access token here only from application services; a guest
            # upgrading sends its token as guest_access_token.
            raise MatrixError(
                400,
                "M_UNKNOWN",
                "An access token should not be provided on requests to /register"
                " (except if type is m.login.application_service)",
            )
        if not self.hs.config.enable_registration:
            raise Forbidden("Registration has been disabled")
        if username is not None:
            username = username.lower()
        guest_access_token = body.get("guest_access_token")
        if guest_access_token is not None and not isinstance(guest_access_token, str):
            raise BadJson("guest_access_token must be a string")
        password = body.get("password")
        if password is not None and (not isinstance(password, str) or len(password) > MAX_FIELD_LENGTH):
            raise BadJson("Invalid password")
        # The session keeps the other parameters; the password only as its hash, below.
        clientdict = {k: v for k, v in body.items() if k != "password"}
        if "initial_device_display_name" in clientdict and password is None:
            # As Synapse: a client bug once sent this alone on later steps, wiping the
            # parameters the session remembered.
            del clientdict["initial_device_display_name"]

        previous = self.hs.auth.uia_session(body.get("auth"))
        registered_user_id = previous.data.get("registered_user_id") if previous else None
        if username is not None:
            await self.check_username(
                username, guest_access_token=guest_access_token, assigned_user_id=registered_user_id
            )
        try:
            session = await self.hs.auth.check_ui_auth(clientdict, self.flows(), "register", keep=True)
        except UIARequired as e:
            # The client need not send the password again on the next step.
            pending = self.hs.auth.uia_session({"session": e.body.get("session")})
            if pending is not None and password and "password_hash" not in pending.data:
                pending.data["password_hash"] = await self.hs.auth.hash_password(password)
            raise
        params = session.clientdict
        for key, expected in _LOGIN_PARAMS:
            _check_type(params, key, expected)

        registered = False
        user_id = session.data.get("registered_user_id")
        if user_id is None:
            password_hash = await self.hs.auth.hash_password(password) if password else session.data.get("password_hash")
            if not password_hash:
                raise MissingParam("Missing params: password")
            desired = params.get("username")
            user_id = await self.register_user(
                desired.lower() if isinstance(desired, str) else None,
                None,
                password_hash=password_hash,
                guest_access_token=params.get("guest_access_token")
                if isinstance(params.get("guest_access_token"), str)
                else None,
            )
            session.data["registered_user_id"] = user_id
            registered = True
        result = await self._registration_details(user_id, params)
        if registered:
            token = session.data.get("registration_token")
            if token is not None:
                await self.store.use_registration_token(token)
                session.data["registration_token_used"] = True
        return result

    async def _register_guest(self, body: dict[str, Any]) -> dict[str, Any]:
        if not self.hs.config.allow_guest_access:
            raise Forbidden("Guest access is disabled")
        _check_type(body, "initial_device_display_name", str)
        user_id = await self.register_user(None, None, guest=True)
        result = await self.hs.auth.create_login(user_id, GUEST_DEVICE_ID, body.get("initial_device_display_name"))
        result["home_server"] = self.hs.server_name
        return result

    async def _registration_details(self, user_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """The answer to a completed registration: a login unless ``inhibit_login``."""
        if params.get("inhibit_login") is True:
            return {"user_id": user_id, "home_server": self.hs.server_name}
        result = await self.hs.auth.create_login(
            user_id,
            params.get("device_id"),
            params.get("initial_device_display_name"),
            params.get("refresh_token") is True,
        )
        result["home_server"] = self.hs.server_name
        return result

    # -- /_synapse/admin/v1/register ----------------------------------------

    def new_nonce(self) -> str:
        now = time.monotonic()
        for n in [n for n, t in self._nonces.items() if now - t > NONCE_LIFETIME_S]:
            del self._nonces[n]
        nonce = secrets.token_hex(32)
        self._nonces[nonce] = now
        return nonce

    async def register_with_shared_secret(self, body: dict[str, Any]) -> dict[str, Any]:
        """As Synapse's UserRegisterServlet: the nonce is spent on the first try, the MAC
        covers nonce, username, password, admin flag and user type; the login fields of
        the body (device_id, initial_device_display_name, inhibit_login, refresh_token)
        work as on /register."""
        secret = self.hs.config.registration_shared_secret
        if not secret:
            raise MatrixError(400, "M_UNKNOWN", "Shared secret registration is not enabled")
        if "nonce" not in body:
            raise BadJson("nonce must be specified")
        nonce = body["nonce"]
        if not isinstance(nonce, str) or nonce not in self._nonces:
            raise MatrixError(400, "M_UNKNOWN", "unrecognised nonce")
        del self._nonces[nonce]
        username, password = body.get("username"), body.get("password")
        if "username" not in body:
            raise BadJson("username must be specified")
        if not isinstance(username, str) or len(username) > MAX_FIELD_LENGTH or "\x00" in username:
            raise BadJson("Invalid username")
        if "password" not in body:
            raise BadJson("password must be specified")
        if not isinstance(password, str) or len(password) > MAX_FIELD_LENGTH or "\x00" in password:
            raise BadJson("Invalid password")
        admin = bool(body.get("admin"))
        user_type = body.get("user_type")
        if user_type is not None and user_type not in ("bot", "support"):
            raise BadJson("Invalid user type")
        given = body.get("mac")
        if given is None:
            raise BadJson("mac must be specified")
        mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
        mac.update(nonce.encode() + b"\x00" + username.encode() + b"\x00" + password.encode())
        mac.update(b"\x00" + (b"admin" if admin else b"notadmin"))
        if user_type:
            mac.update(b"\x00" + str(user_type).encode())
        if not isinstance(given, str) or not hmac.compare_digest(mac.hexdigest(), given):
            # Synapse's own API, and its errcode (no spec one applies).
            raise MatrixError(403, "M_UNKNOWN", "HMAC incorrect")
        for key, expected in _LOGIN_PARAMS:
            _check_type(body, key, expected)
        displayname = body.get("displayname") if isinstance(body.get("displayname"), str) else None
        user_id = await self.register_user(username.lower(), password, admin=admin, displayname=displayname)
        return await self._registration_details(user_id, body)


def _check_type(body: dict[str, Any], key: str, expected: type) -> None:
    value = body.get(key)
    if value is not None and not isinstance(value, expected):
        raise BadJson(f"{key} must be a {'string' if expected is str else 'boolean'}")
