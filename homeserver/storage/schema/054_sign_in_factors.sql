-- Sign-in factors of the sign-in pages: TOTP, WebAuthn credentials (passkeys), recovery
-- codes, OPAQUE registration records, and e-mail validation sessions (address
-- verification, password reset).

-- One TOTP authenticator (RFC 6238) per user. last_step: the last time step accepted, so
-- that a code is never accepted twice (RFC 6238 section 5.2).
CREATE TABLE mfa_totp (
    user_id TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    created_ts {BIGINT} NOT NULL,
    last_step {BIGINT} NOT NULL
);

-- WebAuthn credentials (passkeys and security keys). credential_id and public_key are
-- base64url; sign_count as the authenticator last reported it.
CREATE TABLE mfa_webauthn_credentials (
    credential_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    public_key TEXT NOT NULL,
    sign_count {BIGINT} NOT NULL,
    transports TEXT NOT NULL,
    name TEXT NOT NULL,
    created_ts {BIGINT} NOT NULL,
    last_used_ts {BIGINT}
);
CREATE INDEX mfa_webauthn_credentials_user ON mfa_webauthn_credentials (user_id);

-- The WebAuthn user handle of each user (random, so that it reveals nothing about the
-- account): a passkey sign-in names its user by it.
CREATE TABLE mfa_webauthn_user_handles (
    user_id TEXT PRIMARY KEY,
    user_handle TEXT NOT NULL UNIQUE
);

-- Single-use recovery codes, as HMAC-SHA256 under the server's recovery-code key.
CREATE TABLE mfa_recovery_codes (
    user_id TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    created_ts {BIGINT} NOT NULL,
    used_ts {BIGINT},
    PRIMARY KEY (user_id, code_hash)
);

-- OPAQUE (RFC 9807) registration records: what the server keeps instead of a password
-- hash when password_auth is opaque. ksf names the client's key stretching parameters.
CREATE TABLE opaque_records (
    user_id TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    ksf TEXT NOT NULL,
    created_ts {BIGINT} NOT NULL
);

-- E-mail validation sessions (Synapse's threepid_validation_session and _token): a
-- client's requestToken (client_secret, address, send_attempt) makes one, the link in
-- the e-mail validates it (token stored hashed, single use, until expires_ts).
-- purpose: "add" (bind the address to user_id) or "reset" (password reset of user_id).
CREATE TABLE email_validation_sessions (
    session_id TEXT PRIMARY KEY,
    purpose TEXT NOT NULL,
    address TEXT NOT NULL,
    client_secret TEXT NOT NULL,
    user_id TEXT,
    last_send_attempt INTEGER NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_ts {BIGINT} NOT NULL,
    expires_ts {BIGINT} NOT NULL,
    validated_ts {BIGINT},
    used_ts {BIGINT}
);
CREATE INDEX email_validation_sessions_secret ON email_validation_sessions (client_secret, address, purpose);
