-- /timestamp_to_event looks a room's events up by origin_server_ts (Synapse's
-- events_room_id_origin_server_ts index).
CREATE INDEX events_room_ts ON events (room_id, origin_server_ts);
