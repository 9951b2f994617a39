-- What each pusher has delivered, as Synapse's pushers table: it resumes after
-- last_stream_ordering (also after a restart); failing_since starts the give-up clock.
ALTER TABLE pushers ADD COLUMN last_stream_ordering {BIGINT};
ALTER TABLE pushers ADD COLUMN last_success {BIGINT};
ALTER TABLE pushers ADD COLUMN failing_since {BIGINT};
