-- Simplified sliding sync (storage/sliding_sync.py): per room, the stream position of its
-- latest live timeline event (the room list is sorted by it) and of its latest event of a
-- bump type (the room's bump_stamp). Kept up to date in the transaction that persists
-- events, so a user's room list is ordered from this index, not from every room's events.
CREATE TABLE room_activity (
    room_id TEXT PRIMARY KEY,
    last_event_stream {BIGINT} NOT NULL,
    last_bump_stream {BIGINT} NOT NULL
);

-- Existing rooms, from their events. The bump types are storage/sliding_sync.py's
-- BUMP_EVENT_TYPES (Synapse's default bump event types).
INSERT INTO room_activity (room_id, last_event_stream, last_bump_stream)
SELECT room_id, MAX(stream_ordering),
       MAX(CASE WHEN type IN ('m.room.create', 'm.room.message', 'm.room.encrypted', 'm.sticker',
                              'm.call.invite', 'm.poll.start', 'm.beacon_info')
                THEN stream_ordering ELSE 0 END)
FROM events
WHERE stream_ordering > 0 AND NOT outlier AND rejected_reason IS NULL AND NOT soft_failed
GROUP BY room_id;
