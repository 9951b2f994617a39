-- Transaction ids are pruned after 24 hours, as Synapse prunes them: by send time.
CREATE INDEX event_txn_ids_ts ON event_txn_ids (inserted_ts);
