-- Thumbnails of remote media made by its origin server (fetched over
-- /_matrix/federation/v1/media/thumbnail while we do not hold the original), one per
-- configured thumbnail size asked for. The file is in the media store's
-- remote_thumbnails/ directory.
CREATE TABLE remote_media_thumbnails (
    server_name TEXT NOT NULL,
    media_id TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    method TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size {BIGINT} NOT NULL,
    created_ts {BIGINT} NOT NULL,
    PRIMARY KEY (server_name, media_id, width, height, method)
);

-- URL previews (Synapse's local_media_repository_url_cache): the OpenGraph answer for a
-- URL as downloaded at download_ts, served until expires_ts. Looked up by a hash of the
-- URL (URLs can be longer than an index entry may be).
CREATE TABLE url_previews (
    url_hash TEXT NOT NULL,
    url TEXT NOT NULL,
    download_ts {BIGINT} NOT NULL,
    expires_ts {BIGINT} NOT NULL,
    response_code INTEGER NOT NULL,
    og TEXT NOT NULL
);
CREATE INDEX url_previews_by_url ON url_previews (url_hash, download_ts);
CREATE INDEX url_previews_by_expiry ON url_previews (expires_ts);
