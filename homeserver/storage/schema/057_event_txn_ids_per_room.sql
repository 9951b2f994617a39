-- Send transaction ids are scoped per room, as Synapse's event_txn_id_device_id
-- (room_id, user_id, device_id, txn_id): the same id in another room is a new event.
CREATE TABLE event_txn_ids_per_room (
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    inserted_ts {BIGINT} NOT NULL,
    PRIMARY KEY (room_id, user_id, device_id, txn_id)
);
INSERT INTO event_txn_ids_per_room (room_id, user_id, device_id, txn_id, event_id, inserted_ts)
    SELECT e.room_id, t.user_id, t.device_id, t.txn_id, t.event_id, t.inserted_ts
    FROM event_txn_ids t JOIN events e ON e.event_id = t.event_id;
DROP TABLE event_txn_ids;
ALTER TABLE event_txn_ids_per_room RENAME TO event_txn_ids;
-- Room purges delete by event id.
CREATE INDEX event_txn_ids_event ON event_txn_ids (event_id);
