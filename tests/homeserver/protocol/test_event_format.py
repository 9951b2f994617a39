"""PDU format checks and strict JSON decoding."""

from __future__ import annotations

from typing import Any

from twisted.trial import unittest

from homeserver.protocol import canonical_json, event_format
from homeserver.protocol.event_format import EventFormatError, check_pdu_format

from ._helpers import ALICE, BOB, Room


def _pdu(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != "event_id"}


class PduFormatTests(unittest.TestCase):
    def _room(self, v: str) -> Room:
        room = Room(v)
        room.start()
        return room

    def test_valid_events(self) -> None:
        for v in ("10", "11", "12"):
            room = self._room(v)
            for event in room.events.values():
                check_pdu_format(_pdu(event), v)
                check_pdu_format(event, v)  # a local event_id is tolerated

    def test_missing_or_mistyped_keys(self) -> None:
        room = self._room("11")
        msg = _pdu(room.make("m.room.message", ALICE, {"body": "x"}))
        for key in ("type", "sender", "content", "origin_server_ts", "depth", "hashes", "room_id", "prev_events", "auth_events"):
            broken = dict(msg)
            del broken[key]
            with self.assertRaises(EventFormatError, msg=key):
                check_pdu_format(broken, "11")
        for key, bad in (
            ("type", 1), ("sender", "alice"), ("content", []), ("origin_server_ts", "1"),
            ("depth", True), ("depth", -1), ("depth", 2**53), ("hashes", {"sha256": 1}), ("hashes", []),
            ("signatures", {"a": "b"}), ("signatures", []),
            ("state_key", 5), ("unsigned", []), ("room_id", "room"), ("prev_events", ["$a", 1]),
            ("auth_events", "$a"),
        ):
            with self.assertRaises(EventFormatError, msg=f"{key}={bad!r}"):
                check_pdu_format(dict(msg, **{key: bad}), "11")

    def test_floats_and_big_ints(self) -> None:
        room = self._room("11")
        msg = _pdu(room.make("m.room.message", ALICE, {"body": "x", "n": 1.5}))
        with self.assertRaises(EventFormatError):
            check_pdu_format(msg, "11")
        msg["content"] = {"n": 2**53}
        with self.assertRaises(EventFormatError):
            check_pdu_format(msg, "11")

    def test_size_limits(self) -> None:
        room = self._room("11")
        msg = _pdu(room.make("m.room.message", ALICE, {"body": "x" * 70000}))
        with self.assertRaises(EventFormatError):
            check_pdu_format(msg, "11")
        state = _pdu(room.make("m.room.topic", ALICE, {}, "k" * 256))
        with self.assertRaises(EventFormatError):
            check_pdu_format(state, "11")
        # 255 bytes is fine, but 128 two-byte characters are not.
        check_pdu_format(_pdu(room.make("m.room.topic", ALICE, {}, "k" * 255)), "11")
        with self.assertRaises(EventFormatError):
            check_pdu_format(_pdu(room.make("m.room.topic", ALICE, {}, "é" * 128)), "11")

    def test_prev_and_auth_event_counts(self) -> None:
        room = self._room("11")
        msg = _pdu(room.make("m.room.message", ALICE, {}))
        check_pdu_format(dict(msg, prev_events=[f"$e{i}" for i in range(20)]), "11")
        with self.assertRaises(EventFormatError):
            check_pdu_format(dict(msg, prev_events=[f"$e{i}" for i in range(21)]), "11")
        with self.assertRaises(EventFormatError):
            check_pdu_format(dict(msg, auth_events=[f"$e{i}" for i in range(11)]), "11")
        room12 = self._room("12")
        msg12 = _pdu(room12.make("m.room.message", ALICE, {}))
        check_pdu_format(dict(msg12, auth_events=[f"$e{i}" for i in range(9)]), "12")
        with self.assertRaises(EventFormatError):  # the implicit create counts
            check_pdu_format(dict(msg12, auth_events=[f"$e{i}" for i in range(10)]), "12")

    def test_v12_room_ids(self) -> None:
        room = self._room("12")
        msg = _pdu(room.make("m.room.message", ALICE, {}))
        self.assertTrue(event_format.is_valid_room_id(room.room_id, "12"))
        self.assertFalse(event_format.is_valid_room_id("!room:a.example", "12"))
        self.assertTrue(event_format.is_valid_room_id("!room:a.example", "11"))
        self.assertFalse(event_format.is_valid_room_id(room.room_id, "11"))
        with self.assertRaises(EventFormatError):
            check_pdu_format(dict(msg, room_id="!room:a.example"), "12")
        with self.assertRaises(EventFormatError):
            check_pdu_format(dict(msg, auth_events=msg["auth_events"] + [room.create["event_id"]]), "12")
        create = _pdu(room.create)
        with self.assertRaises(EventFormatError):
            check_pdu_format(dict(create, room_id=room.room_id), "12")
        self.assertTrue(event_format.is_valid_event_id(room.create["event_id"]))
        self.assertFalse(event_format.is_valid_event_id("$abc:server"))

    def test_lenient_where_synapse_is(self) -> None:
        room = self._room("11")
        msg = _pdu(room.make("m.room.message", ALICE, {"body": "x"}))
        # Fails the hash check later (and gets redacted), not the format check.
        check_pdu_format(dict(msg, hashes={}), "11")
        # Fails signature checks later.
        check_pdu_format({k: v for k, v in msg.items() if k != "signatures"}, "11")
        # A redaction of nothing is a valid event.
        check_pdu_format(_pdu(room.make("m.room.redaction", BOB, {"redacts": 5})), "11")


class StrictJsonTests(unittest.TestCase):
    def test_decode(self) -> None:
        self.assertEqual(canonical_json.decode_json(b'{"a": [1, "\\u65e5"]}'), {"a": [1, "日"]})
        for bad in ('{"a": NaN}', '{"a": Infinity}', '[-Infinity]', '{"a": 1', ""):
            with self.assertRaises(ValueError, msg=bad):
                canonical_json.decode_json(bad)


class StripUnsignedTests(unittest.TestCase):
    def test_whitelist(self) -> None:
        msg = {"type": "m.room.message", "unsigned": {"age": 5, "redacted_because": {}, "invite_room_state": []}}
        self.assertEqual(event_format.strip_unsigned_for_federation(msg)["unsigned"], {"age": 5})
        self.assertIn("redacted_because", msg["unsigned"], "input must not be mutated")
        member = dict(msg, type="m.room.member")
        self.assertEqual(
            event_format.strip_unsigned_for_federation(member)["unsigned"], {"age": 5, "invite_room_state": []}
        )
        self.assertEqual(event_format.strip_unsigned_for_federation({"type": "x", "unsigned": 3})["unsigned"], {})
        self.assertNotIn("unsigned", event_format.strip_unsigned_for_federation({"type": "x"}))


class LegacyFormatTests(unittest.TestCase):
    """Room versions 1-9: event ids in the PDU and [id, hash] citations (v1,
    v2), non-canonical JSON (v1-v5), code point size limits (before v11)."""

    def _room(self, v: str) -> Room:
        room = Room(v)
        room.start()
        return room

    def test_v1_v2_events(self) -> None:
        for v in ("1", "2"):
            room = self._room(v)
            for event in room.events.values():
                check_pdu_format(event, v)
            msg = room.make("m.room.message", ALICE, {"body": "x"})
            self.assertEqual(msg["event_id"].split(":", 1)[1], "a.example")
            self.assertTrue(all(isinstance(p, list) and len(p) == 2 for p in msg["prev_events"]))
            # The id is part of the PDU here.
            with self.assertRaises(EventFormatError):
                check_pdu_format(_pdu(msg), v)
            for bad_id in (5, "$nodomain", "$x:"):
                with self.assertRaises(EventFormatError, msg=repr(bad_id)):
                    check_pdu_format(dict(msg, event_id=bad_id), v)
            ids = [p[0] for p in msg["prev_events"]]
            for bad in (ids, [[ids[0]]], [[ids[0], {"sha256": 1}]], [[ids[0], "hash"]], [[5, {}]]):
                with self.assertRaises(EventFormatError, msg=repr(bad)):
                    check_pdu_format(dict(msg, prev_events=bad), v)
            # Synapse ignores the hashes once parsed: any string map will do.
            check_pdu_format(dict(msg, prev_events=[[ids[0], {}]]), v)
            check_pdu_format(dict(msg, prev_events=[[ids[0], {"sha1": "x"}]]), v)
            with self.assertRaises(EventFormatError):
                check_pdu_format(dict(msg, auth_events=[[f"$e{i}:x", {}] for i in range(11)]), v)

    def test_v3_plus_plain_ids(self) -> None:
        room = self._room("3")
        msg = room.make("m.room.message", ALICE, {})
        check_pdu_format(_pdu(msg), "3")
        self.assertTrue(event_format.is_valid_event_id(msg["event_id"], "3"))
        with self.assertRaises(EventFormatError):
            check_pdu_format(dict(_pdu(msg), prev_events=[[msg["prev_events"][0], {}]]), "3")
        self.assertTrue(event_format.is_valid_event_id("$abc:server", "1"))
        self.assertFalse(event_format.is_valid_event_id("$abc", "1"))
        self.assertFalse(event_format.is_valid_event_id("$3rHbGjO9a77sIvrS0L13PShA6d3CYe9Obgk9_DTd-lc", "3"))
        self.assertTrue(event_format.is_valid_event_id("$3rHbGjO9a77sIvrS0L13PShA6d3CYe9Obgk9/DTd+lc", "3"))
        self.assertFalse(event_format.is_valid_event_id("$3rHbGjO9a77sIvrS0L13PShA6d3CYe9Obgk9/DTd+lc", "4"))

    def test_canonical_json_from_v6(self) -> None:
        for v in ("1", "3", "5"):
            room = self._room(v)
            msg = room.make("m.room.message", ALICE, {"n": 1.5, "big": 2**60})
            check_pdu_format(msg if v == "1" else _pdu(msg), v)
        for v in ("6", "9"):
            room = self._room(v)
            for content in ({"n": 1.5}, {"big": 2**60}):
                with self.assertRaises(EventFormatError, msg=f"{v} {content}"):
                    check_pdu_format(_pdu(room.make("m.room.message", ALICE, content)), v)

    def test_size_limits_by_version(self) -> None:
        # 128 two-byte characters: within 255 code points, over 255 bytes.
        for v, persist in (("1", True), ("10", True), ("11", False)):
            room = self._room(v)
            topic = room.make("m.room.topic", ALICE, {}, "é" * 128)
            with self.assertRaises(event_format.EventSizeError) as cm:
                check_pdu_format(topic if v == "1" else _pdu(topic), v)
            self.assertEqual(cm.exception.persist_as_rejected, persist, v)
            # Over 255 code points is always dropped.
            too_long = room.make("m.room.topic", ALICE, {}, "k" * 256)
            with self.assertRaises(event_format.EventSizeError) as cm:
                check_pdu_format(too_long if v == "1" else _pdu(too_long), v)
            self.assertFalse(cm.exception.persist_as_rejected)

    def test_cited_ids(self) -> None:
        v1 = {"prev_events": [["$a:x", {"sha256": "h"}], ["$b:x", {}]], "auth_events": [["$c:x", {}]]}
        self.assertEqual(event_format.prev_event_ids(v1, "1"), ["$a:x", "$b:x"])
        self.assertEqual(event_format.auth_event_ids(v1, "2"), ["$c:x"])
        v3 = {"prev_events": ["$a", "$b"], "auth_events": ["$c"]}
        for v in ("3", "10", "12"):
            self.assertEqual(event_format.prev_event_ids(v3, v), ["$a", "$b"])
            self.assertEqual(event_format.auth_event_ids(v3, v), ["$c"])
        # Junk is skipped, never a crash.
        for junk in (None, 5, "x", {"a": 1}, [1, None, []], [[], [5, {}]]):
            self.assertEqual(event_format.prev_event_ids({"prev_events": junk}, "1"), [])
        self.assertEqual(event_format.auth_event_ids({}, "11"), [])

    def test_event_record_reads_every_format(self) -> None:
        from homeserver.events.event import Event

        v1 = {"prev_events": [["$a:x", {"sha256": "h"}]], "auth_events": [["$c:x", {}], ["$d:x", {}]]}
        event = Event(event_id="$e:x", pdu=v1, room_version="1")
        self.assertEqual((event.prev_event_ids, event.auth_event_ids), (["$a:x"], ["$c:x", "$d:x"]))
        event = Event(event_id="$e", pdu={"prev_events": ["$a"], "auth_events": ["$c"]}, room_version="11")
        self.assertEqual((event.prev_event_ids, event.auth_event_ids), (["$a"], ["$c"]))
