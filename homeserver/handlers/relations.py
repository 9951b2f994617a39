"""Event relationships: /relations, /threads, the checks on a new relation, and the
aggregations bundled into events (latest edit, thread summary, references).

What counts, as Synapse counts it (``storage/databases/main/relations.py``): only
relations between two events of one room, from events in the room's timeline (not
rejected, soft-failed, outliers or redacted); an edit only from the original sender with
the same event type. Every relating event, bundled or listed, is also one the requesting
user may see (history visibility): a user who left sees the thread summary, the edit
and the references as they were when they left. Synapse bundles without that check
(see MSC2675's open question on it); we apply it, so nothing after a user's leave
reaches them through an event they may still see.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from homeserver.events.event import Event
from homeserver.http.errors import MatrixError
from homeserver.storage.events import RelatedEvent

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester

# Events relating this way get no aggregations of their own (Synapse:
# get_bundled_aggregations), and may not start a thread.
_NO_AGGREGATIONS = ("m.replace", "m.annotation")
MAX_ANNOTATION_KEY = 500
MAX_THREADS_LIMIT = 100


class RelationsHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store

    # -- a new relation ---------------------------------------------------------------

    async def validate_new_relation(
        self,
        room_id: str,
        event_type: str,
        sender: str,
        content: dict[str, Any],
        already_sent: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        """The checks Synapse makes on a client's event before it exists
        (``handlers/message.py`` ``_validate_event_relation``), with its errors. An edit
        of another user's event is let through, as Synapse does: it just never counts.

        ``already_sent`` tells whether this send retries a transaction already stored: a
        retried reaction is not a duplicate."""
        relation = _parse_relation(content)
        if relation is None:
            return
        parent_id, rel_type, key = relation
        parent = await self.store.get_event(parent_id)
        if parent is not None:
            if parent.room_id != room_id:
                raise MatrixError(400, "M_UNKNOWN", "Relations must be in the same room")
        elif not await self.store.event_is_target_of_relation(parent_id):
            # The client can only know of an event we lack if others relate to it.
            raise MatrixError(400, "M_UNKNOWN", "Can't send relation to unknown event")
        if rel_type == "m.annotation":
            if key is None:
                raise MatrixError(400, "M_UNKNOWN", "Missing aggregation key")
            if len(key) > MAX_ANNOTATION_KEY:
                raise MatrixError(400, "M_UNKNOWN", "Aggregation key is too long")
            mine = await self.store.get_annotations_by(parent_id, event_type, sender)
            if any(_parse_relation(e.content) == relation for e in mine):
                if already_sent is None or not await already_sent():
                    raise MatrixError(400, "M_DUPLICATE_ANNOTATION", "Can't send same reaction twice")
        elif rel_type == "m.thread" and parent is not None and _served_relation(parent) is not None:
            raise MatrixError(400, "M_UNKNOWN", "Cannot start threads from an event with a relation")

    # -- bundled aggregations --------------------------------------------------------

    async def bundled_aggregations(self, requester: Requester | None, events: list[Event]) -> dict[str, dict[str, Any]]:
        """``unsigned.m.relations`` of each event that has any, as the requester may see
        them."""
        targets: dict[str, Event] = {}
        for e in events:
            if e.is_state or not self.store.may_have_relations(e):
                continue
            rel = _served_relation(e)
            if rel is not None and rel[1] in _NO_AGGREGATIONS:
                continue
            targets[e.event_id] = e
        if not targets:
            return {}
        summaries = await self.store.get_relation_summaries({i: e.room_id for i, e in targets.items()})
        if not summaries:
            return {}
        user_id = requester.user_id if requester is not None else ""
        visible_groups, visible_state = await self._visible(user_id, targets, summaries)
        # Ignored users' relations neither count nor show (m.ignored_user_list, as Synapse).
        ignored = await self.hs.account_data.ignored_users(user_id) if user_id else frozenset()

        thread_latest: dict[str, RelatedEvent] = {}
        thread_info: dict[str, tuple[int, bool]] = {}
        edits: dict[str, RelatedEvent] = {}
        references: dict[str, list[str]] = {}
        for target_id, rels in summaries.items():
            target = targets[target_id]
            # A thread hangs off an event that relates to nothing (a thread reply's own
            # summary would be a thread in a thread); an edit of a redacted event would
            # give back what the redaction removed.
            threads_ok = _served_relation(target) is None
            edits_ok = target.redacted_by is None
            count, participated = 0, target.sender == user_id
            latest: RelatedEvent | None = None
            edit: RelatedEvent | None = None
            refs = []
            groups = visible_groups[target.room_id]
            for r in rels:  # one pass: a thread can have thousands of replies
                if (r.event_id not in visible_state) if r.is_state else (r.state_group not in groups):
                    continue
                if not r.is_state and r.sender in ignored:
                    continue
                if r.rel_type == "m.thread":
                    if threads_ok:
                        count += 1
                        latest = r  # rows come in topological order
                        participated = participated or r.sender == user_id
                elif r.rel_type == "m.replace":
                    if (
                        edits_ok
                        and r.sender == target.sender
                        and r.type == target.type
                        and not r.is_state
                        and (edit is None or (r.origin_server_ts, r.event_id) > (edit.origin_server_ts, edit.event_id))
                    ):
                        edit = r
                elif r.rel_type == "m.reference":
                    refs.append(r.event_id)
            if latest is not None:
                thread_latest[target_id] = latest
                thread_info[target_id] = (count, participated)
            if edit is not None:
                edits[target_id] = edit
            if refs:
                references[target_id] = refs

        loaded = await self.store.get_events([r.event_id for r in [*thread_latest.values(), *edits.values()]])
        messages = self.hs.messages
        # The latest event of a thread carries its own edit and references (Synapse does
        # the same, so that a client can render the summary as it is now); being a thread
        # reply, it has no thread summary, so this goes one level deep.
        latest_events = [loaded[r.event_id] for r in thread_latest.values() if r.event_id in loaded]
        latest_json = {e["event_id"]: e for e in await messages.serialize(requester, latest_events)}
        for bundled in latest_json.values():
            # Synapse gives the requester's membership on the events it serves, not on the
            # ones it bundles into them.
            bundled["unsigned"].pop("membership", None)
        edit_events = [loaded[r.event_id] for r in edits.values() if r.event_id in loaded]
        edit_json = {e["event_id"]: e for e in await messages.serialize(requester, edit_events, bundle=False)}

        out: dict[str, dict[str, Any]] = {}
        for target_id in summaries:
            agg: dict[str, Any] = {}
            edit = edits.get(target_id)
            if edit is not None and edit.event_id in edit_json:
                agg["m.replace"] = edit_json[edit.event_id]
            latest = thread_latest.get(target_id)
            if latest is not None and latest.event_id in latest_json:
                count, participated = thread_info[target_id]
                agg["m.thread"] = {
                    "latest_event": latest_json[latest.event_id],
                    "count": count,
                    "current_user_participated": participated,
                }
            if target_id in references:
                agg["m.reference"] = {"chunk": [{"event_id": eid} for eid in references[target_id]]}
            if agg:
                out[target_id] = agg
        return out

    async def _visible(
        self, user_id: str, targets: dict[str, Event], summaries: dict[str, list[RelatedEvent]]
    ) -> tuple[dict[str, set[int]], set[str]]:
        """What of the relating events the user may see: per room, the snapshots at which
        an ordinary event is visible; and the visible ones among relating state events
        (whose own content can change the verdict: loaded and judged in full)."""
        by_room: dict[str, list[RelatedEvent]] = {}
        for target_id, rels in summaries.items():
            by_room.setdefault(targets[target_id].room_id, []).extend(rels)
        groups: dict[str, set[int]] = {}
        state_seen: set[str] = set()
        visibility = self.hs.visibility
        for room_id, rels in by_room.items():
            groups[room_id] = await visibility.visible_state_groups(
                user_id, room_id, {r.state_group for r in rels if not r.is_state}
            )
            state_ids = [r.event_id for r in rels if r.is_state]
            if state_ids:
                loaded = await self.store.get_events(state_ids)
                state_seen.update(e.event_id for e in await visibility.filter_events_for_user(user_id, list(loaded.values())))
        return groups, state_seen

    # -- /relations and /threads -----------------------------------------------------

    async def get_relations(
        self,
        requester: Requester,
        room_id: str,
        event_id: str,
        rel_type: str | None,
        event_type: str | None,
        limit: int,
        from_token: str | None,
        direction: str,
        recurse: bool = False,
    ) -> dict[str, Any]:
        parent = await self.hs.messages.get_visible_event(requester, room_id, event_id)
        from_stream = _relations_from(from_token, direction)
        limit = max(1, min(limit, 1000))
        events = await self.store.get_relations(
            event_id, room_id, rel_type, event_type, limit + 1, from_stream, direction, recurse=recurse
        )
        more = len(events) > limit
        events = events[:limit]
        next_batch = str(events[-1].stream_ordering) if more and events else None
        if parent.redacted_by is not None:
            # Edits of a redacted event would give back what the redaction removed (Synapse
            # leaves them out too).
            events = [e for e in events if (e.relation() or ("", ""))[1] != "m.replace"]
        visible = await self.hs.visibility.filter_events_for_user(requester.user_id, events)
        result: dict[str, Any] = {"chunk": await self.hs.messages.serialize(requester, visible, legacy_fields=True)}
        if next_batch is not None:
            result["next_batch"] = next_batch
        if recurse:
            # What Synapse answers (its query goes further: see RELATION_RECURSION_LEVELS).
            result["recursion_depth"] = 3
        return result

    async def get_threads(self, requester: Requester, room_id: str, include: str, limit: int, from_token: str | None) -> dict[str, Any]:
        membership = await self.hs.messages.check_can_read(requester, room_id)
        # A user who left lists the threads as they were then: replies after the leave
        # neither make a thread nor move it up the list.
        up_to = None
        if membership in ("leave", "ban"):
            lm = await self.store.get_local_membership(requester.user_id, room_id)
            up_to = lm.stream_ordering if lm is not None else None
        limit = max(1, min(limit, MAX_THREADS_LIMIT))
        before = int(from_token) if from_token and from_token.isdigit() else None
        roots = await self.store.get_thread_roots(room_id, limit + 1, before, up_to)
        more = len(roots) > limit
        roots = roots[:limit]
        latest = dict(roots)
        events = await self.store.get_events(latest)
        ordered = [events[r] for r, _ in roots if r in events]
        if include == "participated":
            replied = await self.store.get_threads_participated([e.event_id for e in ordered], requester.user_id)
            ordered = [e for e in ordered if e.sender == requester.user_id or e.event_id in replied]
        visible = await self.hs.visibility.filter_events_for_user(requester.user_id, ordered, membership)
        result: dict[str, Any] = {"chunk": await self.hs.messages.serialize(requester, visible, legacy_fields=True)}
        if more and roots:
            result["next_batch"] = str(roots[-1][1])
        return result


def _served_relation(event: Event) -> tuple[str, str] | None:
    """The event's relation as clients see it: a redacted event relates to nothing."""
    return None if event.redacted_by is not None else event.relation()


def _parse_relation(content: dict[str, Any]) -> tuple[str, str, str | None] | None:
    """(parent event id, rel_type, annotation key) as Synapse's ``relation_from_event``
    reads them: both ids strings, the key only for annotations and only if a string."""
    rel = content.get("m.relates_to")
    if not isinstance(rel, dict):
        return None
    parent, rel_type = rel.get("event_id"), rel.get("rel_type")
    if not isinstance(parent, str) or not isinstance(rel_type, str):
        return None
    key = rel.get("key") if rel_type == "m.annotation" else None
    return parent, rel_type, key if isinstance(key, str) else None


def _relations_from(token: str | None, direction: str) -> int | None:
    """The stream position a /relations ``from`` names: its own ``next_batch`` (the stream
    ordering of the last event returned, excluded), or, as on Synapse, a /sync or /messages
    token (a position between events: backwards from it includes the event at it)."""
    if not token:
        return None
    if token.isdigit():
        return int(token)
    from homeserver.handlers.messages import parse_pagination_token

    try:
        _, value = parse_pagination_token(token)
    except MatrixError:
        return None
    stream = value[1] if isinstance(value, tuple) else value  # topological, or a stream position
    return int(stream) + 1 if direction == "b" else int(stream)
