"""Room versions, canonical JSON, content hashes, event ids, signing and
redaction -- against the spec's own examples where it gives them, otherwise
against vectors produced by Synapse 1.163 (the reference implementation)."""

from __future__ import annotations

import copy
import json

from twisted.trial import unittest
from unpaddedbase64 import encode_base64

from homeserver.protocol import (
    canonical_json,
    event_hashing,
    event_ids,
    redaction,
    room_versions,
    signing,
)

SPEC_SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"


def spec_signing_key() -> signing.SigningKey:
    return signing.decode_signing_key_base64("ed25519", "1", SPEC_SEED)


class RoomVersionsTests(unittest.TestCase):
    def test_known_versions(self) -> None:
        self.assertEqual(set(room_versions.KNOWN_ROOM_VERSIONS), {str(n) for n in range(1, 13)})
        self.assertEqual(room_versions.DEFAULT_ROOM_VERSION, "11")
        v10, v11, v12 = (room_versions.get_room_version(v) for v in ("10", "11", "12"))
        self.assertFalse(v10.implicit_room_creator)
        self.assertFalse(v10.updated_redaction_rules)
        self.assertTrue(v11.implicit_room_creator and v11.updated_redaction_rules)
        self.assertFalse(v11.room_id_from_create_event)
        self.assertTrue(v12.room_id_from_create_event)
        self.assertTrue(v12.creators_have_infinite_power)
        self.assertFalse(v12.create_event_in_auth_events)
        self.assertTrue(v11.create_event_in_auth_events)
        self.assertIs(room_versions.get_room_version(v12), v12)

    def test_unsupported(self) -> None:
        for bad in ("0", "13", "org.matrix.hydra.11", "", None):
            with self.assertRaises(room_versions.UnsupportedRoomVersion):
                room_versions.get_room_version(bad)  # type: ignore[arg-type]
        # KeyError-like so `except KeyError` callers work.
        self.assertTrue(issubclass(room_versions.UnsupportedRoomVersion, KeyError))


class CanonicalJsonTests(unittest.TestCase):
    # (input JSON text, expected canonical output) from appendices.md.
    SPEC_EXAMPLES = [
        ("{}", "{}"),
        ('{"one": 1, "two": "Two"}', '{"one":1,"two":"Two"}'),
        ('{"b": "2", "a": "1"}', '{"a":"1","b":"2"}'),
        ('{"b":"2","a":"1"}', '{"a":"1","b":"2"}'),
        (
            """{"auth": {"success": true, "mxid": "@john.doe:example.com",
               "profile": {"display_name": "John Doe", "three_pids": [
                 {"medium": "email", "address": "john.doe@example.org"},
                 {"medium": "msisdn", "address": "123456789"}]}}}""",
            '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe",'
            '"three_pids":[{"address":"john.doe@example.org","medium":"email"},'
            '{"address":"123456789","medium":"msisdn"}]},"success":true}}',
        ),
        ('{"a": "日本語"}', '{"a":"日本語"}'),
        ('{"本": 2, "日": 1}', '{"日":1,"本":2}'),
        ('{"a": "\\u65E5"}', '{"a":"日"}'),
        ('{"a": null}', '{"a":null}'),
        ('{"a": -0, "b": 1e10}', '{"a":0,"b":10000000000}'),
    ]

    def test_spec_examples(self) -> None:
        for text, expected in self.SPEC_EXAMPLES:
            self.assertEqual(
                canonical_json.encode_canonical_json(json.loads(text), normalise_numbers=True),
                expected.encode("utf-8"),
                text,
            )
            # Without number normalisation (the Synapse-compatible default)
            # only the exponent example differs.
            default = canonical_json.encode_canonical_json(canonical_json.decode_json(text))
            if "1e10" in text:
                self.assertEqual(default, b'{"a":0,"b":10000000000.0}')
            else:
                self.assertEqual(default, expected.encode("utf-8"), text)

    def test_control_characters_escaped(self) -> None:
        self.assertEqual(
            canonical_json.encode_canonical_json({"a": "\n\x01\"\\"}),
            b'{"a":"\\n\\u0001\\"\\\\"}',
        )

    def test_value_checks(self) -> None:
        ok = {"a": [1, -(2**53) + 1, 2**53 - 1, True, None, "x", {"b": False}]}
        canonical_json.check_canonical_json_values(ok)
        for bad in (
            {"a": 1.5},
            {"a": [1.0]},
            {"a": 2**53},
            {"a": {"b": -(2**53)}},
            {"a": float("nan")},
            {"a": float("inf")},
            {"a": {1, 2}},
            {1: "x"},
        ):
            with self.assertRaises(ValueError, msg=repr(bad)):
                canonical_json.check_canonical_json_values(bad)


class JsonSigningTests(unittest.TestCase):
    def test_spec_empty_object(self) -> None:
        signed = signing.sign_json({}, "domain", spec_signing_key())
        self.assertEqual(
            signed,
            {
                "signatures": {
                    "domain": {
                        "ed25519:1": "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"
                    }
                }
            },
        )

    def test_spec_object_with_data(self) -> None:
        original = {"one": 1, "two": "Two"}
        signed = signing.sign_json(original, "domain", spec_signing_key())
        self.assertEqual(original, {"one": 1, "two": "Two"}, "input must not be mutated")
        self.assertEqual(
            signed["signatures"]["domain"]["ed25519:1"],
            "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw",
        )
        verify_key = signing.get_verify_key(spec_signing_key())
        signing.verify_json(signed, "domain", verify_key)
        tampered = dict(signed, one=2)
        with self.assertRaises(signing.SignatureError):
            signing.verify_json(tampered, "domain", verify_key)
        with self.assertRaises(signing.SignatureError):
            signing.verify_json(signed, "other.server", verify_key)

    def test_unsigned_not_covered_and_other_signatures_kept(self) -> None:
        key = spec_signing_key()
        other = signing.generate_signing_key("x")
        obj = signing.sign_json({"a": 1, "unsigned": {"age": 1}}, "domain", key)
        obj = signing.sign_json(obj, "other", other)
        obj["unsigned"] = {"age": 99}
        signing.verify_json(obj, "domain", signing.get_verify_key(key))
        signing.verify_json(obj, "other", signing.get_verify_key(other))

    def test_key_file_round_trip(self) -> None:
        key = signing.generate_signing_key("a_bc1")
        text = signing.write_signing_keys([key])
        self.assertTrue(text.startswith("ed25519 a_bc1 "))
        (loaded,) = signing.read_signing_keys("\n" + text + "\n")
        self.assertEqual(signing.key_id(loaded), "ed25519:a_bc1")
        self.assertEqual(
            signing.encode_signing_key_base64(loaded), signing.encode_signing_key_base64(key)
        )
        spec = signing.read_signing_keys(f"ed25519 1 {SPEC_SEED}")[0]
        self.assertEqual(
            signing.encode_verify_key_base64(signing.get_verify_key(spec)),
            signing.encode_verify_key_base64(signing.get_verify_key(spec_signing_key())),
        )


class EventSigningTests(unittest.TestCase):
    # appendices.md "Event Signing".  The spec's vectors predate room version
    # 11 (they rely on `origin` surviving redaction), so they are checked with
    # room version 10, whose redaction rules keep `origin`.
    MINIMAL = {
        "room_id": "!x:domain",
        "sender": "@a:domain",
        "origin": "domain",
        "origin_server_ts": 1000000,
        "signatures": {},
        "hashes": {},
        "type": "X",
        "content": {},
        "prev_events": [],
        "auth_events": [],
        "depth": 3,
        "unsigned": {"age_ts": 1000000},
    }
    REDACTABLE = {
        "content": {"body": "Here is the message content"},
        "event_id": "$0:domain",
        "origin": "domain",
        "origin_server_ts": 1000000,
        "type": "m.room.message",
        "room_id": "!r:domain",
        "sender": "@u:domain",
        "signatures": {},
        "unsigned": {"age_ts": 1000000},
    }

    def test_spec_minimal_event(self) -> None:
        signed = signing.sign_event(self.MINIMAL, "10", "domain", spec_signing_key())
        self.assertEqual(signed["hashes"], {"sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"})
        self.assertEqual(
            signed["signatures"],
            {
                "domain": {
                    "ed25519:1": "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg"
                }
            },
        )
        self.assertEqual(signed["unsigned"], {"age_ts": 1000000})
        self.assertTrue(event_hashing.check_content_hash(signed))
        signing.verify_event_signature(
            signed, "10", "domain", signing.get_verify_key(spec_signing_key())
        )

    def test_spec_redactable_event(self) -> None:
        signed = signing.sign_event(self.REDACTABLE, "10", "domain", spec_signing_key())
        self.assertEqual(signed["hashes"], {"sha256": "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"})
        self.assertEqual(
            signed["signatures"]["domain"]["ed25519:1"],
            "Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA",
        )
        self.assertEqual(signed["content"], {"body": "Here is the message content"})
        vk = signing.get_verify_key(spec_signing_key())
        # The signature survives redaction, but the content hash does not.
        redacted = redaction.redact_event(signed, "10")
        signing.verify_event_signature(redacted, "10", "domain", vk)
        self.assertFalse(event_hashing.check_content_hash(redacted))
        self.assertTrue(event_hashing.check_content_hash(signed))
        # Tampering with an essential key breaks the signature.
        with self.assertRaises(signing.SignatureError):
            signing.verify_event_signature(dict(signed, sender="@evil:domain"), "10", "domain", vk)

    def test_v11_signature_ignores_origin(self) -> None:
        key = spec_signing_key()
        vk = signing.get_verify_key(key)
        signed = signing.sign_event(self.MINIMAL, "11", "domain", key)
        # v11 drops `origin` from the redacted form, so changing it does not
        # affect the signature (but it does affect the content hash).
        changed = dict(signed, origin="elsewhere")
        signing.verify_event_signature(changed, "11", "domain", vk)
        self.assertFalse(event_hashing.check_content_hash(changed))
        with self.assertRaises(signing.SignatureError):
            signing.verify_event_signature(changed, "10", "domain", vk)

    def test_cosigning_keeps_existing_hash_and_signatures(self) -> None:
        a = signing.generate_signing_key("a")
        b = signing.generate_signing_key("b")
        ev = signing.sign_event(self.MINIMAL, "11", "domain", a)
        ev2 = signing.sign_event(ev, "11", "other", b)
        self.assertEqual(ev2["hashes"], ev["hashes"])
        self.assertEqual(set(ev["signatures"]), {"domain"}, "input must not be mutated")
        self.assertEqual(self.MINIMAL["signatures"], {})
        signing.verify_event_signature(ev2, "11", "domain", signing.get_verify_key(a))
        signing.verify_event_signature(ev2, "11", "other", signing.get_verify_key(b))

    def test_required_signing_servers(self) -> None:
        msg = {"type": "m.room.message", "sender": "@a:one.org", "content": {}}
        self.assertEqual(signing.required_signing_servers(msg, "11"), {"one.org"})
        join = {
            "type": "m.room.member",
            "sender": "@a:one.org:8448",
            "state_key": "@a:one.org:8448",
            "content": {"membership": "join", "join_authorised_via_users_server": "@b:two.org"},
        }
        self.assertEqual(signing.required_signing_servers(join, "10"), {"one.org:8448", "two.org"})
        tpi = {
            "type": "m.room.member",
            "sender": "@a:one.org",
            "state_key": "@c:three.org",
            "content": {"membership": "invite", "third_party_invite": {"signed": {}}},
        }
        self.assertEqual(signing.required_signing_servers(tpi, "12"), set())


class ContentHashTests(unittest.TestCase):
    def test_excluded_keys(self) -> None:
        ev = {"type": "m.room.message", "content": {"body": "x"}, "sender": "@a:b"}
        h = event_hashing.compute_content_hash(ev)
        noisy = dict(ev, unsigned={"age": 3}, signatures={"b": {}}, hashes={"sha256": "zz"})
        self.assertEqual(event_hashing.compute_content_hash(noisy), h)
        self.assertNotEqual(event_hashing.compute_content_hash(dict(ev, content={"body": "y"})), h)

    def test_add_and_check(self) -> None:
        ev = {"type": "m.room.message", "content": {"body": "x"}, "hashes": {"other": "q"}}
        hashed = event_hashing.add_content_hash(ev)
        self.assertNotIn("sha256", ev["hashes"], "input must not be mutated")
        self.assertEqual(hashed["hashes"]["other"], "q")
        self.assertTrue(event_hashing.check_content_hash(hashed))
        self.assertFalse(event_hashing.check_content_hash(ev))
        self.assertFalse(event_hashing.check_content_hash(dict(hashed, hashes={"sha256": "!!"})))
        self.assertFalse(event_hashing.check_content_hash(dict(hashed, hashes="x")))


class EventIdTests(unittest.TestCase):
    # Vectors computed with Synapse 1.163's make_event_from_dict(...).event_id.
    MESSAGE = {
        "type": "m.room.message",
        "sender": "@alice:example.org",
        "room_id": "!foo:example.org",
        "content": {"body": "hi", "msgtype": "m.text"},
        "origin_server_ts": 1700000000001,
        "depth": 3,
        "prev_events": ["$a"],
        "auth_events": ["$b", "$c"],
        "hashes": {"sha256": "xyz"},
        "signatures": {"example.org": {"ed25519:1": "sig"}},
        "unsigned": {"age": 5},
        "origin": "example.org",
    }
    V12_CREATE = {
        "type": "m.room.create",
        "state_key": "",
        "sender": "@alice:example.org",
        "content": {"room_version": "12", "additional_creators": ["@bob:other.org"]},
        "origin_server_ts": 1700000000000,
        "depth": 1,
        "prev_events": [],
        "auth_events": [],
        "hashes": {"sha256": "abc"},
        "signatures": {},
    }

    def test_event_ids_match_synapse(self) -> None:
        self.assertEqual(
            event_ids.compute_event_id(self.MESSAGE, "10"),
            "$3rHbGjO9a77sIvrS0L13PShA6d3CYe9Obgk9_DTd-lc",
        )
        # v11 redaction drops `origin`, changing the reference hash.
        self.assertEqual(
            event_ids.compute_event_id(self.MESSAGE, "11"),
            "$PZGLYyBE63WiQ9W-rOd4akSzRK2_w22oAylphkHgUzA",
        )

    def test_id_ignores_signatures_unsigned_body_and_local_event_id(self) -> None:
        base = event_ids.compute_event_id(self.MESSAGE, "11")
        variant = copy.deepcopy(self.MESSAGE)
        variant["signatures"] = {"x": {"ed25519:2": "other"}}
        variant["unsigned"] = {"age": 100}
        variant["content"]["body"] = "redactable change"
        variant["event_id"] = base
        self.assertEqual(event_ids.compute_event_id(variant, "11"), base)
        variant["hashes"] = {"sha256": "changed"}
        self.assertNotEqual(event_ids.compute_event_id(variant, "11"), base)
        self.assertEqual(len(event_ids.compute_reference_hash(self.MESSAGE, "11")), 32)

    def test_v12_room_id(self) -> None:
        self.assertEqual(
            event_ids.compute_event_id(self.V12_CREATE, "12"),
            "$wJn4GzMNL5_sMC9-X7aS8w3ik6kRnj4Nj-RJjZEECdQ",
        )
        self.assertEqual(
            event_ids.compute_room_id_from_create_event(self.V12_CREATE),
            "!wJn4GzMNL5_sMC9-X7aS8w3ik6kRnj4Nj-RJjZEECdQ",
        )
        self.assertEqual(
            event_ids.create_event_id_from_room_id("!wJn4GzMNL5_sMC9-X7aS8w3ik6kRnj4Nj-RJjZEECdQ"),
            "$wJn4GzMNL5_sMC9-X7aS8w3ik6kRnj4Nj-RJjZEECdQ",
        )
        with self.assertRaises(ValueError):
            event_ids.compute_room_id_from_create_event(self.V12_CREATE, "11")


class RedactionTests(unittest.TestCase):
    MEMBER = {
        "type": "m.room.member",
        "state_key": "@bob:x",
        "sender": "@bob:x",
        "room_id": "!r:x",
        "content": {
            "membership": "invite",
            "displayname": "B",
            "third_party_invite": {"display_name": "x", "signed": {"mxid": "@bob:x", "token": "t"}},
            "join_authorised_via_users_server": "@a:x",
        },
        "origin": "x",
        "membership": "invite",
        "prev_state": [],
        "depth": 1,
        "auth_events": [],
        "prev_events": [],
        "origin_server_ts": 5,
        "hashes": {},
        "signatures": {},
        "unsigned": {"age": 1},
        "extra_key": 1,
    }

    def test_member_v10_matches_synapse(self) -> None:
        self.assertEqual(
            redaction.redact_event(self.MEMBER, "10"),
            {
                "auth_events": [],
                "content": {"join_authorised_via_users_server": "@a:x", "membership": "invite"},
                "depth": 1,
                "hashes": {},
                "membership": "invite",
                "origin": "x",
                "origin_server_ts": 5,
                "prev_events": [],
                "prev_state": [],
                "room_id": "!r:x",
                "sender": "@bob:x",
                "signatures": {},
                "state_key": "@bob:x",
                "type": "m.room.member",
            },
        )

    def test_member_v11_matches_synapse(self) -> None:
        self.assertEqual(
            redaction.redact_event(self.MEMBER, "11"),
            {
                "auth_events": [],
                "content": {
                    "join_authorised_via_users_server": "@a:x",
                    "membership": "invite",
                    "third_party_invite": {"signed": {"mxid": "@bob:x", "token": "t"}},
                },
                "depth": 1,
                "hashes": {},
                "origin_server_ts": 5,
                "prev_events": [],
                "room_id": "!r:x",
                "sender": "@bob:x",
                "signatures": {},
                "state_key": "@bob:x",
                "type": "m.room.member",
            },
        )
        self.assertIn("displayname", self.MEMBER["content"], "input must not be mutated")

    def _content(self, etype: str, content: dict, version: str) -> dict:
        return redaction.redact_event({"type": etype, "content": content}, version)["content"]

    def test_content_rules(self) -> None:
        create = {"creator": "@a:b", "room_version": "10", "m.federate": False, "predecessor": {}}
        self.assertEqual(self._content("m.room.create", create, "10"), {"creator": "@a:b"})
        self.assertEqual(self._content("m.room.create", create, "11"), create)
        self.assertEqual(self._content("m.room.create", create, "12"), create)
        jr = {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}], "x": 1}
        for v in ("10", "11", "12"):
            self.assertEqual(
                self._content("m.room.join_rules", jr, v),
                {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}]},
            )
        pl = {
            "ban": 50, "events": {"a": 1}, "events_default": 0, "invite": 0, "kick": 50,
            "redact": 50, "state_default": 50, "users": {"@a:b": 100}, "users_default": 0,
            "notifications": {"room": 50},
        }
        expected_v10 = {k: v for k, v in pl.items() if k not in ("invite", "notifications")}
        self.assertEqual(self._content("m.room.power_levels", pl, "10"), expected_v10)
        self.assertEqual(
            self._content("m.room.power_levels", pl, "11"), dict(expected_v10, invite=0)
        )
        self.assertEqual(
            self._content("m.room.history_visibility", {"history_visibility": "shared", "x": 1}, "11"),
            {"history_visibility": "shared"},
        )
        self.assertEqual(self._content("m.room.redaction", {"redacts": "$x", "reason": "r"}, "10"), {})
        self.assertEqual(
            self._content("m.room.redaction", {"redacts": "$x", "reason": "r"}, "11"), {"redacts": "$x"}
        )
        self.assertEqual(self._content("m.room.message", {"body": "x"}, "11"), {})
        self.assertEqual(self._content("m.room.aliases", {"aliases": ["#a:b"]}, "10"), {})
        # A member event whose third_party_invite lacks `signed` keeps an empty object (Synapse).
        self.assertEqual(
            self._content("m.room.member", {"membership": "invite", "third_party_invite": {"x": 1}}, "11"),
            {"membership": "invite", "third_party_invite": {}},
        )

    def test_top_level_keys(self) -> None:
        ev = {"type": "m.room.message", "content": {"body": "x"}, "redacts": "$y", "origin": "o",
              "prev_state": [], "membership": "join", "unsigned": {"age_ts": 1}}
        self.assertEqual(
            redaction.redact_event(ev, "10"),
            {"type": "m.room.message", "content": {}, "origin": "o", "prev_state": [], "membership": "join"},
        )
        self.assertEqual(redaction.redact_event(ev, "11"), {"type": "m.room.message", "content": {}})
        self.assertEqual(redaction.redact_event({"type": "x"}, "11"), {"type": "x", "content": {}})


class MultiKeyVerificationTests(unittest.TestCase):
    def setUp(self) -> None:
        self.k1 = signing.generate_signing_key("k1")
        self.k2 = signing.generate_signing_key("k2")
        self.known = {
            "ed25519:k1": signing.get_verify_key(self.k1),
            "ed25519:k2": signing.get_verify_key(self.k2),
        }

    def test_known_keys(self) -> None:
        obj = signing.sign_json({"a": 1}, "s.example", self.k1)
        signing.verify_json_with_keys(obj, "s.example", self.known)
        # An extra signature by a key we don't know is ignored.
        obj2 = signing.sign_json(obj, "s.example", signing.generate_signing_key("unknown"))
        signing.verify_json_with_keys(obj2, "s.example", self.known)

    def test_failures(self) -> None:
        obj = signing.sign_json({"a": 1}, "s.example", self.k1)
        with self.assertRaises(signing.SignatureError):
            signing.verify_json_with_keys(obj, "other.example", self.known)
        with self.assertRaises(signing.SignatureError):
            signing.verify_json_with_keys(obj, "s.example", {"ed25519:k2": self.known["ed25519:k2"]})
        # Every signature by a known key must verify.
        bad = signing.sign_json(obj, "s.example", self.k2)
        bad["signatures"]["s.example"]["ed25519:k2"] = obj["signatures"]["s.example"]["ed25519:k1"]
        with self.assertRaises(signing.SignatureError):
            signing.verify_json_with_keys(bad, "s.example", self.known)
        unsupported = {"a": 1, "signatures": {"s.example": {"rsa:1": "x"}}}
        with self.assertRaises(signing.SignatureError):
            signing.verify_json_with_keys(unsupported, "s.example", self.known)

    def test_key_registered_under_other_id(self) -> None:
        obj = signing.sign_json({"a": 1}, "s.example", self.k1)
        vk = signing.decode_verify_key_base64("ed25519", "other", signing.encode_verify_key_base64(signing.get_verify_key(self.k1)))
        signing.verify_json_with_keys(obj, "s.example", {"ed25519:k1": vk})

    def test_event_signatures(self) -> None:
        authoriser = signing.generate_signing_key("a")
        join = {
            "type": "m.room.member", "sender": "@u:one.example", "state_key": "@u:one.example",
            "room_id": "!r:one.example", "content": {"membership": "join", "join_authorised_via_users_server": "@x:two.example"},
            "origin_server_ts": 1, "depth": 2, "prev_events": [], "auth_events": [],
        }
        signed = signing.sign_event(join, "11", "one.example", self.k1)
        keys = {"one.example": self.known, "two.example": {"ed25519:a": signing.get_verify_key(authoriser)}}
        with self.assertRaises(signing.SignatureError):
            signing.verify_event_signatures(signed, "11", keys)  # authoriser missing
        cosigned = signing.sign_event(signed, "11", "two.example", authoriser)
        signing.verify_event_signatures(cosigned, "11", keys)
        # Redacting the event keeps the signatures valid.
        signing.verify_event_signatures(redaction.redact_event(cosigned, "11"), "11", keys)
        tampered = dict(cosigned, content=dict(cosigned["content"], membership="leave"))
        with self.assertRaises(signing.SignatureError):
            signing.verify_event_signatures(tampered, "11", keys)


class MalformedSignatureTests(unittest.TestCase):
    def test_malformed_signatures_are_signature_errors(self) -> None:
        vk = signing.get_verify_key(spec_signing_key())
        for sigs in ([], {"domain": []}, {"domain": {"ed25519:1": 5}}, {"domain": {"ed25519:1": "!!!"}}, "x"):
            with self.assertRaises(signing.SignatureError, msg=repr(sigs)):
                signing.verify_json({"a": 1, "signatures": sigs}, "domain", vk)
            with self.assertRaises(signing.SignatureError, msg=repr(sigs)):
                signing.verify_event_signature({"type": "x", "content": {}, "signatures": sigs}, "11", "domain", vk)
        with self.assertRaises(signing.SignatureError):
            signing.verify_json({"a": 1}, "domain", vk)


class LegacyEventIdTests(unittest.TestCase):
    """Room versions 1-3 event ids (vectors from Synapse 1.163)."""

    MESSAGE = EventIdTests.MESSAGE
    V1_MESSAGE = dict(
        EventIdTests.MESSAGE,
        event_id="$15:example.org",
        prev_events=[["$a:example.org", {"sha256": "aaa"}]],
        auth_events=[["$b:example.org", {"sha256": "bbb"}], ["$c:example.org", {}]],
    )

    def test_v3_standard_base64_v4_url_safe(self) -> None:
        # The same reference hash; v3 spells it with "/" and "+".
        self.assertEqual(event_ids.compute_event_id(self.MESSAGE, "3"), "$3rHbGjO9a77sIvrS0L13PShA6d3CYe9Obgk9/DTd+lc")
        for v in ("4", "5", "6", "7", "8", "9", "10"):
            self.assertEqual(event_ids.compute_event_id(self.MESSAGE, v), "$3rHbGjO9a77sIvrS0L13PShA6d3CYe9Obgk9_DTd-lc", v)
        # A local event_id does not feed back into the v3 hash either.
        self.assertEqual(
            event_ids.compute_event_id(dict(self.MESSAGE, event_id="$x"), "3"),
            "$3rHbGjO9a77sIvrS0L13PShA6d3CYe9Obgk9/DTd+lc",
        )

    def test_v1_v2_ids_come_from_the_pdu(self) -> None:
        for v in ("1", "2"):
            self.assertEqual(event_ids.compute_event_id(self.V1_MESSAGE, v), "$15:example.org")
            with self.assertRaises(ValueError):
                event_ids.compute_event_id(self.MESSAGE, v)
            # The id is part of the PDU, so of its reference hash.
            self.assertEqual(
                encode_base64(event_ids.compute_reference_hash(self.V1_MESSAGE, v)),
                "L87s7T4grVqqEgeaqjaxG4mTbSHS4MozI/QErLzUPGk",
            )
            other = dict(self.V1_MESSAGE, event_id="$16:example.org")
            self.assertNotEqual(event_ids.compute_reference_hash(other, v), event_ids.compute_reference_hash(self.V1_MESSAGE, v))

    def test_references(self) -> None:
        self.assertEqual(
            event_ids.event_reference(self.V1_MESSAGE, "1"),
            ["$15:example.org", {"sha256": "L87s7T4grVqqEgeaqjaxG4mTbSHS4MozI/QErLzUPGk"}],
        )
        self.assertEqual(event_ids.event_reference(self.MESSAGE, "3"), "$3rHbGjO9a77sIvrS0L13PShA6d3CYe9Obgk9/DTd+lc")
        self.assertEqual(event_ids.event_reference(self.MESSAGE, "11"), event_ids.compute_event_id(self.MESSAGE, "11"))

    def test_make_legacy_event_id(self) -> None:
        self.assertEqual(event_ids.make_legacy_event_id("1700000000abc", "example.org:8448"), "$1700000000abc:example.org:8448")
        for bad in ("", "a:b"):
            with self.assertRaises(ValueError):
                event_ids.make_legacy_event_id(bad, "example.org")


class RedactionPerVersionTests(unittest.TestCase):
    """What each room version's redaction algorithm keeps ("Redactions" on
    the v1, v6, v8, v9 and v11 pages)."""

    def _content(self, etype: str, content: dict, version: str) -> dict:
        return redaction.redact_event({"type": etype, "content": content}, version)["content"]

    def test_aliases_until_v6(self) -> None:
        aliases = {"aliases": ["#a:b"], "x": 1}
        for v in ("1", "2", "3", "4", "5"):
            self.assertEqual(self._content("m.room.aliases", aliases, v), {"aliases": ["#a:b"]}, v)
        for v in ("6", "9", "10", "11"):
            self.assertEqual(self._content("m.room.aliases", aliases, v), {}, v)

    def test_join_rules_allow_from_v8(self) -> None:
        jr = {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": "!a:b"}], "x": 1}
        for v in ("1", "7"):
            self.assertEqual(self._content("m.room.join_rules", jr, v), {"join_rule": "restricted"}, v)
        for v in ("8", "9", "10"):
            self.assertEqual(self._content("m.room.join_rules", jr, v), {k: jr[k] for k in ("join_rule", "allow")}, v)

    def test_authorising_user_from_v9(self) -> None:
        member = {"membership": "join", "join_authorised_via_users_server": "@a:b", "displayname": "x"}
        for v in ("1", "7", "8"):
            self.assertEqual(self._content("m.room.member", member, v), {"membership": "join"}, v)
        for v in ("9", "10", "11"):
            self.assertEqual(
                self._content("m.room.member", member, v),
                {"membership": "join", "join_authorised_via_users_server": "@a:b"},
                v,
            )

    def test_v1_keeps_event_id_and_legacy_top_level_keys(self) -> None:
        ev = dict(LegacyEventIdTests.V1_MESSAGE, membership="join", prev_state=[], redacts="$x:y")
        redacted = redaction.redact_event(ev, "1")
        self.assertEqual(redacted["event_id"], "$15:example.org")
        self.assertEqual((redacted["origin"], redacted["membership"], redacted["prev_state"]), ("example.org", "join", []))
        self.assertNotIn("redacts", redacted)
        self.assertEqual(redacted["content"], {})


class LegacySigningTests(unittest.TestCase):
    def test_v1_event_id_server_must_sign(self) -> None:
        join = {
            "type": "m.room.member",
            "event_id": "$abc:resident.org",
            "sender": "@a:joiner.org",
            "state_key": "@a:joiner.org",
            "content": {"membership": "join"},
        }
        for v in ("1", "2"):
            self.assertEqual(signing.required_signing_servers(join, v), {"joiner.org", "resident.org"})
        # From v3 there is no such id (a local one is ignored).
        self.assertEqual(signing.required_signing_servers(join, "3"), {"joiner.org"})
        tpi = dict(join, content={"membership": "invite", "third_party_invite": {"signed": {}}})
        self.assertEqual(signing.required_signing_servers(tpi, "1"), {"resident.org"})
        # Restricted joins exist from v8 only.
        restricted = dict(join, content={"membership": "join", "join_authorised_via_users_server": "@b:other.org"})
        self.assertEqual(signing.required_signing_servers(restricted, "7"), {"joiner.org"})
        self.assertEqual(signing.required_signing_servers(restricted, "8"), {"joiner.org", "other.org"})

    def test_key_validity_from_v5(self) -> None:
        event = {"type": "m.room.message", "origin_server_ts": 1234}
        for v in ("1", "4"):
            self.assertEqual(signing.key_validity_ts(event, v), 0, v)
        for v in ("5", "10", "12"):
            self.assertEqual(signing.key_validity_ts(event, v), 1234, v)
        self.assertEqual(signing.key_validity_ts({"origin_server_ts": "x"}, "5"), 0)

    def test_sign_and_verify_v1_event(self) -> None:
        key = spec_signing_key()
        unhashed = {k: v for k, v in LegacyEventIdTests.V1_MESSAGE.items() if k != "hashes"}
        signed = signing.sign_event(unhashed, "1", "example.org", key)
        self.assertTrue(event_hashing.check_content_hash(signed))
        signing.verify_event_signature(signed, "1", "example.org", signing.get_verify_key(key))
        # The event id is covered: another id breaks the signature.
        with self.assertRaises(signing.SignatureError):
            signing.verify_event_signature(dict(signed, event_id="$16:example.org"), "1", "example.org", signing.get_verify_key(key))
