-- Re-counting one thread's unread notifications after its read position moves is an
-- index range over just that thread's unread rows.
CREATE INDEX event_push_actions_thread ON event_push_actions (user_id, room_id, thread_id, stream_ordering);
