"""/pushrules, /notifications and /pushers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from homeserver.http.errors import MatrixError
from homeserver.http.request import parse_integer, parse_json_body, parse_string
from homeserver.http.server import CLIENT_V3, Router
from homeserver.protocol.push_rules import KINDS

if TYPE_CHECKING:
    from homeserver.app import HomeServer

RULE = "/pushrules/global/(?P<kind>[^/]+)/(?P<rule_id>[^/]+)"


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise MatrixError(400, "M_UNRECOGNIZED", f"Unknown push rule kind {kind}")


def register(hs: "HomeServer", router: Router) -> None:
    push = hs.push

    async def get_all(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        return 200, await push.get_rules_for_client(requester.user_id)

    async def get_global(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        return 200, (await push.get_rules_for_client(requester.user_id))["global"]

    async def get_kind(request: Request, kind: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        _check_kind(kind)
        return 200, (await push.get_rules_for_client(requester.user_id))["global"][kind]

    async def get_rule(request: Request, kind: str, rule_id: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        _check_kind(kind)
        return 200, await push.get_rule(requester.user_id, kind, rule_id)

    async def put_rule(request: Request, kind: str, rule_id: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        _check_kind(kind)
        body = parse_json_body(request)
        before = parse_string(request, "before")
        after = parse_string(request, "after")
        await push.put_rule(requester.user_id, kind, rule_id, body, before, after)
        return 200, {}

    async def delete_rule(request: Request, kind: str, rule_id: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        _check_kind(kind)
        await push.delete_rule(requester.user_id, kind, rule_id)
        return 200, {}

    async def get_attr(request: Request, kind: str, rule_id: str, attr: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request, allow_guest=True)
        _check_kind(kind)
        rule = await push.get_rule(requester.user_id, kind, rule_id)
        return 200, {attr: rule[attr]}

    async def put_attr(request: Request, kind: str, rule_id: str, attr: str) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        _check_kind(kind)
        body = parse_json_body(request)
        if attr not in body:
            raise MatrixError(400, "M_MISSING_PARAM", f"Missing {attr}")
        await push.get_rule(requester.user_id, kind, rule_id)  # 404 for unknown rules
        await push.set_rule_field(requester.user_id, kind, rule_id, attr, body[attr])
        return 200, {}

    async def notifications(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        from_token = parse_string(request, "from")
        limit = parse_integer(request, "limit", default=50) or 50
        only = parse_string(request, "only")
        return 200, await push.get_notifications(requester, from_token, limit, only)

    async def get_pushers(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        return 200, {"pushers": await push.get_pushers(requester.user_id)}

    async def set_pusher(request: Request) -> tuple[int, Any]:
        requester = await hs.auth.get_user_by_req(request)
        await push.set_pusher(requester, parse_json_body(request))
        return 200, {}

    router.register_prefixes("GET", CLIENT_V3, "/pushrules/?", get_all)
    router.register_prefixes("GET", CLIENT_V3, "/pushrules/global/?", get_global)
    router.register_prefixes("GET", CLIENT_V3, "/pushrules/global/(?P<kind>[^/]+)/?", get_kind)
    router.register_prefixes("GET", CLIENT_V3, RULE, get_rule)
    router.register_prefixes("PUT", CLIENT_V3, RULE, put_rule)
    router.register_prefixes("DELETE", CLIENT_V3, RULE, delete_rule)
    router.register_prefixes("GET", CLIENT_V3, RULE + "/(?P<attr>enabled|actions)", get_attr)
    router.register_prefixes("PUT", CLIENT_V3, RULE + "/(?P<attr>enabled|actions)", put_attr)
    router.register_prefixes("GET", CLIENT_V3, "/notifications", notifications)
    router.register_prefixes("GET", CLIENT_V3, "/pushers", get_pushers)
    router.register_prefixes("POST", CLIENT_V3, "/pushers/set", set_pusher)
