"""Push rules, unread notification counts and pushers (``hs.push``).

Every new event is evaluated against the push rules of each local member of its room
(except the sender) from a persist hook. The hook itself only schedules the work: the
evaluation needs cached facts (rulesets, member count, power levels, display names)
that may need a database read, and its results are written in batches. /sync asks for
counts through ``unread_counts``, which first waits for the room's evaluations in
flight, so a new event and the count it causes arrive in the same /sync response.

Counts are rows of ``event_push_actions`` after the user's read position (per room and
thread); they are cached in memory and the cache entry is dropped when a write that
changes it commits.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from twisted.internet import defer

from homeserver.events.event import Event
from federation.ip_filter import IPFilter
from homeserver.http.errors import MatrixError, NotFound
from homeserver.protocol import auth_rules
from homeserver.protocol.push_rules import (
    build_ruleset,
    may_be_personal,
    DEFAULT_RULE_IDS,
    KINDS,
    EvaluationContext,
    InvalidRule,
    PushRule,
    Ruleset,
    build_ruleset,
    evaluate,
    notify_and_highlight,
    rule_from_client,
    validate_actions,
)
from homeserver.storage.push import PushActionRow, PushRuleError
from homeserver.util.async_helpers import SharedResult
from homeserver.util.ids import now_ms, server_of

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester
    from homeserver.handlers.room_events import RoomInfo

logger = logging.getLogger(__name__)

MAIN_THREAD = "main"
MAX_THREAD_HOPS = 3
MAX_RULESETS_CACHED = 20_000
MAX_COUNTS_CACHED = 200_000
# Read notifications are kept this long for GET /notifications, then pruned.
KEEP_READ_NOTIFICATIONS_MS = 30 * 24 * 3600 * 1000
PRUNE_INTERVAL_MS = 3600 * 1000

Counts = dict[str, tuple[int, int]]  # thread id -> (notifications, highlights)


# The server-default rules for a user id no event can name (see may_be_personal).
_GENERIC_RULESET = build_ruleset("@\x00:invalid", {}, None)


@dataclass
class _RoomFacts:
    state_group: int | None
    member_count: int
    power_state: dict[tuple[str, str], dict[str, Any]]
    notification_levels: dict[str, Any]
    display_names: dict[str, str] = field(default_factory=dict)


@dataclass
class _WriteBatch:
    actions: list[PushActionRow] = field(default_factory=list)
    reads: list[tuple[str, str, str, int]] = field(default_factory=list)
    invalidate: set[tuple[str, str]] = field(default_factory=set)
    waiters: list[SharedResult[None]] = field(default_factory=list)


class PushHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self.hs = hs
        self.store = hs.store
        self._rulesets: dict[str, Ruleset] = {}
        self._rules_gen = 0
        self._counts: dict[tuple[str, str], Counts] = {}
        self._counts_loaded_users: set[str] = set()
        self._counts_gen = 0
        self._room_facts: dict[str, _RoomFacts] = {}
        self._inflight: dict[str, list[SharedResult[None]]] = {}
        self._receipts_inflight: dict[tuple[str, str], list[SharedResult[None]]] = {}
        self._batch = _WriteBatch()
        self._flushing = False
        self._last_prune = now_ms()
        self.gateway = PushGateway(hs, self)
        hs.rooms.persist_hooks.append(self.on_events_persisted)

    # -- rulesets ---------------------------------------------------------------------

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
        if kind in KINDS and DEFAULT_RULE_IDS.get(rule_id) == kind:
            # Clients may only change a server-default rule's actions/enabled flag.
            raise MatrixError(400, "M_INVALID_PARAM", "Cannot replace a server-default rule")
        try:
            rule = rule_from_client(kind, rule_id, body)
        except InvalidRule as e:
            raise MatrixError(400, "M_INVALID_PARAM", str(e)) from None
        for anchor in (before, after):
            if anchor is not None and anchor.startswith("."):
                raise MatrixError(400, "M_UNKNOWN", "Cannot add a rule relative to a server-default rule")
        stored: dict[str, Any] = {"actions": rule.actions}
        if rule.conditions is not None:
            stored["conditions"] = rule.conditions
        if rule.pattern is not None:
            stored["pattern"] = rule.pattern
        try:
            await self.store.put_push_rule(user_id, kind, rule_id, stored, before, after)
        except PushRuleError as e:
            raise MatrixError(400, "M_UNKNOWN", str(e)) from None
        await self._rules_changed(user_id)

    async def delete_rule(self, user_id: str, kind: str, rule_id: str) -> None:
        if DEFAULT_RULE_IDS.get(rule_id) == kind:
            raise MatrixError(400, "M_INVALID_PARAM", "Cannot delete a server-default rule")
        if not await self.store.delete_push_rule(user_id, kind, rule_id):
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
                await self.store.set_default_rule_override(user_id, rule_id, actions=value)
        elif not await self.store.update_push_rule(user_id, kind, rule_id, {attr: value}):
            raise NotFound("The push rule was not found.")
        await self._rules_changed(user_id)

    async def _rules_changed(self, user_id: str) -> None:
        self._rules_gen += 1
        self._rulesets.pop(user_id, None)
        # Clients learn of the change through m.push_rules account data in /sync.
        content = await self.get_rules_for_client(user_id)
        await self.hs.account_data.put(user_id, "", "m.push_rules", content, check=False)

    # -- evaluating new events ----------------------------------------------------------

    def on_events_persisted(self, events: list[Event], room: "RoomInfo") -> None:
        """Persist hook (synchronous): schedules evaluation of the batch."""
        events = [
            e for e in events if e.stream_ordering > 0 and not e.rejected_reason and not e.outlier and not e.soft_failed
        ]
        if not events:
            return
        done: SharedResult[None] = SharedResult()
        room_id = room.room_id
        self._inflight.setdefault(room_id, []).append(done)
        defer.ensureDeferred(self._process(events, room, done))

    async def _process(self, events: list[Event], room: "RoomInfo", done: SharedResult[None]) -> None:
        try:
            batch = await self._evaluate(events, room)
            if batch is not None:
                await self._enqueue(*batch).wait()
        except Exception:
            logger.exception("push rule evaluation failed in %s", room.room_id)
        finally:
            pending = self._inflight.get(room.room_id)
            if pending is not None:
                try:
                    pending.remove(done)
                except ValueError:
                    pass
                if not pending:
                    del self._inflight[room.room_id]
            done.callback(None)

    async def _evaluate(
        self, events: list[Event], room: "RoomInfo"
    ) -> tuple[list[PushActionRow], list[tuple[str, str, str, int]], set[tuple[str, str]]] | None:
        server_name = self.hs.server_name
        members = set(room.joined_local)
        invitees = {
            e.state_key
            for e in events
            if e.membership == "invite" and e.state_key and server_of(e.state_key) == server_name
        }
        senders = {e.sender for e in events if server_of(e.sender) == server_name}
        if not members and not invitees and not senders:
            return None
        facts = await self._facts(room)
        rulesets = await self.get_rulesets((members | invitees) - (senders if len(events) == 1 else set()))
        actions: list[PushActionRow] = []
        reads: list[tuple[str, str, str, int]] = []
        touched: set[tuple[str, str]] = set()
        ts = now_ms()
        for ev in events:
            thread_id = await self._thread_of(ev)
            recipients = set(members)
            if ev.membership == "invite" and ev.state_key in invitees:
                recipients.add(ev.state_key)  # type: ignore[arg-type]
            recipients.discard(ev.sender)
            if recipients:
                sender_level = auth_rules.get_user_power_level(ev.sender, facts.power_state, room.version)
                content_text = json.dumps(ev.content, ensure_ascii=False).lower()
                generic: tuple[str, list[Any]] | None | bool = False  # False: not computed yet
                for user_id in recipients:
                    ruleset = rulesets.get(user_id)
                    if ruleset is None:
                        continue
                    display_name = facts.display_names.get(user_id)
                    if ruleset.is_default and not may_be_personal(ev.pdu, user_id, display_name, content_text):
                        # Most messages are judged alike by everyone's default rules:
                        # evaluate once per event instead of once per recipient.
                        if generic is False:
                            generic = evaluate(
                                _GENERIC_RULESET,
                                ev.pdu,
                                EvaluationContext(
                                    room_member_count=facts.member_count,
                                    sender_power_level=sender_level,
                                    notification_levels=facts.notification_levels,
                                    user_display_name=None,
                                ),
                            )
                        result = generic  # type: ignore[assignment]
                    else:
                        ctx = EvaluationContext(
                            room_member_count=facts.member_count,
                            sender_power_level=sender_level,
                            notification_levels=facts.notification_levels,
                            user_display_name=display_name,
                        )
                        result = evaluate(ruleset, ev.pdu, ctx)
                    if result is None:
                        continue
                    notify, highlight = notify_and_highlight(result[1])
                    if notify:
                        actions.append(
                            PushActionRow(user_id, ev.room_id, ev.event_id, ev.stream_ordering, thread_id, highlight, result[1], ts)
                        )
                        touched.add((user_id, ev.room_id))
            if ev.sender in senders:
                # Sending into a room (or thread) means having read it up to there.
                reads.append((ev.sender, ev.room_id, thread_id, ev.stream_ordering))
                touched.add((ev.sender, ev.room_id))
        if not actions and not reads:
            return None
        return actions, reads, touched

    async def _facts(self, room: "RoomInfo") -> _RoomFacts:
        cached = self._room_facts.get(room.room_id)
        if cached is not None and cached.state_group == room.state_group and room.state_group is not None:
            return cached
        state = room.state
        keys = [k for k in (auth_rules.CREATE_KEY, auth_rules.POWER_LEVELS_KEY) if k in state]
        member_keys = [("m.room.member", u) for u in room.joined_local if ("m.room.member", u) in state]
        events = await self.store.get_events([state[k] for k in keys + member_keys])
        power_state = {k: events[state[k]].with_event_id() for k in keys if state[k] in events}
        pl = power_state.get(auth_rules.POWER_LEVELS_KEY)
        notif_levels = (pl or {}).get("content", {}).get("notifications")
        names: dict[str, str] = {}
        for k in member_keys:
            ev = events.get(state[k])
            name = ev.content.get("displayname") if ev is not None else None
            if isinstance(name, str) and name:
                names[k[1]] = name
        count = (await self.store.count_joined_members([room.room_id])).get(room.room_id, 0)
        facts = _RoomFacts(
            state_group=room.state_group,
            member_count=count,
            power_state=power_state,
            notification_levels=notif_levels if isinstance(notif_levels, dict) else {},
            display_names=names,
        )
        if len(self._room_facts) > 10_000:
            self._room_facts.clear()
        self._room_facts[room.room_id] = facts
        return facts

    async def _thread_of(self, ev: Event) -> str:
        """The thread an event belongs to: follows relations up to MAX_THREAD_HOPS."""
        rel = ev.relation()
        for _ in range(MAX_THREAD_HOPS):
            if rel is None:
                break
            target, rel_type = rel
            if rel_type == "m.thread":
                return target
            parent = await self.store.get_event(target)
            if parent is None:
                break
            rel = parent.relation()
        return MAIN_THREAD

    # -- batched writes ---------------------------------------------------------------

    def _enqueue(
        self,
        actions: list[PushActionRow],
        reads: list[tuple[str, str, str, int]],
        invalidate: set[tuple[str, str]],
    ) -> SharedResult[None]:
        done: SharedResult[None] = SharedResult()
        self._batch.actions.extend(actions)
        self._batch.reads.extend(reads)
        self._batch.invalidate.update(invalidate)
        self._batch.waiters.append(done)
        if not self._flushing:
            defer.ensureDeferred(self._flush())
        return done

    async def _flush(self) -> None:
        self._flushing = True
        try:
            while self._batch.waiters:
                batch, self._batch = self._batch, _WriteBatch()
                recounted: dict[tuple[str, str, str], tuple[int, int]] | None = None
                try:
                    recounted = await self.store.write_push_batch(batch.actions, batch.reads)
                except Exception:
                    logger.exception("writing %d push actions failed", len(batch.actions))
                self._apply_to_cached_counts(batch.actions, batch.reads, recounted)
                for w in batch.waiters:
                    w.callback(None)
                if batch.actions:
                    # Push gateways hear about it in the background; /sync never waits for them.
                    self.gateway.schedule(batch.actions)
            if now_ms() - self._last_prune > PRUNE_INTERVAL_MS:
                # Piggybacks on the write path: no timer to keep running.
                self._last_prune = now_ms()
                try:
                    await self.store.prune_push_actions(self._last_prune - KEEP_READ_NOTIFICATIONS_MS)
                except Exception:
                    logger.exception("pruning push actions failed")
        finally:
            self._flushing = False

    def _apply_to_cached_counts(
        self,
        actions: list[PushActionRow],
        reads: list[tuple[str, str, str, int]],
        recounted: dict[tuple[str, str, str], tuple[int, int]] | None,
    ) -> None:
        """Keeps cached counts current without re-counting the room: new notifications are
        added to the cached numbers, and a thread whose read position moved takes the count
        the write transaction made for it. An unthreaded receipt (or a failed write) drops
        the entry so it is counted afresh. (Re-counting on every event made each /sync scan
        all of a room's unread rows.)"""
        self._counts_gen += 1
        recounted_threads = recounted or {}
        drop = {(u, r) for u, r, t, _ in reads if not t or recounted is None}
        for row in actions:
            key = (row.user_id, row.room_id)
            counts = self._counts.get(key)
            if counts is None or key in drop or (row.user_id, row.room_id, row.thread_id) in recounted_threads:
                continue
            n, h = counts.get(row.thread_id, (0, 0))
            counts[row.thread_id] = (n + 1, h + (1 if row.highlight else 0))
        for (user_id, room_id, thread_id), value in recounted_threads.items():
            counts = self._counts.get((user_id, room_id))
            if counts is not None and (user_id, room_id) not in drop:
                if value == (0, 0):
                    counts.pop(thread_id, None)
                else:
                    counts[thread_id] = value
        self._invalidate(drop)

    def _invalidate(self, keys: set[tuple[str, str]]) -> None:
        self._counts_gen += 1
        for key in keys:
            self._counts.pop(key, None)

    # -- counts -----------------------------------------------------------------------

    async def _wait_pending(self, user_id: str, room_id: str) -> None:
        for d in list(self._inflight.get(room_id, ())):
            await d.wait()
        for d in list(self._receipts_inflight.get((user_id, room_id), ())):
            await d.wait()

    async def _room_counts(self, user_id: str, room_id: str) -> Counts:
        await self._wait_pending(user_id, room_id)
        key = (user_id, room_id)
        counts = self._counts.get(key)
        if counts is not None:
            return counts
        gen = self._counts_gen
        if user_id not in self._counts_loaded_users:
            # First look at this user: load every room at once (initial /sync asks for all).
            by_room = await self.store.get_unread_counts(user_id)
            counts = by_room.get(room_id, {})
            if gen == self._counts_gen:
                if len(self._counts) > MAX_COUNTS_CACHED:
                    self._counts.clear()
                    self._counts_loaded_users.clear()
                for rid in self.hs.rooms.joined_rooms(user_id) | set(by_room):
                    self._counts[(user_id, rid)] = by_room.get(rid, {})
                self._counts_loaded_users.add(user_id)
            return counts
        counts = (await self.store.get_unread_counts(user_id, room_id)).get(room_id, {})
        if gen == self._counts_gen:
            self._counts[key] = counts
        return counts

    async def unread_counts(
        self, user_id: str, room_id: str, threaded: bool = True
    ) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
        """The room's unread counts for /sync and, per thread, those of its threads (empty
        unless ``threaded``; an unthreaded client gets thread counts summed into the room's)."""
        counts = await self._room_counts(user_id, room_id)
        main_n, main_h = counts.get(MAIN_THREAD, (0, 0))
        threads: dict[str, dict[str, int]] = {}
        for thread_id, (n, h) in counts.items():
            if thread_id == MAIN_THREAD:
                continue
            if threaded:
                threads[thread_id] = {"notification_count": n, "highlight_count": h}
            else:
                main_n += n
                main_h += h
        return {"notification_count": main_n, "highlight_count": main_h}, threads

    async def on_receipt(self, user_id: str, room_id: str, event: Event, thread_id: str | None = None) -> None:
        """A user's m.read / m.read.private receipt moved to ``event``: clears the counts up
        to it (in its thread, or in all threads for an unthreaded receipt)."""
        key = (user_id, room_id)
        # Registered before the first await so a /sync woken by the receipt waits for it.
        done: SharedResult[None] = SharedResult()
        self._receipts_inflight.setdefault(key, []).append(done)
        try:
            if thread_id is None:
                receipts = await self.store.get_user_receipt(room_id, user_id, ("m.read", "m.read.private"))
                mine = [r for r in receipts if r.event_id == event.event_id]
                thread_id = max(mine, key=lambda r: r.stream_id).thread_id if mine else ""
            await self._enqueue([], [(user_id, room_id, thread_id, event.stream_ordering)], {key}).wait()
        finally:
            pending = self._receipts_inflight.get(key)
            if pending is not None:
                if done in pending:
                    pending.remove(done)
                if not pending:
                    del self._receipts_inflight[key]
            done.callback(None)

    # -- /notifications and pushers -----------------------------------------------------

    async def get_notifications(
        self, requester: "Requester", from_token: str | None, limit: int, only: str | None
    ) -> dict[str, Any]:
        before = None
        if from_token:
            try:
                before = int(from_token)
            except ValueError:
                raise MatrixError(400, "M_INVALID_PARAM", "Invalid from token") from None
        limit = max(1, min(limit, 100))
        # Wait for evaluations in flight so a just-sent mention is listed.
        for pending in list(self._inflight.values()):
            for d in list(pending):
                await d.wait()
        rows = await self.store.get_notifications(requester.user_id, before, limit, only == "highlight")
        events = await self.store.get_events([r.event_id for r, _ in rows])
        present = [(r, read) for r, read in rows if r.event_id in events]
        serialized = await self.hs.messages.serialize(requester, [events[r.event_id] for r, _ in present])
        out = []
        for (row, read), ev in zip(present, serialized):
            out.append({"actions": row.actions, "event": ev, "read": read, "room_id": row.room_id, "ts": row.ts})
        result: dict[str, Any] = {"notifications": out}
        if len(rows) == limit and rows:
            result["next_token"] = str(rows[-1][0].stream_ordering)
        return result

    async def get_pushers(self, user_id: str) -> list[dict[str, Any]]:
        return await self.store.get_pushers(user_id)

    async def total_unread(self, user_id: str) -> int:
        total = 0
        for room_id in self.hs.rooms.joined_rooms(user_id):
            total += sum(n for n, _ in (await self._room_counts(user_id, room_id)).values())
        return total

    async def set_pusher(self, requester: "Requester", body: dict[str, Any]) -> None:
        app_id, pushkey, kind = body.get("app_id"), body.get("pushkey"), body.get("kind", MISSING_KIND)
        if not isinstance(app_id, str) or not isinstance(pushkey, str):
            raise MatrixError(400, "M_MISSING_PARAM", "Missing app_id or pushkey")
        if kind is MISSING_KIND:
            raise MatrixError(400, "M_MISSING_PARAM", "Missing kind")
        if len(app_id) > 64 or len(pushkey.encode("utf-8")) > 512:
            raise MatrixError(400, "M_INVALID_PARAM", "app_id or pushkey too long")
        if kind is None:
            await self.store.delete_pusher(requester.user_id, app_id, pushkey)
            self.gateway.invalidate()
            return
        if not isinstance(kind, str):
            raise MatrixError(400, "M_INVALID_PARAM", "kind must be a string or null")
        for field_name in ("app_display_name", "device_display_name", "lang"):
            if not isinstance(body.get(field_name), str):
                raise MatrixError(400, "M_MISSING_PARAM", f"Missing {field_name}")
        data = body.get("data")
        if not isinstance(data, dict):
            raise MatrixError(400, "M_MISSING_PARAM", "Missing data")
        if kind == "http":
            url = data.get("url")
            if not isinstance(url, str) or not url.startswith(("https://", "http://")):
                raise MatrixError(400, "M_INVALID_PARAM", "'url' must be an http(s) URL")
        profile_tag = body.get("profile_tag")
        if profile_tag is not None and not isinstance(profile_tag, str):
            raise MatrixError(400, "M_INVALID_PARAM", "profile_tag must be a string")
        append = body.get("append", False)
        if not isinstance(append, bool):
            raise MatrixError(400, "M_INVALID_PARAM", "append must be a boolean")
        await self.store.set_pusher(requester.user_id, requester.device_id, {**body, "kind": kind}, append)
        self.gateway.invalidate()


MISSING_KIND = object()


class PushGateway:
    """Sends notifications to the users' HTTP pushers (push gateway API /notify).

    Best effort: one attempt per notification, failures are logged; a gateway that
    rejects a pushkey gets the pusher removed. Gateway hosts are checked against the
    federation IP blocklist so a user cannot aim the server at internal addresses.
    """

    TIMEOUT_S = 10.0

    def __init__(self, hs: "HomeServer", push: PushHandler) -> None:
        self.hs = hs
        self.push = push
        self.store = hs.store
        self._users: set[str] | None = None
        self._pushers: dict[str, list[dict[str, Any]]] = {}
        fed = hs.config.federation
        self._ip_filter = IPFilter(fed.ip_range_blocklist, fed.ip_range_allowlist)
        # Deliveries in flight (tests wait for these).
        self.inflight: set[defer.Deferred[Any]] = set()

    def invalidate(self) -> None:
        self._users = None
        self._pushers.clear()

    async def _pushers_for(self, user_id: str) -> list[dict[str, Any]]:
        if self._users is None:
            self._users = await self.store.get_pusher_users()
        if user_id not in self._users:
            return []
        pushers = self._pushers.get(user_id)
        if pushers is None:
            pushers = self._pushers[user_id] = await self.store.get_pushers(user_id)
        return pushers

    def schedule(self, rows: list[PushActionRow]) -> None:
        self._track(defer.ensureDeferred(self.deliver(rows)))

    def _track(self, d: "defer.Deferred[Any]") -> None:
        self.inflight.add(d)
        d.addBoth(lambda r: (self.inflight.discard(d), r)[1])

    async def deliver(self, rows: list[PushActionRow]) -> None:
        try:
            for row in rows:
                pushers = [p for p in await self._pushers_for(row.user_id) if p["kind"] == "http"]
                if not pushers:
                    continue
                event = await self.store.get_event(row.event_id)
                if event is None:
                    continue
                notification = await self._notification(row, event)
                for pusher in pushers:
                    self._track(defer.ensureDeferred(self._send(row.user_id, pusher, row, notification)))
        except Exception:
            logger.exception("push gateway delivery failed")

    async def _notification(self, row: PushActionRow, event: Event) -> dict[str, Any]:
        rooms = self.hs.rooms
        notification: dict[str, Any] = {
            "event_id": event.event_id,
            "room_id": event.room_id,
            "type": event.type,
            "sender": event.sender,
            "prio": "high" if event.type in ("m.room.message", "m.room.encrypted", "m.call.invite") else "low",
            "content": event.content,
            "counts": {"unread": await self.push.total_unread(row.user_id)},
        }
        if event.is_state:
            notification["user_is_target"] = event.state_key == row.user_id
        name = await rooms.get_current_state_event(event.room_id, "m.room.name")
        if name is not None and isinstance(name.content.get("name"), str):
            notification["room_name"] = name.content["name"]
        member = await rooms.get_current_state_event(event.room_id, "m.room.member", event.sender)
        if member is not None and isinstance(member.content.get("displayname"), str):
            notification["sender_display_name"] = member.content["displayname"]
        return notification

    async def _host_allowed(self, host: str, port: int) -> bool:
        import socket

        from twisted.internet import threads

        try:
            infos = await threads.deferToThreadPool(
                self.hs.reactor, self.hs.reactor.getThreadPool(), socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM
            )
        except OSError:
            return False
        return bool(infos) and all(self._ip_filter.is_allowed(info[4][0]) for info in infos)

    async def _send(self, user_id: str, pusher: dict[str, Any], row: PushActionRow, notification: dict[str, Any]) -> None:
        import treq
        from twisted.web.client import HTTPConnectionPool

        data = dict(pusher.get("data") or {})
        url = data.pop("url", None)
        parsed = urlparse(url) if isinstance(url, str) else None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
            return
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        if not await self._host_allowed(parsed.hostname, port):
            logger.warning("not pushing to %s: address is blocklisted", parsed.hostname)
            return
        tweaks = {
            a["set_tweak"]: a.get("value", True) for a in row.actions if isinstance(a, dict) and "set_tweak" in a
        }
        device = {
            "app_id": pusher["app_id"],
            "pushkey": pusher["pushkey"],
            "pushkey_ts": row.ts // 1000,
            "data": data,
            "tweaks": tweaks,
        }
        if data.get("format") == "event_id_only":
            body: dict[str, Any] = {
                k: notification[k] for k in ("event_id", "room_id", "counts", "prio") if k in notification
            }
        else:
            body = dict(notification)
        body["devices"] = [device]
        try:
            resp = await treq.post(
                url.encode("utf-8"),
                json={"notification": body},
                timeout=self.TIMEOUT_S,
                pool=HTTPConnectionPool(self.hs.reactor, persistent=False),
            )
            answer = await treq.json_content(resp) if resp.code == 200 else None
        except Exception as e:
            logger.info("push to %s failed: %s", parsed.hostname, e)
            return
        if isinstance(answer, dict) and pusher["pushkey"] in (answer.get("rejected") or []):
            await self.store.delete_pusher_by_key(pusher["app_id"], pusher["pushkey"], user_id)
            self.invalidate()
