"""Push rules (client-server API, "Push Notifications"): the server-default rules and
a pure evaluator.

No I/O: the caller supplies the event (PDU dict), the room facts conditions need
(member count, sender power level, notification levels, the user's display name) and
the user's ruleset; the evaluator answers with the actions of the first matching rule.

Where the spec is silent the behaviour follows Synapse: the legacy body-matching rules
(``.m.rule.contains_display_name``, ``.m.rule.contains_user_name``, ``.m.rule.roomnotif``)
still exist but are skipped for events that carry ``m.mentions`` (intentional mentions),
and ``sender_notification_permission`` defaults to level 50.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

KINDS = ("override", "content", "room", "sender", "underride")

# Actions from older spec versions that are ignored (a rule with only these is silent).
LEGACY_ACTIONS = ("dont_notify", "coalesce")

# Rules that look for mentions in the body; superseded by m.mentions when an event has it.
LEGACY_MENTION_RULES = frozenset({".m.rule.contains_display_name", ".m.rule.contains_user_name", ".m.rule.roomnotif"})

_SOUND_DEFAULT = {"set_tweak": "sound", "value": "default"}
_HIGHLIGHT = {"set_tweak": "highlight"}
# Synapse lists highlight: false in the actions of its rules that never highlight (and
# orders highlight before sound): the same actions here, as clients and push gateways see
# them (tweaks), though the spec's lists leave it out.
_NO_HIGHLIGHT = {"set_tweak": "highlight", "value": False}

MISSING = object()


@dataclass
class PushRule:
    kind: str
    rule_id: str
    actions: list[Any]
    default: bool = False
    enabled: bool = True
    conditions: list[dict[str, Any]] | None = None
    pattern: str | None = None

    def effective_conditions(self) -> list[dict[str, Any]]:
        """The conditions the rule tests: content/room/sender rules have implied ones."""
        if self.kind == "content":
            if self.pattern is None:
                return [{"kind": "_never"}]
            return [{"kind": "event_match", "key": "content.body", "pattern": self.pattern}]
        if self.kind == "room":
            return [{"kind": "event_match", "key": "room_id", "pattern": self.rule_id}]
        if self.kind == "sender":
            return [{"kind": "event_match", "key": "sender", "pattern": self.rule_id}]
        return self.conditions or []

    def to_client(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule_id": self.rule_id,
            "default": self.default,
            "enabled": self.enabled,
            "actions": copy.deepcopy(self.actions),
        }
        if self.kind in ("override", "underride"):
            out["conditions"] = copy.deepcopy(self.conditions or [])
        if self.kind == "content" and self.pattern is not None:
            out["pattern"] = self.pattern
        return out


# -- server-default rules ------------------------------------------------------------


def _rule(kind: str, rule_id: str, conditions: list[dict[str, Any]] | None, actions: list[Any], **kw: Any) -> PushRule:
    return PushRule(kind=kind, rule_id=rule_id, actions=actions, default=True, conditions=conditions, **kw)


def _em(key: str, pattern: str) -> dict[str, Any]:
    return {"kind": "event_match", "key": key, "pattern": pattern}


def default_rules(user_id: str) -> dict[str, list[PushRule]]:
    """The server-default rules for ``user_id`` by kind, in priority order. ``.m.rule.master``
    is first of the overrides: it outranks user rules too (see ``build_ruleset``)."""
    localpart = user_id[1:].split(":", 1)[0] if user_id.startswith("@") else user_id
    override = [
        _rule("override", ".m.rule.master", [], [], enabled=False),
        _rule("override", ".m.rule.suppress_notices", [_em("content.msgtype", "m.notice")], []),
        _rule(
            "override",
            ".m.rule.invite_for_me",
            [_em("type", "m.room.member"), _em("content.membership", "invite"), _em("state_key", user_id)],
            ["notify", dict(_NO_HIGHLIGHT), dict(_SOUND_DEFAULT)],
        ),
        _rule("override", ".m.rule.member_event", [_em("type", "m.room.member")], []),
        _rule(
            "override",
            ".m.rule.is_user_mention",
            [{"kind": "event_property_contains", "key": "content.m\\.mentions.user_ids", "value": user_id}],
            ["notify", dict(_HIGHLIGHT), dict(_SOUND_DEFAULT)],
        ),
        _rule(
            "override",
            ".m.rule.contains_display_name",
            [{"kind": "contains_display_name"}],
            ["notify", dict(_HIGHLIGHT), dict(_SOUND_DEFAULT)],
        ),
        _rule(
            "override",
            ".m.rule.is_room_mention",
            [
                {"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": True},
                {"kind": "sender_notification_permission", "key": "room"},
            ],
            ["notify", dict(_HIGHLIGHT)],
        ),
        _rule(
            "override",
            ".m.rule.roomnotif",
            [_em("content.body", "@room"), {"kind": "sender_notification_permission", "key": "room"}],
            ["notify", dict(_HIGHLIGHT)],
        ),
        _rule(
            "override",
            ".m.rule.tombstone",
            [_em("type", "m.room.tombstone"), _em("state_key", "")],
            ["notify", dict(_HIGHLIGHT)],
        ),
        _rule("override", ".m.rule.reaction", [_em("type", "m.reaction")], []),
        _rule("override", ".m.rule.room.server_acl", [_em("type", "m.room.server_acl"), _em("state_key", "")], []),
        _rule(
            "override",
            ".m.rule.suppress_edits",
            [{"kind": "event_property_is", "key": "content.m\\.relates_to.rel_type", "value": "m.replace"}],
            [],
        ),
    ]
    content = [
        _rule(
            "content",
            ".m.rule.contains_user_name",
            None,
            ["notify", dict(_HIGHLIGHT), dict(_SOUND_DEFAULT)],
            pattern=localpart,
        ),
    ]
    underride = [
        _rule("underride", ".m.rule.call", [_em("type", "m.call.invite")], ["notify", {"set_tweak": "sound", "value": "ring"}, dict(_NO_HIGHLIGHT)]),
        _rule(
            "underride",
            ".m.rule.encrypted_room_one_to_one",
            [{"kind": "room_member_count", "is": "2"}, _em("type", "m.room.encrypted")],
            ["notify", dict(_SOUND_DEFAULT), dict(_NO_HIGHLIGHT)],
        ),
        _rule(
            "underride",
            ".m.rule.room_one_to_one",
            [{"kind": "room_member_count", "is": "2"}, _em("type", "m.room.message")],
            ["notify", dict(_SOUND_DEFAULT), dict(_NO_HIGHLIGHT)],
        ),
        _rule("underride", ".m.rule.message", [_em("type", "m.room.message")], ["notify", dict(_NO_HIGHLIGHT)]),
        _rule("underride", ".m.rule.encrypted", [_em("type", "m.room.encrypted")], ["notify", dict(_NO_HIGHLIGHT)]),
    ]
    return {"override": override, "content": content, "room": [], "sender": [], "underride": underride}


DEFAULT_RULE_IDS: dict[str, str] = {r.rule_id: kind for kind, rules in default_rules("@x:x").items() for r in rules}


@dataclass
class Ruleset:
    """A user's complete ruleset, in evaluation order per kind."""

    rules: dict[str, list[PushRule]] = field(default_factory=lambda: {k: [] for k in KINDS})
    # True when the user has changed nothing: the server defaults for their user id.
    is_default: bool = False

    def ordered(self) -> Iterable[PushRule]:
        for kind in KINDS:
            yield from self.rules[kind]

    def find(self, kind: str, rule_id: str) -> PushRule | None:
        for rule in self.rules.get(kind, ()):
            if rule.rule_id == rule_id:
                return rule
        return None

    def to_client(self) -> dict[str, Any]:
        return {kind: [r.to_client() for r in self.rules[kind]] for kind in KINDS}


def build_ruleset(
    user_id: str,
    user_rules: Mapping[str, list[PushRule]],
    default_overrides: Mapping[str, tuple[bool | None, list[Any] | None]] | None = None,
) -> Ruleset:
    """Merges user rules (by kind, most important first) with the server defaults.

    ``default_overrides`` maps a default rule id to the user's (enabled, actions)
    changes, either of which may be None for "unchanged".
    """
    defaults = default_rules(user_id)
    overrides = default_overrides or {}
    for rules in defaults.values():
        for rule in rules:
            enabled, actions = overrides.get(rule.rule_id, (None, None))
            if enabled is not None:
                rule.enabled = enabled
            if actions is not None:
                rule.actions = actions
    out = Ruleset(is_default=not overrides and not any(user_rules.values()))
    master, *other_overrides = defaults["override"]
    out.rules["override"] = [master, *user_rules.get("override", []), *other_overrides]
    for kind in ("content", "room", "sender", "underride"):
        out.rules[kind] = [*user_rules.get(kind, []), *defaults[kind]]
    return out


# -- matching ------------------------------------------------------------------------


def split_path(key: str) -> list[str]:
    """A dot-separated property path, with ``\\.`` and ``\\\\`` escapes, as components."""
    parts: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(key):
        c = key[i]
        if c == "\\" and i + 1 < len(key) and key[i + 1] in ".\\":
            cur.append(key[i + 1])
            i += 2
            continue
        if c == ".":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


@lru_cache(maxsize=1024)
def _path(key: str) -> tuple[str, ...]:
    return tuple(split_path(key))


def lookup(event: Mapping[str, Any], key: str) -> Any:
    """The value at ``key`` in the event, or MISSING."""
    value: Any = event
    for part in _path(key):
        # dict, not typing.Mapping: this runs for every rule, event and recipient, and an
        # abstract-class isinstance check is several times slower. Events are parsed JSON.
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


_WORD_CHARS = "A-Za-z0-9_"


@lru_cache(maxsize=4096)
def glob_regex(pattern: str, word_boundary: bool) -> re.Pattern[str]:
    """``*`` matches any run of characters, ``?`` exactly one; everything else is literal."""
    body = "".join(".*?" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    if word_boundary:
        return re.compile(f"(?:^|[^{_WORD_CHARS}]){body}(?:[^{_WORD_CHARS}]|$)", re.IGNORECASE | re.DOTALL)
    return re.compile(f"{body}", re.IGNORECASE | re.DOTALL)


def glob_matches(pattern: str, value: str, word_boundary: bool = False) -> bool:
    regex = glob_regex(pattern, word_boundary)
    if word_boundary:
        return regex.search(value) is not None
    return regex.fullmatch(value) is not None


_MAX_SAFE_INT = 2**53 - 1


def _is_simple(value: Any) -> bool:
    if value is None or isinstance(value, (str, bool)):
        return True
    return isinstance(value, int) and -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT


def _strict_equal(a: Any, b: Any) -> bool:
    # 1 == True in Python; in JSON they differ.
    return type(a) is type(b) and a == b


_MEMBER_COUNT = re.compile(r"^(==|<=|>=|<|>)?([0-9]+)$")


def member_count_matches(spec: Any, count: int) -> bool:
    if not isinstance(spec, str):
        return False
    m = _MEMBER_COUNT.match(spec)
    if m is None:
        return False
    op, n = m.group(1) or "==", int(m.group(2))
    return {
        "==": count == n,
        "<": count < n,
        ">": count > n,
        "<=": count <= n,
        ">=": count >= n,
    }[op]


@dataclass
class EvaluationContext:
    """Facts about the room and the recipient that conditions refer to."""

    room_member_count: int = 0
    sender_power_level: int = 0
    # power_levels.notifications (e.g. {"room": 50})
    notification_levels: Mapping[str, Any] = field(default_factory=dict)
    user_display_name: str | None = None


def condition_matches(cond: Any, event: Mapping[str, Any], ctx: EvaluationContext) -> bool:
    if not isinstance(cond, dict):
        return False
    kind = cond.get("kind")
    if kind == "event_match":
        key, pattern = cond.get("key"), cond.get("pattern")
        if not isinstance(key, str) or not isinstance(pattern, str):
            return False
        value = lookup(event, key)
        if not isinstance(value, str):
            return False
        return glob_matches(pattern, value, word_boundary=(key == "content.body"))
    if kind == "event_property_is":
        key = cond.get("key")
        if not isinstance(key, str) or "value" not in cond:
            return False
        value = lookup(event, key)
        if value is MISSING or not _is_simple(value):
            return False
        return _strict_equal(value, cond["value"])
    if kind == "event_property_contains":
        key = cond.get("key")
        if not isinstance(key, str) or "value" not in cond:
            return False
        value = lookup(event, key)
        if not isinstance(value, list):
            return False
        wanted = cond["value"]
        return any(_is_simple(v) and _strict_equal(v, wanted) for v in value)
    if kind == "contains_display_name":
        name = ctx.user_display_name
        body = lookup(event, "content.body")
        if not name or not isinstance(body, str):
            return False
        regex = re.compile(
            f"(?:^|[^{_WORD_CHARS}]){re.escape(name)}(?:[^{_WORD_CHARS}]|$)", re.IGNORECASE
        )
        return regex.search(body) is not None
    if kind == "room_member_count":
        return member_count_matches(cond.get("is"), ctx.room_member_count)
    if kind == "sender_notification_permission":
        key = cond.get("key")
        if not isinstance(key, str):
            return False
        required = ctx.notification_levels.get(key, 50) if isinstance(ctx.notification_levels, Mapping) else 50
        if isinstance(required, bool) or not isinstance(required, (int, str)):
            required = 50
        try:
            required = int(required)
        except ValueError:
            required = 50
        return ctx.sender_power_level >= required
    # Unknown conditions never match (the rule is effectively disabled).
    return False


def evaluate(ruleset: Ruleset, event: Mapping[str, Any], ctx: EvaluationContext) -> tuple[str, list[Any]] | None:
    """(rule_id, actions) of the first enabled rule matching the event, or None."""
    content = event.get("content")
    has_mentions = isinstance(content, dict) and "m.mentions" in content
    for rule in ruleset.ordered():
        if not rule.enabled:
            continue
        if has_mentions and rule.default and rule.rule_id in LEGACY_MENTION_RULES:
            continue
        if all(condition_matches(c, event, ctx) for c in rule.effective_conditions()):
            return rule.rule_id, [a for a in rule.actions if a not in LEGACY_ACTIONS]
    return None


def may_be_personal(event: Mapping[str, Any], user_id: str, display_name: str | None, content_text: str) -> bool:
    """Whether the server-default rules could treat this event differently for this user
    than for anyone else: only when it names them (a mention, their display name or
    localpart in the text) or is about them (state_key). ``content_text`` is the event's
    content as lower-cased JSON; a substring test over-approximates every such rule."""
    if event.get("state_key") == user_id:
        return True
    localpart = user_id[1:].split(":", 1)[0].lower()
    if user_id.lower() in content_text or localpart in content_text:
        return True
    return bool(display_name and display_name.lower() in content_text)


def notify_and_highlight(actions: list[Any] | None) -> tuple[bool, bool]:
    """Whether actions notify, and whether the notification is a highlight."""
    if not actions or "notify" not in actions:
        return False, False
    highlight = False
    for a in actions:
        if isinstance(a, Mapping) and a.get("set_tweak") == "highlight":
            highlight = a.get("value", True) is True
    return True, highlight


# -- validation of client-supplied rules ---------------------------------------------


class InvalidRule(ValueError):
    pass


def validate_actions(actions: Any) -> list[Any]:
    if not isinstance(actions, list):
        raise InvalidRule("actions must be a list")
    for a in actions:
        if isinstance(a, str):
            if a not in ("notify", *LEGACY_ACTIONS):
                raise InvalidRule(f"Unrecognised action {a}")
        elif isinstance(a, dict):
            if not isinstance(a.get("set_tweak"), str):
                raise InvalidRule("Unrecognised action: object actions need a string set_tweak")
        else:
            raise InvalidRule("Actions must be strings or objects")
    return actions


def validate_rule_id(rule_id: str) -> None:
    if not rule_id:
        raise InvalidRule("rule_id must not be empty")
    if rule_id.startswith("."):
        raise InvalidRule("rule_id may not start with '.' (reserved for server-default rules)")
    if "/" in rule_id or "\\" in rule_id:
        raise InvalidRule("rule_id may not contain '/' or '\\'")


def rule_from_client(kind: str, rule_id: str, body: Mapping[str, Any]) -> PushRule:
    """A user rule from a PUT /pushrules body (raises InvalidRule)."""
    if kind not in KINDS:
        raise InvalidRule(f"Unknown rule kind {kind}")
    validate_rule_id(rule_id)
    actions = validate_actions(body.get("actions"))
    conditions = None
    pattern = None
    if kind in ("override", "underride"):
        conditions = body.get("conditions", [])
        if not isinstance(conditions, list) or not all(
            isinstance(c, dict) and isinstance(c.get("kind"), str) for c in conditions
        ):
            raise InvalidRule("conditions must be a list of objects with a kind")
    elif kind == "content":
        pattern = body.get("pattern")
        if not isinstance(pattern, str):
            raise InvalidRule("Content rules need a string pattern")
    return PushRule(kind=kind, rule_id=rule_id, actions=actions, conditions=conditions, pattern=pattern)
