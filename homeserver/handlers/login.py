"""Legacy login (POST /login): passwords, ``org.matrix.login.jwt``, and the identifier
forms clients send. With ``password_login: oauth_only`` the password login is off (the
OAuth 2.0 API signs users in; homeserver/oauth)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeserver.handlers.audit import AuditEvent
from homeserver.http.errors import BadJson, Forbidden, MatrixError

if TYPE_CHECKING:
    from homeserver.app import HomeServer

JWT_LOGIN_TYPE = "org.matrix.login.jwt"


class LoginHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store

    def qualify(self, user: str) -> str:
        """A bare localpart or a full user id, normalised to a full user id."""
        if user.startswith("@"):
            return user
        return f"@{user.lower()}:{self.hs.server_name}"

    async def resolve_identifier(self, body: dict[str, Any]) -> str:
        identifier = body.get("identifier")
        if identifier is None:
            # Deprecated top-level `user` field some clients still send.
            user = body.get("user")
            if not isinstance(user, str):
                raise BadJson("Missing identifier")
            identifier = {"type": "m.id.user", "user": user}
        if not isinstance(identifier, dict):
            raise BadJson("identifier must be an object")
        if identifier.get("type") != "m.id.user":
            raise MatrixError(400, "M_UNKNOWN", "Only m.id.user identifiers are supported")
        user = identifier.get("user")
        if not isinstance(user, str) or not user:
            raise BadJson("identifier.user must be a string")
        user_id = self.qualify(user)
        record = await self.store.get_user_case_insensitive(user_id)
        return record.user_id if record else user_id

    def login_flows(self) -> list[dict[str, Any]]:
        """GET /login. Synapse lists org.matrix.login.jwt first when it is on."""
        flows: list[dict[str, Any]] = []
        if self.hs.config.auth.jwt_login.enabled:
            flows.append({"type": JWT_LOGIN_TYPE})
        if self.hs.config.auth.password_login != "oauth_only":
            flows.append({"type": "m.login.password"})
        return flows

    async def login(self, body: dict[str, Any], client_ip: str, user_agent: str = "") -> dict[str, Any]:
        """Signs in; every success and every refused credential goes to the audit log
        (not the 429s: those cost nothing to send, and would flood it)."""
        try:
            result = await self._login(body, client_ip)
        except MatrixError as e:
            if e.errcode in ("M_FORBIDDEN", "M_USER_DEACTIVATED"):
                await self.hs.audit.record(
                    AuditEvent.LOGIN_FAILED,
                    self._attempted_user(body),
                    None,
                    client_ip,
                    {"type": body.get("type"), "errcode": e.errcode},
                    user_agent=user_agent,
                )
            raise
        await self.hs.audit.record(
            AuditEvent.LOGIN,
            result["user_id"],
            result["user_id"],
            client_ip,
            {"type": body.get("type"), "device_id": result.get("device_id")},
            user_agent=user_agent,
        )
        return result

    def _attempted_user(self, body: dict[str, Any]) -> str | None:
        identifier = body.get("identifier")
        user = identifier.get("user") if isinstance(identifier, dict) else body.get("user")
        return self.qualify(user) if isinstance(user, str) and user else None

    async def _login(self, body: dict[str, Any], client_ip: str) -> dict[str, Any]:
        login_type = body.get("type")
        if login_type == JWT_LOGIN_TYPE and self.hs.config.auth.jwt_login.enabled:
            return await self._jwt_login(body, client_ip)
        if login_type != "m.login.password" or self.hs.config.auth.password_login == "oauth_only":
            raise MatrixError(400, "M_UNKNOWN", "Unknown login type")
        # What Synapse's login servlet charges, and when: every attempt against the client's
        # address; wrong passwords against (account, address) (see validate_password); and
        # only a successful login against the account, so that nobody but the owner can
        # use up the account's budget.
        self.hs.ratelimiter.check("login", client_ip)
        user_id = await self.resolve_identifier(body)
        password = body.get("password")
        if not isinstance(password, str):
            raise BadJson("password must be a string")
        if not await self.hs.auth.validate_password(user_id, password, client_ip):
            raise Forbidden("Invalid username or password")
        self.hs.ratelimiter.check("login_account", user_id.lower())
        return await self._complete_login(user_id, body, "password")

    async def _complete_login(self, user_id: str, body: dict[str, Any], kind: str) -> dict[str, Any]:
        device_id = body.get("device_id")
        if device_id is not None and not isinstance(device_id, str):
            raise BadJson("device_id must be a string")
        display_name = body.get("initial_device_display_name")
        if display_name is not None and not isinstance(display_name, str):
            raise BadJson("initial_device_display_name must be a string")
        want_refresh = body.get("refresh_token", False)
        if not isinstance(want_refresh, bool):
            raise BadJson("refresh_token must be a boolean")
        result = await self.hs.auth.create_login(user_id, device_id, display_name, want_refresh, kind=kind)
        result["home_server"] = self.hs.server_name
        result["well_known"] = {"m.homeserver": {"base_url": self.hs.config.public_baseurl}}
        return result

    async def _jwt_login(self, body: dict[str, Any], client_ip: str) -> dict[str, Any]:
        """org.matrix.login.jwt, as Synapse's jwt_config: a token signed by the
        organisation's identity provider names the user, who is created if new."""
        from homeserver.oauth.jwt_login import validate_login_token

        self.hs.ratelimiter.check("login", client_ip)
        localpart, display_name = validate_login_token(self.hs.config.auth.jwt_login, body.get("token"))
        user_id = self.qualify(localpart) if not localpart.startswith("@") else localpart
        if not self.hs.is_mine(user_id):
            raise Forbidden("Invalid JWT")
        record = await self.store.get_user_case_insensitive(user_id)
        if record is None:
            user_id = await self.hs.registration.register_user(user_id[1:].split(":", 1)[0].lower(), None, displayname=display_name)
        elif record.deactivated:
            raise MatrixError(403, "M_USER_DEACTIVATED", "This account has been deactivated")
        else:
            user_id = record.user_id
        self.hs.ratelimiter.check("login_account", user_id.lower())
        return await self._complete_login(user_id, body, "jwt")
