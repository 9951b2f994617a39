"""One room of a sliding sync response: its timeline, the required state (only what
changed since it was last sent on the connection), name, avatar, heroes, counts and
bump stamp, or the stripped state of an invite or knock.

Follows Synapse's ``get_room_sync_data`` (handlers/sliding_sync/__init__.py) where the
MSC leaves things open; differences are noted where they are made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from homeserver.events.event import Event
from homeserver.handlers.sliding_sync.config import MEMBER, RoomConfig, SlidingSyncToken
from homeserver.handlers.sliding_sync.connection import (
    ConnectionState,
    ConnectionStateBuilder,
)
from homeserver.handlers.sliding_sync.required_state import (
    RequestedState,
    StateFilter,
    requested_state,
    required_state_changes,
)
from homeserver.handlers.sliding_sync.room_lists import (
    RoomMembership,
)
from homeserver.handlers.sync import SyncToken
from homeserver.storage.events import StateKey, StateMap
from homeserver.storage.rooms import LocalMembership
from homeserver.storage.sliding_sync import BUMP_EVENT_TYPES

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester


@dataclass
class RoomResult:
    """A room's entry in ``rooms``; None/empty fields are left out of the JSON."""

    initial: bool = False
    name: str | None = None
    avatar: str | None = None
    heroes: list[dict[str, str]] = field(default_factory=list)
    is_dm: bool = False
    expanded_timeline: bool = False
    required_state: list[dict[str, Any]] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    # the raw (visible) timeline events, for the extensions (receipts of these events)
    timeline_event_ids: list[str] = field(default_factory=list)
    stripped_state: list[dict[str, Any]] = field(default_factory=list)
    prev_batch: str | None = None
    limited: bool | None = None
    num_live: int | None = None
    bump_stamp: int | None = None
    joined_count: int | None = None
    invited_count: int | None = None
    notification_count: int = 0
    highlight_count: int = 0

    def has_updates(self) -> bool:
        """Whether an incremental response must carry the room (bump_stamp, counts and
        limited alone do not make an update, as in Synapse)."""
        return bool(
            self.initial
            or self.name is not None
            or self.avatar is not None
            or self.heroes
            or self.joined_count is not None
            or self.invited_count is not None
            or self.required_state
            or self.timeline
            or self.stripped_state
        )

    def to_json(self) -> dict[str, Any]:
        # Synapse's encoding (SlidingSyncRestServlet.encode_rooms), field by field.
        out: dict[str, Any] = {"notification_count": self.notification_count, "highlight_count": self.highlight_count}
        if self.bump_stamp is not None:
            out["bump_stamp"] = self.bump_stamp
        if self.joined_count is not None:
            out["joined_count"] = self.joined_count
        if self.invited_count is not None:
            out["invited_count"] = self.invited_count
        if self.name:
            out["name"] = self.name
        if self.avatar:
            out["avatar"] = self.avatar
        if self.heroes:
            out["heroes"] = self.heroes
        if self.initial:
            out["initial"] = True
        if self.expanded_timeline:
            out["unstable_expanded_timeline"] = True
        if self.required_state:
            out["required_state"] = self.required_state
        if self.timeline:
            out["timeline"] = self.timeline
        if self.limited is not None:
            out["limited"] = self.limited
        if self.prev_batch is not None:
            out["prev_batch"] = self.prev_batch
        if self.num_live is not None:
            out["num_live"] = self.num_live
        if self.is_dm:
            out["is_dm"] = True
        if self.stripped_state:
            # MSC4186 renames it stripped_state; Synapse (and clients) use invite_state.
            out["invite_state"] = self.stripped_state
        return out


def _string_field(ev: Event | None, key: str) -> str | None:
    value = ev.content.get(key) if ev is not None else None
    return value if isinstance(value, str) else None


class RoomResultBuilder:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store

    async def _state_map(self, room_id: str, membership: RoomMembership) -> StateMap:
        """The room's state as the user may see it: current while they are in the room,
        else as their leave or ban left it."""
        if membership.membership in ("leave", "ban"):
            leave = await self.store.get_event(membership.event_id, allow_rejected=True)
            if leave is None or leave.state_group is None:
                return {}
            state = dict(await self.store.get_state_group(leave.state_group))
            if leave.is_state:
                state[leave.state_pair] = leave.event_id
            return state
        room = await self.hs.rooms.get_room(room_id)
        return dict(room.state) if room is not None else {}

    async def build(
        self,
        requester: Requester,
        room_id: str,
        config: RoomConfig,
        membership: RoomMembership,
        *,
        from_token: SlidingSyncToken | None,
        previous: ConnectionState,
        state: ConnectionStateBuilder,
        up_to: int,
        newly_joined: bool,
        newly_left: bool,
        is_dm: bool,
    ) -> RoomResult:
        user_id = requester.user_id
        kind = membership.membership
        prev_config = previous.room_configs.get(room_id)
        result = RoomResult(is_dm=is_dm)

        # Since when to send: everything (initial) the first time the room goes down this
        # connection or after a (re)join; else what came after it was last sent.
        from_bound: int | None = None
        initial = True
        expand = False
        if from_token is not None and not newly_joined:
            status, last = previous.rooms.status(room_id)
            if status == "live":
                from_bound, initial = from_token.stream, False
            elif status == "previously":
                from_bound, initial = last, False
            if prev_config is not None and prev_config.timeline_limit < config.timeline_limit:
                # A larger timeline_limit resends the latest events (Synapse's
                # unstable_expanded_timeline, which Element X relies on).
                expand = True
        result.initial = initial

        in_room = kind not in ("invite", "knock")
        to_bound = membership.stream if kind in ("leave", "ban") else up_to
        raw: list[Event] = []
        timeline: list[Event] = []
        if config.timeline_limit > 0 and in_room:
            limit = config.timeline_limit
            after = None if expand else from_bound
            # Stream order for initial timelines too (Synapse pages those topologically);
            # the same as WSPR's /sync.
            fetched = await self.store.get_room_events(room_id, after=after, up_to=to_bound, limit=limit + 1)
            result.limited = len(fetched) > limit
            raw = list(reversed(fetched[:limit]))
            timeline = await self.hs.visibility.filter_events_for_user(user_id, raw, kind)
            # A stream position, as Synapse's: in a forked room a (depth, stream) point
            # would hide older-by-arrival events of greater depth from the page back.
            result.prev_batch = str(SyncToken(raw[0].stream_ordering - 1 if raw else to_bound))
            # Events new since the last response (0 on a first request, as in Synapse).
            result.num_live = 0
            if from_token is not None:
                for ev in reversed(timeline):
                    if ev.stream_ordering <= from_token.stream:
                        break
                    result.num_live += 1
            result.expanded_timeline = expand

        if not in_room:
            lm = LocalMembership(room_id, kind, membership.event_id, membership.stream, False)
            stripped = await self.hs.sync.stripped_state(lm, requester)
            if stripped:
                # The membership event itself is stripped too here (Synapse's strip_event).
                stripped[-1] = {k: stripped[-1][k] for k in ("type", "state_key", "content", "sender") if k in stripped[-1]}
            result.stripped_state = stripped

        # State that changed since the room was last sent.
        deltas: dict[StateKey, str] = {}
        full_state: StateMap | None = None
        if not initial and in_room:
            assert from_bound is not None
            full_state = await self._state_map(room_id, membership)
            if newly_left:
                # The user's own leave (an out-of-band leave, e.g. a rejected invite, is
                # in no room state).
                deltas[(MEMBER, user_id)] = membership.event_id
            if result.limited is False and not expand:
                # The timeline holds every event since from_bound, so its state events
                # are every state change.
                changed = {e.state_pair for e in raw if e.is_state}
            else:
                changed = await self.store.get_state_keys_changed(room_id, from_bound, to_bound)
            for key in changed:
                if key in full_state:
                    deltas[key] = full_state[key]
        membership_changed = any(t == MEMBER for t, _ in deltas)
        name_changed = ("m.room.name", "") in deltas
        avatar_changed = ("m.room.avatar", "") in deltas

        if not in_room:
            # Name and avatar of an invite or knock come from its stripped state (Synapse
            # reads the current state when it has it).
            by_key = {(s.get("type"), s.get("state_key")): s for s in result.stripped_state}
            name_ev = by_key.get(("m.room.name", ""))
            avatar_ev = by_key.get(("m.room.avatar", ""))
            name = name_ev.get("content", {}).get("name") if isinstance(name_ev, dict) else None
            avatar = avatar_ev.get("content", {}).get("url") if isinstance(avatar_ev, dict) else None
            result.name = name if isinstance(name, str) and initial else None
            result.avatar = avatar if isinstance(avatar, str) and initial else None
        elif initial or name_changed:
            if full_state is None:
                full_state = await self._state_map(room_id, membership)
            name_id = full_state.get(("m.room.name", ""))
            result.name = _string_field(await self.store.get_event(name_id), "name") if name_id else None

        hero_ids: list[str] = []
        summary = None
        if in_room and not result.name and (initial or membership_changed) and kind == "join":
            summary = await self.store.get_member_summary(room_id)
            present = [u for u, m in summary.members if m in ("join", "invite") and u != user_id]
            gone = [u for u, m in summary.members if m in ("leave", "ban") and u != user_id]
            hero_ids = (present or gone)[:5]
        if (initial or membership_changed) and kind == "join":
            if summary is None:
                summary = await self.store.get_member_summary(room_id)
            result.joined_count, result.invited_count = summary.joined, summary.invited

        req = (
            requested_state(
                config.required_state,
                user_id,
                timeline,
                limited=result.limited,
                initial=initial,
                state_deltas=deltas.keys(),
            )
            if in_room
            else RequestedState(StateFilter.none())
        )
        meta: list[tuple[str, str | None]] = [(MEMBER, h) for h in hero_ids]
        if initial or avatar_changed:
            meta.append(("m.room.avatar", ""))
        state_filter = StateFilter.all() if req.filter.is_all else req.filter.with_types(meta)

        previously_lazy_all = previous.lazy_members.get(room_id, frozenset())
        lazy_sent = set(req.lazy_user_ids) if req.lazy_members else set()
        invalidated: set[str] = set()
        changed_map = None
        room_state_ids: dict[StateKey, str] = {}
        if initial:
            if in_room:
                if full_state is None:
                    full_state = await self._state_map(room_id, membership)
                room_state_ids = state_filter.filter_state(full_state)
        else:
            if prev_config is not None:
                wanted_users = req.explicit_user_ids | req.lazy_user_ids | {k for t, k in deltas if t == MEMBER}
                changes = required_state_changes(
                    user_id,
                    previous=prev_config.required_state,
                    request=config.required_state,
                    previously_lazy=previously_lazy_all & wanted_users,
                    request_lazy=req.lazy_user_ids,
                    state_deltas=set(deltas),
                )
                changed_map = changes.new_map
                invalidated = changes.invalidated_lazy_user_ids
                lazy_sent |= changes.extra_lazy_user_ids
                if not changes.added.is_none and full_state is not None:
                    deltas.update(changes.added.filter_state(full_state))
            room_state_ids = state_filter.filter_state(deltas)
        hero_ids_state = {}
        if hero_ids:
            if full_state is None:
                full_state = await self._state_map(room_id, membership)
            hero_ids_state = {(MEMBER, h): full_state[(MEMBER, h)] for h in hero_ids if (MEMBER, h) in full_state}
        fetched_state = await self.store.get_events(set(room_state_ids.values()) | set(hero_ids_state.values()))
        room_state = {k: fetched_state[eid] for k, eid in room_state_ids.items() if eid in fetched_state}

        if in_room and not req.filter.is_none:
            required = req.filter.filter_state(room_state)
            result.required_state = await self.hs.messages.serialize(
                requester, sorted(required.values(), key=lambda e: e.stream_ordering), include_room_id=False, bundle=False
            )
        if in_room:
            result.avatar = _string_field(room_state.get(("m.room.avatar", "")), "url")
        for hero in hero_ids:
            member = fetched_state.get(hero_ids_state.get((MEMBER, hero), ""))
            entry = {"user_id": hero}
            displayname, avatar_url = _string_field(member, "displayname"), _string_field(member, "avatar_url")
            if displayname is not None:
                entry["displayname"] = displayname
            if avatar_url is not None:
                entry["avatar_url"] = avatar_url
            result.heroes.append(entry)

        if timeline:
            result.timeline = await self.hs.messages.serialize(
                # Bundled aggregations only when the client cannot have the relations
                # themselves (a limited timeline), as in Synapse.
                requester, timeline, include_room_id=False, bundle=bool(result.limited)
            )
            result.timeline_event_ids = [e.event_id for e in timeline]

        result.bump_stamp = await self._bump_stamp(room_id, membership, timeline, up_to, initial, result.limited)
        if kind == "join":
            counts, _ = await self.hs.push_actions.unread_counts(user_id, room_id, threaded=True)
            # Real counts (those of /v3/sync, without threads), where Synapse sends 0.
            result.notification_count = counts["notification_count"]
            result.highlight_count = counts["highlight_count"]

        # What the connection remembers of the room.
        if req.lazy_members or previously_lazy_all:
            state.set_lazy_members(
                room_id, lazy_sent if initial else (previously_lazy_all | lazy_sent) - invalidated
            )
        remembered_state = changed_map if changed_map is not None else config.required_state
        if expand or prev_config is None or initial:
            # (Sent from scratch, the room's config is the one it was sent with now;
            # Synapse keeps the older one there.)
            state.set_room_config(room_id, RoomConfig(config.timeline_limit, remembered_state))
        elif (result.limited and prev_config.timeline_limit > config.timeline_limit) or changed_map is not None:
            # A smaller limit is remembered only once the client has a gap; otherwise it
            # still holds the larger timeline.
            state.set_room_config(room_id, RoomConfig(config.timeline_limit, remembered_state))
        state.set_membership(room_id, kind)
        return result

    async def _bump_stamp(
        self,
        room_id: str,
        membership: RoomMembership,
        timeline: list[Event],
        up_to: int,
        initial: bool,
        limited: bool | None,
    ) -> int | None:
        """The position of the room's latest bump event (Synapse's rules): sent when it
        may have changed, or the room is new to the client; the membership position for
        rooms the user is not joined to, or without any bump event."""
        always = membership.membership != "join" or limited is None or limited or initial
        bump: int | None = None
        if membership.membership == "join":
            for ev in reversed(timeline):
                if ev.type in BUMP_EVENT_TYPES and ev.stream_ordering > 0:
                    bump = ev.stream_ordering
                    break
            if bump is None and always:
                activity = (await self.store.get_room_activity([room_id]))[room_id]
                if activity.last_bump <= up_to:
                    bump = activity.last_bump or None
                else:
                    # The index is ahead of this response's position.
                    bump = await self.store.get_last_bump_before(room_id, up_to)
        if bump is None and always:
            bump = membership.stream
        if bump is not None and bump < 0:
            # Backfilled positions are negative: they cannot be compared with live ones.
            bump = 0
        return bump

