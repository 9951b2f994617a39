"""Event relationships: /relations, threads, and the aggregations bundled into events
(latest edit, thread summary, references)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeserver.events.event import Event
from homeserver.http.errors import NotFound

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester


class RelationsHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self.hs = hs
        self.store = hs.store

    async def bundled_aggregations(self, requester: "Requester | None", events: list[Event]) -> dict[str, dict[str, Any]]:
        ids = [e.event_id for e in events if not e.redacted_by and not e.is_state and self.store.may_have_relations(e)]
        summaries = await self.store.get_relation_summaries(ids)
        if not summaries:
            return {}
        out: dict[str, dict[str, Any]] = {}
        by_id = {e.event_id: e for e in events}
        related_ids = [eid for rels in summaries.values() for _, eid, _ in rels]
        related = await self.store.get_events(related_ids)
        for target_id, rels in summaries.items():
            target = by_id[target_id]
            agg: dict[str, Any] = {}
            edits = [related[eid] for rt, eid, _ in rels if rt == "m.replace" and eid in related]
            # Only the original sender's edits count (spec "Validity of replacement events").
            edits = [e for e in edits if e.sender == target.sender and e.type == target.type and not e.redacted_by]
            if edits:
                latest = max(edits, key=lambda e: (e.origin_server_ts, e.event_id))
                agg["m.replace"] = (await self.hs.messages.serialize(requester, [latest], bundle=False))[0]
            thread = [related[eid] for rt, eid, _ in rels if rt == "m.thread" and eid in related and not related[eid].redacted_by]
            if thread:
                latest = thread[-1]
                agg["m.thread"] = {
                    "latest_event": (await self.hs.messages.serialize(requester, [latest], bundle=False))[0],
                    "count": len(thread),
                    "current_user_participated": requester is not None
                    and any(e.sender == requester.user_id for e in thread + [target]),
                }
            refs = [eid for rt, eid, _ in rels if rt == "m.reference" and eid in related]
            if refs:
                agg["m.reference"] = {"chunk": [{"event_id": eid} for eid in refs]}
            if agg:
                out[target_id] = agg
        return out

    async def get_relations(
        self,
        requester: "Requester",
        room_id: str,
        event_id: str,
        rel_type: str | None,
        event_type: str | None,
        limit: int,
        from_token: str | None,
        direction: str,
        recurse: bool = False,
    ) -> dict[str, Any]:
        await self.hs.messages.get_event(requester, room_id, event_id)  # visibility of the parent
        from_stream = None
        if from_token:
            try:
                from_stream = int(from_token)
            except ValueError:
                from_stream = None
        limit = max(1, min(limit, 1000))
        events = await self.store.get_relations(event_id, rel_type, event_type, limit + 1, from_stream, direction)
        events = [e for e in events if e.room_id == room_id]
        more = len(events) > limit
        events = events[:limit]
        visible = await self.hs.visibility.filter_events_for_user(requester.user_id, events)
        result: dict[str, Any] = {"chunk": await self.hs.messages.serialize(requester, visible)}
        if more and events:
            result["next_batch"] = str(events[-1].stream_ordering)
        if recurse:
            result["recursion_depth"] = 1
        return result

    async def get_threads(self, requester: "Requester", room_id: str, include: str, limit: int, from_token: str | None) -> dict[str, Any]:
        membership = await self.hs.membership.get_membership(room_id, requester.user_id)
        if membership is None and not await self.hs.visibility.is_world_readable(room_id):
            raise NotFound("Room not found")
        roots = await self.store.get_thread_roots(room_id, limit + 1, int(from_token) if from_token and from_token.isdigit() else None)
        events = await self.store.get_events([r for r, _ in roots])
        ordered = [events[r] for r, _ in roots if r in events]
        if include == "participated":
            kept = []
            for root in ordered:
                rels = await self.store.get_relations(root.event_id, "m.thread", None, 1000)
                if root.sender == requester.user_id or any(e.sender == requester.user_id for e in rels):
                    kept.append(root)
            ordered = kept
        more = len(ordered) > limit
        ordered = ordered[:limit]
        visible = await self.hs.visibility.filter_events_for_user(requester.user_id, ordered)
        result: dict[str, Any] = {"chunk": await self.hs.messages.serialize(requester, visible)}
        if more and roots:
            last = dict(roots)[ordered[-1].event_id] if ordered else None
            if last is not None:
                result["next_batch"] = str(last)
        return result
