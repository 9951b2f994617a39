"""The deprecated event stream, ``GET /events`` (and ``GET /events/{eventId}``), as
Synapse's EventStreamHandler serves them: what happened after ``from`` (a /sync token) in
the user's joined rooms, or in one room named by ``room_id`` that the user has joined or
that is world-readable (peeking, as matrix-js-sdk does after a room's /initialSync);
waiting up to ``timeout`` ms when nothing has. The chunk holds room events ("client v1"
form), then presence, typing and receipts; ``end`` is where the next call starts."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from homeserver.events.event import Event
from homeserver.handlers.sync import SyncToken
from homeserver.http.errors import Forbidden, MatrixError, NotFound

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester
    from homeserver.handlers.room_events.room_cache import RoomInfo

DEFAULT_TIMEOUT_MS = 30_000
# A long poll never outlasts what a proxy in front of us would wait for.
MAX_TIMEOUT_MS = 60_000


def parse_from_token(token: str | None) -> SyncToken | None:
    """A /sync token, a room's topological token (its stream part), or none ("END"
    too, as Synapse still accepts it)."""
    if token is None or token == "END":
        return None
    try:
        if token.startswith("t"):
            return SyncToken(int(token[1:].split("-", 1)[1]), 0, 0)
        return SyncToken.parse(token)
    except (ValueError, IndexError, MatrixError):
        raise MatrixError(400, "M_UNKNOWN", "'from' parameter is invalid") from None


class EventStreamHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store
        # /events requests peeking into a room they have not joined, waiting for it:
        # the notifier wakes members only.
        self._peekers: dict[str, list[defer.Deferred[None]]] = {}

    def on_events_persisted(self, events: list[Event], room: RoomInfo) -> None:
        for d in self._peekers.pop(room.room_id, []):
            if not d.called:
                d.callback(None)

    async def get_stream(
        self,
        requester: Requester,
        from_token: SyncToken | None,
        timeout_ms: int,
        room_id: str | None,
        limit: int,
    ) -> dict[str, Any]:
        user_id = requester.user_id
        limit = max(1, limit)  # at least one room event per answer, so that `end` moves on
        peeking = False
        if room_id is not None:
            if await self.store.room_blocked_by(room_id) is not None:
                raise MatrixError(403, "M_UNKNOWN", "This room has been blocked on this server")
            if room_id in self.hs.rooms.joined_rooms(user_id):
                rooms = [room_id]
            elif await self.hs.visibility.is_world_readable(room_id):
                rooms, peeking = [room_id], True
            else:
                raise Forbidden("Non-joined access not allowed")
        else:
            rooms = sorted(self.hs.rooms.joined_rooms(user_id))
        if not requester.is_guest:
            await self.hs.presence.set_state(user_id, "online", from_sync=True)
        start = from_token or SyncToken(self.hs.streams.current, self.hs.typing.serial, 0)
        if timeout_ms:
            # As Synapse: at least half a second, and spread so that clients polling
            # together do not come back together.
            timeout_ms = max(timeout_ms, 500)
            timeout_ms = random.randint(int(timeout_ms * 0.9), int(timeout_ms * 1.1))
        deadline = self.hs.reactor.seconds() + min(timeout_ms, MAX_TIMEOUT_MS) / 1000
        while True:
            up_to = self.hs.streams.current
            typing_serial = self.hs.typing.serial
            chunk, end = await self._new(requester, rooms, peeking, start, up_to, typing_serial, limit)
            remaining = deadline - self.hs.reactor.seconds()
            if chunk or remaining <= 0:
                return {"chunk": chunk, "start": str(start), "end": str(end)}
            if self.hs.streams.current != up_to or self.hs.typing.serial != typing_serial:
                continue
            if peeking:
                await self._wait_for_room(rooms[0], remaining)
            else:
                await self.hs.notifier.wait_for_user(user_id, int(remaining * 1000))
            if self.hs.reactor.seconds() >= deadline and self.hs.streams.current == up_to:
                return {"chunk": [], "start": str(start), "end": str(end)}

    async def _wait_for_room(self, room_id: str, seconds: float) -> None:
        d: defer.Deferred[None] = defer.Deferred()
        self._peekers.setdefault(room_id, []).append(d)
        def wake() -> None:
            if not d.called:
                d.callback(None)

        call = self.hs.reactor.callLater(seconds, wake)
        try:
            await d
        finally:
            if call.active():
                call.cancel()
            waiting = self._peekers.get(room_id)
            if waiting and d in waiting:
                waiting.remove(d)
                if not waiting:
                    del self._peekers[room_id]

    async def _new(
        self,
        requester: Requester,
        rooms: list[str],
        peeking: bool,
        since: SyncToken,
        up_to: int,
        typing_serial: int,
        limit: int,
    ) -> tuple[list[dict[str, Any]], SyncToken]:
        """What happened in (since, up_to]: at most ``limit`` room events (the oldest;
        ``end`` stops after the last one given), then the other kinds."""
        user_id = requester.user_id
        candidates: list[Event] = []
        for room_id in rooms:
            if up_to > since.stream and self.hs.rooms.room_changed_since(room_id, since.stream):
                candidates += await self.store.get_room_events(
                    room_id, after=since.stream, up_to=up_to, limit=limit, newest_first=False
                )
        candidates.sort(key=lambda e: e.stream_ordering)
        end_stream = up_to
        if len(candidates) > limit:
            candidates = candidates[:limit]
            end_stream = candidates[-1].stream_ordering
        visible = await self.hs.visibility.filter_events_for_user(user_id, candidates) if candidates else []
        chunk = await self.hs.messages.serialize(requester, visible, legacy_fields=True, relations=False)
        if end_stream > since.stream:
            chunk += await self._presence(user_id, rooms, peeking, since.stream, end_stream)
            chunk += await self._receipts(user_id, rooms, since.stream, end_stream)
        if typing_serial > since.typing:
            for room_id in rooms:
                if self.hs.typing.room_serial(room_id) > since.typing:
                    chunk.append({"room_id": room_id, **self.hs.typing.typing_event(room_id)})
        return chunk, SyncToken(max(end_stream, since.stream), max(typing_serial, since.typing), 0)

    async def _presence(
        self, user_id: str, rooms: list[str], peeking: bool, since: int, up_to: int
    ) -> list[dict[str, Any]]:
        if not self.store.presence_changes.any_changed_since(since):
            return []
        if peeking:
            state = await self.hs.rooms.get_state_events(rooms[0])
            users = {k[1] for k, e in state.items() if k[0] == "m.room.member" and e.membership == "join"}
            users.add(user_id)
        else:
            users = await self.store.get_shared_room_users(user_id)
            users.add(user_id)
        out = []
        for uid, (state_, msg, ts, stream_id) in sorted((await self.store.get_presence(sorted(users))).items()):
            if since < stream_id <= up_to:
                content = self.hs.presence.format(uid, state_, msg, ts, with_user=True)
                out.append({"type": "m.presence", "content": content})
        return out

    async def _receipts(self, user_id: str, rooms: list[str], since: int, up_to: int) -> list[dict[str, Any]]:
        out = []
        for room_id in rooms:
            if not self.store.receipts_changes.changed_since(room_id, since):
                continue
            edu = self.hs.receipts.receipts_edu(await self.store.get_receipts_since([room_id], since, up_to), user_id)
            if edu["content"]:
                out.append({"room_id": room_id, **edu})
        return out

    async def get_event(self, requester: Requester, event_id: str) -> dict[str, Any]:
        """``GET /events/{eventId}``: any event the user may see, in whichever room."""
        event = await self.store.get_event(event_id)
        if event is None or event.outlier:
            # Synapse answers with the bare JSON string "Event not found."; a Matrix error
            # says the same to clients that read errcodes.
            raise NotFound("Event not found.")
        if not await self.hs.visibility.can_see_event(requester.user_id, event):
            raise Forbidden("You don't have permission to access that event.")
        return (await self.hs.messages.serialize(requester, [event], legacy_fields=True))[0]
