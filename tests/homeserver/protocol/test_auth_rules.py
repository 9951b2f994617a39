"""Auth rules for room versions 10, 11 and 12, one test per rule branch."""

from __future__ import annotations

import copy
from typing import Any

from twisted.trial import unittest

from homeserver.protocol import auth_rules, signing
from homeserver.protocol.auth_rules import AuthError, check_auth_rules
from homeserver.protocol.event_ids import compute_event_id

from ._helpers import ALICE, BOB, CHARLIE, DAVE, EVE, Room

ALL_VERSIONS = ("10", "11", "12")


class AuthTestCase(unittest.TestCase):
    def assertAllowed(self, room: Room, event: dict[str, Any], state: Any = None) -> None:
        room.check(event, state)

    def assertRejected(self, room: Room, event: dict[str, Any], state: Any = None, reason: str | None = None) -> None:
        with self.assertRaises(AuthError) as cm:
            room.check(event, state)
        if reason is not None:
            self.assertIn(reason, str(cm.exception))


class CreateEventTests(AuthTestCase):
    def _check_create(self, version: str, create: dict[str, Any]) -> None:
        check_auth_rules(create, {}, version)

    def test_valid_create(self) -> None:
        for v in ALL_VERSIONS:
            room = Room(v)
            self._check_create(v, room.create)

    def test_prev_events(self) -> None:
        for v in ALL_VERSIONS:
            create = dict(Room(v).create, prev_events=["$x"])
            with self.assertRaises(AuthError, msg=v):
                self._check_create(v, create)

    def test_room_id_domain(self) -> None:
        for v in ("10", "11"):
            create = dict(Room(v).create, room_id="!room:elsewhere.example")
            with self.assertRaises(AuthError):
                self._check_create(v, create)
            # A port is part of the domain.
            create = dict(Room(v).create, room_id="!room:a.example:8448")
            with self.assertRaises(AuthError):
                self._check_create(v, create)

    def test_v12_create_must_not_have_room_id(self) -> None:
        create = dict(Room("12").create, room_id="!room:a.example")
        with self.assertRaises(AuthError) as cm:
            self._check_create("12", create)
        self.assertIn("room_id", str(cm.exception))

    def test_room_version_property(self) -> None:
        for v in ALL_VERSIONS:
            create = copy.deepcopy(Room(v).create)
            for bad in ("99", 10, ["10"], None):
                create["content"]["room_version"] = bad
                with self.assertRaises(AuthError, msg=repr(bad)):
                    self._check_create(v, create)
            # Every spec'd version is "recognised", and absence means "1".
            create["content"]["room_version"] = "9"
            self._check_create(v, create)
            del create["content"]["room_version"]
            self._check_create(v, create)

    def test_v10_requires_creator(self) -> None:
        create = copy.deepcopy(Room("10").create)
        del create["content"]["creator"]
        with self.assertRaises(AuthError):
            self._check_create("10", create)
        # v11+ no longer need it.
        self._check_create("11", Room("11").create)
        self.assertNotIn("creator", Room("11").create["content"])

    def test_v12_additional_creators(self) -> None:
        for bad in ("@bob:b.example", [1], ["bob"], ["@bob:"], ["@bob:bad host"], ["@" + "x" * 250 + ":b.example"]):
            create = copy.deepcopy(Room("12").create)
            create["content"]["additional_creators"] = bad
            with self.assertRaises(AuthError, msg=repr(bad)):
                self._check_create("12", create)
        create = copy.deepcopy(Room("12").create)
        create["content"]["additional_creators"] = [BOB, "@x:[::1]:8448", "@y:1.2.3.4"]
        self._check_create("12", create)
        # Pre-v12 rooms don't validate the key at all.
        create = copy.deepcopy(Room("11").create)
        create["content"]["additional_creators"] = "junk"
        self._check_create("11", create)


class AuthEventsListTests(AuthTestCase):
    def _room(self, v: str) -> Room:
        room = Room(v)
        room.start()
        return room

    def _auth_events(self, room: Room, event: dict[str, Any]) -> list[dict[str, Any]]:
        return [room.events[e] for e in event["auth_events"]]

    def test_valid(self) -> None:
        for v in ALL_VERSIONS:
            room = self._room(v)
            ev = room.make("m.room.message", ALICE, {"body": "x"})
            auth_rules.check_auth_events_list(ev, self._auth_events(room, ev), v)
            has_create = room.create["event_id"] in ev["auth_events"]
            self.assertEqual(has_create, v != "12")

    def test_duplicate(self) -> None:
        room = self._room("11")
        ev = room.make("m.room.message", ALICE, {"body": "x"})
        old_pl = room.make("m.room.power_levels", ALICE, {"users": {ALICE: 100}}, "")
        with self.assertRaises(AuthError) as cm:
            auth_rules.check_auth_events_list(ev, self._auth_events(room, ev) + [old_pl], "11")
        self.assertIn("Duplicate", str(cm.exception))

    def test_unexpected(self) -> None:
        room = self._room("11")
        ev = room.make("m.room.message", ALICE, {"body": "x"})
        join_rules = room.events[room.state[("m.room.join_rules", "")]]
        with self.assertRaises(AuthError) as cm:
            auth_rules.check_auth_events_list(ev, self._auth_events(room, ev) + [join_rules], "11")
        self.assertIn("Unexpected", str(cm.exception))
        # ...but join rules are expected for a join.
        join = room.make("m.room.member", BOB, {"membership": "join"}, BOB)
        auth_rules.check_auth_events_list(join, self._auth_events(room, join), "11")
        self.assertIn(join_rules["event_id"], join["auth_events"])

    def test_other_room(self) -> None:
        room = self._room("10")
        ev = room.make("m.room.message", ALICE, {"body": "x"})
        foreign = dict(room.events[room.state[("m.room.power_levels", "")]], room_id="!other:a.example")
        auth = [foreign if e["type"] == "m.room.power_levels" else e for e in self._auth_events(room, ev)]
        with self.assertRaises(AuthError):
            auth_rules.check_auth_events_list(ev, auth, "10")

    def test_missing_create(self) -> None:
        for v in ("10", "11"):
            room = self._room(v)
            ev = room.make("m.room.message", ALICE, {"body": "x"})
            auth = [e for e in self._auth_events(room, ev) if e["type"] != "m.room.create"]
            with self.assertRaises(AuthError, msg=v):
                auth_rules.check_auth_events_list(ev, auth, v)

    def test_v12_create_must_not_be_listed(self) -> None:
        room = self._room("12")
        ev = room.make("m.room.message", ALICE, {"body": "x"})
        with self.assertRaises(AuthError):
            auth_rules.check_auth_events_list(ev, self._auth_events(room, ev) + [room.create], "12")

    def test_auth_types_selection(self) -> None:
        room = self._room("11")
        invite = room.make(
            "m.room.member", ALICE,
            {"membership": "invite", "third_party_invite": {"signed": {"token": "tok"}}}, BOB,
        )
        self.assertEqual(
            auth_rules.auth_types_for_event(invite, "11"),
            [
                ("m.room.create", ""),
                ("m.room.power_levels", ""),
                ("m.room.member", ALICE),
                ("m.room.member", BOB),
                ("m.room.join_rules", ""),
                ("m.room.third_party_invite", "tok"),
            ],
        )
        join = room.make(
            "m.room.member", BOB, {"membership": "join", "join_authorised_via_users_server": ALICE}, BOB
        )
        self.assertEqual(
            set(auth_rules.auth_types_for_event(join, "12")),
            {("m.room.power_levels", ""), ("m.room.member", BOB), ("m.room.join_rules", ""), ("m.room.member", ALICE)},
        )
        self.assertIn(("m.room.create", ""), auth_rules.auth_state_keys_for_event(join, "12"))
        leave = room.make("m.room.member", ALICE, {"membership": "leave"}, BOB)
        self.assertNotIn(("m.room.join_rules", ""), auth_rules.auth_types_for_event(leave, "11"))
        self.assertEqual(auth_rules.auth_types_for_event(room.create, "11"), [])


class GeneralRulesTests(AuthTestCase):
    def test_missing_create_in_state(self) -> None:
        room = Room("11")
        room.start()
        ev = room.make("m.room.message", ALICE, {"body": "x"})
        with self.assertRaises(AuthError):
            check_auth_rules(ev, {}, "11")

    def test_v12_room_id_must_match_create(self) -> None:
        room = Room("12")
        room.start()
        ev = room.make("m.room.message", ALICE, {"body": "x"})
        self.assertAllowed(room, ev)
        other = Room("12", creator=BOB)
        auth = room.auth_map(ev)
        auth[("m.room.create", "")] = other.create
        with self.assertRaises(AuthError) as cm:
            check_auth_rules(ev, auth, "12")
        self.assertIn("create event", str(cm.exception))
        # Works without a locally attached event_id too (computed).
        auth[("m.room.create", "")] = {k: v for k, v in room.create.items() if k != "event_id"}
        check_auth_rules(ev, auth, "12")

    def test_m_federate_false(self) -> None:
        for v in ALL_VERSIONS:
            room = Room(v, create_content={"m.federate": False})
            room.start(join_rule="public")
            room.join("@local:a.example")
            self.assertRejected(room, room.make("m.room.member", BOB, {"membership": "join"}, BOB), reason="unfederatable")
            # A local user cannot invite a remote one either (Synapse's target check).
            self.assertRejected(room, room.make("m.room.member", ALICE, {"membership": "invite"}, BOB), reason="unfederatable")
            self.assertAllowed(room, room.make("m.room.message", "@local:a.example", {"body": "hi"}))

    def test_sender_must_be_joined(self) -> None:
        for v in ALL_VERSIONS:
            room = Room(v)
            room.start()
            self.assertRejected(room, room.make("m.room.message", BOB, {"body": "x"}), reason="not in room")
            room.join(BOB)
            self.assertAllowed(room, room.make("m.room.message", BOB, {"body": "x"}))
            room.send("m.room.member", BOB, {"membership": "leave"}, BOB)
            self.assertRejected(room, room.make("m.room.message", BOB, {"body": "x"}))

    def test_send_levels(self) -> None:
        for v in ALL_VERSIONS:
            room = Room(v)
            pl: dict[str, Any] = {"events_default": 10, "state_default": 20, "events": {"m.room.topic": 5, "m.custom": 30}}
            if v != "12":
                pl["users"] = {ALICE: 100}
            room.start(power_levels=pl)
            room.join(BOB)
            for level, etype, state_key, expected in (
                (9, "m.room.message", None, False),
                (10, "m.room.message", None, True),
                (19, "m.room.name", "", False),
                (20, "m.room.name", "", True),
                (5, "m.room.topic", "", True),
                (4, "m.room.topic", "", False),
                (29, "m.custom", None, False),
                (30, "m.custom", None, True),
            ):
                new_pl = copy.deepcopy(pl)
                new_pl.setdefault("users", {})[BOB] = level
                state = dict(room.state)
                pl_event = room.make("m.room.power_levels", ALICE, new_pl, "")
                room.check(pl_event)
                state[("m.room.power_levels", "")] = pl_event["event_id"]
                ev = room.make(etype, BOB, {}, state_key, state=state)
                if expected:
                    self.assertAllowed(room, ev, state)
                else:
                    self.assertRejected(room, ev, state, reason="send_level")

    def test_no_power_levels_event(self) -> None:
        for v in ALL_VERSIONS:
            room = Room(v)
            room.send("m.room.member", ALICE, {"membership": "join"}, ALICE)
            room.send("m.room.join_rules", ALICE, {"join_rule": "public"}, "")
            room.join(BOB)
            self.assertEqual(auth_rules.get_user_power_level(BOB, room.auth_map(room.create), v), 0)
            expected_alice = auth_rules.CREATOR_POWER_LEVEL if v == "12" else 100
            self.assertEqual(auth_rules.get_user_power_level(ALICE, room.auth_map(room.create), v), expected_alice)
            # Creator can send state; others cannot (state_default 50, Synapse).
            self.assertAllowed(room, room.make("m.room.name", ALICE, {"name": "n"}, ""))
            self.assertRejected(room, room.make("m.room.name", BOB, {"name": "n"}, ""))
            self.assertAllowed(room, room.make("m.room.message", BOB, {"body": "x"}))

    def test_user_state_keys(self) -> None:
        room = Room("11")
        room.start()
        self.assertRejected(room, room.make("m.custom.state", ALICE, {}, BOB), reason="others state")
        self.assertAllowed(room, room.make("m.custom.state", ALICE, {}, ALICE))
        self.assertAllowed(room, room.make("m.custom.state", ALICE, {}, "not_a_user"))

    def test_third_party_invite_event(self) -> None:
        room = Room("11")
        room.start(power_levels={"users": {ALICE: 100}, "invite": 50})
        room.join(BOB)
        ev = room.make("m.room.third_party_invite", BOB, {"display_name": "x"}, "token")
        self.assertRejected(room, ev, reason="invite")
        self.assertAllowed(room, room.make("m.room.third_party_invite", ALICE, {"display_name": "x"}, "token"))
        # The invite level applies, not state_default.
        room2 = Room("11")
        room2.start(power_levels={"users": {ALICE: 100}, "state_default": 100})
        room2.join(BOB)
        self.assertAllowed(room2, room2.make("m.room.third_party_invite", BOB, {}, "token"))

    def test_redactions_are_ordinary_events(self) -> None:
        room = Room("11")
        room.start(power_levels={"users": {ALICE: 100}, "redact": 100})
        room.join(BOB)
        msg = room.send("m.room.message", ALICE, {"body": "x"})
        redaction = room.make("m.room.redaction", BOB, {"redacts": msg["event_id"]})
        self.assertAllowed(room, redaction)  # the redact level is not an auth rule...
        state = room.auth_map(redaction)
        self.assertFalse(auth_rules.redaction_allowed(redaction, msg, state, "11"))  # ...but applies later
        own = room.send("m.room.message", BOB, {"body": "mine"})
        self.assertTrue(auth_rules.redaction_allowed(redaction, own, state, "11"))
        by_alice = room.make("m.room.redaction", ALICE, {"redacts": own["event_id"]})
        self.assertTrue(auth_rules.redaction_allowed(by_alice, own, state, "11"))
        self.assertEqual(auth_rules.redacts_target(redaction, "11"), msg["event_id"])
        self.assertIsNone(auth_rules.redacts_target(redaction, "10"))
        self.assertEqual(auth_rules.redacts_target({"redacts": "$a", "content": {}}, "10"), "$a")
        room.send("m.room.power_levels", ALICE, {"users": {ALICE: 100}, "events": {"m.room.redaction": 50}}, "")
        self.assertRejected(room, room.make("m.room.redaction", BOB, {"redacts": msg["event_id"]}))


class JoinTests(AuthTestCase):
    def test_creator_first_join(self) -> None:
        for v in ALL_VERSIONS:
            room = Room(v)
            join = room.make("m.room.member", ALICE, {"membership": "join"}, ALICE, prev=[room.create["event_id"]])
            self.assertAllowed(room, join)
            # Someone else cannot piggyback on that rule.
            other = room.make("m.room.member", BOB, {"membership": "join"}, BOB, prev=[room.create["event_id"]])
            self.assertRejected(room, other)

    def test_v10_creator_comes_from_content(self) -> None:
        room = Room("10", creator=ALICE, create_content={"creator": BOB})
        self.assertAllowed(room, room.make("m.room.member", BOB, {"membership": "join"}, BOB, prev=[room.create["event_id"]]))
        self.assertRejected(room, room.make("m.room.member", ALICE, {"membership": "join"}, ALICE, prev=[room.create["event_id"]]))

    def test_cannot_join_for_others(self) -> None:
        room = Room("11")
        room.start()
        self.assertRejected(room, room.make("m.room.member", ALICE, {"membership": "join"}, BOB), reason="force")

    def test_public(self) -> None:
        for v in ALL_VERSIONS:
            room = Room(v)
            room.start(join_rule="public")
            self.assertAllowed(room, room.make("m.room.member", BOB, {"membership": "join"}, BOB))

    def test_banned_cannot_join(self) -> None:
        for v in ALL_VERSIONS:
            room = Room(v)
            room.start(join_rule="public")
            room.send("m.room.member", ALICE, {"membership": "ban"}, BOB)
            self.assertRejected(room, room.make("m.room.member", BOB, {"membership": "join"}, BOB), reason="banned")

    def test_invite_and_knock_rules(self) -> None:
        for v in ALL_VERSIONS:
            for rule in ("invite", "knock", "knock_restricted"):
                room = Room(v)
                room.start(join_rule=rule)
                reason = "missing authorising user" if rule == "knock_restricted" else "not invited"
                self.assertRejected(room, room.make("m.room.member", BOB, {"membership": "join"}, BOB), reason=reason)
                room.send("m.room.member", ALICE, {"membership": "invite"}, BOB)
                self.assertAllowed(room, room.make("m.room.member", BOB, {"membership": "join"}, BOB))

    def test_no_join_rules_means_invite(self) -> None:
        room = Room("11")
        room.send("m.room.member", ALICE, {"membership": "join"}, ALICE)
        self.assertRejected(room, room.make("m.room.member", BOB, {"membership": "join"}, BOB))

    def test_unknown_join_rule(self) -> None:
        room = Room("11")
        room.start(join_rule="private")
        self.assertRejected(room, room.make("m.room.member", BOB, {"membership": "join"}, BOB), reason="not allowed to join")

    def test_already_joined_can_rejoin(self) -> None:
        room = Room("11")
        room.start(join_rule="invite")
        room.send("m.room.member", ALICE, {"membership": "invite"}, BOB)
        room.join(BOB)
        self.assertAllowed(room, room.make("m.room.member", BOB, {"membership": "join", "displayname": "B"}, BOB))

    def test_restricted(self) -> None:
        for v in ALL_VERSIONS:
            for rule in ("restricted", "knock_restricted"):
                room = Room(v)
                pl: dict[str, Any] = {"invite": 50, "users": {CHARLIE: 50, DAVE: 10}}
                if v != "12":
                    pl["users"][ALICE] = 100
                room.start(join_rule=rule, power_levels=pl)
                room.send("m.room.member", ALICE, {"membership": "invite"}, CHARLIE)
                room.join(CHARLIE)
                room.send("m.room.member", ALICE, {"membership": "invite"}, DAVE)
                room.join(DAVE)

                def join(authoriser: str | None) -> dict[str, Any]:
                    content: dict[str, Any] = {"membership": "join"}
                    if authoriser is not None:
                        content["join_authorised_via_users_server"] = authoriser
                    return room.make("m.room.member", BOB, content, BOB)

                self.assertRejected(room, join(None), reason="missing authorising user")
                self.assertRejected(room, join(EVE), reason="not in room")  # authoriser not joined
                self.assertRejected(room, join(DAVE), reason="invalid server")  # below invite level
                self.assertAllowed(room, join(CHARLIE))
                self.assertAllowed(room, join(ALICE))
                # Invited users need no authoriser.
                room.send("m.room.member", CHARLIE, {"membership": "invite"}, BOB)
                self.assertAllowed(room, join(None))

    def test_restricted_not_in_pre_restricted_rule_names(self) -> None:
        # knock_restricted is not "restricted": with plain "knock" an
        # authorising user does not help.
        room = Room("11")
        room.start(join_rule="knock")
        self.assertRejected(room, room.make("m.room.member", BOB, {"membership": "join", "join_authorised_via_users_server": ALICE}, BOB))


class InviteTests(AuthTestCase):
    def _room(self, v: str = "11", **pl: Any) -> Room:
        room = Room(v)
        levels: dict[str, Any] = {"users": {} if v == "12" else {ALICE: 100}}
        levels.update(pl)
        room.start(join_rule="invite", power_levels=levels)
        return room

    def test_invite(self) -> None:
        for v in ALL_VERSIONS:
            room = self._room(v)
            self.assertAllowed(room, room.make("m.room.member", ALICE, {"membership": "invite"}, BOB))

    def test_sender_not_joined(self) -> None:
        room = self._room()
        self.assertRejected(room, room.make("m.room.member", CHARLIE, {"membership": "invite"}, BOB), reason="not in room")

    def test_target_joined_or_banned(self) -> None:
        room = self._room()
        room.send("m.room.member", ALICE, {"membership": "invite"}, BOB)
        room.join(BOB)
        self.assertRejected(room, room.make("m.room.member", ALICE, {"membership": "invite"}, BOB), reason="already in the room")
        room.send("m.room.member", ALICE, {"membership": "ban"}, CHARLIE)
        self.assertRejected(room, room.make("m.room.member", ALICE, {"membership": "invite"}, CHARLIE), reason="banned")

    def test_invite_level(self) -> None:
        room = self._room(invite=50)
        room.send("m.room.member", ALICE, {"membership": "invite"}, BOB)
        room.join(BOB)
        self.assertRejected(room, room.make("m.room.member", BOB, {"membership": "invite"}, CHARLIE), reason="permission to invite")
        room2 = self._room()  # default invite level 0
        room2.send("m.room.member", ALICE, {"membership": "invite"}, BOB)
        room2.join(BOB)
        self.assertAllowed(room2, room2.make("m.room.member", BOB, {"membership": "invite"}, CHARLIE))


class ThirdPartyInviteTests(AuthTestCase):
    def setUp(self) -> None:
        self.id_server_key = signing.generate_signing_key("0")
        self.public_key = signing.encode_verify_key_base64(signing.get_verify_key(self.id_server_key))

    def _room(self, v: str, public_keys: Any = None) -> Room:
        room = Room(v)
        room.start(join_rule="invite", power_levels={"users": {} if v == "12" else {ALICE: 100}})
        content: dict[str, Any] = {"display_name": "b...@example.org", "key_validity_url": "https://id/validity"}
        if public_keys is None:
            content["public_key"] = self.public_key
        else:
            content["public_keys"] = public_keys
        room.send("m.room.third_party_invite", ALICE, content, "tok")
        return room

    def _signed(self, mxid: str = BOB, token: str = "tok", key: Any = None) -> dict[str, Any]:
        return signing.sign_json({"mxid": mxid, "token": token, "sender": ALICE}, "id.example", key or self.id_server_key)

    def _invite(self, room: Room, signed: dict[str, Any], sender: str = ALICE, target: str = BOB) -> dict[str, Any]:
        return room.make(
            "m.room.member", sender,
            {"membership": "invite", "third_party_invite": {"display_name": "b", "signed": signed}}, target,
        )

    def test_valid(self) -> None:
        for v in ALL_VERSIONS:
            room = self._room(v)
            ev = self._invite(room, self._signed())
            self.assertIn(("m.room.third_party_invite", "tok"), auth_rules.auth_types_for_event(ev, v))
            self.assertAllowed(room, ev)

    def test_public_keys_list(self) -> None:
        room = self._room("11", public_keys=[{"public_key": "AAAA"}, {"public_key": self.public_key}])
        self.assertAllowed(room, self._invite(room, self._signed()))

    def test_bad_signature(self) -> None:
        room = self._room("11")
        self.assertRejected(room, self._invite(room, self._signed(key=signing.generate_signing_key("0"))))
        forged = self._signed()
        forged["mxid"] = CHARLIE
        self.assertRejected(room, self._invite(room, forged, target=CHARLIE))

    def test_mxid_mismatch(self) -> None:
        room = self._room("11")
        self.assertRejected(room, self._invite(room, self._signed(mxid=CHARLIE)))

    def test_missing_pieces(self) -> None:
        room = self._room("11")
        self.assertRejected(room, self._invite(room, self._signed(token="other")))
        no_sigs = {"mxid": BOB, "token": "tok"}
        self.assertRejected(room, self._invite(room, no_sigs))
        ev = room.make("m.room.member", ALICE, {"membership": "invite", "third_party_invite": {}}, BOB)
        self.assertRejected(room, ev)

    def test_sender_must_match_invite_sender(self) -> None:
        room = self._room("11")
        room.send("m.room.member", ALICE, {"membership": "invite"}, CHARLIE)
        room.join(CHARLIE)
        self.assertRejected(room, self._invite(room, self._signed(), sender=CHARLIE))

    def test_banned_target(self) -> None:
        room = self._room("11")
        room.send("m.room.member", ALICE, {"membership": "ban"}, BOB)
        self.assertRejected(room, self._invite(room, self._signed()), reason="banned")


class LeaveKickBanTests(AuthTestCase):
    def _room(self, v: str = "11") -> Room:
        room = Room(v)
        users = {BOB: 50, CHARLIE: 50}
        if v != "12":
            users[ALICE] = 100
        room.start(join_rule="public", power_levels={"users": users, "kick": 50, "ban": 50})
        room.join(BOB)
        room.join(CHARLIE)
        room.join(DAVE)
        return room

    def test_self_leave(self) -> None:
        room = self._room()
        self.assertAllowed(room, room.make("m.room.member", DAVE, {"membership": "leave"}, DAVE))
        self.assertRejected(room, room.make("m.room.member", EVE, {"membership": "leave"}, EVE), reason="not in room")

    def test_reject_invite_and_rescind_knock(self) -> None:
        room = Room("11")
        room.start(join_rule="knock")
        room.send("m.room.member", ALICE, {"membership": "invite"}, BOB)
        self.assertAllowed(room, room.make("m.room.member", BOB, {"membership": "leave"}, BOB))
        room.send("m.room.member", CHARLIE, {"membership": "knock"}, CHARLIE)
        self.assertAllowed(room, room.make("m.room.member", CHARLIE, {"membership": "leave"}, CHARLIE))

    def test_banned_cannot_leave(self) -> None:
        room = self._room()
        room.send("m.room.member", ALICE, {"membership": "ban"}, DAVE)
        self.assertRejected(room, room.make("m.room.member", DAVE, {"membership": "leave"}, DAVE))

    def test_kick(self) -> None:
        room = self._room()
        self.assertAllowed(room, room.make("m.room.member", BOB, {"membership": "leave"}, DAVE))
        # equal power level
        self.assertRejected(room, room.make("m.room.member", BOB, {"membership": "leave"}, CHARLIE), reason="kick")
        # below kick level
        self.assertRejected(room, room.make("m.room.member", DAVE, {"membership": "leave"}, BOB), reason="kick")
        # sender not joined
        self.assertRejected(room, room.make("m.room.member", EVE, {"membership": "leave"}, DAVE), reason="not in room")

    def test_ban(self) -> None:
        room = self._room()
        self.assertAllowed(room, room.make("m.room.member", BOB, {"membership": "ban"}, DAVE))
        self.assertAllowed(room, room.make("m.room.member", BOB, {"membership": "ban"}, EVE))  # non-member
        self.assertRejected(room, room.make("m.room.member", BOB, {"membership": "ban"}, CHARLIE), reason="ban this user")
        self.assertRejected(room, room.make("m.room.member", DAVE, {"membership": "ban"}, EVE), reason="permission to ban")
        self.assertRejected(room, room.make("m.room.member", EVE, {"membership": "ban"}, DAVE), reason="not in room")

    def test_unban(self) -> None:
        room = Room("11")
        room.start(power_levels={"users": {ALICE: 100, BOB: 60}, "kick": 50, "ban": 70})
        room.join(BOB)
        room.send("m.room.member", ALICE, {"membership": "ban"}, DAVE)
        # Bob may kick (60 >= 50) but not unban (60 < 70).
        self.assertRejected(room, room.make("m.room.member", BOB, {"membership": "leave"}, DAVE), reason="unban")
        self.assertAllowed(room, room.make("m.room.member", ALICE, {"membership": "leave"}, DAVE))

    def test_unknown_or_missing_membership(self) -> None:
        room = self._room()
        self.assertRejected(room, room.make("m.room.member", ALICE, {"membership": "wat"}, DAVE), reason="Unknown membership")
        self.assertRejected(room, room.make("m.room.member", ALICE, {}, DAVE), reason="no membership")
        no_key = room.make("m.room.message", ALICE, {"membership": "join"})
        no_key["type"] = "m.room.member"
        self.assertRejected(room, no_key, reason="state_key")


class KnockTests(AuthTestCase):
    def test_knock(self) -> None:
        for v in ALL_VERSIONS:
            for rule in ("knock", "knock_restricted"):
                room = Room(v)
                room.start(join_rule=rule)
                self.assertAllowed(room, room.make("m.room.member", BOB, {"membership": "knock"}, BOB))

    def test_wrong_join_rule(self) -> None:
        for rule in ("public", "invite", "restricted"):
            room = Room("11")
            room.start(join_rule=rule)
            self.assertRejected(room, room.make("m.room.member", BOB, {"membership": "knock"}, BOB), reason="knock")

    def test_knock_restrictions(self) -> None:
        room = Room("11")
        room.start(join_rule="knock")
        self.assertRejected(room, room.make("m.room.member", ALICE, {"membership": "knock"}, BOB), reason="other users")
        self.assertRejected(room, room.make("m.room.member", ALICE, {"membership": "knock"}, ALICE), reason="already in")
        room.send("m.room.member", ALICE, {"membership": "invite"}, BOB)
        self.assertRejected(room, room.make("m.room.member", BOB, {"membership": "knock"}, BOB), reason="already invited")
        room.send("m.room.member", ALICE, {"membership": "ban"}, CHARLIE)
        self.assertRejected(room, room.make("m.room.member", CHARLIE, {"membership": "knock"}, CHARLIE), reason="banned")

    def test_knocker_can_be_invited(self) -> None:
        room = Room("11")
        room.start(join_rule="knock")
        room.send("m.room.member", BOB, {"membership": "knock"}, BOB)
        self.assertAllowed(room, room.make("m.room.member", ALICE, {"membership": "invite"}, BOB))
        # ...but a knock is not an invite: it does not let Bob join.
        self.assertRejected(room, room.make("m.room.member", BOB, {"membership": "join"}, BOB))


class PowerLevelTests(AuthTestCase):
    def _room(self, v: str = "11", **extra: Any) -> Room:
        room = Room(v)
        pl: dict[str, Any] = {"users": {BOB: 50, CHARLIE: 50}, "kick": 50, "events": {"m.room.name": 50}}
        if v != "12":
            pl["users"][ALICE] = 100
        pl.update(extra)
        room.start(power_levels=pl)
        room.join(BOB)
        room.join(CHARLIE)
        self.pl = pl
        return room

    def _pl(self, room: Room, sender: str, **changes: Any) -> dict[str, Any]:
        content = copy.deepcopy(self.pl)
        for key, value in changes.items():
            if value is None:
                content.pop(key, None)
            else:
                content[key] = value
        return room.make("m.room.power_levels", sender, content, "")

    def test_integers_only(self) -> None:
        for v in ALL_VERSIONS:
            room = self._room(v)
            admin = ALICE
            for key in ("users_default", "events_default", "state_default", "ban", "redact", "kick", "invite"):
                for bad in ("50", 50.0, True, None):
                    content = dict(copy.deepcopy(self.pl), **{key: bad})
                    self.assertRejected(room, room.make("m.room.power_levels", admin, content, ""))
            for key in ("events", "notifications", "users"):
                for bad in ([], {"x": "1"} if key != "users" else {BOB: "1"}, {"x": True} if key != "users" else {BOB: True}, "x"):
                    content = dict(copy.deepcopy(self.pl), **{key: bad})
                    self.assertRejected(room, room.make("m.room.power_levels", admin, content, ""))

    def test_users_keys_must_be_user_ids(self) -> None:
        room = self._room()
        self.assertRejected(room, self._pl(room, ALICE, users={ALICE: 100, "bob": 50}), reason="user_id")

    def test_first_power_levels_always_allowed(self) -> None:
        room = Room("11")
        room.send("m.room.member", ALICE, {"membership": "join"}, ALICE)
        self.assertAllowed(room, room.make("m.room.power_levels", ALICE, {"users": {ALICE: 100, BOB: 100}, "ban": 100}, ""))

    def test_admin_changes(self) -> None:
        room = self._room()
        self.assertAllowed(room, self._pl(room, ALICE, ban=100, users={ALICE: 100, BOB: 99}))
        self.assertRejected(room, self._pl(room, ALICE, ban=101), reason="greater than your own")

    def test_cannot_raise_above_own(self) -> None:
        room = self._room(state_default=0)
        self.assertRejected(room, self._pl(room, BOB, kick=51), reason="greater")
        self.assertAllowed(room, self._pl(room, BOB, kick=49))
        self.assertRejected(room, self._pl(room, BOB, events={"m.room.name": 50, "m.x": 51}))
        self.assertAllowed(room, self._pl(room, BOB, events={"m.room.name": 50, "m.x": 50}))
        self.assertRejected(room, self._pl(room, BOB, notifications={"room": 51}))

    def test_cannot_change_values_above_own(self) -> None:
        room = self._room(state_default=0, redact=60)
        # Changing / removing an existing value above the sender's level.
        self.assertRejected(room, self._pl(room, BOB, redact=40))
        self.assertRejected(room, self._pl(room, BOB, redact=None))
        self.assertRejected(room, self._pl(room, BOB, users={ALICE: 50, BOB: 50, CHARLIE: 50}))

    def test_users_equal_level(self) -> None:
        room = self._room(state_default=0)
        users = {ALICE: 100, BOB: 50, CHARLIE: 0}
        self.assertRejected(room, self._pl(room, BOB, users=users), reason="equal to your own")
        self.assertRejected(room, self._pl(room, BOB, users={ALICE: 100, BOB: 50}), reason="equal to your own")
        # Own entry may be lowered; new entries up to own level may be added.
        self.assertAllowed(room, self._pl(room, BOB, users={ALICE: 100, BOB: 10, CHARLIE: 50}))
        self.assertAllowed(room, self._pl(room, BOB, users={ALICE: 100, BOB: 50, CHARLIE: 50, DAVE: 50}))
        self.assertRejected(room, self._pl(room, BOB, users={ALICE: 100, BOB: 50, CHARLIE: 50, DAVE: 51}))

    def test_unchanged_values_need_no_power(self) -> None:
        room = self._room(state_default=0, ban=100)
        self.assertAllowed(room, self._pl(room, BOB, kick=10))


class V12CreatorTests(AuthTestCase):
    def _room(self) -> Room:
        room = Room("12", create_content={"additional_creators": [BOB]})
        room.start(power_levels={"users": {CHARLIE: 100}})
        room.join(BOB)
        room.join(CHARLIE)
        room.join(DAVE)
        return room

    def test_creators_have_infinite_power(self) -> None:
        room = self._room()
        state = {k: room.events[v] for k, v in room.state.items()}
        self.assertEqual(auth_rules.get_user_power_level(ALICE, state, "12"), auth_rules.CREATOR_POWER_LEVEL)
        self.assertEqual(auth_rules.get_user_power_level(BOB, state, "12"), auth_rules.CREATOR_POWER_LEVEL)
        self.assertEqual(auth_rules.get_user_power_level(CHARLIE, state, "12"), 100)
        self.assertEqual(auth_rules.get_user_power_level(DAVE, state, "12"), 0)
        self.assertEqual(auth_rules.get_room_creators(room.create, "12"), {ALICE, BOB})
        self.assertGreater(auth_rules.CREATOR_POWER_LEVEL, 2**53 - 1)

    def test_creator_beats_pl100(self) -> None:
        room = self._room()
        self.assertAllowed(room, room.make("m.room.member", BOB, {"membership": "ban"}, CHARLIE))
        self.assertRejected(room, room.make("m.room.member", CHARLIE, {"membership": "ban"}, BOB), reason="ban this user")
        self.assertRejected(room, room.make("m.room.member", CHARLIE, {"membership": "leave"}, ALICE), reason="kick")

    def test_creators_not_in_users(self) -> None:
        room = self._room()
        self.assertRejected(room, room.make("m.room.power_levels", ALICE, {"users": {ALICE: 100}}, ""), reason="creators")
        self.assertRejected(room, room.make("m.room.power_levels", ALICE, {"users": {BOB: 100}}, ""), reason="creators")
        self.assertAllowed(room, room.make("m.room.power_levels", ALICE, {"users": {CHARLIE: 100, DAVE: 100}}, ""))
        # Even the first power levels event.
        fresh = Room("12")
        fresh.send("m.room.member", ALICE, {"membership": "join"}, ALICE)
        self.assertRejected(fresh, fresh.make("m.room.power_levels", ALICE, {"users": {ALICE: 100}}, ""))

    def test_pl100_cannot_touch_creator_settings_beyond_own(self) -> None:
        room = self._room()
        self.assertRejected(room, room.make("m.room.power_levels", CHARLIE, {"users": {CHARLIE: 100, DAVE: 101}}, ""))
        self.assertAllowed(room, room.make("m.room.power_levels", CHARLIE, {"users": {CHARLIE: 100, DAVE: 100}}, ""))

    def test_pre_v12_no_infinite_power(self) -> None:
        room = Room("11", create_content={"additional_creators": [BOB]})
        room.start(power_levels={"users": {ALICE: 100, CHARLIE: 100}})
        room.join(BOB)
        room.join(CHARLIE)
        state = {k: room.events[v] for k, v in room.state.items()}
        self.assertEqual(auth_rules.get_user_power_level(ALICE, state, "11"), 100)
        self.assertEqual(auth_rules.get_user_power_level(BOB, state, "11"), 0)
        self.assertAllowed(room, room.make("m.room.member", CHARLIE, {"membership": "ban"}, BOB))


class HelperTests(unittest.TestCase):
    def test_named_levels_defaults(self) -> None:
        self.assertEqual(auth_rules.get_named_power_level("ban", {}), 50)
        self.assertEqual(auth_rules.get_named_power_level("kick", {}), 50)
        self.assertEqual(auth_rules.get_named_power_level("redact", {}), 50)
        self.assertEqual(auth_rules.get_named_power_level("invite", {}), 0)
        self.assertEqual(auth_rules.get_named_power_level("state_default", {}), 50)
        pl = {("m.room.power_levels", ""): {"content": {"ban": 10, "events_default": 5}}}
        self.assertEqual(auth_rules.get_named_power_level("ban", pl), 10)
        self.assertEqual(auth_rules.get_send_level("m.room.message", None, pl), 5)
        self.assertEqual(auth_rules.get_send_level("m.room.name", "", pl), 50)
        self.assertEqual(auth_rules.get_notification_power_level("room", pl), 50)
        self.assertEqual(auth_rules.get_join_rule({}), "invite")

    def test_user_power_level_defaults(self) -> None:
        create = {"type": "m.room.create", "sender": ALICE, "content": {"creator": ALICE}}
        state = {("m.room.create", ""): create, ("m.room.power_levels", ""): {"content": {"users_default": 7, "users": {BOB: 3}}}}
        self.assertEqual(auth_rules.get_user_power_level(BOB, state, "10"), 3)
        self.assertEqual(auth_rules.get_user_power_level(ALICE, state, "10"), 7)
        # Garbage from old state never crashes the helper.
        state[("m.room.power_levels", "")] = {"content": {"users": "junk", "users_default": "x"}}
        self.assertEqual(auth_rules.get_user_power_level(BOB, state, "10"), 0)

    def test_server_names(self) -> None:
        for good in ("example.org", "example.org:8448", "1.2.3.4", "[::1]", "[1234:5678::abcd]:443", "localhost"):
            self.assertTrue(auth_rules.is_valid_server_name(good), good)
        for bad in ("", "exa mple.org", "example.org:", "example.org:abc", "[::1", "example.org:123456", "a..b"):
            self.assertFalse(auth_rules.is_valid_server_name(bad), bad)

    def test_event_id_is_computed_when_absent(self) -> None:
        room = Room("11")
        create = {k: v for k, v in room.create.items() if k != "event_id"}
        join = room.make("m.room.member", ALICE, {"membership": "join"}, ALICE, prev=[compute_event_id(create, "11")])
        check_auth_rules(join, {("m.room.create", ""): create}, "11")


class SynapseParityTests(AuthTestCase):
    def test_power_levels_with_other_state_key_has_no_predecessor(self) -> None:
        room = Room("11")
        room.start(power_levels={"users": {ALICE: 100, BOB: 50}, "state_default": 50})
        room.join(BOB)
        # Bob could not grant this in the real power levels...
        self.assertRejected(room, room.make("m.room.power_levels", BOB, {"users": {BOB: 100}}, ""))
        # ...but under another state key nothing is compared (content rules still apply).
        self.assertAllowed(room, room.make("m.room.power_levels", BOB, {"users": {BOB: 100}}, "x"))
        self.assertRejected(room, room.make("m.room.power_levels", BOB, {"users": {BOB: "100"}}, "x"))

    def test_create_type_is_special_whatever_the_state_key(self) -> None:
        room = Room("11")
        room.start()
        odd = room.make("m.room.create", BOB, {"room_version": "11"}, "x")
        self.assertEqual(auth_rules.auth_types_for_event(odd, "11"), [])
        # It has prev events, so the create rules reject it...
        with self.assertRaises(AuthError):
            check_auth_rules(odd, {}, "11")
        # ...but state resolution (state-dependent rules only) lets it through.
        check_auth_rules(odd, {}, "11", state_dependent_only=True)

    def test_state_dependent_only_skips_v12_room_id_rule(self) -> None:
        room = Room("12")
        room.start()
        ev = room.make("m.room.message", ALICE, {"body": "x"})
        auth = room.auth_map(ev)
        auth[("m.room.create", "")] = Room("12", creator=BOB).create
        with self.assertRaises(AuthError):
            check_auth_rules(ev, auth, "12")
        # Bob's create makes Bob the creator; Alice is merely joined.
        check_auth_rules(ev, auth, "12", state_dependent_only=True)


class ConvenienceHelperTests(AuthTestCase):
    def test_select_auth_event_ids(self) -> None:
        for v in ALL_VERSIONS:
            room = Room(v)
            room.start()
            ev = {"type": "m.room.member", "sender": BOB, "state_key": BOB, "content": {"membership": "join"}}
            ids = auth_rules.select_auth_event_ids(ev, room.state, v)
            expected = {room.state[("m.room.power_levels", "")], room.state[("m.room.join_rules", "")]}
            if v != "12":
                expected.add(room.create["event_id"])
            self.assertEqual(set(ids), expected)

    def test_user_can_send(self) -> None:
        room = Room("11")
        room.start(power_levels={"users": {ALICE: 100}, "events": {"m.room.name": 75}, "events_default": 10})
        state = {k: room.events[v] for k, v in room.state.items()}
        self.assertTrue(auth_rules.user_can_send(ALICE, "m.room.name", "", state, "11"))
        self.assertFalse(auth_rules.user_can_send(BOB, "m.room.message", None, state, "11"))
        self.assertFalse(auth_rules.user_can_send(BOB, "m.room.topic", "", state, "11"))
