"""Sign-in factors (schema 054): TOTP authenticators, WebAuthn credentials, recovery
codes, OPAQUE registration records and e-mail validation sessions."""

from __future__ import annotations

import json
from dataclasses import dataclass

from homeserver.storage.database import Database, Txn


@dataclass(frozen=True)
class TotpRecord:
    user_id: str
    secret: str
    created_ts: int
    last_step: int


@dataclass(frozen=True)
class WebAuthnCredential:
    credential_id: str
    user_id: str
    public_key: str
    sign_count: int
    transports: list[str]
    name: str
    created_ts: int
    last_used_ts: int | None


@dataclass(frozen=True)
class OpaqueRecord:
    user_id: str
    record: str
    ksf: str
    created_ts: int


@dataclass(frozen=True)
class EmailValidationSession:
    session_id: str
    purpose: str
    address: str
    client_secret: str
    user_id: str | None
    last_send_attempt: int
    token_hash: str
    created_ts: int
    expires_ts: int
    validated_ts: int | None
    used_ts: int | None


_CRED_COLS = "credential_id, user_id, public_key, sign_count, transports, name, created_ts, last_used_ts"
_EMAIL_COLS = (
    "session_id, purpose, address, client_secret, user_id, last_send_attempt, token_hash, created_ts,"
    " expires_ts, validated_ts, used_ts"
)


def _cred(r: tuple) -> WebAuthnCredential:
    return WebAuthnCredential(r[0], r[1], r[2], int(r[3]), json.loads(r[4]), r[5], int(r[6]), r[7])


def remove_user_sign_in_factors_txn(txn: Txn, user_id: str) -> None:
    """Everything a deactivated account signed in with."""
    for table in ("mfa_totp", "mfa_webauthn_credentials", "mfa_webauthn_user_handles", "mfa_recovery_codes", "opaque_records"):
        txn.execute(f"DELETE FROM {table} WHERE user_id = ?", (user_id,))


class SignInFactorStore:
    db: Database

    # -- TOTP ---------------------------------------------------------------------------

    async def get_totp(self, user_id: str) -> TotpRecord | None:
        row = await self.db.read(
            lambda txn: txn.select_one(
                "SELECT user_id, secret, created_ts, last_step FROM mfa_totp WHERE user_id = ?", (user_id,)
            ),
            name="get_totp",
        )
        return TotpRecord(row[0], row[1], int(row[2]), int(row[3])) if row else None

    async def set_totp(self, user_id: str, secret: str, created_ts: int) -> None:
        await self.db.write(
            lambda txn: txn.upsert("mfa_totp", {"user_id": user_id}, {"secret": secret, "created_ts": created_ts, "last_step": 0}),
            name="set_totp",
        )

    async def use_totp_step(self, user_id: str, step: int) -> bool:
        """Records that the code of ``step`` was used; False if it (or a later one) was
        already: each code works once."""

        def txn_fn(txn: Txn) -> bool:
            txn.execute("UPDATE mfa_totp SET last_step = ? WHERE user_id = ? AND last_step < ?", (step, user_id, step))
            return txn.rowcount == 1

        return await self.db.write(txn_fn, name="use_totp_step")

    async def delete_totp(self, user_id: str) -> bool:
        def txn_fn(txn: Txn) -> bool:
            txn.execute("DELETE FROM mfa_totp WHERE user_id = ?", (user_id,))
            return txn.rowcount > 0

        return await self.db.write(txn_fn, name="delete_totp")

    # -- WebAuthn -----------------------------------------------------------------------

    async def get_webauthn_credentials(self, user_id: str) -> list[WebAuthnCredential]:
        return await self.db.read(
            lambda txn: [
                _cred(r)
                for r in txn.select_all(
                    f"SELECT {_CRED_COLS} FROM mfa_webauthn_credentials WHERE user_id = ? ORDER BY created_ts", (user_id,)
                )
            ],
            name="get_webauthn_credentials",
        )

    async def get_webauthn_credential(self, credential_id: str) -> WebAuthnCredential | None:
        row = await self.db.read(
            lambda txn: txn.select_one(
                f"SELECT {_CRED_COLS} FROM mfa_webauthn_credentials WHERE credential_id = ?", (credential_id,)
            ),
            name="get_webauthn_credential",
        )
        return _cred(row) if row else None

    async def add_webauthn_credential(self, cred: WebAuthnCredential) -> bool:
        """False if that credential is already registered (to anyone)."""

        def txn_fn(txn: Txn) -> bool:
            if txn.select_value("SELECT 1 FROM mfa_webauthn_credentials WHERE credential_id = ?", (cred.credential_id,)):
                return False
            txn.execute(
                f"INSERT INTO mfa_webauthn_credentials ({_CRED_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    cred.credential_id, cred.user_id, cred.public_key, cred.sign_count, json.dumps(cred.transports),
                    cred.name, cred.created_ts, cred.last_used_ts,
                ),
            )
            return True

        return await self.db.write(txn_fn, name="add_webauthn_credential")

    async def update_webauthn_sign_count(self, credential_id: str, sign_count: int, used_ts: int) -> None:
        await self.db.write(
            lambda txn: txn.execute(
                "UPDATE mfa_webauthn_credentials SET sign_count = ?, last_used_ts = ? WHERE credential_id = ?",
                (sign_count, used_ts, credential_id),
            ),
            name="update_webauthn_sign_count",
        )

    async def delete_webauthn_credential(self, user_id: str, credential_id: str) -> bool:
        def txn_fn(txn: Txn) -> bool:
            txn.execute(
                "DELETE FROM mfa_webauthn_credentials WHERE user_id = ? AND credential_id = ?", (user_id, credential_id)
            )
            return txn.rowcount > 0

        return await self.db.write(txn_fn, name="delete_webauthn_credential")

    async def get_or_create_webauthn_user_handle(self, user_id: str, candidate: str) -> str:
        def txn_fn(txn: Txn) -> str:
            existing = txn.select_value("SELECT user_handle FROM mfa_webauthn_user_handles WHERE user_id = ?", (user_id,))
            if existing:
                return str(existing)
            txn.execute("INSERT INTO mfa_webauthn_user_handles (user_id, user_handle) VALUES (?, ?)", (user_id, candidate))
            return candidate

        return await self.db.write(txn_fn, name="webauthn_user_handle")

    async def get_user_by_webauthn_handle(self, user_handle: str) -> str | None:
        return await self.db.read(
            lambda txn: txn.select_value("SELECT user_id FROM mfa_webauthn_user_handles WHERE user_handle = ?", (user_handle,)),
            name="user_by_webauthn_handle",
        )

    # -- recovery codes -----------------------------------------------------------------

    async def replace_recovery_codes(self, user_id: str, code_hashes: list[str], ts: int) -> None:
        def txn_fn(txn: Txn) -> None:
            txn.execute("DELETE FROM mfa_recovery_codes WHERE user_id = ?", (user_id,))
            txn.executemany(
                "INSERT INTO mfa_recovery_codes (user_id, code_hash, created_ts) VALUES (?, ?, ?)",
                [(user_id, h, ts) for h in code_hashes],
            )

        await self.db.write(txn_fn, name="replace_recovery_codes")

    async def count_unused_recovery_codes(self, user_id: str) -> int:
        return int(
            await self.db.read(
                lambda txn: txn.select_value(
                    "SELECT COUNT(*) FROM mfa_recovery_codes WHERE user_id = ? AND used_ts IS NULL", (user_id,), 0
                ),
                name="count_recovery_codes",
            )
        )

    async def use_recovery_code(self, user_id: str, code_hash: str, ts: int) -> bool:
        """Marks the code used; False if it is not an unused code of this user."""

        def txn_fn(txn: Txn) -> bool:
            txn.execute(
                "UPDATE mfa_recovery_codes SET used_ts = ? WHERE user_id = ? AND code_hash = ? AND used_ts IS NULL",
                (ts, user_id, code_hash),
            )
            return txn.rowcount == 1

        return await self.db.write(txn_fn, name="use_recovery_code")

    async def delete_recovery_codes(self, user_id: str) -> None:
        await self.db.write(
            lambda txn: txn.execute("DELETE FROM mfa_recovery_codes WHERE user_id = ?", (user_id,)),
            name="delete_recovery_codes",
        )

    # -- OPAQUE -------------------------------------------------------------------------

    async def get_opaque_record(self, user_id: str) -> OpaqueRecord | None:
        row = await self.db.read(
            lambda txn: txn.select_one(
                "SELECT user_id, record, ksf, created_ts FROM opaque_records WHERE user_id = ?", (user_id,)
            ),
            name="get_opaque_record",
        )
        return OpaqueRecord(row[0], row[1], row[2], int(row[3])) if row else None

    async def set_opaque_record(self, user_id: str, record: str, ksf: str, ts: int) -> None:
        """Stores the record and drops any password hash: from now on the account's
        password is known to nobody but its owner."""

        def txn_fn(txn: Txn) -> None:
            txn.upsert("opaque_records", {"user_id": user_id}, {"record": record, "ksf": ksf, "created_ts": ts})
            txn.execute("UPDATE users SET password_hash = NULL WHERE user_id = ?", (user_id,))

        await self.db.write(txn_fn, name="set_opaque_record")

    async def delete_opaque_record(self, user_id: str) -> None:
        await self.db.write(
            lambda txn: txn.execute("DELETE FROM opaque_records WHERE user_id = ?", (user_id,)),
            name="delete_opaque_record",
        )

    # -- e-mail validation sessions -------------------------------------------------------

    async def find_email_validation_session(
        self, client_secret: str, address: str, purpose: str
    ) -> EmailValidationSession | None:
        row = await self.db.read(
            lambda txn: txn.select_one(
                f"SELECT {_EMAIL_COLS} FROM email_validation_sessions"
                " WHERE client_secret = ? AND address = ? AND purpose = ? ORDER BY created_ts DESC LIMIT 1",
                (client_secret, address, purpose),
            ),
            name="find_email_validation_session",
        )
        return EmailValidationSession(*row) if row else None

    async def get_email_validation_session(self, session_id: str) -> EmailValidationSession | None:
        row = await self.db.read(
            lambda txn: txn.select_one(
                f"SELECT {_EMAIL_COLS} FROM email_validation_sessions WHERE session_id = ?", (session_id,)
            ),
            name="get_email_validation_session",
        )
        return EmailValidationSession(*row) if row else None

    async def get_email_validation_session_by_token(self, token_hash: str) -> EmailValidationSession | None:
        row = await self.db.read(
            lambda txn: txn.select_one(
                f"SELECT {_EMAIL_COLS} FROM email_validation_sessions WHERE token_hash = ?", (token_hash,)
            ),
            name="email_validation_session_by_token",
        )
        return EmailValidationSession(*row) if row else None

    async def store_email_validation_session(self, s: EmailValidationSession) -> None:
        """Creates the session or replaces it (a new send attempt gets a new token)."""
        await self.db.write(
            lambda txn: txn.upsert(
                "email_validation_sessions",
                {"session_id": s.session_id},
                {
                    "purpose": s.purpose, "address": s.address, "client_secret": s.client_secret, "user_id": s.user_id,
                    "last_send_attempt": s.last_send_attempt, "token_hash": s.token_hash, "created_ts": s.created_ts,
                    "expires_ts": s.expires_ts, "validated_ts": s.validated_ts, "used_ts": s.used_ts,
                },
            ),
            name="store_email_validation_session",
        )

    async def validate_email_session(self, session_id: str, ts: int) -> bool:
        """Marks the session validated (its link was opened in time); False if it
        expired, was used, or was validated before."""

        def txn_fn(txn: Txn) -> bool:
            txn.execute(
                "UPDATE email_validation_sessions SET validated_ts = ?"
                " WHERE session_id = ? AND validated_ts IS NULL AND used_ts IS NULL AND expires_ts > ?",
                (ts, session_id, ts),
            )
            return txn.rowcount == 1

        return await self.db.write(txn_fn, name="validate_email_session")

    async def use_email_session(self, session_id: str, ts: int) -> bool:
        """Consumes the session (single use); False if it was used already."""

        def txn_fn(txn: Txn) -> bool:
            txn.execute(
                "UPDATE email_validation_sessions SET used_ts = ? WHERE session_id = ? AND used_ts IS NULL",
                (ts, session_id),
            )
            return txn.rowcount == 1

        return await self.db.write(txn_fn, name="use_email_session")

    async def prune_email_validation_sessions(self, before_ts: int) -> None:
        await self.db.write(
            lambda txn: txn.execute("DELETE FROM email_validation_sessions WHERE expires_ts < ?", (before_ts,)),
            name="prune_email_validation_sessions",
        )
