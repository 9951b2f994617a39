-- Media stored while `media.enable_authenticated_media` is on is served only on the
-- authenticated /_matrix/client/v1/media endpoints (Synapse's column of the same name,
-- schema delta 86/01). Media stored before keeps working on the legacy endpoints.
ALTER TABLE media ADD COLUMN authenticated BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE remote_media_cache ADD COLUMN authenticated BOOLEAN NOT NULL DEFAULT FALSE;
