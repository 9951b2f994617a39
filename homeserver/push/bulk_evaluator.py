"""Bulk evaluation: the push rules of every local recipient of a batch of persisted events.

For each event, every local member of its room (and a local invitee) except the sender
is judged by their ruleset; a rule that notifies yields a ``PushActionRow``. A local
sender's own event moves their read position instead (sending means having read).

What the conditions need (member count, power levels, notification levels, display
names) is kept per room and reused while the room's state snapshot is unchanged. Most
recipients keep the server-default rules, and most messages cannot be personal to them
(``may_be_personal``): those are judged once per event, not once per recipient.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from homeserver.events.event import Event
from homeserver.protocol import auth_rules
from homeserver.protocol.push_rules import (
    EvaluationContext,
    build_ruleset,
    evaluate,
    may_be_personal,
    notify_and_highlight,
)
from homeserver.storage.push import PushActionRow
from homeserver.util.ids import now_ms, server_of

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.room_events import RoomInfo
    from homeserver.push.rules import PushRulesHandler

MAIN_THREAD = "main"
MAX_THREAD_HOPS = 3
MAX_ROOMS_CACHED = 10_000

# The server-default rules for a user id no event can name (see may_be_personal).
_GENERIC_RULESET = build_ruleset("@\x00:invalid", {}, None)

# (user_id, room_id, thread_id, stream_ordering): a read position that only moves forward.
ReadPosition = tuple[str, str, str, int]


@dataclass
class _RoomFacts:
    state_group: int | None
    member_count: int
    power_state: dict[tuple[str, str], dict[str, Any]]
    notification_levels: dict[str, Any]
    display_names: dict[str, str] = field(default_factory=dict)


@dataclass
class Evaluated:
    """What a batch of events changes: new notifications, read positions, and the
    (user, room) pairs whose counts they touch."""

    actions: list[PushActionRow]
    reads: list[ReadPosition]
    touched: set[tuple[str, str]]


class BulkPushRuleEvaluator:
    def __init__(self, hs: HomeServer, rules: PushRulesHandler) -> None:
        self.hs = hs
        self.store = hs.store
        self.rules = rules
        self._room_facts: dict[str, _RoomFacts] = {}

    async def evaluate(self, events: list[Event], room: RoomInfo) -> Evaluated | None:
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
        rulesets = await self.rules.get_rulesets((members | invitees) - (senders if len(events) == 1 else set()))
        actions: list[PushActionRow] = []
        reads: list[ReadPosition] = []
        touched: set[tuple[str, str]] = set()
        ts = now_ms()
        for ev in events:
            thread_id = await self.thread_of(ev)
            recipients = set(members)
            if ev.membership == "invite" and ev.state_key in invitees:
                recipients.add(ev.state_key)
            recipients.discard(ev.sender)
            if recipients:
                sender_level = auth_rules.get_user_power_level(ev.sender, facts.power_state, room.version)
                content_text = json.dumps(ev.content, ensure_ascii=False).lower()
                generic: tuple[str, list[Any]] | None = None
                generic_flags = (False, False)
                generic_done = False
                for user_id in recipients:
                    ruleset = rulesets.get(user_id)
                    if ruleset is None:
                        continue
                    display_name = facts.display_names.get(user_id)
                    if ruleset.is_default and not may_be_personal(ev.pdu, user_id, display_name, content_text):
                        # Most messages are judged alike by everyone's default rules:
                        # evaluate once per event instead of once per recipient.
                        if not generic_done:
                            generic_done = True
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
                            if generic is not None:
                                generic_flags = notify_and_highlight(generic[1])
                        result, (notify, highlight) = generic, generic_flags
                    else:
                        ctx = EvaluationContext(
                            room_member_count=facts.member_count,
                            sender_power_level=sender_level,
                            notification_levels=facts.notification_levels,
                            user_display_name=display_name,
                        )
                        result = evaluate(ruleset, ev.pdu, ctx)
                        if result is not None:
                            notify, highlight = notify_and_highlight(result[1])
                    if result is None:
                        continue
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
        return Evaluated(actions, reads, touched)

    async def _facts(self, room: RoomInfo) -> _RoomFacts:
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
        if len(self._room_facts) > MAX_ROOMS_CACHED:
            self._room_facts.clear()
        self._room_facts[room.room_id] = facts
        return facts

    async def thread_of(self, ev: Event) -> str:
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
