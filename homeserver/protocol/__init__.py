"""Pure Matrix protocol algorithms (no I/O), one module per spec section.

* room_versions        -- room versions 1 to 12 and their feature flags
* identifiers          -- server names, user ids, the server part of an id
* canonical_json       -- canonical JSON encoding, strict decoding, value checks
* event_hashing        -- content hashes
* event_ids            -- reference hashes, event ids (v1/v2, v3, v4+), v12 room ids
* redaction            -- the redaction algorithm
* signing              -- JSON / event signing and verification, key files
* event_format         -- PDU format and size checks ("checks on receipt", step 1),
                          prev_events / auth_events readers
* auth_rules           -- authorisation rules and power level helpers
* state_resolution     -- the room version's state resolution algorithm:
* state_resolution_v1  --   v1 (room version 1)
* state_resolution_v2  --   v2 (v2-v11) and v2.1 (v12)

Events are plain PDU dicts.  Where the spec leaves room for interpretation
the behaviour matches Synapse, which the test-suite checks differentially.
"""
