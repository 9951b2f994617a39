"""Guest access (spec "Guest Access" module): who may join as a guest, and guests leaving
rooms that stop allowing them.

Guests are a local notion (no other server knows who is one), so, as Synapse, this server
checks a guest's join against the room's ``m.room.guest_access`` and marks the guest's
membership events with ``"kind": "guest"``; when the room's guest access stops being
``can_join`` (set by anyone, locally or over federation), each local guest member leaves
the room themselves, which needs no power level. Which endpoints guests may use is
decided per endpoint (``get_user_by_req(allow_guest=...)``), as Synapse's servlets do."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from homeserver.events.event import Event
from homeserver.handlers.auth import Requester
from homeserver.http.errors import Forbidden, MatrixError

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.room_events.room_cache import RoomInfo

logger = logging.getLogger(__name__)

GUEST_ACCESS = ("m.room.guest_access", "")


def allows_guests(content: dict[str, Any] | None) -> bool:
    return content is not None and content.get("guest_access") == "can_join"


class GuestAccessHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        # The guests' departures under way, per room (see ``settled``).
        self._leaving: dict[str, defer.Deferred[None]] = {}

    async def check_can_join(self, room_id: str) -> None:
        """403 unless the room lets guests join. A room this server holds no state of (a
        remote join) is refused too: its guest access cannot be checked before joining."""
        event = await self.hs.rooms.get_current_state_event(room_id, "m.room.guest_access")
        if event is None or not allows_guests(event.content):
            # Synapse's words and errcode (M_FORBIDDEN, not M_GUEST_ACCESS_FORBIDDEN).
            raise Forbidden("Guest access not allowed")

    @staticmethod
    def member_content(requester: Requester, content: dict[str, Any] | None) -> dict[str, Any] | None:
        """A guest's membership events say so, as Synapse marks them."""
        if not requester.is_guest:
            return content
        return {**(content or {}), "kind": "guest"}

    def on_events_persisted(self, events: list[Event], room: RoomInfo) -> None:
        for ev in events:
            if (ev.type, ev.state_key) != GUEST_ACCESS or allows_guests(ev.content):
                continue
            if room.state.get(GUEST_ACCESS) != ev.event_id:
                continue  # rejected, or not what the room's state ended up with
            previous = self._leaving.get(room.room_id)
            d = defer.ensureDeferred(self._guests_leave(room.room_id, previous))
            self._leaving[room.room_id] = d

            def done(result: object, room_id: str = room.room_id, d: defer.Deferred[None] = d) -> None:
                if self._leaving.get(room_id) is d:
                    del self._leaving[room_id]

            d.addBoth(done)

    async def settled(self, room_id: str) -> None:
        """Waits for the guests' departures a change of the room's guest access started,
        so that the client that made the change finds them gone (Synapse removes them
        before it answers)."""
        d = self._leaving.get(room_id)
        if d is not None:
            await _wait(d)

    async def _guests_leave(self, room_id: str, previous: defer.Deferred[None] | None) -> None:
        if previous is not None:
            await _wait(previous)
        try:
            current = await self.hs.rooms.get_current_state_event(room_id, "m.room.guest_access")
            if current is not None and allows_guests(current.content):
                return  # allowed again meanwhile
            for user_id in await self._local_guests(room_id):
                guest = Requester(user_id, "", True, "")
                try:
                    await self.hs.membership.update_membership(
                        guest, room_id, user_id, "leave", content_extra=self.member_content(guest, None)
                    )
                except MatrixError as e:
                    logger.warning("guest %s could not leave %s: %s", user_id, room_id, e.msg)
        except Exception:
            logger.exception("removing the guests of %s failed", room_id)

    async def _local_guests(self, room_id: str) -> list[str]:
        """Local members (joined or invited) whose membership event marks them as guests."""
        room = await self.hs.rooms.get_room(room_id)
        if room is None:
            return []
        keys = {
            key: event_id
            for key, event_id in room.state.items()
            if key[0] == "m.room.member" and self.hs.is_mine(key[1])
        }
        events = await self.hs.rooms.get_state_events(room_id, keys)
        return [
            key[1]
            for key, ev in events.items()
            if ev.content.get("membership") in ("join", "invite") and ev.content.get("kind") == "guest"
        ]


async def _wait(d: defer.Deferred[None]) -> None:
    """Waits for ``d`` without taking its result from its other waiters."""
    waiter: defer.Deferred[None] = defer.Deferred()

    def fire(result: object) -> object:
        waiter.callback(None)
        return result

    d.addBoth(fire)
    await waiter
