"""The deprecated ``GET /initialSync`` and ``GET /rooms/{roomId}/initialSync``, as
Synapse's InitialSyncHandler answers them. Clients still use the room form: matrix-js-sdk
peeks into a world-readable room with it (``peekInRoom``), then follows the room with
``GET /events?room_id=`` from the ``messages.end`` token (homeserver/handlers/event_stream.py).

Events come in the "client v1" form, without bundled aggregations (Synapse: "a deprecated
API"). Tokens are /sync tokens (``end``, which ``/events`` takes as ``from``) and the
topological token before the first message (``start``, which ``/messages`` takes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeserver.events.event import Event
from homeserver.handlers.messages import token_before
from homeserver.handlers.sync import SyncToken
from homeserver.http.errors import Forbidden, MatrixError

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester
    from homeserver.storage.rooms import LocalMembership

# Synapse caps the per-room message count of these endpoints.
MAX_LIMIT = 1000


class InitialSyncHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store

    def now_token(self) -> SyncToken:
        return SyncToken(self.hs.streams.current, self.hs.typing.serial, 0)

    # -- GET /initialSync --------------------------------------------------------

    async def snapshot_all_rooms(self, requester: Requester, limit: int, archived: bool) -> dict[str, Any]:
        """Every room the user is invited to or joined (and left, with ``archived``), with
        its last ``limit`` messages and its state; the user's presence view, receipts and
        account data."""
        user_id = requester.user_id
        now = self.now_token()
        wanted = {"invite", "join", "leave"} if archived else {"invite", "join"}
        memberships = [
            lm for lm in await self.store.get_local_memberships(user_id) if lm.membership in wanted and not lm.forgotten
        ]
        public = set(await self.store.get_public_room_ids())
        room_data = await self._room_account_data(user_id, now.stream)
        rooms = []
        for lm in sorted(memberships, key=lambda m: m.stream_ordering):
            entry: dict[str, Any] = {
                "room_id": lm.room_id,
                "membership": lm.membership,
                "visibility": "public" if lm.room_id in public else "private",
            }
            if lm.membership == "invite":
                invite = await self.store.get_event(lm.event_id)
                if invite is not None:
                    entry["inviter"] = invite.sender
                    entry["invite"] = (await self._state_json(requester, [invite]))[0]
            else:
                entry.update(await self._room_snapshot(requester, lm, limit, now))
                entry["account_data"] = room_data.get(lm.room_id, [])
            rooms.append(entry)
        joined = [lm.room_id for lm in memberships if lm.membership == "join"]
        return {
            "rooms": rooms,
            "presence": await self._presence(user_id, None),
            "account_data": await self._global_account_data(user_id, now.stream),
            "receipts": await self._receipts(user_id, joined, now.stream),
            "end": str(now),
        }

    async def _room_snapshot(
        self, requester: Requester, lm: LocalMembership, limit: int, now: SyncToken
    ) -> dict[str, Any]:
        if lm.membership == "join":
            up_to, end = now.stream, now
            state = list((await self.hs.rooms.get_state_events(lm.room_id)).values())
        else:
            up_to = lm.stream_ordering
            end = SyncToken(up_to, now.typing, 0)
            state = await self.hs.messages.get_state(requester, lm.room_id)
        messages = await self._messages(requester, lm.room_id, up_to, limit, end)
        return {"messages": messages, "state": await self._state_json(requester, state)}

    # -- GET /rooms/{roomId}/initialSync -------------------------------------------

    async def room_initial_sync(self, requester: Requester, room_id: str, limit: int) -> dict[str, Any]:
        """The room as the user sees it: now if joined, as it was at their leave if they
        left, or now without joining (peeking, no ``membership``) if it is world-readable."""
        if await self.store.room_blocked_by(room_id) is not None:
            raise MatrixError(403, "M_UNKNOWN", "This room has been blocked on this server")
        user_id = requester.user_id
        now = self.now_token()
        membership = await self.hs.membership.get_membership(room_id, user_id)
        if membership == "leave":
            lm = await self.store.get_local_membership(user_id, room_id)
            assert lm is not None
            state = await self.hs.messages.get_state(requester, room_id)
            end = SyncToken(lm.stream_ordering, 0, 0)
            result: dict[str, Any] = {
                "membership": "leave",
                "room_id": room_id,
                "messages": await self._messages(requester, room_id, lm.stream_ordering, limit, end),
                "state": await self._state_json(requester, state),
                "presence": [],
                "receipts": [],
            }
        elif membership == "join" or await self.hs.visibility.is_world_readable(room_id):
            state = list((await self.hs.rooms.get_state_events(room_id)).values())
            joined = sorted(e.state_key or "" for e in state if e.type == "m.room.member" and e.membership == "join")
            result = {
                "room_id": room_id,
                "messages": await self._messages(requester, room_id, now.stream, limit, now),
                "state": await self._state_json(requester, state),
                "presence": await self._presence_of(joined, include_offline=True),
                "receipts": await self._receipts(user_id, [room_id], now.stream),
            }
            if membership == "join":
                result["membership"] = "join"
        else:
            raise Forbidden(f"User {user_id} not in room {room_id}, and room previews are disabled")
        result["account_data"] = (await self._room_account_data(user_id, now.stream)).get(room_id, [])
        return result

    # -- parts ----------------------------------------------------------------------

    async def _messages(
        self, requester: Requester, room_id: str, up_to: int, limit: int, end: SyncToken
    ) -> dict[str, Any]:
        """The last ``limit`` events up to ``up_to`` the user may see (Synapse reads
        ``limit`` and then filters: fewer may come), oldest first."""
        fetched = await self.store.get_room_events(room_id, up_to=up_to, limit=limit) if limit > 0 else []
        events = list(reversed(fetched))
        visible = await self.hs.visibility.filter_events_for_user(requester.user_id, events)
        chunk = await self.hs.messages.serialize(requester, visible, legacy_fields=True, relations=False)
        start = token_before(events[0]) if events else str(end)
        return {"chunk": chunk, "start": start, "end": str(end)}

    async def _state_json(self, requester: Requester, events: list[Event]) -> list[dict[str, Any]]:
        ordered = sorted(events, key=lambda e: e.stream_ordering)
        return await self.hs.messages.serialize(requester, ordered, bundle=False, legacy_fields=True)

    async def _presence(self, user_id: str, since: int | None) -> list[dict[str, Any]]:
        """The presence of everyone the user shares a room with (and their own) who is not
        offline, in the form Synapse's legacy APIs use (``user_id`` in the content)."""
        users = await self.store.get_shared_room_users(user_id)
        users.add(user_id)
        return await self._presence_of(sorted(users), include_offline=False)

    async def _presence_of(self, users: list[str], include_offline: bool) -> list[dict[str, Any]]:
        stored = await self.store.get_presence(users)
        out = []
        for uid in users:
            if uid in stored:
                state, msg, ts, _ = stored[uid]
            elif include_offline:
                state, msg, ts = "offline", None, 0
            else:
                continue
            if state == "offline" and not include_offline:
                continue
            content = self.hs.presence.format(uid, state, msg, ts, with_user=True)
            out.append({"type": "m.presence", "content": content})
        return out

    async def _receipts(self, user_id: str, room_ids: list[str], up_to: int) -> list[dict[str, Any]]:
        """One m.receipt event per room with receipts (others' private ones left out)."""
        out = []
        for room_id in room_ids:
            receipts = await self.store.get_receipts_since([room_id], 0, up_to)
            edu = self.hs.receipts.receipts_edu(receipts, user_id)
            if edu["content"]:
                out.append({"room_id": room_id, **edu})
        return out

    async def _global_account_data(self, user_id: str, up_to: int) -> list[dict[str, Any]]:
        data = await self.store.get_account_data_since(user_id, 0, up_to)
        return [{"type": t, "content": c} for room_id, t, c in data if not room_id]

    async def _room_account_data(self, user_id: str, up_to: int) -> dict[str, list[dict[str, Any]]]:
        """Per room, the tags first (as Synapse lists them) and then the rest."""
        out: dict[str, list[dict[str, Any]]] = {}
        for room_id, data_type, content in await self.store.get_account_data_since(user_id, 0, up_to):
            if not room_id:
                continue
            items = out.setdefault(room_id, [])
            item = {"type": data_type, "content": content}
            if data_type == "m.tag":
                if content.get("tags"):
                    items.insert(0, item)
            else:
                items.append(item)
        return out


def parse_limit(value: int | None, default: int) -> int:
    if value is None:
        return default
    return max(0, min(value, MAX_LIMIT))
