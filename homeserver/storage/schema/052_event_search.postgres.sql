-- Full-text search over room events (POST /search), as Synapse's event_search on
-- PostgreSQL: a tsvector per searchable event (m.room.message body, m.room.name name,
-- m.room.topic topic) under a GIN index, written in the transaction that stores the event
-- and deleted when the event is redacted. Rejected, soft-failed and outlier events are not
-- indexed; encrypted events have no plaintext. state_group is the snapshot the event was
-- authorised against, so that counting matches the user may see needs no join.
CREATE TABLE event_search (
    stream_ordering BIGINT PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    room_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    type TEXT NOT NULL,
    key TEXT NOT NULL,
    vector tsvector NOT NULL,
    origin_server_ts BIGINT NOT NULL,
    state_group BIGINT
);
CREATE INDEX event_search_fts ON event_search USING GIN (vector);
CREATE INDEX event_search_room_recent ON event_search (room_id, origin_server_ts, stream_ordering);

-- Events stored before this migration. An event whose JSON holds an escaped NUL is left
-- out: PostgreSQL refuses to extract such a string as text.
INSERT INTO event_search (stream_ordering, event_id, room_id, sender, type, key, vector, origin_server_ts, state_group)
SELECT stream_ordering, event_id, room_id, sender, type, 'content.' || field,
       to_tsvector('english', (json::json -> 'content') ->> field), origin_server_ts, state_group
FROM (
    SELECT e.*,
           CASE e.type WHEN 'm.room.message' THEN 'body' WHEN 'm.room.name' THEN 'name' ELSE 'topic' END AS field
    FROM events e
    WHERE e.type IN ('m.room.message', 'm.room.name', 'm.room.topic')
      AND NOT e.outlier AND e.rejected_reason IS NULL AND NOT e.soft_failed
      AND position('\u0000' in e.json) = 0
      AND NOT EXISTS (SELECT 1 FROM redactions r WHERE r.redacts = e.event_id)
) candidates
WHERE json_typeof((json::json -> 'content') -> field) = 'string';
