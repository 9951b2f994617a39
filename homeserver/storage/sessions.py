"""Sign-in sessions, refresh tokens, the revocation list, OAuth clients and codes, the
sign-in pages' browser sessions and account-page approvals (schema 050)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any, overload

from homeserver.storage.database import Database, Txn
from homeserver.util.ids import now_ms


@dataclass(frozen=True)
class SessionRecord:
    session_id: str
    user_id: str
    device_id: str
    client_id: str | None
    scope: str | None
    kind: str
    refreshable: bool
    created_ts: int
    last_refresh_ts: int | None = None


@dataclass(frozen=True)
class SessionListing:
    """A session with its device, for the account pages."""

    session: SessionRecord
    display_name: str | None
    last_seen_ts: int | None
    last_seen_ip: str | None


@dataclass(frozen=True)
class AuthorizationCodeRecord:
    code_hash: str
    client_id: str
    user_id: str
    redirect_uri: str
    scope: str
    code_challenge: str
    code_challenge_method: str
    auth_time: int
    created_ts: int
    expires_ts: int
    used_ts: int | None = None
    session_id: str | None = None


@dataclass(frozen=True)
class WebSessionRecord:
    session_hash: str
    user_id: str | None
    auth_time: int | None
    flow: dict[str, Any]
    created_ts: int
    expires_ts: int


class RefreshOutcome(Enum):
    ROTATED = "rotated"
    UNKNOWN = "unknown"
    # A used (or superseded) token came back: the session has been revoked.
    REUSED = "reused"


@dataclass(frozen=True)
class RefreshResult:
    outcome: RefreshOutcome
    session: SessionRecord | None = None
    # Sessions revoked by this call (reuse detection).
    revoked: tuple[str, ...] = ()


class CodeAlreadyUsed(Exception):
    """The authorization code was exchanged before; ``revoked`` lists what that revoked."""

    def __init__(self, revoked: list[str]) -> None:
        super().__init__("authorization code already used")
        self.revoked = revoked


# How long a used refresh token is remembered (its reuse then ends the session; after
# that it is merely unknown).
USED_REFRESH_TOKEN_RETENTION_MS = 7 * 24 * 3600 * 1000

_SESSION_COLS = "session_id, user_id, device_id, client_id, scope, kind, refreshable, created_ts, last_refresh_ts"


@overload
def _session(row: tuple) -> SessionRecord: ...


@overload
def _session(row: tuple | None) -> SessionRecord | None: ...


def _session(row: tuple | None) -> SessionRecord | None:
    if row is None:
        return None
    return SessionRecord(row[0], row[1], row[2], row[3], row[4], row[5], bool(row[6]), row[7], row[8])


def _revoke_txn(txn: Txn, session_ids: list[str], keep_until_ts: int) -> list[str]:
    """Deletes sessions with their refresh tokens and puts them on the revocation list."""
    revoked = []
    ts = now_ms()
    for sid in session_ids:
        txn.execute("DELETE FROM auth_refresh_tokens WHERE session_id = ?", (sid,))
        txn.execute("DELETE FROM auth_sessions WHERE session_id = ?", (sid,))
        txn.upsert("revoked_sessions", {"session_id": sid}, {"revoked_ts": ts, "keep_until_ts": keep_until_ts})
        revoked.append(sid)
    return revoked


def _device_session_ids(txn: Txn, user_id: str, device_id: str) -> list[str]:
    rows = txn.select_all(
        "SELECT session_id FROM auth_sessions WHERE user_id = ? AND device_id = ?", (user_id, device_id)
    )
    return [r[0] for r in rows]


class SessionStore:
    db: Database

    # -- sessions ------------------------------------------------------------

    async def create_session(
        self,
        session: SessionRecord,
        refresh_token_hash: str | None,
        display_name: str | None,
        keep_until_ts: int,
        code_hash: str | None = None,
    ) -> tuple[bool, list[str]]:
        """Creates the session on its device (the device too, if new). Signing in again
        on an existing device replaces that device's sessions and legacy tokens, as a
        legacy login with a known device_id does. With ``code_hash``, the authorization
        code is consumed in the same transaction (CodeAlreadyUsed if it was already).
        Returns (device is new, sessions revoked)."""

        def txn_fn(txn: Txn) -> tuple[bool, list[str]]:
            ts = now_ms()
            if code_hash is not None:
                txn.execute(
                    "UPDATE oauth_authorization_codes SET used_ts = ?, session_id = ?"
                    " WHERE code_hash = ? AND used_ts IS NULL",
                    (ts, session.session_id, code_hash),
                )
                if txn.rowcount != 1:
                    raise CodeAlreadyUsed([])
            user_id, device_id = session.user_id, session.device_id
            new = txn.select_one(
                "SELECT 1 FROM devices WHERE user_id = ? AND device_id = ?", (user_id, device_id)
            ) is None
            revoked: list[str] = []
            if new:
                txn.execute(
                    "INSERT INTO devices (user_id, device_id, display_name, last_seen_ts) VALUES (?, ?, ?, ?)",
                    (user_id, device_id, display_name, ts),
                )
            else:
                revoked = _revoke_txn(txn, _device_session_ids(txn, user_id, device_id), keep_until_ts)
                txn.execute("DELETE FROM access_tokens WHERE user_id = ? AND device_id = ?", (user_id, device_id))
                txn.execute("DELETE FROM refresh_tokens WHERE user_id = ? AND device_id = ?", (user_id, device_id))
            txn.execute(
                f"INSERT INTO auth_sessions ({_SESSION_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    session.session_id,
                    user_id,
                    device_id,
                    session.client_id,
                    session.scope,
                    session.kind,
                    session.refreshable,
                    session.created_ts,
                    None,
                ),
            )
            if refresh_token_hash is not None:
                txn.execute(
                    "INSERT INTO auth_refresh_tokens (token_hash, session_id, created_ts, state) VALUES (?, ?, ?, ?)",
                    (refresh_token_hash, session.session_id, ts, "active"),
                )
            return new, revoked

        return await self.db.write(txn_fn, name="create_session")

    async def get_session(self, session_id: str) -> SessionRecord | None:
        return await self.db.read(
            lambda txn: _session(
                txn.select_one(f"SELECT {_SESSION_COLS} FROM auth_sessions WHERE session_id = ?", (session_id,))
            ),
            name="get_session",
        )

    async def get_session_by_refresh_token(self, token_hash: str) -> SessionRecord | None:
        def txn_fn(txn: Txn) -> SessionRecord | None:
            sid = txn.select_value("SELECT session_id FROM auth_refresh_tokens WHERE token_hash = ?", (token_hash,))
            if sid is None:
                return None
            return _session(txn.select_one(f"SELECT {_SESSION_COLS} FROM auth_sessions WHERE session_id = ?", (sid,)))

        return await self.db.read(txn_fn, name="session_by_refresh_token")

    async def list_user_sessions(self, user_id: str) -> list[SessionListing]:
        def txn_fn(txn: Txn) -> list[SessionListing]:
            rows = txn.select_all(
                f"SELECT {', '.join('s.' + c.strip() for c in _SESSION_COLS.split(','))},"
                " d.display_name, d.last_seen_ts, d.last_seen_ip"
                " FROM auth_sessions s LEFT JOIN devices d ON d.user_id = s.user_id AND d.device_id = s.device_id"
                " WHERE s.user_id = ? ORDER BY s.created_ts DESC",
                (user_id,),
            )
            return [SessionListing(_session(r[:9]), r[9], r[10], r[11]) for r in rows]

        return await self.db.read(txn_fn, name="list_user_sessions")

    async def rotate_session_refresh_token(self, old_hash: str, new_hash: str, keep_until_ts: int) -> RefreshResult:
        """Exchanges a refresh token for its successor, in one transaction:

        - an active token becomes used, naming the new one;
        - a used token whose successor is still unused (the client never got the answer)
          may be exchanged again: that successor is superseded and a new one issued;
        - any other reuse (a used token whose successor was used, or a superseded token)
          revokes the whole session, as the spec recommends.
        """

        def txn_fn(txn: Txn) -> RefreshResult:
            row = txn.select_one(
                "SELECT session_id, state, next_token_hash FROM auth_refresh_tokens WHERE token_hash = ?", (old_hash,)
            )
            if row is None:
                return RefreshResult(RefreshOutcome.UNKNOWN)
            sid, state, next_hash = row
            session = _session(
                txn.select_one(f"SELECT {_SESSION_COLS} FROM auth_sessions WHERE session_id = ?", (sid,))
            )
            if session is None:
                return RefreshResult(RefreshOutcome.UNKNOWN)
            if state == "used":
                successor_state = txn.select_value(
                    "SELECT state FROM auth_refresh_tokens WHERE token_hash = ?", (next_hash,)
                )
                if successor_state != "active":
                    return RefreshResult(RefreshOutcome.REUSED, session, tuple(_revoke_txn(txn, [sid], keep_until_ts)))
                txn.execute("UPDATE auth_refresh_tokens SET state = 'superseded' WHERE token_hash = ?", (next_hash,))
            elif state != "active":
                return RefreshResult(RefreshOutcome.REUSED, session, tuple(_revoke_txn(txn, [sid], keep_until_ts)))
            ts = now_ms()
            txn.execute(
                "UPDATE auth_refresh_tokens SET state = 'used', next_token_hash = ? WHERE token_hash = ?",
                (new_hash, old_hash),
            )
            txn.execute(
                "INSERT INTO auth_refresh_tokens (token_hash, session_id, created_ts, state) VALUES (?, ?, ?, 'active')",
                (new_hash, sid, ts),
            )
            txn.execute("UPDATE auth_sessions SET last_refresh_ts = ? WHERE session_id = ?", (ts, sid))
            # Used tokens are kept to recognise their reuse, for a while: a session that
            # refreshes every few minutes would otherwise pile them up.
            txn.execute(
                "DELETE FROM auth_refresh_tokens WHERE session_id = ? AND state != 'active' AND created_ts < ?",
                (sid, ts - USED_REFRESH_TOKEN_RETENTION_MS),
            )
            return RefreshResult(RefreshOutcome.ROTATED, session)

        return await self.db.write(txn_fn, name="rotate_refresh_token")

    async def revoke_sessions(self, session_ids: list[str], keep_until_ts: int) -> list[str]:
        return await self.db.write(lambda txn: _revoke_txn(txn, session_ids, keep_until_ts), name="revoke_sessions")

    async def revoke_device_sessions(self, user_id: str, device_ids: list[str], keep_until_ts: int) -> list[str]:
        def txn_fn(txn: Txn) -> list[str]:
            ids = [sid for d in device_ids for sid in _device_session_ids(txn, user_id, d)]
            return _revoke_txn(txn, ids, keep_until_ts)

        return await self.db.write(txn_fn, name="revoke_device_sessions")

    async def revoke_user_sessions(self, user_id: str, keep_until_ts: int) -> list[str]:
        def txn_fn(txn: Txn) -> list[str]:
            ids = [r[0] for r in txn.select_all("SELECT session_id FROM auth_sessions WHERE user_id = ?", (user_id,))]
            return _revoke_txn(txn, ids, keep_until_ts)

        return await self.db.write(txn_fn, name="revoke_user_sessions")

    # -- the revocation list ---------------------------------------------------

    async def get_revoked_sessions(self, since_ts: int) -> list[tuple[str, int, int]]:
        """(session_id, revoked_ts, keep_until_ts) revoked at or after since_ts and still kept."""
        return await self.db.read(
            lambda txn: [
                (r[0], r[1], r[2])
                for r in txn.select_all(
                    "SELECT session_id, revoked_ts, keep_until_ts FROM revoked_sessions"
                    " WHERE revoked_ts >= ? AND keep_until_ts > ?",
                    (since_ts, now_ms()),
                )
            ],
            name="get_revoked_sessions",
        )

    async def prune_revoked_sessions(self, now: int) -> None:
        await self.db.write(
            lambda txn: txn.execute("DELETE FROM revoked_sessions WHERE keep_until_ts <= ?", (now,)),
            name="prune_revoked_sessions",
        )

    # -- OAuth clients and codes -------------------------------------------------

    async def store_oauth_client(self, client_id: str, metadata: dict[str, Any], metadata_hash: str) -> str:
        """Stores a client, or returns the id of one registered with identical metadata."""

        def txn_fn(txn: Txn) -> str:
            existing = txn.select_value(
                "SELECT client_id FROM oauth_clients WHERE metadata_hash = ? ORDER BY created_ts LIMIT 1",
                (metadata_hash,),
            )
            if existing is not None:
                return existing
            txn.execute(
                "INSERT INTO oauth_clients (client_id, metadata, metadata_hash, created_ts) VALUES (?, ?, ?, ?)",
                (client_id, json.dumps(metadata, sort_keys=True), metadata_hash, now_ms()),
            )
            return client_id

        return await self.db.write(txn_fn, name="store_oauth_client")

    async def get_oauth_client(self, client_id: str) -> dict[str, Any] | None:
        raw = await self.db.read(
            lambda txn: txn.select_value("SELECT metadata FROM oauth_clients WHERE client_id = ?", (client_id,)),
            name="get_oauth_client",
        )
        return json.loads(raw) if raw is not None else None

    async def store_authorization_code(self, code: AuthorizationCodeRecord) -> None:
        await self.db.write(
            lambda txn: txn.execute(
                "INSERT INTO oauth_authorization_codes (code_hash, client_id, user_id, redirect_uri, scope,"
                " code_challenge, code_challenge_method, auth_time, created_ts, expires_ts)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    code.code_hash,
                    code.client_id,
                    code.user_id,
                    code.redirect_uri,
                    code.scope,
                    code.code_challenge,
                    code.code_challenge_method,
                    code.auth_time,
                    code.created_ts,
                    code.expires_ts,
                ),
            ),
            name="store_authorization_code",
        )

    async def get_authorization_code(self, code_hash: str) -> AuthorizationCodeRecord | None:
        def txn_fn(txn: Txn) -> AuthorizationCodeRecord | None:
            row = txn.select_one(
                "SELECT code_hash, client_id, user_id, redirect_uri, scope, code_challenge, code_challenge_method,"
                " auth_time, created_ts, expires_ts, used_ts, session_id"
                " FROM oauth_authorization_codes WHERE code_hash = ?",
                (code_hash,),
            )
            return AuthorizationCodeRecord(*row) if row else None

        return await self.db.read(txn_fn, name="get_authorization_code")

    async def prune_authorization_codes(self, before_ts: int) -> None:
        await self.db.write(
            lambda txn: txn.execute("DELETE FROM oauth_authorization_codes WHERE expires_ts < ?", (before_ts,)),
            name="prune_authorization_codes",
        )

    # -- browser sessions of the sign-in pages ---------------------------------

    async def store_web_session(self, record: WebSessionRecord) -> None:
        await self.db.write(
            lambda txn: txn.upsert(
                "web_sessions",
                {"session_hash": record.session_hash},
                {
                    "user_id": record.user_id,
                    "auth_time": record.auth_time,
                    "flow": json.dumps(record.flow),
                    "created_ts": record.created_ts,
                    "expires_ts": record.expires_ts,
                },
            ),
            name="store_web_session",
        )

    async def get_web_session(self, session_hash: str) -> WebSessionRecord | None:
        def txn_fn(txn: Txn) -> WebSessionRecord | None:
            row = txn.select_one(
                "SELECT session_hash, user_id, auth_time, flow, created_ts, expires_ts FROM web_sessions"
                " WHERE session_hash = ? AND expires_ts > ?",
                (session_hash, now_ms()),
            )
            if row is None:
                return None
            return WebSessionRecord(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5])

        return await self.db.read(txn_fn, name="get_web_session")

    async def delete_web_session(self, session_hash: str) -> None:
        await self.db.write(
            lambda txn: txn.execute("DELETE FROM web_sessions WHERE session_hash = ?", (session_hash,)),
            name="delete_web_session",
        )

    async def delete_user_web_sessions(self, user_id: str, keep_hash: str | None = None) -> None:
        await self.db.write(
            lambda txn: txn.execute(
                "DELETE FROM web_sessions WHERE user_id = ? AND session_hash != ?", (user_id, keep_hash or "")
            ),
            name="delete_user_web_sessions",
        )

    async def prune_web_sessions(self, now: int) -> None:
        await self.db.write(
            lambda txn: txn.execute("DELETE FROM web_sessions WHERE expires_ts <= ?", (now,)),
            name="prune_web_sessions",
        )

    # -- approvals from the account pages ----------------------------------------

    async def set_account_approval(self, user_id: str, action: str, until_ts: int) -> None:
        await self.db.write(
            lambda txn: txn.upsert("account_approvals", {"user_id": user_id, "action": action}, {"until_ts": until_ts}),
            name="set_account_approval",
        )

    async def account_approval_valid(self, user_id: str, action: str) -> bool:
        until = await self.db.read(
            lambda txn: txn.select_value(
                "SELECT until_ts FROM account_approvals WHERE user_id = ? AND action = ?", (user_id, action)
            ),
            name="account_approval_valid",
        )
        return until is not None and until > now_ms()
