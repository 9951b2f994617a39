"""History visibility: which events a user may see (spec "History visibility").

Every read path filters through here: sync (joined and left rooms), /messages,
/context, /event, /relations, /threads, and every event bundled into another
(``unsigned.m.relations``: the thread summary, the latest edit, references). The
visibility and the user's membership are taken from the state at each event (the
snapshot it was authorised against), looked up once per snapshot and cached.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from homeserver.events.event import Event

if TYPE_CHECKING:
    from homeserver.app import HomeServer

_VISIBILITY_ORDER = ("world_readable", "shared", "invited", "joined")


class _Views:
    """(visibility, the user's membership) per snapshot, for one user and one request:
    the events of a page mostly share a handful of snapshots."""

    def __init__(self, handler: VisibilityHandler, user_id: str) -> None:
        self.handler = handler
        self.user_id = user_id
        self.by_group: dict[int, tuple[str, str | None]] = {}
        self.current: dict[str, str | None] = {}

    async def at(self, state_group: int) -> tuple[str, str | None]:
        if state_group not in self.by_group:
            await self.prefetch([state_group])
        return self.by_group[state_group]

    async def prefetch(self, state_groups: Iterable[int | None]) -> None:
        """Looks up the snapshots not seen yet together: one read for the snapshots, one
        for the visibility and membership events, however many there are."""
        todo = {g for g in state_groups if g is not None and g not in self.by_group}
        if not todo:
            return
        store = self.handler.store
        states = await store.get_state_groups(todo)
        keys = {
            g: (state.get(("m.room.history_visibility", "")), state.get(("m.room.member", self.user_id)))
            for g, state in states.items()
        }
        events = await store.get_events({i for pair in keys.values() for i in pair if i})
        for g, (vis_id, member_id) in keys.items():
            vis = "shared"
            if vis_id and vis_id in events:
                v = events[vis_id].content.get("history_visibility")
                if v in _VISIBILITY_ORDER:
                    vis = v
            membership = events[member_id].membership if member_id and member_id in events else None
            self.by_group[g] = (vis, membership)

    async def allows(self, room_id: str, visibility: str, membership_at_event: str | None) -> bool:
        """The spec's rule (Synapse's ``_check_membership``): a member at the event sees it;
        otherwise world_readable lets anyone see it, shared those joined now, invited those
        invited at the event, joined nobody else."""
        if membership_at_event == "join" or visibility == "world_readable":
            return True
        if visibility == "shared":
            if room_id not in self.current:
                self.current[room_id] = await self.handler.hs.membership.get_membership(room_id, self.user_id)
            return self.current[room_id] == "join"
        return visibility == "invited" and membership_at_event == "invite"


class VisibilityHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store

    def _views(self, user_id: str, rooms: set[str], current_membership: str | None) -> _Views:
        views = _Views(self, user_id)
        # The caller's membership applies to its room only: a list spanning rooms (a
        # relation may name an event of another room) looks each room up.
        if current_membership is not None and len(rooms) == 1:
            views.current[next(iter(rooms))] = current_membership
        return views

    async def _can_see(self, views: _Views, ev: Event) -> bool:
        user_id = views.user_id
        if ev.type == "m.room.member" and ev.state_key == user_id:
            return True  # one's own membership events, outliers included (an invite over federation)
        if ev.rejected_reason or ev.outlier or ev.state_group is None:
            # Outside the room's timeline: there is no state to judge by (Synapse hides
            # outliers likewise).
            return False
        vis, membership = await views.at(ev.state_group)
        # A change of visibility is judged by the more permissive of old and new.
        if ev.type == "m.room.history_visibility" and ev.state_key == "":
            new = ev.content.get("history_visibility")
            if new in _VISIBILITY_ORDER and _VISIBILITY_ORDER.index(new) < _VISIBILITY_ORDER.index(vis):
                vis = new
        return await views.allows(ev.room_id, vis, membership)

    async def filter_events_for_user(
        self, user_id: str, events: list[Event], current_membership: str | None = None
    ) -> list[Event]:
        """The events the user may see, in order. ``current_membership`` is their
        membership now in the room of the events (looked up when not given)."""
        if not events:
            return []
        ignored = await self.hs.account_data.ignored_users(user_id) if user_id else frozenset()
        if ignored:
            # m.ignored_user_list: the ignored users' messages are not sent to the client
            # (their state events are: the room would make no sense without them), as Synapse.
            events = [e for e in events if e.is_state or e.sender not in ignored]
        views = self._views(user_id, {e.room_id for e in events}, current_membership)
        await views.prefetch(e.state_group for e in events if not e.outlier)
        return [ev for ev in events if await self._can_see(views, ev)]

    async def memberships_after(self, user_id: str, events: list[Event]) -> dict[str, str]:
        """The user's membership just after each event ("leave" when they had none), which
        Synapse serves in ``unsigned.membership`` (MSC4115): clients tell from it whether
        they should be able to decrypt an event. Only a user's own member event changes
        their membership, so it is the membership before the event otherwise."""
        views = _Views(self, user_id)
        await views.prefetch(e.state_group for e in events if not e.outlier)
        out: dict[str, str] = {}
        for ev in events:
            if ev.type == "m.room.member" and ev.state_key == user_id:
                out[ev.event_id] = ev.membership or "leave"
            elif ev.state_group is not None and not ev.outlier:
                out[ev.event_id] = (await views.at(ev.state_group))[1] or "leave"
            else:
                out[ev.event_id] = "leave"
        return out

    async def visible_state_groups(
        self, user_id: str, room_id: str, state_groups: Iterable[int | None], current_membership: str | None = None
    ) -> set[int]:
        """The snapshots of ``room_id`` at which the user may see an ordinary (non-state)
        event: the same rule as filter_events_for_user, for events known only by their
        snapshot (relations counted without loading every relating event)."""
        views = self._views(user_id, {room_id}, current_membership)
        groups = {g for g in state_groups if g is not None}
        await views.prefetch(groups)
        return {g for g in groups if await views.allows(room_id, *views.by_group[g])}

    async def can_see_event(self, user_id: str, event: Event) -> bool:
        return bool(await self.filter_events_for_user(user_id, [event]))

    async def is_world_readable(self, room_id: str) -> bool:
        ev = await self.hs.rooms.get_current_state_event(room_id, "m.room.history_visibility")
        return ev is not None and ev.content.get("history_visibility") == "world_readable"
