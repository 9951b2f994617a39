"""The push rule evaluator against the spec's examples and default rules."""

from __future__ import annotations

from twisted.trial import unittest

from homeserver.protocol.push_rules import (
    EvaluationContext,
    InvalidRule,
    PushRule,
    build_ruleset,
    condition_matches,
    default_rules,
    evaluate,
    glob_matches,
    member_count_matches,
    notify_and_highlight,
    rule_from_client,
    split_path,
)

ME = "@alice:example.org"


def msg(body: str, **content: object) -> dict:
    return {
        "type": "m.room.message",
        "sender": "@bob:example.org",
        "room_id": "!r:example.org",
        "content": {"msgtype": "m.text", "body": body, **content},
    }


def ruleset(**user_rules: list[PushRule]):
    return build_ruleset(ME, user_rules)


class GlobAndPathTest(unittest.TestCase):
    def test_topic_example(self) -> None:
        cond = {"kind": "event_match", "key": "content.topic", "pattern": "lunc?*"}
        ctx = EvaluationContext()
        ev = lambda t: {"type": "m.room.topic", "content": {"topic": t}}  # noqa: E731
        self.assertTrue(condition_matches(cond, ev("Lunch plans"), ctx))
        self.assertTrue(condition_matches(cond, ev("LUNCH"), ctx))
        self.assertFalse(condition_matches(cond, ev(" lunch"), ctx))
        self.assertFalse(condition_matches(cond, ev("lunc"), ctx))
        self.assertFalse(condition_matches(cond, ev(None), ctx))  # type: ignore[arg-type]
        self.assertFalse(condition_matches(cond, {"type": "m.room.topic", "content": {}}, ctx))

    def test_star_needs_a_string(self) -> None:
        cond = {"kind": "event_match", "key": "content.x", "pattern": "*"}
        self.assertFalse(condition_matches(cond, {"content": {"x": 1}}, EvaluationContext()))
        self.assertTrue(condition_matches(cond, {"content": {"x": ""}}, EvaluationContext()))

    def test_body_word_boundaries(self) -> None:
        cond = {"kind": "event_match", "key": "content.body", "pattern": "ex*ple"}
        ctx = EvaluationContext()
        for body in ("An example event.", "exple", "An exciting triple-whammy"):
            self.assertTrue(condition_matches(cond, msg(body), ctx), body)
        for body in ("examples", "anexample", "exampled"):
            self.assertFalse(condition_matches(cond, msg(body), ctx), body)

    def test_glob_is_literal_otherwise(self) -> None:
        self.assertTrue(glob_matches("a.b", "A.B"))
        self.assertFalse(glob_matches("a.b", "axb"))
        self.assertTrue(glob_matches("[x]", "[X]"))
        self.assertTrue(glob_matches("*", "multi\nline"))

    def test_split_path(self) -> None:
        self.assertEqual(split_path("content.m\\.relates_to"), ["content", "m.relates_to"])
        self.assertEqual(split_path("content.m\\\\foo"), ["content", "m\\foo"])
        self.assertEqual(split_path("content.m\\x"), ["content", "m\\x"])
        self.assertEqual(split_path("a.b.c"), ["a", "b", "c"])


class PropertyConditionsTest(unittest.TestCase):
    create = {
        "content": {
            "creator": "@example:example.org",
            "m.federate": True,
            "predecessor": {"event_id": "$something:example.org", "room_id": "!oldroom:example.org"},
            "room_version": "1",
        },
        "type": "m.room.create",
        "state_key": "",
    }

    def test_event_property_is(self) -> None:
        ctx = EvaluationContext()
        cond = {"kind": "event_property_is", "key": "content.m\\.federate", "value": True}
        self.assertTrue(condition_matches(cond, self.create, ctx))
        for other in ("true", 1):
            ev = {**self.create, "content": {**self.create["content"], "m.federate": other}}
            self.assertFalse(condition_matches(cond, ev, ctx))
        # 1 is not True, and null matches only an explicit null.
        self.assertFalse(condition_matches({"kind": "event_property_is", "key": "content.x", "value": 1}, {"content": {"x": True}}, ctx))
        self.assertTrue(condition_matches({"kind": "event_property_is", "key": "content.x", "value": None}, {"content": {"x": None}}, ctx))
        self.assertFalse(condition_matches({"kind": "event_property_is", "key": "content.x", "value": None}, {"content": {}}, ctx))
        # Compound values never match.
        self.assertFalse(condition_matches({"kind": "event_property_is", "key": "content.predecessor", "value": {}}, self.create, ctx))

    def test_event_property_contains(self) -> None:
        ctx = EvaluationContext()
        ev = {"type": "m.room.canonical_alias", "content": {"alias": "#somewhere:localhost", "alt_aliases": ["#somewhere:example.org", "#myroom:example.com"]}}
        cond = {"kind": "event_property_contains", "key": "content.alt_aliases", "value": "#myroom:example.com"}
        self.assertTrue(condition_matches(cond, ev, ctx))
        self.assertFalse(condition_matches({**cond, "value": ":example.com"}, ev, ctx))
        self.assertFalse(condition_matches({**cond, "key": "content.alias"}, ev, ctx))

    def test_member_count(self) -> None:
        self.assertTrue(member_count_matches("2", 2))
        self.assertTrue(member_count_matches("==2", 2))
        self.assertTrue(member_count_matches("<=10", 10))
        self.assertTrue(member_count_matches(">1", 2))
        self.assertFalse(member_count_matches("<2", 2))
        self.assertFalse(member_count_matches("two", 2))
        self.assertFalse(member_count_matches(2, 2))

    def test_sender_permission(self) -> None:
        cond = {"kind": "sender_notification_permission", "key": "room"}
        self.assertFalse(condition_matches(cond, msg("x"), EvaluationContext(sender_power_level=0)))
        self.assertTrue(condition_matches(cond, msg("x"), EvaluationContext(sender_power_level=50)))
        self.assertTrue(condition_matches(cond, msg("x"), EvaluationContext(sender_power_level=10, notification_levels={"room": 10})))

    def test_unknown_condition_never_matches(self) -> None:
        self.assertFalse(condition_matches({"kind": "org.example.whatever"}, msg("x"), EvaluationContext()))


class DefaultRulesTest(unittest.TestCase):
    def actions(self, event: dict, ctx: EvaluationContext | None = None, rs=None):
        result = evaluate(rs or ruleset(), event, ctx or EvaluationContext(room_member_count=5))
        return result

    def test_all_spec_rules_present(self) -> None:
        ids = {r.rule_id for rules in default_rules(ME).values() for r in rules}
        for rid in (
            ".m.rule.master", ".m.rule.suppress_notices", ".m.rule.invite_for_me", ".m.rule.member_event",
            ".m.rule.is_user_mention", ".m.rule.contains_display_name", ".m.rule.is_room_mention",
            ".m.rule.roomnotif", ".m.rule.tombstone", ".m.rule.reaction", ".m.rule.room.server_acl",
            ".m.rule.suppress_edits", ".m.rule.call", ".m.rule.encrypted_room_one_to_one",
            ".m.rule.room_one_to_one", ".m.rule.message", ".m.rule.encrypted", ".m.rule.contains_user_name",
        ):
            self.assertIn(rid, ids)

    def test_plain_message_notifies(self) -> None:
        rule_id, actions = self.actions(msg("hello"))
        self.assertEqual(rule_id, ".m.rule.message")
        self.assertEqual(notify_and_highlight(actions), (True, False))

    def test_one_to_one(self) -> None:
        rule_id, actions = self.actions(msg("hello"), EvaluationContext(room_member_count=2))
        self.assertEqual(rule_id, ".m.rule.room_one_to_one")
        self.assertIn({"set_tweak": "sound", "value": "default"}, actions)
        enc = {"type": "m.room.encrypted", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
        self.assertEqual(self.actions(enc, EvaluationContext(room_member_count=2))[0], ".m.rule.encrypted_room_one_to_one")
        self.assertEqual(self.actions(enc)[0], ".m.rule.encrypted")

    def test_notice_suppressed(self) -> None:
        rule_id, actions = self.actions(msg("beep", msgtype="m.notice"))
        self.assertEqual((rule_id, actions), (".m.rule.suppress_notices", []))

    def test_user_mention_highlights(self) -> None:
        rule_id, actions = self.actions(msg("hi", **{"m.mentions": {"user_ids": [ME]}}))
        self.assertEqual(rule_id, ".m.rule.is_user_mention")
        self.assertEqual(notify_and_highlight(actions), (True, True))

    def test_display_name_and_user_name_legacy(self) -> None:
        ctx = EvaluationContext(room_member_count=5, user_display_name="Alice Liddell")
        self.assertEqual(self.actions(msg("hey alice liddell!"), ctx)[0], ".m.rule.contains_display_name")
        self.assertEqual(self.actions(msg("hey alice"), ctx)[0], ".m.rule.contains_user_name")
        self.assertEqual(self.actions(msg("malice"), ctx)[0], ".m.rule.message")
        # With m.mentions the legacy body rules are skipped.
        self.assertEqual(self.actions(msg("hey alice", **{"m.mentions": {}}), ctx)[0], ".m.rule.message")

    def test_room_mention_needs_power(self) -> None:
        ev = msg("@room hi", **{"m.mentions": {"room": True}})
        self.assertEqual(self.actions(ev, EvaluationContext(room_member_count=5, sender_power_level=50))[0], ".m.rule.is_room_mention")
        self.assertEqual(self.actions(ev, EvaluationContext(room_member_count=5))[0], ".m.rule.message")
        legacy = msg("@room hi")
        self.assertEqual(self.actions(legacy, EvaluationContext(room_member_count=5, sender_power_level=100))[0], ".m.rule.roomnotif")

    def test_invite_member_tombstone_reaction_edit_acl(self) -> None:
        invite = {"type": "m.room.member", "state_key": ME, "content": {"membership": "invite"}}
        rid, actions = self.actions(invite)
        self.assertEqual(rid, ".m.rule.invite_for_me")
        self.assertEqual(notify_and_highlight(actions), (True, False))
        other = {"type": "m.room.member", "state_key": "@carol:example.org", "content": {"membership": "invite"}}
        self.assertEqual(self.actions(other), (".m.rule.member_event", []))
        tomb = {"type": "m.room.tombstone", "state_key": "", "content": {"body": "moved"}}
        self.assertEqual(notify_and_highlight(self.actions(tomb)[1]), (True, True))
        self.assertIsNone(self.actions({"type": "m.room.tombstone", "state_key": "x", "content": {}}))
        self.assertEqual(self.actions({"type": "m.reaction", "content": {}})[1], [])
        edit = msg("* fixed", **{"m.relates_to": {"rel_type": "m.replace", "event_id": "$x"}})
        self.assertEqual(self.actions(edit)[0], ".m.rule.suppress_edits")
        self.assertEqual(self.actions({"type": "m.room.server_acl", "state_key": "", "content": {}})[1], [])
        call = {"type": "m.call.invite", "content": {}}
        self.assertIn({"set_tweak": "sound", "value": "ring"}, self.actions(call)[1])

    def test_master_outranks_user_rules(self) -> None:
        user = PushRule("override", "mine", ["notify"], conditions=[])
        rs = build_ruleset(ME, {"override": [user]}, {".m.rule.master": (True, None)})
        self.assertEqual(evaluate(rs, msg("x"), EvaluationContext()), (".m.rule.master", []))
        rs = build_ruleset(ME, {"override": [user]})
        self.assertEqual(evaluate(rs, msg("x", msgtype="m.notice"), EvaluationContext())[0], "mine")

    def test_user_rules_by_kind(self) -> None:
        room_rule = PushRule("room", "!r:example.org", [])
        sender_rule = PushRule("sender", "@bob:example.org", ["notify", {"set_tweak": "highlight"}])
        content_rule = PushRule("content", "cake", ["notify", {"set_tweak": "sound", "value": "cakealarm.wav"}], pattern="cake")
        rs = ruleset(room=[room_rule], sender=[sender_rule])
        self.assertEqual(evaluate(rs, msg("x"), EvaluationContext()), ("!r:example.org", []))
        rs = ruleset(sender=[sender_rule], content=[content_rule])
        self.assertEqual(evaluate(rs, msg("I like cake"), EvaluationContext())[0], "cake")
        self.assertEqual(evaluate(rs, msg("I like pie"), EvaluationContext())[0], "@bob:example.org")

    def test_disabled_and_legacy_actions(self) -> None:
        rs = build_ruleset(ME, {}, {".m.rule.message": (False, None)})
        self.assertIsNone(evaluate(rs, msg("x"), EvaluationContext()))
        rs = build_ruleset(ME, {}, {".m.rule.message": (None, ["dont_notify"])})
        self.assertEqual(evaluate(rs, msg("x"), EvaluationContext()), (".m.rule.message", []))

    def test_client_rule_validation(self) -> None:
        with self.assertRaises(InvalidRule):
            rule_from_client("override", ".mine", {"actions": []})
        with self.assertRaises(InvalidRule):
            rule_from_client("override", "a/b", {"actions": []})
        with self.assertRaises(InvalidRule):
            rule_from_client("content", "c", {"actions": ["notify"]})
        with self.assertRaises(InvalidRule):
            rule_from_client("override", "c", {"actions": ["explode"]})
        rule = rule_from_client("override", "beer", {
            "conditions": [{"kind": "event_match", "key": "content.body", "pattern": "beer"}, {"kind": "room_member_count", "is": "<=10"}],
            "actions": ["notify", {"set_tweak": "sound", "value": "beeroclock.wav"}],
        })
        rs = ruleset(override=[rule])
        self.assertEqual(evaluate(rs, msg("Beer time"), EvaluationContext(room_member_count=4))[0], "beer")
        self.assertEqual(evaluate(rs, msg("Beer time"), EvaluationContext(room_member_count=40))[0], ".m.rule.message")


class GenericEvaluationTest(unittest.TestCase):
    """The push handler evaluates the default rules once per event for every recipient the
    event does not name; that must give each of them exactly their own result."""

    def test_shortcut_matches_full_evaluation(self) -> None:
        import itertools
        import json as _json

        from homeserver.protocol.push_rules import EvaluationContext, build_ruleset, evaluate, may_be_personal

        users = [("@alice:hs", "Alice"), ("@bob:hs", None), ("@carol:hs", "Caz"), ("@room:hs", "everyone")]
        bodies = ["hello", "hi Alice!", "ping bob", "@room look", "Caz?", "nothing here", "alice"]
        extras = [{}, {"m.mentions": {"user_ids": ["@alice:hs"]}}, {"m.mentions": {"room": True}}, {"msgtype": "m.notice"}]
        generic = build_ruleset("@\x00:invalid", {}, None)
        checked = 0
        for (user_id, name), body, extra, members in itertools.product(users, bodies, extras, (2, 5)):
            event = {"type": "m.room.message", "sender": "@zed:hs", "room_id": "!r:hs", "content": {"msgtype": "m.text", "body": body, **extra}}
            ctx = EvaluationContext(room_member_count=members, sender_power_level=100, notification_levels={"room": 50}, user_display_name=name)
            text = _json.dumps(event["content"], ensure_ascii=False).lower()
            if may_be_personal(event, user_id, name, text):
                continue
            own = evaluate(build_ruleset(user_id, {}, None), event, ctx)
            shared = evaluate(generic, event, EvaluationContext(room_member_count=members, sender_power_level=100, notification_levels={"room": 50}, user_display_name=None))
            self.assertEqual(own, shared, (user_id, body, extra))
            checked += 1
        self.assertGreater(checked, 50)
