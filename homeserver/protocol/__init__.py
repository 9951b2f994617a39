"""Pure Matrix protocol algorithms (no I/O), one module per spec section.

* room_versions        -- supported room versions (10, 11, 12) and feature flags
* canonical_json       -- canonical JSON encoding, strict decoding, value checks
* event_hashing        -- content hashes
* event_ids            -- reference hashes, event ids, v12 room ids
* redaction            -- the redaction algorithm
* signing              -- JSON / event signing and verification, key files
* event_format         -- PDU format and size checks ("checks on receipt", step 1)
* auth_rules           -- authorisation rules and power level helpers
* state_resolution_v2  -- state resolution v2 (v10/v11) and v2.1 (v12)

Events are plain PDU dicts.  Where the spec leaves room for interpretation
the behaviour matches Synapse, which the test-suite checks differentially.
"""
