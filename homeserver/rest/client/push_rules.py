"""/pushrules, /notifications and /pushers.

``/pushrules/...`` is parsed as Synapse's PushRuleRestServlet parses it, so that a client
gets the same answer for every malformed request: the path is split into scope, kind,
rule id and attribute (an unknown scope, a missing part or an unknown attribute is 400
M_UNRECOGNIZED; GET ``/pushrules/global`` without its trailing slash too), an unknown kind
in a PUT is 400 M_UNKNOWN, and a rule body is checked in Synapse's order with its
messages (400 M_UNKNOWN, the spec's example errcode for this endpoint). Where Synapse
fails with a 500 (conditions that are not a list of objects) this answers 400 M_UNKNOWN;
where Synapse stores what the spec forbids (a non-string ``pattern``, an object action
whose ``set_tweak`` is not a string) this refuses it with 400 M_UNKNOWN."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.http.errors import MatrixError, Unrecognized
from homeserver.http.request import parse_integer, parse_json_body, parse_string
from homeserver.http.server import CLIENT_V3, Router
from homeserver.protocol.push_rules import KINDS, InvalidRule, validate_actions

if TYPE_CHECKING:
    from homeserver.app import HomeServer

TRAILING_SLASH = "Unrecognised request: You probably wanted a trailing slash"
# The kinds Synapse's PUT knows (postcontent is one of its priority classes, refused
# for user rules further on).
PUT_KINDS = (*KINDS, "postcontent")


@dataclass(frozen=True)
class RuleSpec:
    kind: str
    rule_id: str
    attr: str | None


def unrecognised(msg: str = "Unrecognized request") -> MatrixError:
    return Unrecognized(msg, code=400)


def rule_spec(path: str) -> RuleSpec:
    """``global/{kind}/{ruleId}[/{attr}]`` (Synapse's _rule_spec_from_path)."""
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "global":
        raise unrecognised()
    kind, rule_id = parts[1], parts[2]
    if not rule_id:
        raise unrecognised()
    attr = parts[3] if len(parts) > 3 and parts[3] else None
    return RuleSpec(kind, rule_id, attr)


def rule_body(kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    """What is stored of a PUT rule body, checked as Synapse's _rule_tuple_from_request_object."""
    if kind == "postcontent":
        raise MatrixError(400, "M_INVALID_PARAM", "user-defined rules using `postcontent` are not accepted")
    stored: dict[str, Any] = {}
    if kind in ("override", "underride"):
        if "conditions" not in fields:
            raise _bad("Missing 'conditions'")
        conditions = fields["conditions"]
        if not isinstance(conditions, list) or not all(isinstance(c, dict) and "kind" in c for c in conditions):
            raise _bad("Condition without 'kind'")
        stored["conditions"] = conditions
    elif kind == "content":
        if "pattern" not in fields:
            raise _bad("Content rule missing 'pattern'")
        if not isinstance(fields["pattern"], str):
            raise _bad("Content rule 'pattern' must be a string")
        stored["pattern"] = fields["pattern"]
    if "actions" not in fields:
        raise _bad("No actions found")
    stored["actions"] = _actions(fields["actions"], "")
    return stored


def _actions(actions: Any, prefix: str) -> list[Any]:
    if not isinstance(actions, list):
        raise _bad(f"{prefix}No actions found")
    try:
        return validate_actions(actions)
    except InvalidRule as e:
        raise _bad(f"{prefix}{e}") from None


def _bad(msg: str) -> MatrixError:
    return MatrixError(400, "M_UNKNOWN", msg)


def register(hs: HomeServer, router: Router) -> None:
    push = hs.push_rules

    async def get_rules(request: Request, path: str = "") -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        rules = await push.get_rules_for_client(requester.user_id)
        if path == "":
            return 200, rules
        parts = path.split("/")
        if parts[0] != "global":
            raise unrecognised()
        parts = parts[1:]
        if not parts:
            raise unrecognised(TRAILING_SLASH)
        if parts[0] == "":
            return 200, rules["global"]
        kind = parts[0]
        if kind not in rules["global"]:
            raise unrecognised()
        parts = parts[1:]
        if not parts:
            raise unrecognised(TRAILING_SLASH)
        if parts[0] == "":
            return 200, rules["global"][kind]
        rule = next((r for r in rules["global"][kind] if r["rule_id"] == parts[0]), None)
        if rule is None:
            raise MatrixError(404, "M_NOT_FOUND", "Not found")
        if len(parts) == 1:
            return 200, rule
        if parts[1] not in rule:
            raise unrecognised()
        return 200, {parts[1]: rule[parts[1]]}

    async def put_rule(request: Request, path: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        spec = rule_spec(path)
        if spec.kind not in PUT_KINDS:
            raise _bad(f"Unknown template: {spec.kind}")
        if "/" in spec.rule_id or "\\" in spec.rule_id:
            raise _bad("rule_id may not contain slashes")
        # (Synapse takes any JSON value, and a bare boolean for .../enabled; the spec's
        # bodies are objects, and only objects are taken here.)
        body = parse_json_body(request)
        if spec.attr is not None:
            await _put_attr(requester.user_id, spec, body)
            return 200, {}
        if spec.rule_id.startswith("."):
            raise _bad("cannot add new rule_ids that start with '.'")
        stored = rule_body(spec.kind, body)
        before = parse_string(request, "before") or None
        after = parse_string(request, "after") or None
        await push.put_rule(requester.user_id, spec.kind, spec.rule_id, stored, before, after)
        return 200, {}

    async def _put_attr(user_id: str, spec: RuleSpec, body: dict[str, Any]) -> None:
        value: Any
        if spec.attr == "enabled":
            value = body.get("enabled")
            if not isinstance(value, bool):
                raise _bad("Value for 'enabled' must be boolean")
        elif spec.attr == "actions":
            if not isinstance(body.get("actions"), list):
                raise _bad("Value for 'actions' must be dict")
            value = _actions(body["actions"], "Invalid actions: ")
        else:
            raise unrecognised()
        await push.set_rule_field(user_id, spec.kind, spec.rule_id, spec.attr, value)

    async def delete_rule(request: Request, path: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        spec = rule_spec(path)
        # As Synapse, a trailing attribute is ignored: the rule itself goes.
        await push.delete_rule(requester.user_id, spec.kind, spec.rule_id)
        return 200, {}

    async def notifications(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        from_token = parse_string(request, "from")
        limit = parse_integer(request, "limit", default=50) or 50
        only = parse_string(request, "only")
        return 200, await hs.notifications.get_notifications(requester, from_token, limit, only)

    async def get_pushers(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        return 200, {"pushers": await hs.pushers.get_pushers(requester.user_id)}

    async def set_pusher(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        await hs.pushers.set_pusher(requester, parse_json_body(request))
        return 200, {}

    router.register_prefixes("GET", CLIENT_V3, "/pushrules/(?P<path>.*)", get_rules)
    router.register_prefixes("PUT", CLIENT_V3, "/pushrules/(?P<path>.*)", put_rule)
    router.register_prefixes("DELETE", CLIENT_V3, "/pushrules/(?P<path>.*)", delete_rule)
    router.register_prefixes("GET", CLIENT_V3, "/notifications", notifications)
    router.register_prefixes("GET", CLIENT_V3, "/pushers", get_pushers)
    router.register_prefixes("POST", CLIENT_V3, "/pushers/set", set_pusher)
