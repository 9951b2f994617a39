"""What the sign-in and account pages do: browser sessions (the cookie), sign-up, and the
account actions (profile, sessions, password, cross-signing reset approval)."""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from twisted.internet import defer

from homeserver.http.errors import MatrixError
from homeserver.oauth.login_flow import REAUTH_MAX_AGE_MS, FlowState
from homeserver.protocol.oauth import ACTION_CROSS_SIGNING_RESET
from homeserver.storage.sessions import WebSessionRecord
from homeserver.util.ids import hash_token, now_ms

if TYPE_CHECKING:
    from homeserver.app import HomeServer

logger = logging.getLogger(__name__)

# A browser stays signed in to the account pages this long.
WEB_SESSION_LIFETIME_MS = 24 * 3600 * 1000
# A cross-signing reset approved on the account page may be done through the API for
# this long (Synapse with MAS: the same window, set through its admin API).
CROSS_SIGNING_RESET_WINDOW_MS = 10 * 60 * 1000


@dataclass
class WebSession:
    """A browser's session with the pages; ``token`` is the cookie value."""

    token: str
    record: WebSessionRecord
    flow: FlowState

    @property
    def user_id(self) -> str | None:
        return self.record.user_id

    @property
    def csrf(self) -> str:
        # Derived from the secret cookie: unguessable without it, nothing to store.
        return hashlib.sha256(f"wspr-csrf:{self.token}".encode()).hexdigest()[:32]

    def recently_authenticated(self) -> bool:
        auth_time = self.record.auth_time
        return self.user_id is not None and auth_time is not None and now_ms() - auth_time <= REAUTH_MAX_AGE_MS


@dataclass(frozen=True)
class SessionView:
    """A signed-in device, for the sessions page."""

    device_id: str
    display_name: str | None
    last_seen_ts: int | None
    last_seen_ip: str | None
    client_name: str | None
    client_uri: str | None
    kind: str | None
    created_ts: int | None


class AccountPages:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store
        self._next_prune = 0

    def _maybe_prune(self) -> None:
        """Expired browser sessions and authorization codes go, at most once an hour,
        when a new browser session starts."""
        ts = now_ms()
        if ts < self._next_prune:
            return
        self._next_prune = ts + 3600 * 1000

        async def prune() -> None:
            await self.store.prune_web_sessions(ts)
            await self.store.prune_authorization_codes(ts - 24 * 3600 * 1000)

        d = defer.ensureDeferred(prune())
        d.addErrback(lambda f: logger.warning("pruning sign-in state failed: %s", f.value))

    # -- browser sessions ---------------------------------------------------------------

    async def load_web_session(self, token: str | None) -> WebSession | None:
        if not token:
            return None
        record = await self.store.get_web_session(hash_token(token))
        if record is None:
            return None
        if record.user_id is not None:
            user = await self.store.get_user(record.user_id)
            if user is None or user.deactivated:
                await self.store.delete_web_session(record.session_hash)
                return None
        return WebSession(token, record, FlowState.from_json(record.flow))

    async def new_web_session(self) -> WebSession:
        self._maybe_prune()
        token = secrets.token_urlsafe(32)
        ts = now_ms()
        record = WebSessionRecord(hash_token(token), None, None, {}, ts, ts + WEB_SESSION_LIFETIME_MS)
        return WebSession(token, record, FlowState())

    async def save(self, session: WebSession) -> None:
        record = session.record
        session.record = WebSessionRecord(
            record.session_hash, record.user_id, record.auth_time, session.flow.to_json(), record.created_ts, record.expires_ts
        )
        await self.store.store_web_session(session.record)

    async def complete_sign_in(self, session: WebSession) -> str:
        """The flow finished: the browser is signed in as its user. Returns where to go."""
        flow = session.flow
        assert flow.user_id is not None
        ts = now_ms()
        # A new cookie for the signed-in session: a cookie planted before sign-in
        # (session fixation) is worth nothing after it.
        await self.store.delete_web_session(session.record.session_hash)
        session.token = secrets.token_urlsafe(32)
        session.record = WebSessionRecord(hash_token(session.token), flow.user_id, ts, {}, ts, ts + WEB_SESSION_LIFETIME_MS)
        destination = flow.next or "/_wspr/account"
        # What waits after sign-in (an OAuth authorisation) stays; the steps are done.
        session.flow = FlowState(purpose="account", authorize=flow.authorize)
        await self.save(session)
        return destination

    async def sign_out(self, session: WebSession) -> None:
        await self.store.delete_web_session(session.record.session_hash)

    # -- sign-up -----------------------------------------------------------------------------

    def registration_open(self) -> bool:
        return self.hs.config.enable_registration

    async def sign_up(self, username: str, password: str, token: str | None, client_ip: str) -> str:
        """Creates an account as /register would (same name rules, registration tokens,
        rate limit); returns the user ID. MatrixError on refusal."""
        hs = self.hs
        if not self.registration_open():
            raise MatrixError(403, "M_FORBIDDEN", "Registration is closed on this server.")
        hs.ratelimiter.check("registration", client_ip)
        if hs.config.registration_requires_token:
            if not token or not await self.store.registration_token_valid(token):
                raise MatrixError(403, "M_FORBIDDEN", "That registration token is not valid.")
        user_id = await hs.registration.register_user(username.lower(), password)
        if hs.config.registration_requires_token and token:
            await self.store.use_registration_token(token)
        return user_id

    # -- account actions --------------------------------------------------------------------

    async def list_sessions(self, user_id: str) -> list[SessionView]:
        by_device = {s.session.device_id: s for s in await self.store.list_user_sessions(user_id)}
        clients: dict[str, tuple[str | None, str | None]] = {}
        views = []
        for device in await self.store.get_devices(user_id):
            listing = by_device.get(device.device_id)
            client_name = client_uri = None
            if listing is not None and listing.session.client_id:
                cid = listing.session.client_id
                if cid not in clients:
                    metadata = await self.store.get_oauth_client(cid) or {}
                    clients[cid] = (metadata.get("client_name"), metadata.get("client_uri"))
                client_name, client_uri = clients[cid]
            views.append(
                SessionView(
                    device_id=device.device_id,
                    display_name=device.display_name,
                    last_seen_ts=device.last_seen_ts,
                    last_seen_ip=device.last_seen_ip,
                    client_name=client_name,
                    client_uri=client_uri,
                    kind=listing.session.kind if listing else None,
                    created_ts=listing.session.created_ts if listing else None,
                )
            )
        views.sort(key=lambda v: -(v.last_seen_ts or 0))
        return views

    async def end_session(self, user_id: str, device_id: str) -> bool:
        """Signs a device out (its sessions are revoked at once, its keys go)."""
        if await self.store.get_device(user_id, device_id) is None:
            return False
        await self.hs.devices.delete_devices(user_id, [device_id])
        return True

    async def set_display_name(self, user_id: str, name: str) -> None:
        await self.hs.profile.set_field(user_id, user_id, "displayname", name or None)

    async def change_password(self, session: WebSession, new_password: str, sign_out_everywhere: bool) -> None:
        user_id = session.user_id
        assert user_id is not None
        await self.store.set_password_hash(user_id, await self.hs.auth.hash_password(new_password))
        if sign_out_everywhere:
            await self.sign_out_everywhere(user_id, keep=session)

    async def sign_out_everywhere(self, user_id: str, keep: WebSession | None = None) -> None:
        """Every device and session of the user ends (but the browser session ``keep``)."""
        devices = [d.device_id for d in await self.store.get_devices(user_id)]
        if devices:
            await self.hs.devices.delete_devices(user_id, devices)
        await self.hs.auth.sessions.revoke_user(user_id)
        await self.store.delete_user_web_sessions(user_id, keep_hash=keep.record.session_hash if keep else None)

    async def approve_cross_signing_reset(self, user_id: str) -> int:
        until = now_ms() + CROSS_SIGNING_RESET_WINDOW_MS
        await self.store.set_account_approval(user_id, ACTION_CROSS_SIGNING_RESET, until)
        return until
