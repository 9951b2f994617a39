"""History visibility: which events a user may see (spec "History visibility").

Every read path (sync, /messages, /context, /event, /relations, /state) filters
through here. The visibility and the user's membership are taken from the state at
each event, looked up by snapshot id and cached.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeserver.events.event import Event

if TYPE_CHECKING:
    from homeserver.app import HomeServer

_VISIBILITY_ORDER = ("world_readable", "shared", "invited", "joined")


class VisibilityHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self.hs = hs
        self.store = hs.store

    async def _visibility_and_membership(self, event: Event, user_id: str) -> tuple[str, str | None]:
        if event.state_group is None:
            return "shared", None
        state = await self.store.get_state_group(event.state_group)
        ids = [i for i in (state.get(("m.room.history_visibility", "")), state.get(("m.room.member", user_id))) if i]
        events = await self.store.get_events(ids)
        vis_id = state.get(("m.room.history_visibility", ""))
        vis = "shared"
        if vis_id and vis_id in events:
            v = events[vis_id].content.get("history_visibility")
            if v in _VISIBILITY_ORDER:
                vis = v
        member_id = state.get(("m.room.member", user_id))
        membership = events[member_id].membership if member_id and member_id in events else None
        # A user's own membership change counts as the membership at that event.
        if event.type == "m.room.member" and event.state_key == user_id:
            membership = event.membership
        # A change of visibility is judged by the more permissive of old and new.
        if event.type == "m.room.history_visibility" and event.state_key == "":
            new = event.content.get("history_visibility")
            if new in _VISIBILITY_ORDER and _VISIBILITY_ORDER.index(new) < _VISIBILITY_ORDER.index(vis):
                vis = new
        return vis, membership

    async def filter_events_for_user(
        self, user_id: str, events: list[Event], current_membership: str | None = None
    ) -> list[Event]:
        """The events the user may see. ``current_membership`` is their membership now."""
        if current_membership is None and events:
            m = await self.hs.membership.get_membership(events[0].room_id, user_id)
            current_membership = m
        out = []
        for ev in events:
            if ev.type == "m.room.member" and ev.state_key == user_id:
                out.append(ev)
                continue
            vis, membership = await self._visibility_and_membership(ev, user_id)
            if membership == "join":
                out.append(ev)
            elif vis == "world_readable":
                out.append(ev)
            elif vis == "shared" and current_membership == "join":
                out.append(ev)
            elif vis == "invited" and membership == "invite":
                out.append(ev)
        return out

    async def can_see_event(self, user_id: str, event: Event) -> bool:
        return bool(await self.filter_events_for_user(user_id, [event]))

    async def is_world_readable(self, room_id: str) -> bool:
        ev = await self.hs.rooms.get_current_state_event(room_id, "m.room.history_visibility")
        return ev is not None and ev.content.get("history_visibility") == "world_readable"
