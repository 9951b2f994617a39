"""Server-side search (``POST /search``, spec "Server Side Search"), answering as
Synapse's ``handlers/search.py`` does, field by field.

Searched: the rooms the user is joined to now (and, when the filter names rooms, the
rooms they replaced, if the user is still in them), as in Synapse. Every hit, and every
event of its context, passes history visibility (handlers/visibility.py) like any other
read. Two differences from Synapse, both so that nothing of an event the user may not
see leaks: ``count`` counts only hits the user may see (Synapse counts every match in
the rooms), and ``highlights`` come only from the events returned. The filter's senders
and types are applied in the query, so ``count`` and paging honour them too.
"""

from __future__ import annotations

import base64
import binascii
import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from homeserver.events.event import Event
from homeserver.handlers.filtering import RoomEventFilter
from homeserver.handlers.messages import token_after, token_before
from homeserver.http.errors import InvalidParam, NotFound
from homeserver.storage.search import SearchFilter, SearchHit, parse_search_terms

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester

DEFAULT_KEYS = ("content.body", "content.name", "content.topic")
DEFAULT_LIMIT = 10
# Bounds Synapse does not have: a search answers at most this many results, each with at
# most this much context either side (every context is two queries and a page of events).
MAX_LIMIT = 500
MAX_CONTEXT = 100
# Rounds of fetch-then-filter before giving up on filling a page (Synapse: 5).
_ROUNDS = 5


@dataclass(frozen=True)
class EventContextRequest:
    before_limit: int = 5
    after_limit: int = 5
    include_profile: bool = False


@dataclass(frozen=True)
class SearchRequest:
    """A validated ``search_categories.room_events`` request."""

    search_term: str
    keys: tuple[str, ...] = DEFAULT_KEYS
    filter: RoomEventFilter = field(default_factory=RoomEventFilter)
    order_by: str = "rank"
    include_state: bool = False
    event_context: EventContextRequest | None = None
    group_keys: tuple[str, ...] = ()

    @property
    def limit(self) -> int:
        limit = self.filter.limit if self.filter.limit is not None else DEFAULT_LIMIT
        return min(limit, MAX_LIMIT)


@dataclass(frozen=True)
class Batch:
    """A ``next_batch`` token: Synapse's (base64 of "group\\ngroup_key\\ntoken"), so a
    client that inspects it (none should) sees the same form. ``token`` is
    "origin_server_ts,stream_ordering" of the last result already returned."""

    group: str
    group_key: str
    before: tuple[int, int] | None

    @classmethod
    def parse(cls, raw: str) -> Batch:
        try:
            text = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True).decode("utf-8")
            group, group_key, token = text.split("\n")
            before = None
            if token:
                ts, stream = token.split(",")
                before = (int(ts), int(stream))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise InvalidParam("Invalid batch") from None
        return cls(group, group_key, before)

    @staticmethod
    def encode(group: str, group_key: str, hit: SearchHit) -> str:
        text = f"{group}\n{group_key}\n{hit.origin_server_ts},{hit.stream_ordering}"
        return base64.b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


@dataclass
class _Found:
    count: int
    hits: list[tuple[SearchHit, Event]]
    next_hit: SearchHit | None = None


class SearchHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store

    async def search(self, requester: Requester, req: SearchRequest, batch: Batch | None) -> dict[str, Any]:
        user_id = requester.user_id
        rooms = await self._rooms_to_search(user_id, req.filter)
        if batch is not None and batch.group == "room_id":
            rooms &= {batch.group_key}
        if not rooms:
            return {"search_categories": {"room_events": {"results": [], "count": 0, "highlights": []}}}
        where = SearchFilter(
            rooms=sorted(rooms),
            keys=req.keys,
            types=req.filter.types,
            not_types=req.filter.not_types or None,
            senders=req.filter.senders,
            not_senders=req.filter.not_senders or None,
        )
        if req.order_by == "recent":
            found = await self._search_recent(user_id, req, where, batch.before if batch else None)
        else:
            found = await self._search_by_rank(user_id, req, where)
        found.count = await self._count_visible(user_id, req.search_term, where)
        events = [ev for _, ev in found.hits]

        contexts: dict[str, dict[str, Any]] = {}
        if req.event_context is not None:
            for ev in events:
                contexts[ev.event_id] = await self._context(requester, ev, req.event_context)

        result: dict[str, Any] = {
            "results": [],
            "count": found.count,
            "highlights": sorted(await self._highlights(req.search_term, events)),
        }
        serialized = await self.hs.messages.serialize(requester, events, legacy_fields=True) if events else []
        for (hit, ev), event_json in zip(found.hits, serialized, strict=True):
            result["results"].append({"rank": hit.rank, "result": event_json, "context": contexts.get(ev.event_id, {})})

        if req.include_state:
            state: dict[str, Any] = {}
            for room_id in dict.fromkeys(ev.room_id for ev in events):
                current = await self.hs.rooms.get_state_events(room_id)
                ordered = sorted(current.values(), key=lambda e: e.stream_ordering)
                state[room_id] = await self.hs.messages.serialize(requester, ordered, bundle=False, legacy_fields=True)
            if state:
                result["state"] = state

        groups = self._groups(req, found)
        if groups:
            result["groups"] = groups
        if found.next_hit is not None:
            if batch is not None and batch.group and batch.group_key:
                # Paging on within the group the client paged into (as Synapse does).
                result["next_batch"] = Batch.encode(batch.group, batch.group_key, found.next_hit)
            else:
                result["next_batch"] = Batch.encode("all", "", found.next_hit)
        return {"search_categories": {"room_events": result}}

    # -- which rooms ---------------------------------------------------------------------

    async def _rooms_to_search(self, user_id: str, event_filter: RoomEventFilter) -> set[str]:
        joined = set(self.hs.rooms.joined_rooms(user_id))
        if event_filter.rooms is None:
            wanted = joined
        else:
            wanted = set(event_filter.rooms)
            for room_id in event_filter.rooms:
                wanted |= await self._predecessors(room_id)
            wanted &= joined
        return {r for r in wanted if r not in event_filter.not_rooms}

    async def _predecessors(self, room_id: str) -> set[str]:
        """The rooms this one replaced (``predecessor`` of each create event in turn), as
        far back as the server knows them. A room the server has no state of is a 404, as
        in Synapse (whose look-up of the predecessor fails so), even in a filter."""
        found: set[str] = set()
        create = await self.hs.rooms.get_current_state_event(room_id, "m.room.create")
        if create is None:
            raise NotFound(f"Current state for room {room_id} is empty")
        while True:
            predecessor = create.content.get("predecessor")
            previous = predecessor.get("room_id") if isinstance(predecessor, dict) else None
            if not isinstance(previous, str) or previous in found or previous == room_id:
                return found
            create = await self.hs.rooms.get_current_state_event(previous, "m.room.create")
            if create is None:
                return found
            found.add(previous)

    # -- searching -------------------------------------------------------------------------

    async def _visible(self, user_id: str, hits: list[SearchHit]) -> list[tuple[SearchHit, Event]]:
        events = await self.store.get_events([h.event_id for h in hits])
        candidates = [events[h.event_id] for h in hits if h.event_id in events]
        # Redacted since indexed (the index is cleaned in the redaction's transaction; the
        # cache may know first).
        candidates = [ev for ev in candidates if not ev.redacted_by]
        # The searcher is joined to every room searched.
        visible = await self.hs.visibility.filter_events_for_user(user_id, candidates, "join")
        by_id = {ev.event_id: ev for ev in visible}
        return [(h, by_id[h.event_id]) for h in hits if h.event_id in by_id]

    def _post_filter(self, req: SearchRequest, found: list[tuple[SearchHit, Event]]) -> list[tuple[SearchHit, Event]]:
        if req.filter.contains_url is None:
            return found
        return [(h, ev) for h, ev in found if ("url" in ev.content) == req.filter.contains_url]

    async def _search_by_rank(self, user_id: str, req: SearchRequest, where: SearchFilter) -> _Found:
        """Best first, no paging (Synapse gives no next_batch in rank order)."""
        limit = req.limit
        page = max(limit * 2, 50)
        hits: list[tuple[SearchHit, Event]] = []
        for round_ in range(_ROUNDS):
            if len(hits) >= limit:
                break
            batch = await self.store.search_events(req.search_term, where, order="rank", limit=page, offset=round_ * page)
            hits += self._post_filter(req, await self._visible(user_id, batch))
            if len(batch) < page:
                break
        # Synapse re-sorts by rank after filtering; the store's order (rank, then older
        # first) is kept for ties.
        return _Found(0, hits[:limit])

    async def _search_recent(
        self, user_id: str, req: SearchRequest, where: SearchFilter, before: tuple[int, int] | None
    ) -> _Found:
        """Newest first, paged by next_batch: a page is full at ``limit`` results; a page
        that ran out of rounds before filling up also gets a next_batch, from the last hit
        looked at, when there may be more."""
        limit = req.limit
        hits: list[tuple[SearchHit, Event]] = []
        last_seen: SearchHit | None = None
        more = False
        if limit > 0:
            for _ in range(_ROUNDS):
                batch = await self.store.search_events(req.search_term, where, order="recent", limit=limit * 2, before=before)
                hits += self._post_filter(req, await self._visible(user_id, batch))
                more = len(batch) == limit * 2
                if batch:
                    last_seen = batch[-1]
                    before = (last_seen.origin_server_ts, last_seen.stream_ordering)
                if len(hits) >= limit or not more:
                    break
        found = _Found(0, hits[:limit])
        if len(hits) >= limit > 0:
            found.next_hit = found.hits[-1][0]
        elif more and last_seen is not None:
            found.next_hit = last_seen
        return found

    async def _count_visible(self, user_id: str, search_term: str, where: SearchFilter) -> int:
        per_snapshot = await self.store.count_search_hits(search_term, where)
        total = 0
        by_room: dict[str, dict[int | None, int]] = {}
        for (room_id, group), n in per_snapshot.items():
            by_room.setdefault(room_id, {})[group] = n
        for room_id, groups in by_room.items():
            visible = await self.hs.visibility.visible_state_groups(user_id, room_id, groups, "join")
            total += sum(n for group, n in groups.items() if group in visible)
        return total

    # -- what comes with the results ----------------------------------------------------

    async def _highlights(self, search_term: str, events: list[Event]) -> set[str]:
        """The words to highlight: those of the results that matched (Synapse's answer on
        PostgreSQL, which finds "messages" for "message") and the words searched for (its
        answer on SQLite), lower-cased."""
        words = await self.store.search_highlights(search_term, events)
        for alternative in parse_search_terms(search_term):
            words.update(t.text.lower() for t in alternative if not t.negated)
        return words

    def _groups(self, req: SearchRequest, found: _Found) -> dict[str, Any]:
        groups: dict[str, Any] = {}
        by_room: dict[str, dict[str, Any]] = {}
        by_sender: dict[str, dict[str, Any]] = {}
        for hit, ev in found.hits:
            if req.order_by == "rank":
                by_room.setdefault(ev.room_id, {"results": [], "order": hit.rank})["results"].append(ev.event_id)
                by_sender.setdefault(ev.sender, {"results": [], "order": hit.rank})["results"].append(ev.event_id)
            else:
                by_room.setdefault(ev.room_id, {"results": []})["results"].append(ev.event_id)
        if req.order_by == "recent" and found.next_hit is not None:
            for room_id, group in by_room.items():
                group["next_batch"] = Batch.encode("room_id", room_id, found.next_hit)
        if by_room and "room_id" in req.group_keys:
            groups["room_id"] = by_room
        # Synapse groups by sender in rank order only.
        if by_sender and "sender" in req.group_keys:
            groups["sender"] = by_sender
        return groups

    async def _context(self, requester: Requester, ev: Event, ask: EventContextRequest) -> dict[str, Any]:
        """Events around a result, as /context pages them (tokens in its form), each one
        passing history visibility; with ``include_profile``, the senders' display names
        and avatars as of the last of them."""
        key = (ev.depth, ev.stream_ordering)
        before = await self.store.paginate_room_events(ev.room_id, key, "b", ask.before_limit) if ask.before_limit else []
        after = await self.store.paginate_room_events(ev.room_id, key, "f", ask.after_limit) if ask.after_limit else []
        user_id = requester.user_id
        visible_before = await self.hs.visibility.filter_events_for_user(user_id, before, "join")
        visible_after = await self.hs.visibility.filter_events_for_user(user_id, after, "join")
        context: dict[str, Any] = {
            "events_before": await self.hs.messages.serialize(requester, visible_before, legacy_fields=True),
            "events_after": await self.hs.messages.serialize(requester, visible_after, legacy_fields=True),
            # Where /messages continues from, either side (from what was read, shown or not).
            "start": token_before(before[-1] if before else ev),
            "end": token_after(after[-1] if after else ev),
        }
        if ask.include_profile:
            senders = {e.sender for e in itertools.chain(visible_before, [ev], visible_after)}
            last = visible_after[-1] if visible_after else ev
            state = dict(await self.store.get_state_group(last.state_group)) if last.state_group is not None else {}
            if last.is_state:
                state[last.state_pair] = last.event_id
            member_ids = [eid for (t, sk), eid in state.items() if t == "m.room.member" and sk in senders]
            members = await self.store.get_events(member_ids)
            context["profile_info"] = {
                m.state_key: {"displayname": m.content.get("displayname"), "avatar_url": m.content.get("avatar_url")}
                for m in members.values()
                if m.state_key is not None
            }
        return context
