"""The push rules API's answers to good and bad requests, compared with a real Synapse:
an unknown scope, kind or attribute, a rule id starting with '.' or holding a slash,
missing or invalid actions, conditions and patterns, ``before``/``after`` naming an
unknown or a server-default rule, server-default rules that can be switched and given
actions but not replaced or deleted, GET of a kind or attribute with and without the
trailing slash (Sytest's tests/61push/01message-pushed.pl and 02add_rules.pl, Complement's
push_test.go), and the order rules end up in."""

from __future__ import annotations

from typing import Any

from twisted.trial import unittest

from tests.support.differential import server_pair

P = "/_matrix/client/v3/pushrules/global"
CONDITION = {"kind": "event_match", "key": "content.body", "pattern": "x"}

CASES: list[tuple[str, str, str, Any]] = [
    ("unknown scope", "PUT", "/_matrix/client/v3/pushrules/device/room/!a:b", {"actions": ["notify"]}),
    ("unknown kind", "PUT", f"{P}/nonsense/x", {"actions": ["notify"]}),
    ("GET an unknown kind", "GET", f"{P}/nonsense/x", None),
    ("GET an unknown scope", "GET", "/_matrix/client/v3/pushrules/device/", None),
    ("GET without /pushrules/'s slash", "GET", "/_matrix/client/v3/pushrules", None),
    ("GET global without its slash", "GET", f"{P}", None),
    ("GET a kind without its slash", "GET", f"{P}/room", None),
    ("GET a kind", "GET", f"{P}/room/", None),
    ("rule id starting with a dot", "PUT", f"{P}/override/.m.mine", {"actions": ["notify"], "conditions": []}),
    ("rule id with an encoded slash", "PUT", f"{P}/override/a%2Fb", {"actions": ["notify"], "conditions": []}),
    ("rule id with a backslash", "PUT", f"{P}/override/a%5Cb", {"actions": ["notify"], "conditions": []}),
    ("no rule id", "PUT", f"{P}/room/", {"actions": ["notify"]}),
    ("missing actions", "PUT", f"{P}/room/!a:b", {}),
    ("actions not a list", "PUT", f"{P}/room/!a:b", {"actions": "notify"}),
    ("an unknown action", "PUT", f"{P}/room/!a:b", {"actions": ["foobar"]}),
    ("an object action without set_tweak", "PUT", f"{P}/room/!a:b", {"actions": [{"foo": "bar"}]}),
    ("a number as action", "PUT", f"{P}/room/!a:b", {"actions": [1]}),
    ("a room rule", "PUT", f"{P}/room/!a:b", {"actions": ["notify"]}),
    ("no actions at all", "PUT", f"{P}/room/!g:h", {"actions": []}),
    ("legacy actions", "PUT", f"{P}/room/!i:j", {"actions": ["dont_notify", "coalesce"]}),
    ("tweaks", "PUT", f"{P}/room/!k:l", {"actions": ["notify", {"set_tweak": "highlight"}, {"set_tweak": "sound"}]}),
    ("content rule without pattern", "PUT", f"{P}/content/c1", {"actions": ["notify"]}),
    ("content rule", "PUT", f"{P}/content/c1", {"actions": ["notify"], "pattern": "foo"}),
    ("override without conditions", "PUT", f"{P}/override/o1", {"actions": ["notify"]}),
    ("conditions not a list of objects", "PUT", f"{P}/override/o1", {"actions": ["notify"], "conditions": ["x"]}),
    ("a condition without kind", "PUT", f"{P}/override/o1", {"actions": ["notify"], "conditions": [{"key": "a"}]}),
    ("an unknown condition kind", "PUT", f"{P}/override/o1", {"actions": ["notify"], "conditions": [{"kind": "weird"}]}),
    ("an override rule", "PUT", f"{P}/override/o1", {"actions": ["notify"], "conditions": [CONDITION]}),
    ("an underride rule with no conditions", "PUT", f"{P}/underride/u1", {"actions": ["notify"], "conditions": []}),
    ("a sender rule", "PUT", f"{P}/sender/@x:y", {"actions": ["notify"]}),
    ("postcontent", "PUT", f"{P}/postcontent/p1", {"actions": ["notify"]}),
    ("before an unknown rule", "PUT", f"{P}/room/!c:d?before=!zz:y", {"actions": ["notify"]}),
    ("after an unknown rule", "PUT", f"{P}/room/!c:d?after=!zz:y", {"actions": ["notify"]}),
    ("before a server-default rule", "PUT", f"{P}/override/o2?before=.m.rule.master", {"actions": ["notify"], "conditions": []}),
    ("after a server-default rule", "PUT", f"{P}/override/o2?after=.m.rule.master", {"actions": ["notify"], "conditions": []}),
    ("before a rule", "PUT", f"{P}/room/!c:d?before=!a:b", {"actions": ["notify"]}),
    ("before and after", "PUT", f"{P}/room/!e:f?before=!a:b&after=!c:d", {"actions": ["notify"]}),
    ("the same rule again", "PUT", f"{P}/room/!e:f", {"actions": ["notify"]}),
    ("replace a server-default rule", "PUT", f"{P}/override/.m.rule.master", {"actions": ["notify"], "conditions": []}),
    ("delete a server-default rule", "DELETE", f"{P}/override/.m.rule.master", None),
    ("delete an unknown rule", "DELETE", f"{P}/room/!nope:x", None),
    ("delete in an unknown kind", "DELETE", f"{P}/nonsense/x", None),
    ("delete in an unknown scope", "DELETE", "/_matrix/client/v3/pushrules/device/room/x", None),
    ("GET an unknown rule", "GET", f"{P}/room/!nope:x", None),
    ("GET an unknown server-default rule", "GET", f"{P}/override/.m.rule.nope", None),
    ("GET a rule's enabled", "GET", f"{P}/room/!a:b/enabled", None),
    ("GET a rule's rule_id", "GET", f"{P}/room/!a:b/rule_id", None),
    ("GET an attribute the rule lacks", "GET", f"{P}/room/!a:b/conditions", None),
    ("GET with a trailing slash after the rule", "GET", f"{P}/room/!a:b/", None),
    ("GET enabled of an unknown rule", "GET", f"{P}/room/!nope:x/enabled", None),
    ("disable an unknown rule", "PUT", f"{P}/room/!nope:x/enabled", {"enabled": False}),
    ("enabled not a boolean", "PUT", f"{P}/room/!a:b/enabled", {"enabled": "no"}),
    ("enabled missing", "PUT", f"{P}/room/!a:b/enabled", {}),
    ("disable a rule", "PUT", f"{P}/room/!a:b/enabled", {"enabled": False}),
    ("actions missing", "PUT", f"{P}/room/!a:b/actions", {}),
    ("bad actions", "PUT", f"{P}/room/!a:b/actions", {"actions": ["foobar"]}),
    ("actions of an unknown rule", "PUT", f"{P}/room/!nope:x/actions", {"actions": ["notify"]}),
    ("set a rule's actions", "PUT", f"{P}/room/!a:b/actions", {"actions": ["dont_notify"]}),
    ("enable a server-default rule", "PUT", f"{P}/override/.m.rule.master/enabled", {"enabled": True}),
    ("actions of a server-default rule", "PUT", f"{P}/override/.m.rule.suppress_notices/actions", {"actions": ["notify"]}),
    ("enable an unknown server-default rule", "PUT", f"{P}/override/.m.rule.nope/enabled", {"enabled": True}),
    ("an unknown attribute", "PUT", f"{P}/room/!a:b/foo", {"foo": 1}),
    ("an attribute in an unknown kind", "PUT", f"{P}/nonsense/x/enabled", {"enabled": True}),
    ("delete through an attribute path", "DELETE", f"{P}/room/!g:h/enabled", None),
    ("delete a rule", "DELETE", f"{P}/room/!i:j", None),
    ("the body is not JSON", "PUT", f"{P}/room/!x:y", b"not json"),
]

# Refused here, stored by Synapse 1.163 (the spec makes both strings).
NOT_LIKE_SYNAPSE: list[tuple[str, str, Any]] = [
    ("a number as a tweak", f"{P}/room/!a:b", {"actions": [{"set_tweak": 5}]}),
    ("a number as pattern", f"{P}/content/c9", {"actions": ["notify"], "pattern": 5}),
]


class PushRulesConformanceTest(unittest.TestCase):
    timeout = 120

    async def test_push_rule_requests_answer_like_synapse(self) -> None:
        pair = await server_pair(self)
        listings: dict[str, Any] = {}
        for side in pair:
            alice = await side.register("alice")
            for name, method, path, body in CASES:
                if isinstance(body, bytes):
                    code, answer = await alice.raw(method, path, data=body)
                else:
                    code, answer = await alice.raw(method, path, body)
                # Status and errcode (the messages are each server's own).
                side.record(name, code, {"errcode": answer.get("errcode")} if code >= 400 else answer)
            rules = await alice.get("/pushrules/")
            listings[side.label] = {
                kind: [(r["rule_id"], r["enabled"], r["actions"], r.get("pattern"), r.get("conditions")) for r in rules["global"][kind]]
                for kind in ("override", "content", "room", "sender", "underride")
            }
            if side is pair.wspr:
                for name, path, body in NOT_LIKE_SYNAPSE:
                    code, answer = await alice.raw("PUT", path, body)
                    self.assertEqual((code, answer["errcode"]), (400, "M_UNKNOWN"), name)
        pair.assert_same()
        # The user rules, in order, with what they hold (the server-default content rule
        # names the user, whose id differs between the servers).
        for kind in ("override", "content", "room", "sender", "underride"):
            mine = [r for r in listings["WSPR"][kind] if not r[0].startswith(".")]
            self.assertEqual(mine, [r for r in listings["Synapse"][kind] if not r[0].startswith(".")], kind)
