-- Full-text search over room events (POST /search), as Synapse's event_search: one row per
-- searchable event (m.room.message body, m.room.name name, m.room.topic topic), written in
-- the transaction that stores the event and deleted when the event is redacted. Rejected,
-- soft-failed and outlier events are not indexed; encrypted events have no plaintext.
-- stream_ordering is the row id the FTS5 index refers to (an INTEGER PRIMARY KEY keeps it
-- stable across VACUUM); state_group is the snapshot the event was authorised against, so
-- that counting matches the user may see needs no join.
CREATE TABLE event_search (
    stream_ordering INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    room_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    type TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    origin_server_ts INTEGER NOT NULL,
    state_group INTEGER
);
CREATE INDEX event_search_room_recent ON event_search (room_id, origin_server_ts, stream_ordering);

-- The index proper, over event_search's text (external content: the text is stored once).
-- The porter stemmer makes "messages" find "message", as PostgreSQL's english configuration
-- does for Synapse.
CREATE VIRTUAL TABLE event_search_fts USING fts5(
    value,
    content='event_search',
    content_rowid='stream_ordering',
    tokenize='porter unicode61 remove_diacritics 2'
);

-- Events stored before this migration.
INSERT INTO event_search (stream_ordering, event_id, room_id, sender, type, key, value, origin_server_ts, state_group)
SELECT stream_ordering, event_id, room_id, sender, type, key, replace(json_extract(json, path), char(0), ' '),
       origin_server_ts, state_group
FROM (
    SELECT e.*,
           CASE e.type WHEN 'm.room.message' THEN 'content.body' WHEN 'm.room.name' THEN 'content.name'
                       ELSE 'content.topic' END AS key,
           CASE e.type WHEN 'm.room.message' THEN '$.content.body' WHEN 'm.room.name' THEN '$.content.name'
                       ELSE '$.content.topic' END AS path
    FROM events e
    WHERE e.type IN ('m.room.message', 'm.room.name', 'm.room.topic')
      AND NOT e.outlier AND e.rejected_reason IS NULL AND NOT e.soft_failed
      AND NOT EXISTS (SELECT 1 FROM redactions r WHERE r.redacts = e.event_id)
) candidates
WHERE json_type(json, path) = 'text';

INSERT INTO event_search_fts (event_search_fts) VALUES ('rebuild');
