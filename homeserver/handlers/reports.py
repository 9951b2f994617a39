"""Reporting content (spec "Reporting content"): events, rooms (MSC4151) and users
(MSC4260), stored for the server's admins (storage/reports.py), as Synapse 1.163 does
with MSC4277 off: a report of something the reporter cannot see or that does not exist
is a 404, except a report of a user, which is silently dropped when the user is not a
local one (so that it says nothing of who exists)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeserver.http.errors import BadJson, NotFound

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester

# Synapse's bound on the reason of a user report.
MAX_USER_REPORT_REASON = 1000


class ReportsHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store

    async def report_event(self, requester: Requester, room_id: str, event_id: str, body: dict[str, Any]) -> None:
        """Anything the reporter may see (history visibility) can be reported, a redacted
        event too, as in Synapse."""
        ev = await self.store.get_event(event_id)
        visible = (
            ev is not None
            and ev.room_id == room_id
            and await self.hs.visibility.can_see_event(requester.user_id, ev)
        )
        if not visible:
            raise NotFound("Unable to report event: it does not exist or you aren't able to see it.")
        reason = body.get("reason")
        await self.store.add_event_report(room_id, event_id, requester.user_id, reason, body)

    async def report_room(self, requester: Requester, room_id: str, reason: str) -> None:
        self.hs.ratelimiter.check("reports", requester.user_id)
        if await self.store.get_room_version(room_id) is None:
            raise NotFound("Room does not exist")
        await self.store.add_room_report(room_id, requester.user_id, reason)

    async def report_user(self, requester: Requester, target_user_id: str, reason: str) -> None:
        self.hs.ratelimiter.check("reports", requester.user_id)
        if len(reason) > MAX_USER_REPORT_REASON:
            raise BadJson("Reason must be less than 1000 characters")
        if not self.hs.is_mine(target_user_id) or await self.store.get_user(target_user_id) is None:
            return
        await self.store.add_user_report(target_user_id, requester.user_id, reason)
