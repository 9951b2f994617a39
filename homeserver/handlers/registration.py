"""Account creation: open registration (UIA), registration tokens, guests, and the
Synapse-compatible shared-secret admin API."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import TYPE_CHECKING, Any

from homeserver.http.errors import BadJson, Forbidden, InvalidUsername, MatrixError, UserInUse
from homeserver.util.ids import check_localpart, random_string

if TYPE_CHECKING:
    from homeserver.app import HomeServer

NONCE_LIFETIME_S = 60


class RegistrationHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self.hs = hs
        self.store = hs.store
        self._nonces: dict[str, float] = {}

    def flows(self) -> list[list[str]]:
        if self.hs.config.registration_requires_token:
            return [["m.login.registration_token"]]
        return [["m.login.dummy"]]

    async def check_username(self, localpart: str) -> str:
        reason = check_localpart(localpart)
        if reason:
            raise InvalidUsername(reason)
        user_id = f"@{localpart}:{self.hs.server_name}"
        if len(user_id) > 255:
            raise InvalidUsername("User ID is too long")
        if await self.store.get_user_case_insensitive(user_id) is not None:
            raise UserInUse("User ID already taken.")
        return user_id

    async def register_user(
        self,
        localpart: str | None,
        password: str | None,
        *,
        admin: bool = False,
        guest: bool = False,
        displayname: str | None = None,
    ) -> str:
        if localpart is None:
            # Guests and clients that don't pick a name get a numeric-looking one, as on Synapse.
            for _ in range(10):
                localpart = random_string(12, "abcdefghijklmnopqrstuvwxyz0123456789")
                if await self.store.get_user(f"@{localpart}:{self.hs.server_name}") is None:
                    break
        assert localpart is not None
        user_id = await self.check_username(localpart)
        password_hash = await self.hs.auth.hash_password(password) if password else None
        if not await self.store.create_user(
            user_id, password_hash, is_admin=admin, is_guest=guest, displayname=displayname or localpart
        ):
            raise UserInUse("User ID already taken.")
        return user_id

    async def register_via_client(self, body: dict[str, Any], kind: str, client_ip: str, inhibit_login: bool) -> dict[str, Any]:
        self.hs.ratelimiter.check("registration", client_ip)
        username = body.get("username")
        if username is not None and not isinstance(username, str):
            raise BadJson("username must be a string")
        password = body.get("password")
        if password is not None and not isinstance(password, str):
            raise BadJson("password must be a string")
        # Everything the login half uses is checked before the account exists: a 400
        # after creating it would leave the name taken with no way to log in as it.
        for key, kind_ in (("device_id", str), ("initial_device_display_name", str), ("inhibit_login", bool), ("refresh_token", bool)):
            if body.get(key) is not None and not isinstance(body[key], kind_):
                raise BadJson(f"{key} must be a {'string' if kind_ is str else 'boolean'}")
        if kind == "guest":
            if not self.hs.config.allow_guest_access:
                raise Forbidden("Guest access is disabled")
            user_id = await self.register_user(None, None, guest=True)
            return await self._login_after_register(user_id, body, inhibit_login)
        if not self.hs.config.enable_registration:
            raise Forbidden("Registration has been disabled")
        if username is not None:
            username = username.lower()
            # Check the name before asking for auth so clients can show the error early.
            await self.check_username(username)
        session = await self.hs.auth.check_ui_auth(body, self.flows(), purpose="register")
        user_id = await self.register_user(username, password)
        token = session.results.get("registration_token")
        if token:
            await self.store.use_registration_token(token)
        return await self._login_after_register(user_id, body, inhibit_login)

    async def _login_after_register(self, user_id: str, body: dict[str, Any], inhibit_login: bool) -> dict[str, Any]:
        if inhibit_login or body.get("inhibit_login") is True:
            return {"user_id": user_id, "home_server": self.hs.server_name}
        device_id = body.get("device_id")
        if device_id is not None and not isinstance(device_id, str):
            raise BadJson("device_id must be a string")
        name = body.get("initial_device_display_name")
        if name is not None and not isinstance(name, str):
            raise BadJson("initial_device_display_name must be a string")
        result = await self.hs.auth.create_login(user_id, device_id, name, body.get("refresh_token") is True)
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
        secret = self.hs.config.registration_shared_secret
        if not secret:
            raise MatrixError(400, "M_UNKNOWN", "Shared secret registration is not enabled")
        nonce = body.get("nonce")
        if not isinstance(nonce, str) or nonce not in self._nonces:
            raise MatrixError(400, "M_UNKNOWN", "unrecognised nonce")
        del self._nonces[nonce]
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise BadJson("username and password must be strings")
        admin = bool(body.get("admin"))
        user_type = body.get("user_type")
        mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
        mac.update(nonce.encode() + b"\x00" + username.encode() + b"\x00" + password.encode())
        mac.update(b"\x00" + (b"admin" if admin else b"notadmin"))
        if user_type:
            mac.update(b"\x00" + str(user_type).encode())
        given = body.get("mac")
        if not isinstance(given, str) or not hmac.compare_digest(mac.hexdigest(), given):
            raise Forbidden("HMAC incorrect")
        displayname = body.get("displayname") if isinstance(body.get("displayname"), str) else None
        user_id = await self.register_user(username.lower(), password, admin=admin, displayname=displayname)
        result = await self.hs.auth.create_login(user_id, None, None)
        result["home_server"] = self.hs.server_name
        return result
