"""/sync: what changed for a user since their last token, long-polling until something does.

A token is ``s<stream>_<typing>_<to_device>``: the global stream position (events,
receipts, account data, presence, device lists and memberships share it), the typing
serial, and how far the device has read its to-device queue (delivery is capped per
response, so that position can lag behind the stream).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from homeserver.events.event import Event
from homeserver.events.stripped_state import STRIPPED_STATE_TYPES
from homeserver.handlers.filtering import SyncFilter
from homeserver.handlers.messages import token_after
from homeserver.handlers.sync_state import LazyMembersSent, StateIds, only_members, state_delta
from homeserver.http.errors import MatrixError
from homeserver.storage.rooms import LocalMembership
from homeserver.util.caches import LruCache

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester

logger = logging.getLogger(__name__)

MAX_TIMEOUT_MS = 5 * 60 * 1000
TO_DEVICE_LIMIT = 100
# Pages of a room's history read to fill a timeline whose events the user may not see
# (visibility, ignored senders), before answering with what there is (Synapse tries 5).
TIMELINE_PAGES = 3
# Member events followed back to find a user's membership at a sync token.
MEMBERSHIP_WALK = 50
# Devices whose lazy-loaded members are remembered.
LAZY_MEMBER_DEVICES = 10_000


@dataclass(frozen=True)
class SyncToken:
    stream: int
    typing: int = 0
    to_device: int = 0

    @classmethod
    def parse(cls, token: str) -> SyncToken:
        try:
            if not token.startswith("s"):
                raise ValueError
            parts = [int(p) for p in token[1:].split("_")]
            return cls(*parts[:3])
        except (ValueError, TypeError):
            # Synapse's answer to a token it cannot read.
            raise MatrixError(400, "M_UNKNOWN", "Invalid stream token") from None

    def __str__(self) -> str:
        return f"s{self.stream}_{self.typing}_{self.to_device}"


@dataclass
class _SyncRequest:
    """What one /sync response is computed against, and what it collects on the way."""

    requester: Requester
    since: SyncToken | None
    full_state: bool
    filter: SyncFilter
    up_to: int
    typing_serial: int
    ignored: frozenset[str]
    lazy: LazyMembersSent | None
    newly_joined_rooms: set[str] = field(default_factory=set)
    # Users who joined, or were invited to or knocked on, a room of the user's since the
    # token, as the response shows (their presence is sent).
    new_members: set[str] = field(default_factory=set)

    @property
    def user_id(self) -> str:
        return self.requester.user_id

    def note_members(self, events: list[Event]) -> None:
        for ev in events:
            if ev.type == "m.room.member" and ev.state_key:
                if ev.membership in ("join", "invite", "knock"):
                    self.new_members.add(ev.state_key)
                else:
                    self.new_members.discard(ev.state_key)


class SyncHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store
        self._lazy_members: LruCache[tuple[str, str], LazyMembersSent] = LruCache(LAZY_MEMBER_DEVICES)

    async def sync(
        self,
        requester: Requester,
        since: str | None,
        timeout_ms: int,
        full_state: bool,
        sync_filter: SyncFilter,
        set_presence: str | None,
    ) -> dict[str, Any]:
        user_id = requester.user_id
        if set_presence != "offline":
            await self.hs.presence.set_state(user_id, set_presence or "online", from_sync=True)
        since_token = SyncToken.parse(since) if since else None
        if since_token is not None:
            # Everything up to the token was received: drop the delivered to-device messages.
            await self.store.delete_to_device_messages(user_id, requester.device_id, since_token.to_device)
        timeout_ms = max(0, min(timeout_ms, MAX_TIMEOUT_MS))
        deadline = self.hs.reactor.seconds() + timeout_ms / 1000
        while True:
            up_to = self.hs.streams.current
            typing_serial = self.hs.typing.serial
            result, empty = await self._generate(requester, since_token, full_state, sync_filter, up_to, typing_serial)
            if not empty or since_token is None or full_state:
                return result
            remaining = deadline - self.hs.reactor.seconds()
            if remaining <= 0:
                return result
            if self.hs.streams.current != up_to or self.hs.typing.serial != typing_serial:
                continue  # something arrived while generating
            await self.hs.notifier.wait_for_user(user_id, int(remaining * 1000))
            if self.hs.streams.current == up_to and self.hs.typing.serial == typing_serial:
                # Woken by something with no stream position yet; generate once more anyway.
                if self.hs.reactor.seconds() >= deadline:
                    return result

    async def current_sync(
        self,
        requester: Requester,
        since: SyncToken | None,
        sync_filter: SyncFilter,
        up_to: int,
        typing_serial: int,
        full_state: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """One response from ``since`` up to ``up_to``, and whether it is empty; no wait,
        no presence update, and to-device messages up to ``since`` are skipped rather
        than deleted (the WebSocket stream deletes them when the client acknowledges)."""
        return await self._generate(requester, since, full_state, sync_filter, up_to, typing_serial)

    async def _generate(
        self,
        requester: Requester,
        since: SyncToken | None,
        full_state: bool,
        sync_filter: SyncFilter,
        up_to: int,
        typing_serial: int,
    ) -> tuple[dict[str, Any], bool]:
        user_id = requester.user_id
        since_stream = since.stream if since else 0
        lazy = None
        if sync_filter.state.lazy_load_members:
            lazy = self._lazy_members_sent(user_id, requester.device_id)
            lazy.start_request(since_stream if since is not None else None)
        req = _SyncRequest(
            requester, since, full_state, sync_filter, up_to, typing_serial,
            await self.hs.account_data.ignored_users(user_id), lazy,
        )
        joined: dict[str, Any] = {}
        invited: dict[str, Any] = {}
        left: dict[str, Any] = {}
        knocked: dict[str, Any] = {}
        if since is not None and not self.store.membership_changes.changed_since(user_id, since_stream):
            # Nothing about this user's memberships changed: the joined rooms are known in
            # memory and there are no new invites or leaves to report.
            memberships = [LocalMembership(r, "join", "", 0, False) for r in self.hs.rooms.joined_rooms(user_id)]
        else:
            # A room left since the token comes down even when it was forgotten since, as on
            # Synapse: other devices learn of the leave (Complement's forget tests).
            memberships = await self.store.get_local_memberships(user_id, include_forgotten=since is not None)
        for lm in memberships:
            if not sync_filter.allows_room(lm.room_id) or lm.stream_ordering > up_to:
                continue
            changed = since is None or lm.stream_ordering > since_stream
            if lm.membership == "join":
                newly_joined = since is not None and changed and await self._joined_since(lm, since_stream)
                if newly_joined:
                    req.newly_joined_rooms.add(lm.room_id)
                room = await self._joined_room(req, lm.room_id, newly_joined)
                if room is not None:
                    joined[lm.room_id] = room
            elif lm.membership in ("invite", "knock") and changed:
                member = await self.store.get_event(lm.event_id)
                if member is None:
                    continue
                if lm.membership == "knock":
                    knocked[lm.room_id] = {"knock_state": {"events": await self.stripped_state(lm, requester)}}
                elif member.sender not in req.ignored:
                    # "Servers must not send room invites from ignored users to clients."
                    invited[lm.room_id] = {"invite_state": {"events": await self.stripped_state(lm, requester)}}
            elif lm.membership in ("leave", "ban"):
                if since is None:
                    # An initial sync carries the rooms the user was kicked or banned from;
                    # rooms they left themselves only on request (Synapse's rule).
                    if lm.membership == "leave" and not sync_filter.include_leave:
                        member = await self.store.get_event(lm.event_id)
                        if member is None or member.sender == user_id:
                            continue
                    newly_joined = False
                elif changed:
                    # An incremental sync always carries a room left since the token.
                    newly_joined = await self._joined_since(lm, since_stream)
                else:
                    continue
                room = await self._left_room(req, lm, newly_joined)
                if room is not None:
                    left[lm.room_id] = room

        account_data = []
        room_account_data: dict[str, list[dict[str, Any]]] = {}
        changed_account_data = []
        if full_state or self.store.account_data_changes.changed_since(user_id, since_stream):
            changed_account_data = await self.store.get_account_data_since(
                user_id, since_stream if not full_state else 0, up_to
            )
        for room_id, data_type, content in changed_account_data:
            if room_id:
                if sync_filter.room_account_data.allows_room(room_id) and sync_filter.room_account_data.check(
                    data_type, None
                ):
                    room_account_data.setdefault(room_id, []).append({"type": data_type, "content": content})
            elif sync_filter.account_data.check(data_type, None):
                account_data.append({"type": data_type, "content": content})
        if (since is None or full_state) and sync_filter.account_data.check("m.push_rules", None):
            # Clients read their push rules from the initial sync, as Synapse sends them.
            if not any(e["type"] == "m.push_rules" for e in account_data):
                account_data.append({"type": "m.push_rules", "content": await self.hs.push_rules.get_rules_for_client(user_id)})
        for room_id, items in room_account_data.items():
            if room_id in joined:
                joined[room_id].setdefault("account_data", {"events": []})["events"].extend(items)
            elif room_id in left:
                left[room_id]["account_data"]["events"].extend(items)
            elif any(lm.room_id == room_id and lm.membership == "join" for lm in memberships):
                joined[room_id] = self._empty_joined_room()
                joined[room_id]["account_data"] = {"events": items}

        to_device: list[dict[str, Any]] = []
        to_device_pos = 0
        acked = since.to_device if since else 0
        if self.store.to_device_changes.changed_since((user_id, requester.device_id), acked):
            to_device, to_device_pos = await self.store.get_to_device_messages(
                user_id, requester.device_id, up_to, TO_DEVICE_LIMIT, after=acked
            )
        if not to_device:
            to_device_pos = since.to_device if since and since.to_device > up_to else up_to
        presence = []
        if sync_filter.presence.limit != 0:
            # Users who newly share a room with this one get their current presence, as
            # in Synapse: everyone in a room joined since the token, and whoever joined
            # (or was invited to) one of the user's rooms.
            newly_shared = set(req.new_members)
            for room_id in req.newly_joined_rooms:
                newly_shared |= set(await self.store.get_members_with_membership(room_id, "join"))
            incremental_since = since_stream if since is not None and not full_state else None
            presence = [
                p
                for p in await self.hs.presence.for_sync(user_id, incremental_since, up_to, newly_shared)
                if sync_filter.presence.check("m.presence", p["sender"])
            ]

        device_lists = await self.device_lists(user_id, since, up_to, memberships)

        result: dict[str, Any] = {
            "next_batch": str(SyncToken(up_to, typing_serial, to_device_pos)),
            "rooms": {"join": joined, "invite": invited, "leave": left, "knock": knocked},
            "account_data": {"events": account_data},
            "presence": {"events": presence},
            "to_device": {"events": to_device},
            "device_lists": device_lists,
        }
        result.update(await self.hs.e2e_keys.one_time_keys.sync_counts(user_id, requester.device_id))
        empty = not (
            joined or invited or left or knocked or account_data or presence or to_device
            or device_lists["changed"] or device_lists["left"]
        )
        return result, empty

    def _lazy_members_sent(self, user_id: str, device_id: str | None) -> LazyMembersSent:
        key = (user_id, device_id or "")
        sent = self._lazy_members.fetch(key)
        if sent is None:
            sent = LazyMembersSent()
            self._lazy_members.put(key, sent)
        return sent

    async def _membership_since(self, lm: LocalMembership, since: int) -> tuple[str | None, list[str]]:
        """The user's membership in the room as of ``since`` (None: none, or unknown) and
        the memberships they took after it, newest first. Walks the member events back
        through ``replaces_state``; a display name change is a join after a join."""
        event = await self.store.get_event(lm.event_id)
        after: list[str] = []
        for _ in range(MEMBERSHIP_WALK):
            if event is None:
                return None, after
            if event.stream_ordering <= since:
                return event.membership, after
            after.append(event.membership or "")
            previous = event.pdu.get("unsigned", {}).get("replaces_state")
            event = await self.store.get_event(previous) if isinstance(previous, str) else None
        return None, after

    async def _joined_since(self, lm: LocalMembership, since: int) -> bool:
        """Whether the user (re)joined the room after ``since``: as Synapse decides, a room
        the user is in is newly joined when they were not joined at the token or left and
        came back since; a room they have left, when they joined it since the token."""
        at_since, after = await self._membership_since(lm, since)
        if lm.membership == "join":
            return at_since != "join" or any(m != "join" for m in after)
        return "join" in after and at_since != "join"

    @staticmethod
    def _empty_joined_room() -> dict[str, Any]:
        return {
            "timeline": {"events": [], "limited": False},
            "state": {"events": []},
            "ephemeral": {"events": []},
            "account_data": {"events": []},
            "unread_notifications": {},
            "summary": {},
        }

    async def _timeline(
        self, req: _SyncRequest, room_id: str, after: int | None, up_to: int, membership: str
    ) -> tuple[list[Event], bool, str]:
        """The newest events of (after, up_to] that pass the timeline filter and that the
        user may see, at most the filter's limit, whether older ones were left out, and
        the timeline's prev_batch. Pages further back (a few times) when visibility or
        ignored senders drop events, as Synapse does, so a room is not shown empty while
        it has visible events.

        prev_batch is Synapse's: the point before the first event when the events were cut
        to the limit or follow on from the token, else (a timeline read from scratch that
        holds everything there is) the sync position itself, which /members?at= and
        /messages read as "as of this sync"."""
        limit = req.filter.timeline_limit
        kwargs = req.filter.timeline.sql_kwargs()
        visible: list[Event] = []
        more = False
        top = up_to
        for _ in range(TIMELINE_PAGES):
            fetched = await self.store.get_room_events(room_id, after=after, up_to=top, limit=limit + 1, **kwargs)
            more = len(fetched) > limit
            page = await self.hs.visibility.filter_events_for_user(req.user_id, list(reversed(fetched)), membership)
            visible = page + visible
            if not more or len(visible) >= limit:
                break
            top = fetched[-1].stream_ordering - 1
        now = str(SyncToken(up_to, req.typing_serial, 0))
        # The point before the first event is a stream position, as Synapse's prev_batch: in
        # a forked room a (depth, stream) point would hide, from the page back, events that
        # arrived earlier but sit deeper in the DAG than the timeline's first event.
        if len(visible) > limit:
            visible = visible[len(visible) - limit :]
            return visible, True, str(SyncToken(visible[0].stream_ordering - 1, req.typing_serial, 0)) if visible else now
        if after is not None and not more and visible:
            return visible, False, str(SyncToken(visible[0].stream_ordering - 1, req.typing_serial, 0))
        return visible, more, now

    async def _joined_room(self, req: _SyncRequest, room_id: str, newly_joined: bool) -> dict[str, Any] | None:
        since = req.since
        since_stream = since.stream if since else 0
        sync_filter = req.filter
        full = since is None or newly_joined or req.full_state
        events: list[Event] = []
        limited = False
        prev_batch = str(SyncToken(req.up_to, req.typing_serial, 0))
        if sync_filter.timeline.allows_room(room_id):
            after = None if since is None or newly_joined else since_stream
            if after is None or req.full_state or self.hs.rooms.room_changed_since(room_id, after):
                events, limited, prev_batch = await self._timeline(req, room_id, after, req.up_to, "join")
        if newly_joined:
            # Synapse marks a newly joined room's timeline limited: the client has none of
            # the room's history and should paginate for it.
            limited = True
        ephemeral = await self._ephemeral(req, room_id, 0 if newly_joined else since_stream)
        if not full and not events and not ephemeral and not limited:
            return None
        state = await self._state(req, room_id, events, limited, full, end_event=None)
        summary: dict[str, Any] = {}
        if sync_filter.state.lazy_load_members and (
            since is None
            or newly_joined
            or any(e.type == "m.room.member" for e in events)
            or (limited and any(e.type == "m.room.member" for e in state))
        ):
            summary, heroes = await self._summary(req, room_id, events, state)
            state += heroes
        if not full and not events and not ephemeral and not state:
            return None
        if since is not None:
            req.note_members(events + state)
        room: dict[str, Any] = self._empty_joined_room()
        room["timeline"] = {
            "events": await self._serialize(req, events),
            "limited": limited,
            "prev_batch": prev_batch,
        }
        room["state"] = {"events": await self._serialize(req, state, bundle=False)}
        room["ephemeral"] = {"events": ephemeral}
        # Thread counts are split out only for clients that asked for them (MSC3773).
        room["unread_notifications"], threads = await self.hs.push_actions.unread_counts(
            req.user_id, room_id, threaded=sync_filter.timeline.unread_thread_notifications
        )
        if threads:
            room["unread_thread_notifications"] = threads
        room["summary"] = summary
        return room

    async def _ephemeral(self, req: _SyncRequest, room_id: str, receipts_since: int) -> list[dict[str, Any]]:
        since = req.since
        sync_filter = req.filter
        if not sync_filter.ephemeral.allows_room(room_id):
            return []
        ephemeral = []
        typing_serial = req.typing_serial
        if since is None or typing_serial > since.typing and self.hs.typing.room_serial(room_id) > since.typing:
            typing = self.hs.typing.typing_event(room_id)
            if typing["content"]["user_ids"] or since is not None:
                ephemeral.append(typing)
        if receipts_since == 0 or self.store.receipts_changes.changed_since(room_id, receipts_since):
            receipts = await self.store.get_receipts_since([room_id], receipts_since, req.up_to)
            if receipts:
                edu = self.hs.receipts.receipts_edu(receipts, req.user_id)
                if edu["content"]:
                    ephemeral.append(edu)
        return [e for e in ephemeral if sync_filter.ephemeral.check(e["type"], None)]

    async def _serialize(self, req: _SyncRequest, events: list[Event], bundle: bool = True) -> list[dict[str, Any]]:
        return await self.hs.messages.serialize(
            req.requester,
            events,
            include_room_id=False,
            bundle=bundle,
            event_format=req.filter.event_format,
            event_fields=req.filter.event_fields,
        )

    async def _state(
        self,
        req: _SyncRequest,
        room_id: str,
        timeline: list[Event],
        limited: bool,
        full: bool,
        end_event: Event | None,
    ) -> list[Event]:
        """The room's ``state`` block, as Synapse computes it: in a full entry (initial
        sync, newly joined room, full_state) the state at the start and end of the
        timeline; in an incremental one nothing when the timeline continues the previous
        sync's without a gap, otherwise every change since the token. With lazy-loaded
        members, only the members the timeline needs (and the user's own, in a full
        entry), and none the device already has unless ``include_redundant_members``."""
        state_filter = req.filter.state
        if not state_filter.allows_room(room_id):
            return []
        lazy = state_filter.lazy_load_members
        timeline_state: StateIds = {}
        members: set[str] | None = None
        if lazy:
            members = set()
            for ev in timeline:
                # A sender whose membership the timeline already showed needs none.
                if ("m.room.member", ev.sender) not in timeline_state:
                    members.add(ev.sender)
                if ev.is_state:
                    timeline_state[ev.state_pair] = ev.event_id
        else:
            timeline_state = {ev.state_pair: ev.event_id for ev in timeline if ev.is_state}
        changed: set[tuple[str, str]] = set()
        ids: StateIds
        if full:
            end = await self._end_state(room_id, req.up_to, end_event)
            # Synapse takes the state after the timeline's first event as its start.
            start = await self.hs.messages.state_after(timeline[0]) if timeline else end
            if members is not None:
                wanted = members | {req.user_id}
                end, start = only_members(end, wanted), only_members(start, wanted)
            ids = state_delta(timeline_state, start, end, {}, lazy)
        else:
            assert req.since is not None
            since_stream = req.since.stream
            if not limited and await self._continues(room_id, timeline, since_stream):
                ids = {}
                if members and timeline:
                    after_first = await self.hs.messages.state_after(timeline[0])
                    ids = {k: v for k, v in after_first.items() if k[0] == "m.room.member" and k[1] in members}
            else:
                end = await self._end_state(room_id, req.up_to, end_event)
                start = await self.hs.messages.state_after(timeline[0]) if timeline else end
                previous = await self._state_at(room_id, since_stream)
                if members is not None:
                    start = only_members(start, members)
                    if not limited:
                        # A gap shows every change in it, members included (Synapse
                        # turns lazy loading off for gappy syncs).
                        previous, end = only_members(previous, members), only_members(end, members)
                ids = state_delta(timeline_state, start, end, previous, lazy)
                changed = {k for k, v in ids.items() if previous.get(k) != v}
        sent = req.lazy
        if sent is not None:
            if not state_filter.include_redundant_members:
                ids = {
                    k: v for k, v in ids.items() if k[0] != "m.room.member" or k in changed or not sent.was_sent(k[1], v)
                }
            for (event_type, state_key), event_id in list(ids.items()) + list(timeline_state.items()):
                if event_type == "m.room.member":
                    sent.mark_sent(state_key, event_id, req.up_to)
        if not ids:
            return []
        fetched = await self.store.get_events(ids.values())
        # m.room.aliases is left out until MSC2261, as Synapse does.
        out = [e for e in fetched.values() if e.type != "m.room.aliases"]
        return sorted(state_filter.filter_events(out), key=lambda e: e.stream_ordering)

    async def _continues(self, room_id: str, timeline: list[Event], since: int) -> bool:
        """Whether the timeline is a plain chain on from the last event the previous sync
        saw (then the state it implies is exactly what the timeline shows)."""
        if not timeline:
            return True
        previous = await self.store.get_last_room_event_id(room_id, since)
        for ev in timeline:
            if ev.prev_event_ids != [previous]:
                return False
            previous = ev.event_id
        return True

    async def _end_state(self, room_id: str, up_to: int, end_event: Event | None) -> StateIds:
        if end_event is not None:
            return await self.hs.messages.state_after(end_event)
        return await self._state_at(room_id, up_to)

    async def _state_at(self, room_id: str, position: int) -> StateIds:
        """The room's state as a sync token at ``position`` saw it."""
        if not self.hs.rooms.room_changed_since(room_id, position):
            room = await self.hs.rooms.get_room(room_id)
            if room is not None:
                return dict(room.state)
        last = await self.store.get_last_room_event_id(room_id, position)
        event = await self.store.get_event(last) if last else None
        return await self.hs.messages.state_after(event) if event is not None else {}

    async def _summary(
        self, req: _SyncRequest, room_id: str, timeline: list[Event], state: list[Event]
    ) -> tuple[dict[str, Any], list[Event]]:
        """The room summary Synapse sends to lazy-loading clients, and the membership
        events of the heroes the client has not been sent yet."""
        room = await self.hs.rooms.get_room(room_id)
        if room is None:
            return {}, []
        members = await self.hs.rooms.get_state_events(
            room_id, {k: v for k, v in room.state.items() if k[0] == "m.room.member"}
        )
        by_membership: dict[str, list[Event]] = {}
        for ev in sorted(members.values(), key=lambda e: e.stream_ordering):
            by_membership.setdefault(ev.membership or "", []).append(ev)
        summary: dict[str, Any] = {
            "m.joined_member_count": len(by_membership.get("join", [])),
            "m.invited_member_count": len(by_membership.get("invite", [])),
        }
        for key, field_name in ((("m.room.name", ""), "name"), (("m.room.canonical_alias", ""), "alias")):
            if key in room.state:
                named = await self.store.get_event(room.state[key])
                if named is not None and named.content.get(field_name):
                    return summary, []
        me = req.user_id
        present = [e for m in ("join", "invite") for e in by_membership.get(m, []) if e.state_key != me]
        gone = [e for m in ("leave", "ban") for e in by_membership.get(m, []) if e.state_key != me]
        heroes = (present or gone)[:5]
        summary["m.heroes"] = [e.state_key for e in heroes]
        sent = req.lazy
        if sent is None:
            return summary, []
        known = {e.state_key for e in state if e.type == "m.room.member"}
        known |= {e.state_key for e in timeline if e.type == "m.room.member"}
        missing = []
        for hero in heroes:
            assert hero.state_key is not None
            if hero.state_key not in known and not sent.was_sent(hero.state_key, hero.event_id):
                missing.append(hero)
                sent.mark_sent(hero.state_key, hero.event_id, req.up_to)
        return summary, missing

    async def stripped_state(self, lm: LocalMembership, requester: Requester) -> list[dict[str, Any]]:
        """What an invitee or knocker sees of the room (also sliding sync's invite_state)."""
        member = await self.store.get_event(lm.event_id)
        out = []
        if member is not None:
            stripped = member.pdu.get("unsigned", {}).get("invite_room_state") or member.pdu.get("unsigned", {}).get(
                "knock_room_state"
            )
            if stripped:
                out.extend(stripped)
            else:
                room = await self.hs.rooms.get_room(lm.room_id)
                if room is not None:
                    keys = {k: v for k, v in room.state.items() if k[0] in STRIPPED_STATE_TYPES and k[1] == ""}
                    sender_key = ("m.room.member", member.sender)
                    if sender_key in room.state:
                        keys[sender_key] = room.state[sender_key]
                    for ev in (await self.store.get_events(keys.values())).values():
                        out.append({"type": ev.type, "state_key": ev.state_key, "content": ev.content, "sender": ev.sender})
            out.append(
                {
                    "type": member.type,
                    "state_key": member.state_key,
                    "content": member.content,
                    "sender": member.sender,
                    "event_id": member.event_id,
                    "origin_server_ts": member.origin_server_ts,
                }
            )
        return out

    async def _left_room(self, req: _SyncRequest, lm: LocalMembership, newly_joined: bool) -> dict[str, Any] | None:
        """A room the user left (or was kicked or banned from): its history up to the
        leave, and the state as it was then."""
        leave = await self.store.get_event(lm.event_id)
        if leave is None:
            return None
        since = req.since
        full = since is None or newly_joined or req.full_state
        timeline_filter = req.filter.timeline
        events: list[Event] = []
        limited = False
        prev_batch = token_after(leave)
        if timeline_filter.allows_room(lm.room_id):
            if leave.outlier:
                # An invite rejected over federation: the leave is all the server has.
                events = timeline_filter.filter_events([leave])
            else:
                after = None if since is None or newly_joined else since.stream
                events, limited, prev_batch = await self._timeline(
                    req, lm.room_id, after, leave.stream_ordering, lm.membership
                )
        if newly_joined:
            limited = True
        state = [] if leave.outlier else await self._state(req, lm.room_id, events, limited, full, end_event=leave)
        if not events and not state:
            return None
        return {
            "timeline": {
                "events": await self._serialize(req, events),
                "limited": limited,
                "prev_batch": prev_batch,
            },
            "state": {"events": await self._serialize(req, state, bundle=False)},
            "account_data": {"events": []},
        }

    async def device_lists(
        self, user_id: str, since: SyncToken | None, up_to: int, memberships: list[LocalMembership]
    ) -> dict[str, list[str]]:
        """device_lists.changed/left since a position (also sliding sync's e2ee extension)."""
        if since is None:
            return {"changed": [], "left": []}
        joined_rooms = self.hs.rooms.joined_rooms(user_id)
        if (
            not self.store.device_list_changes.any_changed_since(since.stream)
            and not self.store.membership_changes.changed_since(user_id, since.stream)
            and not any(self.store.room_member_changes.changed_since(r, since.stream) for r in joined_rooms)
        ):
            return {"changed": [], "left": []}
        shared = await self.store.get_shared_room_users(user_id)
        changed = await self.store.get_device_list_changes(shared | {user_id}, since.stream, up_to)
        left: set[str] = set()
        # Users who newly share a room (someone joined, or we joined) need a fresh key query;
        # users we no longer share any room with go in `left`.
        for lm in memberships:
            if lm.stream_ordering <= since.stream:
                continue
            room = await self.hs.rooms.get_room(lm.room_id)
            if room is None:
                continue
            members = await self.hs.rooms.get_state_events(
                lm.room_id, {k: v for k, v in room.state.items() if k[0] == "m.room.member"}
            )
            for (_, member), ev in members.items():
                if lm.membership == "join" and ev.membership == "join":
                    changed.add(member)
                elif lm.membership in ("leave", "ban") and member not in shared:
                    left.add(member)
        for room_id in joined_rooms:
            if not self.store.room_member_changes.changed_since(room_id, since.stream):
                continue
            changes = await self.store.get_room_events(
                room_id, after=since.stream, up_to=up_to, limit=200, types=["m.room.member"]
            )
            for ev in changes:
                if ev.membership == "join":
                    changed.add(ev.state_key or "")
                elif ev.state_key not in shared:
                    left.add(ev.state_key or "")
        # A user's own device changes stay in `changed` (as Synapse does): their other
        # sessions learn about a new device this way, e.g. to verify it.
        left.discard(user_id)
        return {"changed": sorted(changed - left), "left": sorted(left - changed)}
