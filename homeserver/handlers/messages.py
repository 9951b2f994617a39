"""Sending, redacting and reading room events: /send, /redact, /messages, /context,
/event, /relations and the state APIs, with history visibility on every read."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeserver.events.client_format import client_event
from homeserver.events.event import Event
from homeserver.handlers.filtering import RoomEventFilter
from homeserver.handlers.room_events import EventSpec
from homeserver.http.errors import BadJson, Forbidden, MatrixError, NotFound
from homeserver.util.ids import now_ms

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester

MAX_LIMIT = 1000


def make_topo_token(key: tuple[int, int]) -> str:
    return f"t{key[0]}-{key[1]}"


def parse_pagination_token(token: str) -> tuple[str, tuple[int, int] | int]:
    """Either a topological ("t<depth>-<stream>") or a stream token (a sync token)."""
    if token.startswith("t"):
        try:
            depth, stream = token[1:].split("-", 1)
            return "topo", (int(depth), int(stream))
        except ValueError:
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid pagination token") from None
    from homeserver.handlers.sync import SyncToken

    return "stream", SyncToken.parse(token).stream


class MessageHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self.hs = hs
        self.store = hs.store
        # Federation sets this: fetch older history from other servers when we run out.
        self.backfill: Any = None

    # -- sending ------------------------------------------------------------------

    async def send_event(
        self,
        requester: "Requester",
        room_id: str,
        event_type: str,
        content: dict[str, Any],
        txn_id: str | None = None,
        state_key: str | None = None,
    ) -> Event:
        if event_type == "m.room.member" and state_key is not None:
            membership = content.get("membership")
            if not isinstance(membership, str):
                raise BadJson("membership must be a string")
            action = {"join": "join", "invite": "invite", "leave": "leave" if state_key == requester.user_id else "kick", "ban": "ban", "knock": "knock"}.get(membership)
            if action is None:
                raise BadJson("Unknown membership")
            extra = {k: v for k, v in content.items() if k not in ("membership", "reason")}
            await self.hs.membership.update_membership(
                requester, room_id, state_key, action, reason=content.get("reason"), content_extra=extra
            )
            ev = await self.hs.rooms.get_current_state_event(room_id, "m.room.member", state_key)
            assert ev is not None
            return ev
        if event_type == "m.room.create":
            raise Forbidden("Cannot send a create event into an existing room")
        if state_key is None:
            self.hs.ratelimiter.check("message", requester.user_id)
        room = await self.hs.rooms.get_room(room_id)
        if room is None:
            raise Forbidden(f"User {requester.user_id} not in room {room_id}")
        if event_type == "m.room.redaction":
            redacts = content.get("redacts")
            if not isinstance(redacts, str):
                raise BadJson("redacts must be an event id")
            return await self.redact(requester, room_id, redacts, {k: v for k, v in content.items() if k != "redacts"}, txn_id)
        if event_type == "m.room.canonical_alias" and state_key == "":
            await self.hs.directory.check_canonical_alias(room_id, content)
        spec = EventSpec(event_type, requester.user_id, content, state_key=state_key, txn_id=txn_id, device_id=requester.device_id)
        if state_key is not None:
            # Sending the same state again is a no-op that returns the existing event, as Synapse does.
            current = await self.hs.rooms.get_current_state_event(room_id, event_type, state_key)
            if current is not None and current.sender == requester.user_id and current.content == content:
                return current
        return await self.hs.rooms.send(room_id, spec)

    async def redact(
        self, requester: "Requester", room_id: str, target_id: str, content: dict[str, Any], txn_id: str | None
    ) -> Event:
        target = await self.store.get_event(target_id)
        if target is not None and target.room_id != room_id:
            raise NotFound("Event not found")
        spec = EventSpec(
            "m.room.redaction",
            requester.user_id,
            content,
            redacts=target_id,
            txn_id=txn_id,
            device_id=requester.device_id,
        )
        # Redacting someone else's event needs the redact power level; the auth rules let
        # the event through for v3+ and leave that check to the server applying it.
        if target is not None and target.sender != requester.user_id:
            level = await self.hs.membership.user_power_level(room_id, requester.user_id)
            pl = await self.hs.rooms.get_current_state_event(room_id, "m.room.power_levels")
            needed = pl.content.get("redact", 50) if pl else 50
            if level < needed:
                raise Forbidden("You don't have permission to redact this event")
        return await self.hs.rooms.send(room_id, spec)

    # -- reading -----------------------------------------------------------------

    async def serialize(
        self, requester: "Requester | None", events: list[Event], include_room_id: bool = True, bundle: bool = True
    ) -> list[dict[str, Any]]:
        now = now_ms()
        for_device = (requester.user_id, requester.device_id) if requester else None
        relations = await self.hs.relations.bundled_aggregations(requester, events) if bundle else {}
        redaction_ids = [e.redacted_by for e in events if e.redacted_by]
        redactions = await self.store.get_events(redaction_ids) if redaction_ids else {}
        out = []
        for ev in events:
            because = None
            if ev.redacted_by and ev.redacted_by in redactions:
                because = client_event(redactions[ev.redacted_by], now, include_room_id=include_room_id)
            out.append(
                client_event(
                    ev,
                    now,
                    include_room_id=include_room_id,
                    for_device=for_device,
                    redacted_because=because,
                    relations=relations.get(ev.event_id),
                )
            )
        return out

    async def _check_can_read(self, requester: "Requester", room_id: str) -> str | None:
        """The requester's membership, or raises if they may see nothing of the room."""
        membership = await self.hs.membership.get_membership(room_id, requester.user_id)
        if membership in ("join", "leave", "ban", "invite", "knock"):
            return membership
        if await self.hs.visibility.is_world_readable(room_id):
            return membership
        raise Forbidden(f"User {requester.user_id} not in room {room_id}")

    async def get_event(self, requester: "Requester", room_id: str, event_id: str) -> dict[str, Any]:
        ev = await self.store.get_event(event_id)
        if ev is None or ev.room_id != room_id or ev.outlier:
            raise NotFound("Event not found")
        await self._check_can_read(requester, room_id)
        if not await self.hs.visibility.can_see_event(requester.user_id, ev):
            raise NotFound("Event not found")
        return (await self.serialize(requester, [ev]))[0]

    async def get_messages(
        self,
        requester: "Requester",
        room_id: str,
        from_token: str | None,
        to_token: str | None,
        direction: str,
        limit: int,
        event_filter: RoomEventFilter,
    ) -> dict[str, Any]:
        membership = await self._check_can_read(requester, room_id)
        limit = max(0, min(limit, MAX_LIMIT))
        if from_token is None:
            if direction == "b":
                from_key = await self.store.get_topological_key_at_stream(room_id, self.hs.streams.current)
            else:
                from_key = (-(2**62), -(2**62))
        else:
            kind, value = parse_pagination_token(from_token)
            from_key = value if kind == "topo" else await self.store.get_topological_key_at_stream(room_id, value)  # type: ignore[assignment,arg-type]
        to_key = None
        if to_token:
            kind, value = parse_pagination_token(to_token)
            to_key = value if kind == "topo" else await self.store.get_topological_key_at_stream(room_id, value)  # type: ignore[assignment,arg-type]
        # A user who left sees nothing after their leave.
        upper_bound = None
        if membership in ("leave", "ban"):
            lm = await self.store.get_local_membership(requester.user_id, room_id)
            if lm is not None:
                upper_bound = await self.store.get_topological_key(lm.event_id)
        if upper_bound is not None and direction == "b" and from_key > (upper_bound[0], upper_bound[1] + 1):
            from_key = (upper_bound[0], upper_bound[1] + 1)
        events = await self.store.paginate_room_events(
            room_id, from_key, direction, limit, to_key=to_key, **event_filter.sql_kwargs()
        )
        if direction == "b" and len(events) < limit and self.backfill is not None and to_key is None:
            if await self.backfill(room_id, events[-1].event_id if events else None):
                events = await self.store.paginate_room_events(
                    room_id, from_key, direction, limit, to_key=to_key, **event_filter.sql_kwargs()
                )
        if upper_bound is not None and direction == "f":
            events = [e for e in events if (e.depth, e.stream_ordering) <= upper_bound]
        next_key = None
        if events:
            last = events[-1]
            next_key = (last.depth, last.stream_ordering)
        visible = await self.hs.visibility.filter_events_for_user(requester.user_id, events, membership)
        visible = event_filter.filter_events(visible)
        chunk = await self.serialize(requester, visible)
        result: dict[str, Any] = {"chunk": chunk, "start": from_token or make_topo_token(from_key)}
        if next_key is not None and len(events) >= limit:
            result["end"] = make_topo_token(next_key)
        elif next_key is not None and direction == "f":
            result["end"] = make_topo_token(next_key)
        if event_filter.lazy_load_members and visible:
            senders = {e.sender for e in visible}
            state = []
            for sender in senders:
                member = await self.hs.rooms.get_current_state_event(room_id, "m.room.member", sender)
                if member is not None:
                    state.append(member)
            result["state"] = await self.serialize(requester, state, bundle=False)
        return result

    async def get_context(
        self, requester: "Requester", room_id: str, event_id: str, limit: int, event_filter: RoomEventFilter
    ) -> dict[str, Any]:
        membership = await self._check_can_read(requester, room_id)
        ev = await self.store.get_event(event_id)
        if ev is None or ev.room_id != room_id or not await self.hs.visibility.can_see_event(requester.user_id, ev):
            raise NotFound("Event not found")
        key = (ev.depth, ev.stream_ordering)
        limit = max(0, min(limit, MAX_LIMIT))
        before_n, after_n = limit // 2, limit - limit // 2
        before = await self.store.paginate_room_events(room_id, key, "b", before_n, **event_filter.sql_kwargs())
        after = await self.store.paginate_room_events(room_id, key, "f", after_n, **event_filter.sql_kwargs())
        before = await self.hs.visibility.filter_events_for_user(requester.user_id, before, membership)
        after = await self.hs.visibility.filter_events_for_user(requester.user_id, after, membership)
        state_events = []
        if ev.state_group is not None:
            state_map = await self.store.get_state_group(ev.state_group)
            if event_filter.lazy_load_members:
                senders = {e.sender for e in before + after + [ev]}
                state_map = {k: v for k, v in state_map.items() if k[0] != "m.room.member" or k[1] in senders}
            fetched = await self.store.get_events(state_map.values())
            state_events = list(fetched.values())
        result = {
            "event": (await self.serialize(requester, [ev]))[0],
            "events_before": await self.serialize(requester, before),
            "events_after": await self.serialize(requester, after),
            "state": await self.serialize(requester, state_events, bundle=False),
            "start": make_topo_token((before[-1].depth, before[-1].stream_ordering)) if before else make_topo_token(key),
            "end": make_topo_token((after[-1].depth, after[-1].stream_ordering)) if after else make_topo_token(key),
        }
        return result

    async def get_state(self, requester: "Requester", room_id: str, at_leave: bool = True) -> list[Event]:
        """The room state the requester may see: current if joined, else as it was when they left."""
        membership = await self.hs.membership.get_membership(room_id, requester.user_id)
        if membership == "join":
            return list((await self.hs.rooms.get_state_events(room_id)).values())
        if membership in ("leave", "ban"):
            lm = await self.store.get_local_membership(requester.user_id, room_id)
            if lm is not None:
                leave = await self.store.get_event(lm.event_id)
                if leave is not None and leave.state_group is not None:
                    state = dict(await self.store.get_state_group(leave.state_group))
                    state[leave.state_pair] = leave.event_id
                    return list((await self.store.get_events(state.values())).values())
        if await self.hs.visibility.is_world_readable(room_id):
            return list((await self.hs.rooms.get_state_events(room_id)).values())
        raise Forbidden(f"User {requester.user_id} not in room {room_id}")

    async def get_state_event(self, requester: "Requester", room_id: str, event_type: str, state_key: str) -> Event:
        events = await self.get_state(requester, room_id)
        for ev in events:
            if ev.type == event_type and ev.state_key == state_key:
                return ev
        raise NotFound("Event not found")
