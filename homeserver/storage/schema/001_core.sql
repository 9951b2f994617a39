-- WSPR core schema. Portable between SQLite and PostgreSQL: {BLOB}, {BIGINT} and
-- {AUTOINC_PK} are replaced per engine. Stream positions (stream_id / stream_ordering)
-- come from one global counter allocated by the server, so every stream shares one
-- ordering and a sync token is a single number.

CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    password_hash TEXT,
    is_admin BOOLEAN NOT NULL DEFAULT FALSE,
    is_guest BOOLEAN NOT NULL DEFAULT FALSE,
    deactivated BOOLEAN NOT NULL DEFAULT FALSE,
    created_ts {BIGINT} NOT NULL,
    displayname TEXT,
    avatar_url TEXT
);

CREATE TABLE devices (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    display_name TEXT,
    last_seen_ts {BIGINT},
    last_seen_ip TEXT,
    PRIMARY KEY (user_id, device_id)
);

-- Tokens are stored as SHA-256 hashes: a database leak does not leak sessions.
CREATE TABLE access_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    expires_ts {BIGINT},
    refresh_token_hash TEXT,
    created_ts {BIGINT} NOT NULL
);
CREATE INDEX access_tokens_device ON access_tokens (user_id, device_id);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    created_ts {BIGINT} NOT NULL
);
CREATE INDEX refresh_tokens_device ON refresh_tokens (user_id, device_id);

CREATE TABLE registration_tokens (
    token TEXT PRIMARY KEY,
    uses_allowed INTEGER,
    pending INTEGER NOT NULL DEFAULT 0,
    completed INTEGER NOT NULL DEFAULT 0,
    expiry_time {BIGINT}
);

CREATE TABLE rooms (
    room_id TEXT PRIMARY KEY,
    room_version TEXT NOT NULL,
    creator TEXT,
    is_public BOOLEAN NOT NULL DEFAULT FALSE,
    created_ts {BIGINT} NOT NULL
);

-- Every event, in federation (PDU) form. stream_ordering is the position in the
-- global stream; topological_ordering is the depth.
CREATE TABLE events (
    stream_ordering {BIGINT} PRIMARY KEY,
    topological_ordering {BIGINT} NOT NULL,
    event_id TEXT NOT NULL UNIQUE,
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT,
    sender TEXT NOT NULL,
    origin_server_ts {BIGINT} NOT NULL,
    json TEXT NOT NULL,
    -- the state snapshot the event was authorised against (the state before it)
    state_group {BIGINT},
    outlier BOOLEAN NOT NULL DEFAULT FALSE,
    rejected_reason TEXT,
    soft_failed BOOLEAN NOT NULL DEFAULT FALSE,
    relates_to TEXT,
    rel_type TEXT,
    txn_id TEXT,
    device_id TEXT
);
CREATE INDEX events_room_stream ON events (room_id, stream_ordering);
CREATE INDEX events_room_topo ON events (room_id, topological_ordering, stream_ordering);
CREATE INDEX events_relates ON events (relates_to, rel_type);

CREATE TABLE event_edges (
    event_id TEXT NOT NULL,
    prev_event_id TEXT NOT NULL,
    PRIMARY KEY (event_id, prev_event_id)
);
CREATE INDEX event_edges_prev ON event_edges (prev_event_id);

CREATE TABLE event_auth (
    event_id TEXT NOT NULL,
    auth_event_id TEXT NOT NULL,
    PRIMARY KEY (event_id, auth_event_id)
);

CREATE TABLE forward_extremities (
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (room_id, event_id)
);

CREATE TABLE redactions (
    redacts TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (redacts, event_id)
);

CREATE TABLE event_txn_ids (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    inserted_ts {BIGINT} NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
);

-- Room state as deltas: a snapshot is its parent plus a few changed keys, so a new
-- state event costs one small row. Chains are cut (a full snapshot is written) every
-- so often so reading any snapshot stays cheap.
CREATE TABLE state_groups (
    id {BIGINT} PRIMARY KEY,
    room_id TEXT NOT NULL,
    prev_group {BIGINT},
    chain_length INTEGER NOT NULL
);

CREATE TABLE state_group_entries (
    state_group {BIGINT} NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    -- NULL: the key was removed relative to the parent snapshot
    event_id TEXT,
    PRIMARY KEY (state_group, type, state_key)
);

-- The current state of every room: one cheap lookup.
CREATE TABLE current_state (
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id TEXT NOT NULL,
    membership TEXT,
    PRIMARY KEY (room_id, type, state_key)
);
CREATE INDEX current_state_members ON current_state (state_key, type);

-- Each local user's latest membership per room (joined, invited, left...), with the
-- stream position of the change: what /sync, /joined_rooms and forget read.
CREATE TABLE local_memberships (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    membership TEXT NOT NULL,
    event_id TEXT NOT NULL,
    stream_ordering {BIGINT} NOT NULL,
    forgotten BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (user_id, room_id)
);
CREATE INDEX local_memberships_room ON local_memberships (room_id);

CREATE TABLE room_aliases (
    room_alias TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    creator TEXT
);
CREATE INDEX room_aliases_room ON room_aliases (room_id);

CREATE TABLE account_data (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    content TEXT NOT NULL,
    stream_id {BIGINT} NOT NULL,
    PRIMARY KEY (user_id, room_id, type)
);
CREATE INDEX account_data_stream ON account_data (user_id, stream_id);

CREATE TABLE receipts (
    room_id TEXT NOT NULL,
    receipt_type TEXT NOT NULL,
    user_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    ts {BIGINT} NOT NULL,
    stream_id {BIGINT} NOT NULL,
    PRIMARY KEY (room_id, receipt_type, user_id, thread_id)
);
CREATE INDEX receipts_stream ON receipts (room_id, stream_id);

CREATE TABLE to_device_messages (
    stream_id {BIGINT} PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX to_device_target ON to_device_messages (user_id, device_id, stream_id);

CREATE TABLE presence (
    user_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    status_msg TEXT,
    last_active_ts {BIGINT} NOT NULL,
    stream_id {BIGINT} NOT NULL
);
CREATE INDEX presence_stream ON presence (stream_id);

CREATE TABLE filters (
    user_id TEXT NOT NULL,
    filter_id {BIGINT} NOT NULL,
    filter_json TEXT NOT NULL,
    PRIMARY KEY (user_id, filter_id)
);

CREATE TABLE media (
    media_id TEXT PRIMARY KEY,
    user_id TEXT,
    content_type TEXT,
    upload_name TEXT,
    size {BIGINT} NOT NULL,
    created_ts {BIGINT} NOT NULL
);

CREATE TABLE push_rules (
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    priority INTEGER NOT NULL,
    rule_json TEXT NOT NULL,
    PRIMARY KEY (user_id, kind, rule_id)
);

CREATE TABLE push_rules_enabled (
    user_id TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    actions TEXT,
    PRIMARY KEY (user_id, rule_id)
);

-- Per user and room: notification and highlight counts since their last read receipt.
CREATE TABLE event_push_counts (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    notif_count INTEGER NOT NULL,
    highlight_count INTEGER NOT NULL,
    last_stream_ordering {BIGINT} NOT NULL,
    PRIMARY KEY (user_id, room_id, thread_id)
);

CREATE TABLE openid_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    expires_ts {BIGINT} NOT NULL
);

-- Device-list and membership changes feed /sync's device_lists and /keys/changes.
CREATE TABLE device_list_changes (
    stream_id {BIGINT} NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (stream_id, user_id)
);
CREATE INDEX device_list_changes_user ON device_list_changes (user_id, stream_id);
