-- The user directory: the latest profile seen for every user (local or remote) in a
-- member event, plus a case-folded "user id + display name" text to search. Which
-- users a searcher may see is decided at query time from current room membership.
CREATE TABLE user_directory (
    user_id TEXT PRIMARY KEY,
    display_name TEXT,
    avatar_url TEXT,
    search_text TEXT NOT NULL
);

-- How far through the event stream the directory has been brought up to date.
CREATE TABLE user_directory_position (
    id INTEGER PRIMARY KEY,
    stream_ordering {BIGINT} NOT NULL
);
