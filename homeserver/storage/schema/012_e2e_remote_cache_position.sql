-- The stream position at which a remote user's keys were fetched: a membership change of
-- theirs after it (e.g. they left every shared room and came back, missing updates in
-- between) makes the cached keys untrustworthy.
ALTER TABLE e2e_remote_keys_cache ADD COLUMN stream_id {BIGINT} NOT NULL DEFAULT 0
