-- Reports of abuse for the server's admins (Synapse's event_reports, room_reports and
-- user_reports): what was reported, by whom, when and why. The event report keeps the
-- whole request body, as Synapse does.
CREATE TABLE event_reports (
    id {AUTOINC_PK},
    received_ts {BIGINT} NOT NULL,
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    reason TEXT,
    content TEXT NOT NULL
);
CREATE INDEX event_reports_room ON event_reports (room_id);
CREATE INDEX event_reports_user ON event_reports (user_id);

CREATE TABLE room_reports (
    id {AUTOINC_PK},
    received_ts {BIGINT} NOT NULL,
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    reason TEXT NOT NULL
);

CREATE TABLE user_reports (
    id {AUTOINC_PK},
    received_ts {BIGINT} NOT NULL,
    target_user_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    reason TEXT NOT NULL
);

-- Where and with what each session was last seen (Synapse's user_ips), for
-- /admin/whois: one row per (user, access token, client IP), with the latest user agent.
-- Tokens are stored hashed, as in access_tokens.
CREATE TABLE user_ips (
    user_id TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    device_id TEXT,
    ip TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    last_seen {BIGINT} NOT NULL,
    PRIMARY KEY (user_id, token_hash, ip)
);
CREATE INDEX user_ips_last_seen ON user_ips (user_id, last_seen);
