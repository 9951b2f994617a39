-- End-to-end encryption: device keys, one-time and fallback keys, cross-signing keys and
-- signatures, the cache of remote users' keys, to-device transaction ids, and the
-- server-side key backup. The server only stores and moves these: all of it is public
-- key material, signatures or ciphertext.

CREATE TABLE e2e_device_keys (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    key_json TEXT NOT NULL,
    ts {BIGINT} NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

CREATE TABLE e2e_one_time_keys (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id TEXT NOT NULL,
    key_json TEXT NOT NULL,
    ts {BIGINT} NOT NULL,
    PRIMARY KEY (user_id, device_id, algorithm, key_id)
);

-- One fallback key per device and algorithm; "used" once it has been claimed.
CREATE TABLE e2e_fallback_keys (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id TEXT NOT NULL,
    key_json TEXT NOT NULL,
    used BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (user_id, device_id, algorithm)
);

-- keytype: master, self_signing, user_signing.
CREATE TABLE e2e_cross_signing_keys (
    user_id TEXT NOT NULL,
    keytype TEXT NOT NULL,
    key_json TEXT NOT NULL,
    stream_id {BIGINT} NOT NULL,
    PRIMARY KEY (user_id, keytype)
);

-- Signatures uploaded through /keys/signatures/upload: signer user_id with key_id over
-- target (a device id, or a cross-signing public key for master keys).
CREATE TABLE e2e_cross_signing_signatures (
    user_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    target_user_id TEXT NOT NULL,
    target_device_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (user_id, key_id, target_user_id, target_device_id)
);
CREATE INDEX e2e_cross_signing_signatures_target ON e2e_cross_signing_signatures (target_user_id, target_device_id);

-- What we last told other servers about each local user's devices (m.device_list_update
-- needs a per-user stream_id / prev_id chain). device_id '' stands for the cross-signing keys.
CREATE TABLE e2e_device_list_outbound (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);
CREATE TABLE e2e_device_list_outbound_stream (
    user_id TEXT PRIMARY KEY,
    stream_id {BIGINT} NOT NULL
);

-- Remote users' keys as last fetched over federation (a user/keys/query response for one
-- user); dropped whenever their server tells us their devices changed.
CREATE TABLE e2e_remote_keys_cache (
    user_id TEXT PRIMARY KEY,
    keys_json TEXT NOT NULL,
    ts {BIGINT} NOT NULL
);

-- sendToDevice is idempotent per (sender, device, txn id); inbound m.direct_to_device per
-- (origin, message_id).
CREATE TABLE to_device_txns (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    ts {BIGINT} NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
);

-- Server-side key backup (room_keys).
CREATE TABLE e2e_room_keys_versions (
    user_id TEXT NOT NULL,
    version {BIGINT} NOT NULL,
    algorithm TEXT NOT NULL,
    auth_data TEXT NOT NULL,
    etag {BIGINT} NOT NULL DEFAULT 0,
    deleted BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (user_id, version)
);

CREATE TABLE e2e_room_keys (
    user_id TEXT NOT NULL,
    version {BIGINT} NOT NULL,
    room_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    first_message_index {BIGINT} NOT NULL,
    forwarded_count {BIGINT} NOT NULL,
    is_verified BOOLEAN NOT NULL,
    session_data TEXT NOT NULL,
    PRIMARY KEY (user_id, version, room_id, session_id)
);
