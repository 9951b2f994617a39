-- MSC3814 dehydrated devices: at most one per user. device_data is the client's
-- encrypted (pickled) device; the server cannot read it.
CREATE TABLE e2e_dehydrated_devices (
    user_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    device_data TEXT NOT NULL,
    ts {BIGINT} NOT NULL
);
