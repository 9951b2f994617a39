"""Auth rules that differ between room versions 1 and 10, one test per
change named on the room version pages (v1 rules; v3 redactions; v6 aliases
and notifications; v7 knock; v8 restricted; v10 integer power levels and
knock_restricted).  test_vs_synapse fuzzes all of them against Synapse."""

from __future__ import annotations

from typing import Any

from twisted.trial import unittest

from homeserver.protocol import auth_rules
from homeserver.protocol.auth_rules import AuthError

from ._helpers import ALICE, BOB, CHARLIE, Room

ALL = tuple(str(n) for n in range(1, 13))


class VersionedAuthTestCase(unittest.TestCase):
    def room(self, version: str, power_levels: dict[str, Any] | None = None, join_rule: str = "public") -> Room:
        room = Room(version)
        room.start(join_rule=join_rule, power_levels=power_levels)
        return room

    def allowed(self, room: Room, event: dict[str, Any]) -> bool:
        try:
            room.check(event)
        except AuthError:
            return False
        return True

    def versions_allowing(self, build: Any, versions: tuple[str, ...] = ALL) -> list[str]:
        """The versions in which the event `build(version)` returns (room,
        event) is allowed."""
        result = []
        for v in versions:
            room, event = build(v)
            if self.allowed(room, event):
                result.append(v)
        return result


class AliasesTests(VersionedAuthTestCase):
    def test_v1_to_v5_special_case(self) -> None:
        def by_bob(state_key: str | None) -> Any:
            def build(v: str) -> tuple[Room, dict[str, Any]]:
                room = self.room(v)
                # Bob is not even in the room: the aliases rule does not care.
                return room, room.make("m.room.aliases", BOB, {"aliases": ["#x:b.example"]}, state_key)
            return build

        self.assertEqual(self.versions_allowing(by_bob("b.example")), ["1", "2", "3", "4", "5"])
        for state_key in ("a.example", "", None):
            self.assertEqual(self.versions_allowing(by_bob(state_key), ALL[:5]), [], repr(state_key))

    def test_plain_state_from_v6(self) -> None:
        # From v6 the creator may set any server's aliases like any state...
        def build(v: str) -> tuple[Room, dict[str, Any]]:
            room = self.room(v)
            return room, room.make("m.room.aliases", ALICE, {"aliases": []}, "b.example")

        self.assertEqual(self.versions_allowing(build), ["6", "7", "8", "9", "10", "11", "12"])


class LegacyRedactionTests(VersionedAuthTestCase):
    def _setup(self, v: str) -> tuple[Room, dict[str, Any], dict[str, Any]]:
        room = self.room(v)
        room.join(BOB)
        alices = room.send("m.room.message", ALICE, {"body": "a"})
        bobs = room.send("m.room.message", BOB, {"body": "b"})
        return room, alices, bobs

    def _redaction(self, room: Room, sender: str, target: Any, event_id: str | None = None) -> dict[str, Any]:
        event = room.make("m.room.redaction", sender, {})
        event["redacts"] = target
        if event_id is not None:
            event["event_id"] = event_id
        return event

    def test_v1_v2_redact_level_or_same_event_id_server(self) -> None:
        for v in ("1", "2"):
            room, alices, bobs = self._setup(v)
            self.assertTrue(self.allowed(room, self._redaction(room, BOB, bobs["event_id"])), v)
            self.assertFalse(self.allowed(room, self._redaction(room, BOB, alices["event_id"])), v)
            self.assertTrue(self.allowed(room, self._redaction(room, ALICE, bobs["event_id"])), v)
            # What counts is the server in the *event ids*, not the senders'.
            self.assertTrue(self.allowed(room, self._redaction(room, BOB, alices["event_id"], "$99:a.example")), v)
            # A redaction of nothing usable passes (it redacts nothing).
            self.assertTrue(self.allowed(room, self._redaction(room, BOB, 5)), v)
            self.assertFalse(self.allowed(room, self._redaction(room, BOB, "$nodomain")), v)

    def test_v3_leaves_it_to_handling_redactions(self) -> None:
        for v in ("3", "10"):
            room, alices, bobs = self._setup(v)
            redaction = self._redaction(room, BOB, alices["event_id"])
            self.assertTrue(self.allowed(room, redaction), v)
            state = {k: room.events[e] for k, e in room.state.items()}
            self.assertFalse(auth_rules.redaction_allowed(redaction, alices, state, v))
            self.assertTrue(auth_rules.redaction_allowed(self._redaction(room, BOB, bobs["event_id"]), bobs, state, v))
        room, alices, _ = self._setup("1")
        state = {k: room.events[e] for k, e in room.state.items()}
        # v1/v2: whatever passed the auth rules is applied.
        self.assertTrue(auth_rules.redaction_allowed(self._redaction(room, ALICE, alices["event_id"]), alices, state, "1"))


class KnockAndRestrictedTests(VersionedAuthTestCase):
    def test_knock_from_v7(self) -> None:
        def knock(v: str) -> tuple[Room, dict[str, Any]]:
            room = self.room(v, join_rule="knock")
            return room, room.make("m.room.member", BOB, {"membership": "knock"}, BOB)

        self.assertEqual(self.versions_allowing(knock), ["7", "8", "9", "10", "11", "12"])

        def invited_join(v: str) -> tuple[Room, dict[str, Any]]:
            room = self.room(v, join_rule="knock")
            room.send("m.room.member", ALICE, {"membership": "invite"}, BOB)
            return room, room.make("m.room.member", BOB, {"membership": "join"}, BOB)

        # Before v7 "knock" is an unknown join rule: nobody can join.
        self.assertEqual(self.versions_allowing(invited_join), ["7", "8", "9", "10", "11", "12"])

    def test_restricted_from_v8(self) -> None:
        def restricted_join(rule: str) -> Any:
            def build(v: str) -> tuple[Room, dict[str, Any]]:
                room = self.room(v, join_rule=rule)
                content = {"membership": "join", "join_authorised_via_users_server": ALICE}
                return room, room.make("m.room.member", BOB, content, BOB)
            return build

        self.assertEqual(self.versions_allowing(restricted_join("restricted")), ["8", "9", "10", "11", "12"])
        self.assertEqual(self.versions_allowing(restricted_join("knock_restricted")), ["10", "11", "12"])

    def test_authoriser_is_an_auth_event_from_v8(self) -> None:
        join = {"type": "m.room.member", "sender": BOB, "state_key": BOB,
                "content": {"membership": "join", "join_authorised_via_users_server": CHARLIE}}
        self.assertNotIn(("m.room.member", CHARLIE), auth_rules.auth_types_for_event(join, "7"))
        self.assertIn(("m.room.member", CHARLIE), auth_rules.auth_types_for_event(join, "8"))


class PowerLevelsTests(VersionedAuthTestCase):
    def test_notifications_checked_from_v6(self) -> None:
        def lower_notifications(v: str) -> tuple[Room, dict[str, Any]]:
            room = self.room(v, power_levels={"users": {ALICE: 100, BOB: 50}, "notifications": {"room": 75}})
            room.join(BOB)
            content = {"users": {ALICE: 100, BOB: 50}, "notifications": {"room": 60}}
            return room, room.make("m.room.power_levels", BOB, content, "")

        self.assertEqual(self.versions_allowing(lower_notifications, ALL[:11]), ["1", "2", "3", "4", "5"])

    def test_string_levels_until_v10(self) -> None:
        for level in ("50", " +50 ", "0050"):
            def build(v: str, level: str = level) -> tuple[Room, dict[str, Any]]:
                room = self.room(v)
                room.join(BOB)
                room.send("m.room.power_levels", ALICE, {"users": {ALICE: 100, BOB: level}}, "")
                # With 50 Bob may now set state.
                return room, room.make("m.room.topic", BOB, {"topic": "x"}, "")

            self.assertEqual(self.versions_allowing(build, ALL[:9]), list(ALL[:9]), repr(level))
            room = self.room("10")
            self.assertFalse(self.allowed(room, room.make("m.room.power_levels", ALICE, {"users": {ALICE: 100, BOB: level}}, "")))

    def test_float_levels_until_v6(self) -> None:
        # v1-v5 PDUs need not be canonical JSON: 50.9 reads as 50.
        room = self.room("5")
        room.join(BOB)
        room.send("m.room.power_levels", ALICE, {"users": {ALICE: 100, BOB: 50.9}, "state_default": 50.0}, "")
        state = {k: room.events[e] for k, e in room.state.items()}
        self.assertEqual(auth_rules.get_user_power_level(BOB, state, "5"), 50)
        room.send("m.room.topic", BOB, {"topic": "x"}, "")

    def test_unreadable_levels(self) -> None:
        for bad in ("abc", "", None, [], {"x": 1}, "1.5"):
            room = self.room("9")
            event = room.make("m.room.power_levels", ALICE, {"users": {ALICE: 100, BOB: bad}}, "")
            self.assertFalse(self.allowed(room, event), repr(bad))
        # Python's int() reading (Synapse's): underscores and booleans count.
        room = self.room("9")
        room.send("m.room.power_levels", ALICE, {"users": {ALICE: 100, BOB: "1_0", CHARLIE: True}}, "")

    def test_unreadable_state_rejects_what_needs_it(self) -> None:
        # Nothing to compare a first power levels event with, so before v10
        # one with unreadable parts is accepted; every later check that
        # needs those parts fails (Synapse's lookups raise on them).
        for content, needs_it in (
            ({"users": {ALICE: 100}, "events": []}, ("m.room.message", None)),
            ({"users": {ALICE: 100}, "state_default": None}, ("m.room.topic", "")),
            ({"users": {ALICE: 100}, "events": {"m.room.message": "x"}}, ("m.room.message", None)),
            ({"users_default": "abc"}, ("m.room.message", None)),
        ):
            room = Room("9")
            room.send("m.room.member", ALICE, {"membership": "join"}, ALICE)
            room.send("m.room.power_levels", ALICE, content, "")
            event_type, state_key = needs_it
            self.assertFalse(self.allowed(room, room.make(event_type, ALICE, {}, state_key)), repr(content))
            # The lenient lookups the client API uses still answer.
            state = {k: room.events[e] for k, e in room.state.items()}
            auth_rules.get_send_level(event_type, state_key, state)
            auth_rules.get_user_power_level(ALICE, state, "9")
            # In v10 such an event never gets in.
            room10 = Room("10")
            room10.send("m.room.member", ALICE, {"membership": "join"}, ALICE)
            self.assertFalse(self.allowed(room10, room10.make("m.room.power_levels", ALICE, content, "")), repr(content))

    def test_unchanged_string_level_needs_no_power(self) -> None:
        room = self.room("9", power_levels={"users": {ALICE: 100, BOB: "50"}, "ban": "60"})
        room.join(BOB)
        # "50" -> 50 and "60" -> 60 are no change for Bob to be allowed.
        room.send("m.room.power_levels", BOB, {"users": {ALICE: 100, BOB: 50}, "ban": 60}, "")


class LegacyMembershipTests(VersionedAuthTestCase):
    def test_creator_first_join_with_citation_pairs(self) -> None:
        for v in ("1", "2"):
            room = Room(v)
            join = room.make("m.room.member", ALICE, {"membership": "join"}, ALICE)
            self.assertEqual(join["prev_events"][0][0], room.create["event_id"])
            room.check(join)
            # Nobody else joins an invite-only room that way.
            other = room.make("m.room.member", BOB, {"membership": "join"}, BOB)
            with self.assertRaises(AuthError):
                room.check(other)

    def test_create_needs_creator_until_v11(self) -> None:
        for v in ALL:
            create = dict(Room(v).create)
            create["content"] = {k: val for k, val in create["content"].items() if k != "creator"}
            try:
                auth_rules.check_auth_rules(create, {}, v)
                needs = False
            except AuthError:
                needs = True
            self.assertEqual(needs, int(v) < 11, v)
