"""Sign-in sessions behind JWT access tokens, for the OAuth 2.0 API and (with
``access_token_format: jwt``) the legacy /login and /register.

A session is one signed-in device. Its access tokens are short-lived JWTs
(tokens.AccessTokenCodec) checked without a database read: signature, expiry, and the
in-memory revocation list. Its refresh tokens are random, stored hashed, single-use and
rotating, with reuse detection (storage.sessions.SessionStore.rotate_session_refresh_token).

Ending a session (sign-out, device deletion, password change, deactivation, an admin,
a reused refresh token or authorization code) deletes it and puts it on the revocation
list in one transaction, then on the in-memory list, before the caller answers.

The legacy API has tokens that never expire (a login that asks for no refresh token). As
JWTs they carry no ``exp``; a process accepts one after checking, once per
CONFIRM_WINDOW_S, that its session still exists, and revocations stay on the list at
least that long, so a revocation made in another process is never missed.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from homeserver.oauth.revocation import RevocationList
from homeserver.oauth.tokens import (
    AccessTokenClaims,
    AccessTokenCodec,
    InvalidAccessToken,
    SigningKeys,
)
from homeserver.storage.sessions import CodeAlreadyUsed, RefreshOutcome, SessionRecord
from homeserver.util.ids import hash_token, now_ms, random_string

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.oauth.redis_fanout import RedisFanout

logger = logging.getLogger(__name__)

DEFAULT_ACCESS_TOKEN_LIFETIME_MS = 5 * 60 * 1000
CONFIRM_WINDOW_S = 10 * 60
REFRESH_TOKEN_PREFIX = "wspr_sr"


@dataclass(frozen=True)
class IssuedTokens:
    session: SessionRecord
    access_token: str
    refresh_token: str | None
    # None: the access token does not expire.
    expires_in_ms: int | None


class RefreshFailed(Exception):
    """The refresh token is unknown, or was reused (``reused``: the session is now revoked)."""

    def __init__(self, reused: bool) -> None:
        super().__init__("refresh token reused" if reused else "unknown refresh token")
        self.reused = reused


class SessionHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store
        config = hs.config
        self.access_lifetime_ms = config.access_token_lifetime_ms or DEFAULT_ACCESS_TOKEN_LIFETIME_MS
        self.codec = AccessTokenCodec(SigningKeys(config.auth.signing_keys_path), issuer=config.public_baseurl)
        self.revocations = RevocationList(hs.store)
        self.revocations.listeners.append(self._forget_confirmed)
        # session_id -> when this process last saw it in the database (tokens without exp).
        self._confirmed: dict[str, float] = {}
        # Revocations to and from other processes, when Redis is configured.
        self.fanout: RedisFanout | None = None

    @property
    def keep_revoked_until(self) -> int:
        """Until when a session revoked now must stay on the revocation list: past the
        expiry of every access token it may have, and past every process's confirmation
        window for its non-expiring tokens."""
        return now_ms() + max(self.access_lifetime_ms, CONFIRM_WINDOW_S * 1000) + 60_000

    async def start(self) -> None:
        await self.revocations.load()
        if self.hs.config.auth.redis.enabled:
            from homeserver.oauth.redis_fanout import RedisFanout

            self.fanout = RedisFanout(self.hs.config.auth.redis, self.revocations)
            self.fanout.start()

    async def stop(self) -> None:
        if self.fanout is not None:
            await self.fanout.stop()

    # -- issuing -----------------------------------------------------------------

    def new_session(
        self,
        user_id: str,
        device_id: str | None,
        *,
        kind: str,
        refreshable: bool,
        client_id: str | None = None,
        scope: str | None = None,
    ) -> SessionRecord:
        """A session not yet stored (see ``issue`` and ``store_new``)."""
        return SessionRecord(
            session_id="ses_" + secrets.token_urlsafe(12),
            user_id=user_id,
            device_id=device_id or random_string(10).upper(),
            client_id=client_id,
            scope=scope,
            kind=kind,
            refreshable=refreshable,
            created_ts=now_ms(),
        )

    def issue(self, session: SessionRecord, is_guest: bool) -> IssuedTokens:
        """Mints an access token (and a refresh token, for a refreshable session). Nothing
        is stored: the tokens are good only once ``store_new`` or ``commit_refresh`` has
        stored the session or the rotation."""
        refresh_token = _new_refresh_token() if session.refreshable else None
        lifetime_s = self.access_lifetime_ms // 1000 if session.refreshable else None
        access_token = self.codec.issue(
            user_id=session.user_id,
            device_id=session.device_id,
            session_id=session.session_id,
            is_guest=is_guest,
            lifetime_s=lifetime_s,
            client_id=session.client_id,
        )
        return IssuedTokens(session, access_token, refresh_token, lifetime_s * 1000 if lifetime_s is not None else None)

    async def store_new(self, issued: IssuedTokens, display_name: str | None, code_hash: str | None = None) -> bool:
        """Stores a new session (creating its device if new); returns whether the device
        is new. With ``code_hash``, the authorization code is consumed in the same
        transaction: CodeAlreadyUsed if it had been."""
        keep_until = self.keep_revoked_until
        refresh_hash = hash_token(issued.refresh_token) if issued.refresh_token else None
        new_device, revoked = await self.store.create_session(
            issued.session, refresh_hash, display_name, keep_until, code_hash
        )
        self.revocations.add(revoked, keep_until)
        if new_device:
            await self.hs.devices.notify_device_change(issued.session.user_id)
        return new_device

    async def create(
        self,
        user_id: str,
        device_id: str | None,
        display_name: str | None,
        *,
        kind: str,
        refreshable: bool,
        is_guest: bool = False,
    ) -> IssuedTokens:
        """Signs a device in (the legacy API)."""
        issued = self.issue(self.new_session(user_id, device_id, kind=kind, refreshable=refreshable), is_guest)
        await self.store_new(issued, display_name)
        return issued

    async def session_for_refresh(self, refresh_token: str, client_id: str | None) -> SessionRecord:
        """The session a refresh token belongs to (used or not). ``client_id``: the OAuth
        client asking, None for the legacy /refresh; a token of another client (or of an
        OAuth session at the legacy endpoint) is treated as unknown, and left untouched."""
        session = await self.store.get_session_by_refresh_token(hash_token(refresh_token))
        if session is None or session.client_id != client_id:
            raise RefreshFailed(reused=False)
        return session

    async def commit_refresh(self, old_refresh_token: str, issued: IssuedTokens) -> None:
        """Rotates the refresh token to the one in ``issued`` (see
        SessionStore.rotate_session_refresh_token); RefreshFailed if it is unknown or was
        reused (then the session is revoked, everywhere, before this returns)."""
        assert issued.refresh_token is not None
        keep_until = self.keep_revoked_until
        result = await self.store.rotate_session_refresh_token(
            hash_token(old_refresh_token), hash_token(issued.refresh_token), keep_until
        )
        if result.outcome is RefreshOutcome.REUSED:
            assert result.session is not None
            logger.warning(
                "refresh token reused for session %s of %s: session revoked",
                result.session.session_id,
                result.session.user_id,
            )
            self.revocations.add(result.revoked, keep_until)
            raise RefreshFailed(reused=True)
        if result.outcome is not RefreshOutcome.ROTATED or result.session is None or result.session.session_id != issued.session.session_id:
            raise RefreshFailed(reused=False)

    async def refresh(self, refresh_token: str) -> IssuedTokens:
        """The legacy /refresh."""
        session = await self.session_for_refresh(refresh_token, None)
        user = await self.store.get_user(session.user_id)
        if user is None or user.deactivated:
            raise RefreshFailed(reused=False)
        issued = self.issue(session, user.is_guest)
        await self.commit_refresh(refresh_token, issued)
        return issued

    # -- checking ----------------------------------------------------------------

    async def verify_access_token(self, token: str) -> AccessTokenClaims:
        """The claims of a valid access token; InvalidAccessToken otherwise. No database
        read, except once per CONFIRM_WINDOW_S for a token that never expires."""
        claims = self.codec.verify(token)
        if claims.session_id in self.revocations:
            raise InvalidAccessToken("Access token has been revoked")
        if claims.expires_at is None:
            seen = self._confirmed.get(claims.session_id)
            now = time.monotonic()
            if seen is None or now - seen > CONFIRM_WINDOW_S:
                if await self.store.get_session(claims.session_id) is None:
                    raise InvalidAccessToken("Access token has been revoked")
                self._confirmed[claims.session_id] = now
        return claims

    def _forget_confirmed(self, session_ids: list[str]) -> None:
        for sid in session_ids:
            self._confirmed.pop(sid, None)

    # -- ending sessions -------------------------------------------------------------

    async def revoke(self, session_ids: list[str]) -> None:
        keep_until = self.keep_revoked_until
        self.revocations.add(await self.store.revoke_sessions(session_ids, keep_until), keep_until)

    async def revoke_devices(self, user_id: str, device_ids: list[str]) -> None:
        keep_until = self.keep_revoked_until
        self.revocations.add(await self.store.revoke_device_sessions(user_id, device_ids, keep_until), keep_until)

    async def revoke_user(self, user_id: str) -> None:
        """Ends every session of the user (admin action); devices stay."""
        keep_until = self.keep_revoked_until
        self.revocations.add(await self.store.revoke_user_sessions(user_id, keep_until), keep_until)

    async def session_of_token(self, token: str) -> SessionRecord | None:
        """The session an access or refresh token belongs to, valid or not yet expired
        (for token revocation, RFC 7009)."""
        try:
            claims = self.codec.decode(token)
        except InvalidAccessToken:
            return await self.store.get_session_by_refresh_token(hash_token(token))
        return await self.store.get_session(claims.session_id)


def _new_refresh_token() -> str:
    return f"{REFRESH_TOKEN_PREFIX}_{secrets.token_urlsafe(32)}"


__all__ = ["CodeAlreadyUsed", "IssuedTokens", "RefreshFailed", "SessionHandler"]
