-- The admin API (Synapse's /_synapse/admin paths) and the audit log.

-- Synapse's user_type ("support", "bot" or none) and erased_users (a deactivation with
-- erase: true, whose profile went and whose events new joiners see redacted).
ALTER TABLE users ADD COLUMN user_type TEXT;
ALTER TABLE users ADD COLUMN erased BOOLEAN NOT NULL DEFAULT FALSE;

-- Third-party identifiers of local accounts (Synapse's user_threepids): e-mail addresses
-- and phone numbers, set by admins and (later) verified by their owners. One account per
-- address.
CREATE TABLE user_threepids (
    user_id TEXT NOT NULL,
    medium TEXT NOT NULL,
    address TEXT NOT NULL,
    validated_at {BIGINT} NOT NULL,
    added_at {BIGINT} NOT NULL,
    PRIMARY KEY (medium, address)
);
CREATE INDEX user_threepids_user ON user_threepids (user_id);

-- Rooms an admin blocked: nobody on this server may join them (kept when the room is
-- purged, so that it cannot be joined again).
CREATE TABLE blocked_rooms (
    room_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL
);

-- Quarantined media is refused to everyone (404), as in Synapse; protected media cannot
-- be quarantined.
ALTER TABLE media ADD COLUMN quarantined_by TEXT;
ALTER TABLE media ADD COLUMN safe_from_quarantine BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE remote_media_cache ADD COLUMN quarantined_by TEXT;
CREATE INDEX media_sha256 ON media (sha256);
CREATE INDEX media_user_created ON media (user_id, created_ts);

-- Asynchronous room deletions (DELETE /_synapse/admin/v2/rooms/{roomId}): Synapse's
-- scheduled tasks of the shutdown_and_purge_room action. A task that was running when
-- the server stopped is run again at start.
CREATE TABLE room_delete_tasks (
    delete_id TEXT PRIMARY KEY,
    target_room TEXT NOT NULL,
    status TEXT NOT NULL,
    params TEXT NOT NULL,
    result TEXT,
    error TEXT,
    created_ts {BIGINT} NOT NULL
);
CREATE INDEX room_delete_tasks_room ON room_delete_tasks (target_room);

-- Security events for admins: sign-ins and failures, password changes and resets, device
-- deletions, MFA changes, admin actions. Who it concerns (user_id), who did it (actor),
-- from where (ip, user_agent), and what (event_type, details as JSON).
CREATE TABLE audit_log (
    id {AUTOINC_PK},
    ts {BIGINT} NOT NULL,
    event_type TEXT NOT NULL,
    user_id TEXT,
    actor TEXT,
    ip TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    details TEXT NOT NULL
);
CREATE INDEX audit_log_ts ON audit_log (ts);
CREATE INDEX audit_log_user ON audit_log (user_id, ts);
CREATE INDEX audit_log_type ON audit_log (event_type, ts);
