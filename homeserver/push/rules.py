"""Push rules: each user's rules, stored per user, and the CRUD of /pushrules.

A user's ``Ruleset`` (their rules merged with the server-default ones and their changes
to those) is cached in memory; the bulk evaluator asks for the rulesets of a room's
members on every event, so a miss costs one read for all of them. A change drops the
user's entry and publishes the new rules as ``m.push_rules`` account data, which is how
clients (and their /sync) learn of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeserver.http.errors import MatrixError, NotFound
from homeserver.protocol.push_rules import (
    DEFAULT_RULE_IDS,
    KINDS,
    InvalidRule,
    PushRule,
    Ruleset,
    build_ruleset,
    rule_from_client,
    validate_actions,
)
from homeserver.storage.push import PushRuleError

if TYPE_CHECKING:
    from homeserver.app import HomeServer

MAX_RULESETS_CACHED = 20_000


class PushRulesHandler:
    """``hs.push_rules``."""

    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store
        self._rulesets: dict[str, Ruleset] = {}
        # Bumped on every change, so a read that raced with one does not cache stale rules.
        self._rules_gen = 0

    async def get_rulesets(self, user_ids: set[str]) -> dict[str, Ruleset]:
        out = {u: self._rulesets[u] for u in user_ids if u in self._rulesets}
        missing = [u for u in user_ids if u not in out]
        if missing:
            gen = self._rules_gen
            stored = await self.store.get_push_rules_for_users(missing)
            for user_id, (rules, overrides) in stored.items():
                by_kind: dict[str, list[PushRule]] = {}
                for r in rules:
                    by_kind.setdefault(r.kind, []).append(
                        PushRule(
                            kind=r.kind,
                            rule_id=r.rule_id,
                            actions=r.rule.get("actions", []),
                            enabled=r.rule.get("enabled", True),
                            conditions=r.rule.get("conditions"),
                            pattern=r.rule.get("pattern"),
                        )
                    )
                ruleset = build_ruleset(user_id, by_kind, overrides)
                out[user_id] = ruleset
                if gen == self._rules_gen:
                    if len(self._rulesets) > MAX_RULESETS_CACHED:
                        self._rulesets.clear()
                    self._rulesets[user_id] = ruleset
        return out

    async def get_ruleset(self, user_id: str) -> Ruleset:
        return (await self.get_rulesets({user_id}))[user_id]

    async def get_rules_for_client(self, user_id: str) -> dict[str, Any]:
        return {"global": (await self.get_ruleset(user_id)).to_client()}

    async def get_rule(self, user_id: str, kind: str, rule_id: str) -> dict[str, Any]:
        rule = (await self.get_ruleset(user_id)).find(kind, rule_id)
        if rule is None:
            raise NotFound("The push rule was not found.")
        return rule.to_client()

    async def put_rule(
        self, user_id: str, kind: str, rule_id: str, body: dict[str, Any], before: str | None, after: str | None
    ) -> None:
        # Errors as Synapse's (400 M_UNKNOWN, the spec's example); the REST module checks
        # the request's shape first (homeserver/rest/client/push_rules.py).
        if kind in KINDS and DEFAULT_RULE_IDS.get(rule_id) == kind:
            # Clients may only change a server-default rule's actions/enabled flag.
            raise MatrixError(400, "M_UNKNOWN", "cannot add new rule_ids that start with '.'")
        try:
            rule = rule_from_client(kind, rule_id, body)
        except InvalidRule as e:
            raise MatrixError(400, "M_UNKNOWN", str(e)) from None
        for anchor in (before, after):
            if anchor is not None and anchor.startswith("."):
                # Server-default rules cannot be anchors: Synapse finds no such user rule.
                raise MatrixError(400, "M_UNKNOWN", f"before/after rule not found: global/{kind}/{anchor}")
        stored: dict[str, Any] = {"actions": rule.actions}
        if rule.conditions is not None:
            stored["conditions"] = rule.conditions
        if rule.pattern is not None:
            stored["pattern"] = rule.pattern
        try:
            await self.store.put_push_rule(user_id, kind, rule_id, stored, before, after)
        except PushRuleError:
            raise MatrixError(400, "M_UNKNOWN", f"before/after rule not found: global/{kind}/{before or after}") from None
        await self._rules_changed(user_id)

    async def delete_rule(self, user_id: str, kind: str, rule_id: str) -> None:
        # A server-default rule cannot be deleted: Synapse finds no such user rule (404).
        if DEFAULT_RULE_IDS.get(rule_id) == kind or not await self.store.delete_push_rule(user_id, kind, rule_id):
            raise NotFound("The push rule was not found.")
        await self._rules_changed(user_id)

    async def set_rule_field(self, user_id: str, kind: str, rule_id: str, attr: str, value: Any) -> None:
        """PUT .../enabled or .../actions, on a user rule or a server-default one."""
        if attr == "enabled":
            if not isinstance(value, bool):
                raise MatrixError(400, "M_BAD_JSON", "enabled must be a boolean")
        else:
            try:
                value = validate_actions(value)
            except InvalidRule as e:
                raise MatrixError(400, "M_INVALID_PARAM", str(e)) from None
        if DEFAULT_RULE_IDS.get(rule_id) == kind:
            if attr == "enabled":
                await self.store.set_default_rule_override(user_id, rule_id, enabled=value)
            else:
                # The stored change always says whether the rule is on: the rule's current
                # state, when the user never switched it.
                current = (await self.get_ruleset(user_id)).find(kind, rule_id)
                enabled = current.enabled if current is not None else True
                await self.store.set_default_rule_override(user_id, rule_id, enabled=enabled, actions=value)
        elif not await self.store.update_push_rule(user_id, kind, rule_id, {attr: value}):
            raise NotFound("The push rule was not found.")
        await self._rules_changed(user_id)

    async def _rules_changed(self, user_id: str) -> None:
        self._rules_gen += 1
        self._rulesets.pop(user_id, None)
        # Clients learn of the change through m.push_rules account data in /sync.
        content = await self.get_rules_for_client(user_id)
        await self.hs.account_data.put(user_id, "", "m.push_rules", content, check=False)
