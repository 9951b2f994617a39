-- Sign-in sessions behind JWT access tokens (the OAuth 2.0 API, and legacy logins when
-- access_token_format is jwt). A session belongs to one device; its access tokens are
-- signed JWTs naming it (never stored), its refresh tokens are stored as SHA-256 hashes.
CREATE TABLE auth_sessions (
    session_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    -- The OAuth client the session was granted to; NULL for the legacy API.
    client_id TEXT,
    scope TEXT,
    -- How the user signed in: oauth, password, register, jwt, ...
    kind TEXT NOT NULL,
    refreshable BOOLEAN NOT NULL,
    created_ts {BIGINT} NOT NULL,
    last_refresh_ts {BIGINT}
);
CREATE INDEX auth_sessions_device ON auth_sessions (user_id, device_id);

-- Refresh tokens rotate: each use consumes the token and names its successor. A used
-- token whose successor was never used may be presented again (the client lost the
-- answer); any other reuse is taken as theft and ends the session.
CREATE TABLE auth_refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    created_ts {BIGINT} NOT NULL,
    -- active, used (successor in next_token_hash) or superseded
    state TEXT NOT NULL,
    next_token_hash TEXT
);
CREATE INDEX auth_refresh_tokens_session ON auth_refresh_tokens (session_id);

-- The revocation list every process checks JWT access tokens against. An entry is kept
-- until every access token of the session has expired (keep_until_ts).
CREATE TABLE revoked_sessions (
    session_id TEXT PRIMARY KEY,
    revoked_ts {BIGINT} NOT NULL,
    keep_until_ts {BIGINT} NOT NULL
);
CREATE INDEX revoked_sessions_revoked ON revoked_sessions (revoked_ts);

-- Dynamically registered OAuth clients (RFC 7591). Identical metadata shares one
-- client_id (the spec's suggested de-duplication).
CREATE TABLE oauth_clients (
    client_id TEXT PRIMARY KEY,
    metadata TEXT NOT NULL,
    metadata_hash TEXT NOT NULL,
    created_ts {BIGINT} NOT NULL
);
CREATE INDEX oauth_clients_metadata ON oauth_clients (metadata_hash);

-- Authorization codes (hashed), single use. A code presented twice revokes the session
-- it was exchanged for (RFC 6749 section 4.1.2).
CREATE TABLE oauth_authorization_codes (
    code_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    code_challenge_method TEXT NOT NULL,
    auth_time {BIGINT} NOT NULL,
    created_ts {BIGINT} NOT NULL,
    expires_ts {BIGINT} NOT NULL,
    used_ts {BIGINT},
    session_id TEXT
);

-- Browser sessions of the sign-in and account pages (the cookie, hashed). ``flow`` is
-- the JSON state of a sign-in in progress (see homeserver/oauth/login_flow.py).
CREATE TABLE web_sessions (
    session_hash TEXT PRIMARY KEY,
    user_id TEXT,
    auth_time {BIGINT},
    flow TEXT NOT NULL,
    created_ts {BIGINT} NOT NULL,
    expires_ts {BIGINT} NOT NULL
);

-- Approvals given on the account pages for an action a client then performs through the
-- API without user-interactive auth (org.matrix.cross_signing_reset), until until_ts.
CREATE TABLE account_approvals (
    user_id TEXT NOT NULL,
    action TEXT NOT NULL,
    until_ts {BIGINT} NOT NULL,
    PRIMARY KEY (user_id, action)
);
