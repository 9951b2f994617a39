-- Relations of a room by type (/threads lists a room's threads): an index range over the
-- room's relating events only, not a scan of every event of the room. Partial: most
-- events relate to nothing.
CREATE INDEX events_room_relations ON events (room_id, rel_type, stream_ordering) WHERE rel_type IS NOT NULL;
