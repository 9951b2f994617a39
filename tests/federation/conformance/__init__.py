"""Ports of Complement's federation tests (matrix-org/complement), in our own words.

| Complement file | module | run against |
| --- | --- | --- |
| federation_room_join_test.go | test_room_join.py (+ version, fail-over, large-state cases) | Synapse + WSPR; 2 WSPR for the hs1/hs2 cases |
| federation_room_join_test.go (TestSendJoinPartialStateResponse) | test_partial_state_join.py | Synapse + WSPR |
| federation_room_join_partial_state_test.go | not ported: every case has the server under test make a partial-state join, which WSPR does not | |
| federation_room_get_missing_events_test.go | test_get_missing_events.py | Synapse + WSPR |
| federation_event_auth_test.go, federation_room_event_auth_test.go, federation_unreject_rejected_test.go | test_event_auth.py | Synapse + WSPR |
| federation_keys_test.go (+ its notary TODOs) | test_keys.py | Synapse + WSPR |
| federation_room_invite_test.go, federation_rooms_invite_test.go | test_invites.py | 2 WSPR (+ fake) |
| federation_acl_test.go | test_acl.py | 3 WSPR |
| federation_device_list_update_test.go, federation_to_device_test.go | test_device_lists.py | 2 WSPR |
| federation_presence_test.go, federation_room_typing_test.go, federation_query_profile_test.go, federation_room_alias_test.go, federation_upload_keys_test.go, federation_media_content_test.go | test_edus_queries.py | Synapse + WSPR (profile); 2 WSPR |
| federation_redaction_test.go, federation_room_ban_test.go | test_redaction_ban.py | Synapse + WSPR; 2 WSPR |
| federation_room_send_test.go | test_room_send.py | Synapse + WSPR |
| federation_encryption_test.go | test_encryption.py | 2 WSPR (matrix-nio) |
| restricted_rooms_test.go, knocking_test.go, knock_restricted_test.go (federation parts) | test_restricted_knock.py, test_room_join.py | 2-3 WSPR (+ fake) |
| sytest cases in Complement's TODO lists | test_inbound_events.py, test_keys.py | Synapse + WSPR |

See ``harness.py`` for how a scenario runs and ``tests/support/fake_homeserver.py`` for the
remote server.
"""
