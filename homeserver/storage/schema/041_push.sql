-- Push notifications. User-defined rules live in push_rules (001, rule_json also
-- carries "enabled"); the user's changes to server-default rules in push_rules_enabled.

-- One row per (recipient, event) whose push rules said "notify": the source of unread
-- counts (rows after the read position) and of GET /notifications.
CREATE TABLE event_push_actions (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    stream_ordering {BIGINT} NOT NULL,
    -- 'main' for the main timeline, else the thread root's event id
    thread_id TEXT NOT NULL,
    highlight BOOLEAN NOT NULL,
    actions TEXT NOT NULL,
    ts {BIGINT} NOT NULL,
    PRIMARY KEY (user_id, event_id)
);
CREATE INDEX event_push_actions_room ON event_push_actions (user_id, room_id, stream_ordering);
CREATE INDEX event_push_actions_stream ON event_push_actions (user_id, stream_ordering);

-- How far each user has read, per room and thread ('' = an unthreaded receipt, which
-- covers every thread). Only ever moves forward.
CREATE TABLE event_push_read (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    stream_ordering {BIGINT} NOT NULL,
    PRIMARY KEY (user_id, room_id, thread_id)
);

CREATE TABLE pushers (
    user_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    pushkey TEXT NOT NULL,
    kind TEXT NOT NULL,
    app_display_name TEXT,
    device_display_name TEXT,
    profile_tag TEXT,
    lang TEXT,
    data TEXT NOT NULL,
    device_id TEXT,
    created_ts {BIGINT} NOT NULL,
    PRIMARY KEY (app_id, pushkey, user_id)
);
CREATE INDEX pushers_user ON pushers (user_id);
