"""Sending, redacting and reading room events: /send, /redact, /messages, /context,
/event, /relations and the state APIs, with history visibility on every read."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeserver.events.client_format import client_event, client_v1, federation_form
from homeserver.events.event import Event
from homeserver.handlers.filtering import RoomEventFilter, only_fields
from homeserver.handlers.room_events import EventSpec
from homeserver.http.errors import BadJson, Forbidden, MatrixError, NotFound
from homeserver.protocol.redaction import redact_event
from homeserver.util.ids import now_ms

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester

MAX_LIMIT = 1000


# Pagination tokens are positions *between* events, as Synapse's are: "t<depth>-<stream>"
# is the point just after the event with that (depth, stream) key. Paginating backwards
# from a position returns the events at or before it, forwards the events after it, so a
# client switching direction at any token neither loses nor repeats an event.
START_POSITION = (-(2**62), -(2**62))


def make_topo_token(position: tuple[int, int]) -> str:
    return f"t{position[0]}-{position[1]}"


def token_after(event: Event) -> str:
    """The position just after an event (where a forward page that ends with it stops)."""
    return make_topo_token((event.depth, event.stream_ordering))


def token_before(event: Event) -> str:
    """The position just before an event (where a backward page that ends with it stops,
    and a /sync timeline's prev_batch)."""
    return make_topo_token((event.depth, event.stream_ordering - 1))


def parse_pagination_token(token: str) -> tuple[str, tuple[int, int] | int]:
    """Either a topological ("t<depth>-<stream>") or a stream token (a sync token)."""
    if token.startswith("t"):
        try:
            depth, stream = token[1:].split("-", 1)
            return "topo", (int(depth), int(stream))
        except ValueError:
            raise MatrixError(400, "M_UNKNOWN", "Invalid pagination token") from None
    from homeserver.handlers.sync import SyncToken

    return "stream", SyncToken.parse(token).stream


class MessageHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store

    # -- sending ------------------------------------------------------------------

    async def send_event(
        self,
        requester: Requester,
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

        async def already_sent() -> bool:
            if txn_id is None or requester.device_id is None:
                return False
            return await self.hs.rooms.event_id_for_txn(room_id, requester.user_id, requester.device_id, txn_id) is not None

        await self.hs.relations.validate_new_relation(room_id, event_type, requester.user_id, content, already_sent)
        spec = EventSpec(event_type, requester.user_id, content, state_key=state_key, txn_id=txn_id, device_id=requester.device_id)
        if state_key is not None:
            # Sending the same state again is a no-op that returns the existing event, as Synapse does.
            current = await self.hs.rooms.get_current_state_event(room_id, event_type, state_key)
            if current is not None and current.sender == requester.user_id and current.content == content:
                return current
        return await self.hs.rooms.send(room_id, spec)

    async def redact(
        self, requester: Requester, room_id: str, target_id: str, content: dict[str, Any], txn_id: str | None
    ) -> Event:
        target = await self.store.get_event(target_id)
        if target is not None and target.room_id != room_id:
            # Synapse's answer (a 400, not a 404: the event exists, in another room).
            raise MatrixError(400, "M_UNKNOWN", "Cannot redact event from a different room")
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
        self,
        requester: Requester | None,
        events: list[Event],
        include_room_id: bool = True,
        bundle: bool = True,
        *,
        event_format: str = "client",
        event_fields: list[str] | None = None,
        legacy_fields: bool = False,
        relations: bool = True,
    ) -> list[dict[str, Any]]:
        """Events in client form for the requester, who may see each of them (the caller
        checked). What is bundled into them passes the same visibility check: relations
        (see RelationsHandler) and the redaction in ``redacted_because``.

        Events served as events (``bundle``, not a state block) carry the requester's
        membership just after each in ``unsigned.membership`` (MSC4115), as Synapse
        sends it. ``event_format``/``event_fields`` are a sync filter's; ``legacy_fields``
        serves Synapse's "client v1" form (``client_format.client_v1``), which every
        endpoint but /sync and its kin uses. ``relations=False`` leaves out bundled
        aggregations (Synapse's deprecated /initialSync and /events have none)."""
        now = now_ms()
        for_device = (requester.user_id, requester.device_id) if requester else None
        bundled = await self.hs.relations.bundled_aggregations(requester, events) if bundle and relations else {}
        memberships = (
            await self.hs.visibility.memberships_after(requester.user_id, events) if requester and bundle else {}
        )
        redaction_ids = [e.redacted_by for e in events if e.redacted_by]
        redactions = await self.store.get_events(redaction_ids) if redaction_ids else {}
        hidden: set[str] = set()
        if redactions:
            user_id = requester.user_id if requester else ""
            seen = await self.hs.visibility.filter_events_for_user(user_id, list(redactions.values()))
            hidden = set(redactions) - {e.event_id for e in seen}
        out = []
        for ev in events:
            because = None
            redaction = redactions.get(ev.redacted_by) if ev.redacted_by else None
            if redaction is not None:
                if redaction.event_id in hidden:
                    # A redaction made after the user left: the content goes all the same,
                    # but not the redaction's own (its reason), which they may not see.
                    redaction = Event(
                        redaction.event_id, redact_event(redaction.pdu, redaction.room_version), redaction.room_version,
                        room=redaction.room_id,
                    )
                because = client_event(redaction, now, include_room_id=include_room_id, for_device=for_device)
                if legacy_fields:
                    because = client_v1(because)
            item = client_event(
                ev,
                now,
                include_room_id=include_room_id,
                for_device=for_device,
                redacted_because=because,
                relations=bundled.get(ev.event_id),
            )
            if ev.event_id in memberships:
                item["unsigned"]["membership"] = memberships[ev.event_id]
            if event_format == "federation":
                item = federation_form(ev, item["unsigned"])
            if legacy_fields:
                item = client_v1(item)
            if event_fields:
                item = only_fields(item, event_fields)
            out.append(item)
        return out

    async def _membership_unless_forgotten(self, room_id: str, user_id: str) -> str | None:
        """The user's membership, None for a room they left and forgot: Synapse's
        check_user_in_room(allow_departed_users) lets a forgotten room go as if never joined."""
        membership = await self.hs.membership.get_membership(room_id, user_id)
        if membership in ("leave", "ban"):
            lm = await self.store.get_local_membership(user_id, room_id)
            if lm is not None and lm.forgotten:
                return None
        return membership

    async def check_can_read(self, requester: Requester, room_id: str) -> str | None:
        """The requester's membership, or raises if they may see nothing of the room."""
        membership = await self._membership_unless_forgotten(room_id, requester.user_id)
        if membership in ("join", "leave", "ban", "invite", "knock"):
            return membership
        if await self.hs.visibility.is_world_readable(room_id):
            return membership
        raise Forbidden(f"User {requester.user_id} not in room {room_id}")

    async def event_for_timestamp(self, requester: Requester, room_id: str, ts: int, direction: str) -> dict[str, Any]:
        """/timestamp_to_event (jump to date), as Synapse's TimestampLookupHandler: the
        room's event closest to ``ts`` in ``direction``; when we have none, or our history
        of the room starts after it (joined over federation, older events not backfilled),
        the room's other servers are asked too and the closer answer wins (their event is
        backfilled first, so that the client can paginate from it)."""
        membership = await self.hs.membership.get_membership(room_id, requester.user_id)
        if membership != "join" and not await self.hs.visibility.is_world_readable(room_id):
            raise Forbidden(f"User {requester.user_id} not in room {room_id}, and room previews are disabled")
        local_id = await self.store.get_event_id_for_timestamp(room_id, ts, direction)
        local = await self.store.get_event(local_id) if local_id else None
        if local is None or (direction == "f" and not await self._history_starts_here(room_id)):
            remote = await self.hs.federation.remote_event_for_timestamp(room_id, ts, direction)
            if remote is not None and (local is None or abs(remote[1] - ts) < abs(local.origin_server_ts - ts)):
                return {"event_id": remote[0], "origin_server_ts": remote[1]}
        if local is None:
            raise NotFound(f"Unable to find event from {ts} in direction {direction}")
        return {"event_id": local.event_id, "origin_server_ts": local.origin_server_ts}

    async def _history_starts_here(self, room_id: str) -> bool:
        """Whether we hold the room's history from its start (its create event is in our
        timeline, not just an outlier from a join's state)."""
        room = await self.hs.rooms.get_room(room_id)
        create_id = room.state.get(("m.room.create", "")) if room is not None else None
        create = await self.store.get_event(create_id) if create_id else None
        return create is not None and not create.outlier

    async def get_visible_event(self, requester: Requester, room_id: str, event_id: str) -> Event:
        """An event of the room the requester may see, or 404 (403 outside the room)."""
        ev = await self.store.get_event(event_id)
        if ev is None or ev.room_id != room_id or ev.outlier:
            raise NotFound("Event not found")
        await self.check_can_read(requester, room_id)
        if not await self.hs.visibility.can_see_event(requester.user_id, ev):
            raise NotFound("Event not found")
        return ev

    async def get_event(self, requester: Requester, room_id: str, event_id: str) -> dict[str, Any]:
        ev = await self.get_visible_event(requester, room_id, event_id)
        return (await self.serialize(requester, [ev], legacy_fields=True))[0]

    async def _position(self, room_id: str, token: str) -> tuple[int, int]:
        """The position a /messages, /context or /sync token names in this room."""
        _, value = parse_pagination_token(token)
        if isinstance(value, tuple):  # topological
            return value
        return await self._position_at_stream(room_id, value)

    async def _position_at_stream(self, room_id: str, stream: int) -> tuple[int, int]:
        """A sync token's stream position as a point in the room: just after the room's
        last event at or before it."""
        depth, after = await self.store.get_topological_key_at_stream(room_id, stream)
        return (depth, after - 1)

    async def get_messages(
        self,
        requester: Requester,
        room_id: str,
        from_token: str | None,
        to_token: str | None,
        direction: str,
        limit: int,
        event_filter: RoomEventFilter,
    ) -> dict[str, Any]:
        """A page of the room's history in (depth, stream) order, as Synapse's
        ``get_messages``: backwards from a position the events at or before it, forwards
        the events after it; ``end`` is the position past the page's last event, absent
        once there is nothing more."""
        membership = await self.check_can_read(requester, room_id)
        limit = max(0, min(limit, MAX_LIMIT))
        # A sync token (or none, backwards: now) bounds the first page by stream position
        # alone, as in Synapse; its (depth, stream) point still names the page's start.
        from_stream: int | None = None
        if from_token is not None:
            kind, value = parse_pagination_token(from_token)
            if kind != "topo" and isinstance(value, int):
                from_stream = value
            from_pos = await self._position(room_id, from_token)
        elif direction == "b":
            from_stream = self.hs.streams.current
            from_pos = await self._position_at_stream(room_id, from_stream)
        else:
            from_pos = START_POSITION
        to_pos = await self._position(room_id, to_token) if to_token else None
        # A user who left sees nothing after their leave.
        leave_pos = None
        if membership in ("leave", "ban"):
            lm = await self.store.get_local_membership(requester.user_id, room_id)
            if lm is not None:
                leave_pos = await self.store.get_topological_key(lm.event_id)
        if leave_pos is not None and direction == "b" and from_pos > leave_pos:
            from_pos, from_stream = leave_pos, None
        start = from_token or make_topo_token(from_pos)

        async def page() -> list[Event]:
            # The store's bounds exclude the key they are given: backwards from a position
            # (d, s) means before (d, s + 1); a "to" position (d, s) excludes the events
            # at or before it going backwards.
            from_key: tuple[int, int] | int
            if direction == "b":
                from_key = (from_pos[0], from_pos[1] + 1)
                to_key = (to_pos[0], to_pos[1] + 1) if to_pos is not None else None
            else:
                from_key, to_key = from_pos, to_pos
            if from_stream is not None:
                from_key = from_stream
            return await self.store.paginate_room_events(
                room_id, from_key, direction, limit + 1, to_key=to_key, **event_filter.sql_kwargs()
            )

        if limit == 0:
            # Synapse answers an empty page that may go on, at the same position.
            return {"chunk": [], "start": start, "end": start}
        events = await page()
        if direction == "b" and len(events) <= limit and to_pos is None:
            # Out of stored history: ask the room's other servers for older events.
            if await self.hs.federation.backfill(room_id, events[-1].event_id if events else None):
                events = await page()
        limited = len(events) > limit
        events = events[:limit]
        if leave_pos is not None and direction == "f":
            beyond = [e for e in events if (e.depth, e.stream_ordering) > leave_pos]
            if beyond:
                events = [e for e in events if (e.depth, e.stream_ordering) <= leave_pos]
                limited = False
        if not events:
            if limited:
                return {"chunk": [], "start": start, "end": make_topo_token(to_pos or from_pos)}
            return {"chunk": [], "start": start}
        last = events[-1]
        end = token_before(last) if direction == "b" else token_after(last)
        visible = await self.hs.visibility.filter_events_for_user(requester.user_id, events, membership)
        visible = event_filter.filter_events(visible)
        result: dict[str, Any] = {
            "chunk": await self.serialize(requester, visible, legacy_fields=True),
            "start": start,
            "end": end,
        }
        if event_filter.lazy_load_members and visible:
            # The senders' memberships as of the page's first event, as Synapse: the state
            # after it, not the current state (which could show a user who has left).
            first = visible[0]
            at = await self.state_after(first)
            senders = {e.sender for e in visible}
            member_ids = [eid for (t, sk), eid in at.items() if t == "m.room.member" and sk in senders]
            state = sorted((await self.store.get_events(member_ids)).values(), key=lambda e: e.stream_ordering)
            result["state"] = await self.serialize(requester, state, bundle=False, legacy_fields=True)
        return result

    async def state_after(self, event: Event) -> dict[tuple[str, str], str]:
        """The room state just after an event (its snapshot holds the state before it);
        also /sync's, which takes states at the edges of a timeline."""
        state = dict(await self.store.get_state_group(event.state_group)) if event.state_group is not None else {}
        if event.is_state and not event.rejected_reason:
            state[event.state_pair] = event.event_id
        return state

    async def get_context(
        self, requester: Requester, room_id: str, event_id: str, limit: int, event_filter: RoomEventFilter
    ) -> dict[str, Any]:
        membership = await self.check_can_read(requester, room_id)
        ev = await self.store.get_event(event_id)
        if ev is None or ev.room_id != room_id or ev.outlier:
            raise NotFound("Event not found")
        if not await self.hs.visibility.can_see_event(requester.user_id, ev):
            # Synapse: an event that exists but that the user may not see is a 403.
            raise Forbidden("You don't have permission to access that event.")
        limit = max(0, min(limit, MAX_LIMIT))
        before_n, after_n = limit // 2, limit - limit // 2
        # The store's bounds exclude the given key: strictly before and after the event.
        key = (ev.depth, ev.stream_ordering)
        before = await self.store.paginate_room_events(room_id, key, "b", before_n, **event_filter.sql_kwargs())
        after = await self.store.paginate_room_events(room_id, key, "f", after_n, **event_filter.sql_kwargs())
        start = token_before(before[-1]) if before else token_before(ev)
        end = token_after(after[-1]) if after else token_after(ev)
        before = await self.hs.visibility.filter_events_for_user(requester.user_id, before, membership)
        after = await self.hs.visibility.filter_events_for_user(requester.user_id, after, membership)
        # The state after the last event returned (Synapse's choice), through the filter.
        at = await self.state_after(after[-1] if after else ev)
        if event_filter.lazy_load_members:
            senders = {e.sender for e in before + after + [ev]}
            at = {k: v for k, v in at.items() if k[0] != "m.room.member" or k[1] in senders}
        fetched = await self.store.get_events(at.values())
        state_events = event_filter.filter_events(sorted(fetched.values(), key=lambda e: e.stream_ordering))
        return {
            "event": (await self.serialize(requester, [ev], legacy_fields=True))[0],
            "events_before": await self.serialize(requester, before, legacy_fields=True),
            "events_after": await self.serialize(requester, after, legacy_fields=True),
            "state": await self.serialize(requester, state_events, bundle=False, legacy_fields=True),
            "start": start,
            "end": end,
        }

    async def get_state(self, requester: Requester, room_id: str, at_leave: bool = True) -> list[Event]:
        """The room state the requester may see: current if joined, else as it was when they left."""
        membership = await self._membership_unless_forgotten(room_id, requester.user_id)
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

    async def get_members(self, requester: Requester, room_id: str, at: str | None) -> list[Event]:
        """The room's member events, now or (``at``: a /sync or /messages token) as they
        were at that point: Synapse takes the state after the room's last event at or
        before the token's stream position, if the user may see that event."""
        if at is None:
            return [e for e in await self.get_state(requester, room_id) if e.type == "m.room.member"]
        _, value = parse_pagination_token(at)
        stream = value[1] if isinstance(value, tuple) else value  # topological, or a stream position
        last = await self.store.get_last_room_event_id(room_id, stream)
        event = await self.store.get_event(last) if last else None
        if event is None:
            raise NotFound(f"Can't find event for token {at}")
        if not await self.hs.visibility.can_see_event(requester.user_id, event):
            raise Forbidden(f"User {requester.user_id} not allowed to view events in room {room_id} at token {at}")
        state = await self.state_after(event)
        member_ids = [eid for (event_type, _), eid in state.items() if event_type == "m.room.member"]
        return sorted((await self.store.get_events(member_ids)).values(), key=lambda e: e.stream_ordering)

    async def get_state_event(self, requester: Requester, room_id: str, event_type: str, state_key: str) -> Event:
        events = await self.get_state(requester, room_id)
        for ev in events:
            if ev.type == event_type and ev.state_key == state_key:
                return ev
        raise NotFound("Event not found")
