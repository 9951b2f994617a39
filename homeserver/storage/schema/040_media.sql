-- Media repository: extra metadata for local media (001 has the base table) and a
-- cache of remote media fetched over federation.

-- SHA-256 of the content (dedupe/integrity), whether the id was created by
-- /media/v1/create and still waits for its content, and when that reservation lapses.
ALTER TABLE media ADD COLUMN sha256 TEXT;
ALTER TABLE media ADD COLUMN pending BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE media ADD COLUMN unused_expires_ts {BIGINT};
CREATE INDEX media_user_pending ON media (user_id, pending);

CREATE TABLE remote_media_cache (
    server_name TEXT NOT NULL,
    media_id TEXT NOT NULL,
    content_type TEXT,
    upload_name TEXT,
    size {BIGINT} NOT NULL,
    sha256 TEXT,
    -- name of the file under the store's remote/ directory
    filesystem_id TEXT NOT NULL,
    created_ts {BIGINT} NOT NULL,
    PRIMARY KEY (server_name, media_id)
);
