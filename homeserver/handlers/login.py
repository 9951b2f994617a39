"""Password login and the identifier forms clients send."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeserver.http.errors import BadJson, Forbidden, MatrixError

if TYPE_CHECKING:
    from homeserver.app import HomeServer


class LoginHandler:
    def __init__(self, hs: "HomeServer") -> None:
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

    async def login(self, body: dict[str, Any], client_ip: str) -> dict[str, Any]:
        login_type = body.get("type")
        if login_type != "m.login.password":
            raise MatrixError(400, "M_UNKNOWN", "Unknown login type")
        self.hs.ratelimiter.check("login", client_ip)
        user_id = await self.resolve_identifier(body)
        self.hs.ratelimiter.check("login", user_id)
        password = body.get("password")
        if not isinstance(password, str):
            raise BadJson("password must be a string")
        if not await self.hs.auth.check_password(user_id, password):
            raise Forbidden("Invalid username or password")
        device_id = body.get("device_id")
        if device_id is not None and not isinstance(device_id, str):
            raise BadJson("device_id must be a string")
        display_name = body.get("initial_device_display_name")
        if display_name is not None and not isinstance(display_name, str):
            raise BadJson("initial_device_display_name must be a string")
        want_refresh = body.get("refresh_token", False)
        if not isinstance(want_refresh, bool):
            raise BadJson("refresh_token must be a boolean")
        result = await self.hs.auth.create_login(user_id, device_id, display_name, want_refresh)
        result["home_server"] = self.hs.server_name
        result["well_known"] = {"m.homeserver": {"base_url": self.hs.config.public_baseurl}}
        return result
