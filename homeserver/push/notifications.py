"""GET /notifications (``hs.notifications``): the notifications a user was sent, newest
first, each with whether it has been read."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeserver.http.errors import MatrixError

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester


class NotificationsHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store

    async def get_notifications(
        self, requester: Requester, from_token: str | None, limit: int, only: str | None
    ) -> dict[str, Any]:
        before = None
        if from_token:
            try:
                before = int(from_token)
            except ValueError:
                raise MatrixError(400, "M_INVALID_PARAM", "Invalid from token") from None
        limit = max(1, min(limit, 500))  # Synapse's cap
        # Wait for evaluations in flight so a just-sent mention is listed.
        await self.hs.push_actions.wait_for_evaluations()
        rows = await self.store.get_notifications(requester.user_id, before, limit, only == "highlight")
        events = await self.store.get_events([r.event_id for r, _ in rows])
        present = [(r, read) for r, read in rows if r.event_id in events]
        # As Synapse serialises them: without room_id (it is beside the event), relations
        # or the reader's membership.
        serialized = await self.hs.messages.serialize(
            requester, [events[r.event_id] for r, _ in present], include_room_id=False, bundle=False
        )
        out = []
        for (row, read), ev in zip(present, serialized, strict=True):
            out.append(
                {
                    "actions": row.actions,
                    "event": ev,
                    # Synapse's per-notification profile tag, which it never sets.
                    "profile_tag": None,
                    "read": read,
                    "room_id": row.room_id,
                    "ts": row.ts,
                }
            )
        # Synapse's token: after the last one listed, null when there is none (a client
        # pages until an empty page).
        return {"notifications": out, "next_token": str(rows[-1][0].stream_ordering) if rows else None}
