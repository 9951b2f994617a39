-- Federation: remote servers' signing keys, the outbound queue per destination,
-- retry state of each destination, and inbound transaction ids already processed.

-- One row per (server, key id) as last fetched. valid_until_ts is how long the key may be
-- used for new signatures; expired_ts is set for old_verify_keys (valid for objects older
-- than it). key_json is the whole signed /key/v2/server response, served again as a notary.
CREATE TABLE server_keys (
    server_name TEXT NOT NULL,
    key_id TEXT NOT NULL,
    verify_key TEXT NOT NULL,
    valid_until_ts {BIGINT} NOT NULL,
    expired_ts {BIGINT},
    fetched_ts {BIGINT} NOT NULL,
    key_json TEXT NOT NULL,
    PRIMARY KEY (server_name, key_id)
);

-- The outbox: PDUs and EDUs waiting for a destination, sent in id order.
CREATE TABLE federation_outbox (
    id {AUTOINC_PK},
    destination TEXT NOT NULL,
    kind TEXT NOT NULL,
    room_id TEXT,
    payload TEXT NOT NULL,
    created_ts {BIGINT} NOT NULL
);
CREATE INDEX federation_outbox_dest ON federation_outbox (destination, id);

CREATE TABLE federation_destinations (
    destination TEXT PRIMARY KEY,
    retry_last_ts {BIGINT} NOT NULL,
    retry_interval_ms {BIGINT} NOT NULL
);

CREATE TABLE federation_received_txns (
    origin TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    response TEXT NOT NULL,
    received_ts {BIGINT} NOT NULL,
    PRIMARY KEY (origin, txn_id)
);
CREATE INDEX federation_received_txns_ts ON federation_received_txns (received_ts);
