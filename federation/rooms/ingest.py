"""Receiving room events from other servers: validation, missing history, state, auth.

Every PDU takes this road (server-server API, "Checks performed on receipt of a PDU"):

* format, signatures and content hash (``event_validation``): failing events are dropped
  (a bad hash only redacts);
* missing ``prev_events`` are fetched with ``/get_missing_events``; gaps that remain are
  bridged with the state at the gap from ``/state_ids`` (state resolution then merges
  the branches);
* unknown auth events are fetched with ``/event_auth`` and stored as outliers;
* auth against the event's own auth events and against the state before it: failing
  events are stored *rejected* (never served or used as state);
* auth against the room's current state: failing events are *soft-failed* (stored, not
  in the timeline, not extremities, not current state);
* the room's new current state is the resolution of its forward extremities' states.

Each room has one ingest queue: PDUs of a room are processed one chunk at a time in
arrival order and none is ever dropped however long the queue (Synapse prunes staged
events past ~100 per room; we do not). A chunk is persisted in one transaction inside
the room's exclusive section of the event pipeline, so it never interleaves with a
batch of local sends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from federation.client import q
from federation.rooms.event_validation import InvalidPdu, check_signatures_and_hash, parse_pdu
from homeserver.events.event import Event
from homeserver.handlers.room_events import RemoteEvent, RoomInfo, Snapshot
from homeserver.http.errors import MatrixError
from homeserver.protocol import auth_rules
from homeserver.protocol.event_ids import compute_event_id
from homeserver.protocol.room_versions import RoomVersion
from homeserver.protocol.state_resolution import resolve_state
from homeserver.protocol.state_resolution_v2 import separate_state_sets
from homeserver.storage.events import StateMap, state_map_size
from homeserver.util.async_helpers import SharedResult
from homeserver.util.caches import LruCache

if TYPE_CHECKING:
    from federation.service import Federation
    from homeserver.app import HomeServer

logger = logging.getLogger(__name__)

CHUNK = 200  # events of one room processed (and persisted) together
MISSING_EVENTS_LIMIT = 50
BULK_STATE_THRESHOLD = 20  # more missing state events than this: one /state request


def create_event_id(ev: Event | dict[str, Any], version: RoomVersion) -> str | None:
    """v12: the create event is implied by the room id and listed nowhere."""
    if not version.room_id_from_create_event:
        return None
    room_id = ev.room_id if isinstance(ev, Event) else ev.get("room_id")
    if isinstance(room_id, str) and room_id.startswith("!"):
        return "$" + room_id[1:]
    return None


def auth_ids_of(ev: Event, version: RoomVersion) -> list[str]:
    ids = ev.auth_event_ids
    create = create_event_id(ev, version)
    if create and not (ev.type == "m.room.create" and ev.state_key == "") and create not in ids:
        ids = [create] + ids
    return ids


def _parents_first(
    events: Iterable[Event], parents: Callable[[Event], list[str]], start_key: Callable[[Event], Any]
) -> list[Event]:
    """Events ordered so each comes after its parents among them (depth-first from each
    event in ``start_key`` order)."""
    by_id = {e.event_id: e for e in events}
    out: list[Event] = []
    done: set[str] = set()
    for start in sorted(by_id.values(), key=start_key):
        stack = [(start, False)]
        while stack:
            ev, expanded = stack.pop()
            if ev.event_id in done:
                continue
            if expanded:
                done.add(ev.event_id)
                out.append(ev)
                continue
            stack.append((ev, True))
            for p in parents(ev):
                if p in by_id and p not in done:
                    stack.append((by_id[p], False))
    return out


def mark_replaced_state(ev: Event, replaced_id: str, replaced: Event | None) -> None:
    """The state event ``ev`` replaces, in its ``unsigned`` (not signed or hashed): clients
    render changes with ``prev_content`` and ``prev_sender``."""
    ev.pdu["unsigned"] = {"replaces_state": replaced_id}
    if replaced is not None:
        ev.pdu["unsigned"].update(prev_content=replaced.content, prev_sender=replaced.sender)


def auth_order(events: Iterable[Event], version: RoomVersion) -> list[Event]:
    """Events ordered so each comes after those of its auth events in the list."""
    return _parents_first(events, lambda e: auth_ids_of(e, version), lambda e: (e.depth, e.event_id))


def dag_order(events: Iterable[Event]) -> list[Event]:
    """Events ordered so each comes after those of its prev_events in the list."""
    return _parents_first(events, lambda e: e.prev_event_ids, lambda e: e.depth)


@dataclass
class _Item:
    origin: str
    event: Event
    result: SharedResult[str | None]


@dataclass
class _RoomQueue:
    items: list[_Item] = field(default_factory=list)
    running: bool = False


class FederationEventHandler:
    """``Federation.ingest``: everything that brings remote events into rooms."""

    def __init__(self, hs: HomeServer, fed: Federation) -> None:
        self.hs = hs
        self.fed = fed
        self.store = hs.store
        self._queues: dict[str, _RoomQueue] = {}
        # rooms we are joining: their PDUs wait for the join (the resident server starts
        # sending as soon as it accepted it, maybe before we stored its answer)
        self.joining: dict[str, SharedResult[None]] = {}
        # event id -> the state after it (for computing the state before its children);
        # misses fall back to the database
        self._after: LruCache[str, Snapshot] = LruCache(
            2_000, max_bytes=64 * 1024 * 1024, sizeof=lambda snap: state_map_size(snap.state)
        )

    # -- entry point of PUT /send --------------------------------------------------

    async def on_receive_pdus(self, origin: str, pdus: list[Any]) -> dict[str, str | None]:
        from federation.server_acl import room_acl_content, server_acl_allows

        results: dict[str, str | None] = {}
        waits: list[defer.Deferred[Any]] = []
        acl_ok: dict[str, bool] = {}
        for raw in pdus:
            room_id = raw.get("room_id") if isinstance(raw, dict) else None
            if not isinstance(room_id, str):
                continue
            joining = self.joining.get(room_id)
            if joining is not None:
                await joining.wait()
            room = await self.hs.rooms.get_room(room_id)
            if room is None or room.state_group is None:
                # Not a room we are in: nothing to check it against (Synapse ignores it too).
                logger.info("ignoring PDU from %s for unknown room %s", origin, room_id)
                continue
            try:
                ev = parse_pdu(raw, room.version)
            except InvalidPdu as e:
                logger.info("dropping malformed PDU from %s: %s", origin, e)
                try:  # answer for it when it has an id at all
                    results[compute_event_id({k: v for k, v in raw.items() if k != "unsigned"}, room.version)] = str(e)
                except Exception:
                    pass
                continue
            if room_id not in acl_ok:
                acl_ok[room_id] = server_acl_allows(await room_acl_content(self.hs, room_id), origin)
            if not acl_ok[room_id]:
                results[ev.event_id] = "Server is banned from this room"
                continue
            waits.append(defer.ensureDeferred(self._submit_one(origin, ev, results)))
        if waits:
            await defer.gatherResults(waits, consumeErrors=True)
        return results

    async def _submit_one(self, origin: str, ev: Event, results: dict[str, str | None]) -> None:
        try:
            results[ev.event_id] = await self.submit(origin, ev)
        except Exception as e:
            logger.exception("processing %s failed", ev.event_id)
            results[ev.event_id] = f"Internal error: {type(e).__name__}"

    def submit(self, origin: str, ev: Event) -> defer.Deferred[str | None]:
        """Queues one event of a room we are in; resolves to None (accepted, possibly
        soft-failed) or the reason it was dropped or rejected."""
        queue = self._queues.setdefault(ev.room_id, _RoomQueue())
        item = _Item(origin, ev, SharedResult())
        queue.items.append(item)
        if not queue.running:
            defer.ensureDeferred(self._run_queue(ev.room_id, queue))
        return item.result.wait()

    async def _run_queue(self, room_id: str, queue: _RoomQueue) -> None:
        queue.running = True
        try:
            while queue.items:
                chunk, queue.items = queue.items[:CHUNK], queue.items[CHUNK:]
                try:
                    await self._process_chunk(room_id, chunk)
                except Exception as e:
                    logger.exception("processing %d events of %s failed", len(chunk), room_id)
                    for item in chunk:
                        if not item.result.called:
                            item.result.callback(f"Internal error: {type(e).__name__}")
        finally:
            queue.running = False
            if not queue.items:
                self._queues.pop(room_id, None)

    # -- one chunk -------------------------------------------------------------------

    async def _process_chunk(self, room_id: str, chunk: list[_Item]) -> None:
        room = await self.hs.rooms.get_room(room_id)
        assert room is not None
        version = room.version
        keyring = self.fed.keyring
        items: dict[str, _Item] = {}
        dupes: list[tuple[_Item, _Item]] = []
        for item in chunk:
            if item.event.event_id in items:
                dupes.append((item, items[item.event.event_id]))
                continue
            try:
                item.event = await check_signatures_and_hash(keyring, item.event, version)
            except InvalidPdu as e:
                item.result.callback(str(e))
                continue
            items[item.event.event_id] = item
        known = await self.store.have_events(items)
        outliers = await self.store.get_outlier_ids(known) if known else set()
        for eid in known - outliers:
            items.pop(eid).result.callback(None)  # already have it
        new_events = {eid: it.event for eid, it in items.items()}
        origin_of = {eid: it.origin for eid, it in items.items()}
        if new_events:
            fetched = await self._fill_missing_prevs(room, new_events, origin_of)
            for ev in fetched:
                new_events.setdefault(ev.event_id, ev)
            await self._fetch_missing_auth(room, list(new_events.values()), origin_of, new_events)
            reasons = await self.hs.rooms.run_exclusive(
                room, lambda: self._auth_and_persist(room, dag_order(new_events.values()))
            )
            for eid, item in items.items():
                item.result.callback(reasons.get(eid))
        for item, first in dupes:
            item.event = first.event

            def same_answer(result: object, dupe: _Item = item) -> None:
                dupe.result.callback(result if isinstance(result, str) else None)

            first.result.wait().addBoth(same_answer)

    async def _fill_missing_prevs(self, room: RoomInfo, events: dict[str, Event], origin_of: dict[str, str]) -> list[Event]:
        """Fetches prev_events we lack with /get_missing_events; what stays missing gets
        its state from /state_ids. Returns the fetched events to process first."""
        version = room.version

        async def missing_prevs(evs: dict[str, Event]) -> dict[str, str]:
            prevs = {p: eid for eid, e in evs.items() for p in e.prev_event_ids if p not in evs and p not in self._after}
            if not prevs:
                return {}
            known = await self.store.have_events(prevs)
            known -= await self.store.get_outlier_ids(known)
            return {p: eid for p, eid in prevs.items() if p not in known}

        missing = await missing_prevs(events)
        if not missing:
            return []
        fetched: dict[str, Event] = {}
        latest = sorted({eid for eid in missing.values()})
        origin = origin_of.get(latest[0]) or next(iter(origin_of.values()))
        try:
            resp = await self.fed.request(
                origin,
                "POST",
                f"/_matrix/federation/v1/get_missing_events/{q(room.room_id)}",
                body={
                    "earliest_events": sorted(room.extremities),
                    "latest_events": latest,
                    "limit": MISSING_EVENTS_LIMIT,
                    "min_depth": 0,
                },
            )
            for raw in resp.get("events", []) if isinstance(resp, dict) else []:
                try:
                    ev = await check_signatures_and_hash(self.fed.keyring, parse_pdu(raw, version), version)
                except InvalidPdu as e:
                    logger.info("dropping missing event from %s: %s", origin, e)
                    continue
                if ev.room_id != room.room_id or ev.event_id in events:
                    continue
                fetched[ev.event_id] = ev
                origin_of[ev.event_id] = origin
        except MatrixError as e:
            logger.info("get_missing_events from %s failed: %s", origin, e)
        if fetched:
            have = await self.store.have_events(fetched)
            have -= await self.store.get_outlier_ids(have)
            for eid in have:
                fetched.pop(eid, None)
        still = await missing_prevs({**events, **fetched})
        for prev, child in still.items():
            await self._state_at_missing_prev(room, prev, origin_of.get(child, origin))
        return list(fetched.values())

    async def _state_at_missing_prev(self, room: RoomInfo, prev_id: str, origin: str) -> None:
        """The state after an event we could not fetch the history of, from its server's
        /state_ids (the state before it) plus the event itself."""
        try:
            resp = await self.fed.request(
                origin,
                "GET",
                f"/_matrix/federation/v1/state_ids/{q(room.room_id)}",
                query={"event_id": prev_id},
            )
            state_ids = [i for i in resp.get("pdu_ids", []) if isinstance(i, str)]
            auth_ids = [i for i in resp.get("auth_chain_ids", []) if isinstance(i, str)]
        except (MatrixError, AttributeError) as e:
            logger.info("state_ids for %s from %s failed: %s", prev_id, origin, e)
            return
        events = await self.fetch_events(room, set(state_ids) | set(auth_ids) | {prev_id}, origin, state_at=prev_id)
        prev = events.get(prev_id)
        # persist what we learnt as outliers (the prev event itself too: it is history)
        await self.persist_outliers(room, [e for e in events.values()], dict(events))
        all_known = await self.store.get_events(state_ids, allow_rejected=True)
        state: StateMap = {}
        for eid in state_ids:
            ev = all_known.get(eid)
            if ev is not None and not ev.rejected_reason and ev.is_state:
                state[ev.state_pair] = eid
        if prev is not None and prev.is_state and not prev.rejected_reason:
            state[prev.state_pair] = prev_id
        self.fed.history.history_complete.discard(room.room_id)  # there is a gap now
        self._after.put(prev_id, Snapshot(state, base=room.snapshot()))

    async def fetch_events(
        self, room: RoomInfo, event_ids: Iterable[str], origin: str, state_at: str | None = None
    ) -> dict[str, Event]:
        """Validated copies of the events (of this room) we do not have, from ``origin``.
        With many missing and ``state_at`` (the event whose /state_ids named them), one
        /state request brings them all instead of one /event request each."""
        ids = set(event_ids)
        have = await self.store.have_events(ids)
        result: dict[str, Event] = {}
        version = room.version
        if state_at is not None and len(ids - have) > BULK_STATE_THRESHOLD:
            try:
                resp = await self.fed.request(
                    origin, "GET", f"/_matrix/federation/v1/state/{q(room.room_id)}", query={"event_id": state_at}
                )
                raws = list(resp.get("pdus", [])) + list(resp.get("auth_chain", []))
            except (MatrixError, AttributeError, TypeError) as e:
                logger.info("state at %s from %s failed: %s", state_at, origin, e)
                raws = []
            for raw in raws:
                try:
                    ev = await check_signatures_and_hash(self.fed.keyring, parse_pdu(raw, version), version)
                except InvalidPdu:
                    continue
                if ev.event_id in ids and ev.event_id not in have and ev.room_id == room.room_id:
                    result[ev.event_id] = ev
            have = have | set(result)

        async def one(eid: str) -> None:
            try:
                resp = await self.fed.request(origin, "GET", f"/_matrix/federation/v1/event/{q(eid)}")
                raw = resp["pdus"][0]
                ev = await check_signatures_and_hash(self.fed.keyring, parse_pdu(raw, version), version)
            except (MatrixError, InvalidPdu, KeyError, IndexError, TypeError) as e:
                logger.info("fetching %s from %s failed: %s", eid, origin, e)
                return
            if ev.event_id == eid and (ev.room_id == room.room_id):
                result[eid] = ev

        todo = sorted(ids - have)
        for i in range(0, len(todo), 20):
            await defer.gatherResults([defer.ensureDeferred(one(e)) for e in todo[i : i + 20]], consumeErrors=True)
        return result

    async def _fetch_missing_auth(
        self, room: RoomInfo, events: list[Event], origin_of: dict[str, str], pending: dict[str, Event]
    ) -> None:
        version = room.version
        wanted: dict[str, str] = {}
        for ev in events:
            for a in auth_ids_of(ev, version):
                if a not in pending:
                    wanted.setdefault(a, ev.event_id)
        if not wanted:
            return
        have = await self.store.have_events(wanted)
        missing = {a: child for a, child in wanted.items() if a not in have}
        if not missing:
            return
        done: set[str] = set()
        for child in sorted(set(missing.values())):
            if all(a in done for a, c in missing.items() if c == child):
                continue
            origin = origin_of.get(child, "")
            try:
                resp = await self.fed.request(
                    origin, "GET", f"/_matrix/federation/v1/event_auth/{q(room.room_id)}/{q(child)}"
                )
            except MatrixError as e:
                logger.info("event_auth for %s from %s failed: %s", child, origin, e)
                continue
            chain: dict[str, Event] = {}
            for raw in resp.get("auth_chain", []) if isinstance(resp, dict) else []:
                try:
                    ev = await check_signatures_and_hash(self.fed.keyring, parse_pdu(raw, version), version)
                except InvalidPdu:
                    continue
                chain[ev.event_id] = ev
            have = await self.store.have_events(chain)
            new = {k: v for k, v in chain.items() if k not in have}
            await self.persist_outliers(room, list(new.values()), new)
            done |= set(chain)

    async def persist_outliers(self, room: RoomInfo, events: list[Event], pending: dict[str, Event]) -> None:
        """Auth-checks events against their own auth events and stores them as outliers
        (rejected ones with the reason)."""
        if not events:
            return
        have = await self.store.have_events(e.event_id for e in events)
        events = [e for e in events if e.event_id not in have]
        ordered = auth_order(events, room.version)
        for ev in ordered:
            ev.rejected_reason = await self.check_against_auth_events(ev, room.version, pending)
        await self.hs.rooms.persister.persist_remote_events(room, [], outliers=ordered)

    # -- auth --------------------------------------------------------------------------

    async def _lookup(self, ids: Iterable[str], pending: dict[str, Event]) -> dict[str, Event]:
        ids = list(ids)
        found = {i: pending[i] for i in ids if i in pending}
        rest = [i for i in ids if i not in found]
        if rest:
            found.update(await self.store.get_events(rest, allow_rejected=True))
        return found

    async def check_against_auth_events(self, ev: Event, version: RoomVersion, pending: dict[str, Event]) -> str | None:
        """Step 4: the auth rules against the event's own auth events. None if it passes."""
        listed = ev.auth_event_ids
        ids = auth_ids_of(ev, version)
        found = await self._lookup(ids, pending)
        for a in ids:
            aev = found.get(a)
            if aev is None:
                return f"Missing auth event {a}"
            if aev.rejected_reason:
                return f"Auth event {a} was rejected"
        try:
            auth_rules.check_auth_events_list(ev.with_event_id(), [found[a].with_event_id() for a in listed], version)
            auth_map = {found[a].state_pair: found[a].with_event_id() for a in ids if found[a].is_state}
            auth_rules.check_auth_rules(ev.with_event_id(), auth_map, version)
        except auth_rules.AuthError as e:
            return f"Auth check against its auth events failed: {e}"
        except (KeyError, TypeError, ValueError) as e:
            return f"Malformed event: {e}"
        return None

    async def check_against_state(
        self, ev: Event, version: RoomVersion, state: StateMap, pending: dict[str, Event]
    ) -> str | None:
        """Steps 5 and 6: the auth rules against a state (the state before the event, or
        the current state). None if it passes, else the reason."""
        try:
            await self.hs.rooms.authoriser.check(ev.with_event_id(), version, state, pending, allow_rejected=True)
        except auth_rules.AuthError as e:
            return str(e)
        except (KeyError, TypeError, ValueError) as e:
            return f"Malformed event: {e}"
        return None

    async def _check_redaction(self, room: RoomInfo, ev: Event, state: StateMap, pending: dict[str, Event]) -> None:
        """A redaction that passed auth redacts its target only if the redacter has the
        redact power level or shares the original sender's server ("Handling
        redactions"); otherwise it is kept without effect."""
        keys = [("m.room.power_levels", ""), ("m.room.create", "")]
        found = await self._lookup([state[k] for k in keys if k in state], pending)
        auth_map = {k: found[state[k]].with_event_id() for k in keys if k in state and state[k] in found}
        target = (await self._lookup([ev.redacts or ""], pending)).get(ev.redacts or "")
        if target is not None:
            allowed = auth_rules.redaction_allowed(ev.with_event_id(), target.with_event_id(), auth_map, room.version)
        else:
            # Unknown target: only the redact power level can justify it.
            allowed = auth_rules.redaction_allowed(ev.with_event_id(), {"sender": ""}, auth_map, room.version)
        if not allowed:
            ev.internal["redaction_not_applied"] = True

    # -- state ---------------------------------------------------------------------------

    async def state_after(self, room: RoomInfo, event_id: str) -> Snapshot | None:
        snap = self._after.get(event_id)
        if snap is not None:
            return snap
        if room.extremities == {event_id}:
            return room.snapshot()
        ev = await self.store.get_event(event_id, allow_rejected=True)
        if ev is None or ev.outlier or ev.state_group is None:
            return None
        state = await self.store.get_state_group(ev.state_group)
        chain = await self.store.get_state_group_chain_length(ev.state_group)
        before = Snapshot(state, ev.state_group, chain)
        is_create = ev.type == "m.room.create" and ev.state_key == ""
        if ev.is_state and not ev.rejected_reason and not is_create and state.get(ev.state_pair) != event_id:
            snap = Snapshot({**state, ev.state_pair: event_id}, base=before)
        else:
            snap = before
        self._after.put(event_id, snap)
        return snap

    async def resolve(self, room: RoomInfo, states: list[StateMap], pending: dict[str, Event]) -> StateMap:
        """State resolution of the given state maps: v1 for room version 1, v2 for 2-11,
        v2.1 for 12."""
        # v2's split: no conflict there means the maps are identical, for v1 too.
        unconflicted, conflicted = separate_state_sets(states)
        if not conflicted:
            return unconflicted
        ids: set[str] = set()
        for s in states:
            ids.update(s.values())
        create = room.state.get(("m.room.create", ""))
        if create:
            ids.add(create)
        # Auth chains: walk events not yet stored in memory, then the stored ones in SQL.
        in_db: set[str] = set()
        seen: set[str] = set()
        stack = list(ids)
        while stack:
            eid = stack.pop()
            if eid in seen:
                continue
            seen.add(eid)
            ev = pending.get(eid)
            if ev is not None:
                stack.extend(auth_ids_of(ev, room.version))
            else:
                in_db.add(eid)
        chain = await self.store.get_auth_chain_ids(in_db)
        all_ids = seen | chain
        events = await self._lookup(all_ids, pending)
        event_map = {}
        for eid, ev in events.items():
            d = ev.with_event_id()
            if ev.rejected_reason:
                d["rejected_reason"] = ev.rejected_reason
            event_map[eid] = d
        return resolve_state(room.version, states, event_map)

    async def _state_before(self, room: RoomInfo, ev: Event, pending: dict[str, Event]) -> Snapshot | None:
        snaps: list[Snapshot] = []
        for p in ev.prev_event_ids:
            s = await self.state_after(room, p)
            if s is not None and all(s is not o for o in snaps):
                snaps.append(s)
        if not snaps:
            return None
        if len(snaps) == 1 or all(s.state == snaps[0].state for s in snaps[1:]):
            return snaps[0]
        resolved = await self.resolve(room, [s.state for s in snaps], pending)
        return Snapshot(resolved, base=snaps[0])

    async def _auth_and_persist(
        self, room: RoomInfo, events: list[Event]
    ) -> dict[str, str | None]:
        """Inside the room's exclusive section: steps 4-6 for each event, in DAG order,
        then one transaction for the whole chunk."""
        version = room.version
        reasons: dict[str, str | None] = {}
        # Checked again here, where nothing else can be storing events of the room: what
        # arrived meanwhile (backfill, a retried transaction) is not stored twice, and
        # outliers (known from a join's state, an auth chain) become timeline events.
        have = await self.store.have_events(e.event_id for e in events)
        outlier_ids = await self.store.get_outlier_ids(have) if have else set()
        for e in events:
            if e.event_id in have and e.event_id not in outlier_ids:
                reasons[e.event_id] = None
        events = [e for e in events if e.event_id not in have or e.event_id in outlier_ids]
        pending: dict[str, Event] = {e.event_id: e for e in events}
        remote: list[RemoteEvent] = []
        current = room.snapshot()
        extremities = set(room.extremities)
        for ev in events:
            is_create = ev.type == "m.room.create" and ev.state_key == ""
            before = await self._state_before(room, ev, pending)
            if before is None and not is_create:
                # No state for any prev event: we cannot place it in the room.
                reasons[ev.event_id] = "Could not determine the state before the event"
                pending.pop(ev.event_id, None)
                continue
            before = before or Snapshot({})
            reason = await self.check_against_auth_events(ev, version, pending)
            if reason is None:
                reason = await self.check_against_state(ev, version, before.state, pending)
                if reason is not None:
                    reason = f"Auth check against the state before the event failed: {reason}"
            ev.rejected_reason = reason
            ev.soft_failed = False
            if reason is None and before.state is not current.state and before.state != current.state:
                # Step 6: allowed in its branch but not by the room as it is now.
                if await self.check_against_state(ev, version, current.state, pending) is not None:
                    ev.soft_failed = True
                    logger.info("soft-failing %s", ev.event_id)
            reasons[ev.event_id] = reason
            if reason is None and ev.type == "m.room.redaction" and ev.redacts:
                await self._check_redaction(room, ev, before.state, pending)
            if ev.is_state and reason is None:
                prev = before.state.get(ev.state_pair)
                after = Snapshot({**before.state, ev.state_pair: ev.event_id}, base=before)
                if prev is not None:
                    mark_replaced_state(ev, prev, pending.get(prev) or await self.store.get_event(prev))
            else:
                after = before
            self._after.put(ev.event_id, after)
            remote.append(RemoteEvent(ev, before))
            if reason is None and not ev.soft_failed:
                extremities -= set(ev.prev_event_ids)
                extremities.add(ev.event_id)
        new_state: Snapshot | None = None
        if extremities != room.extremities:
            snaps = []
            for x in sorted(extremities):
                s = await self.state_after(room, x)
                if s is not None:
                    snaps.append(s)
            if len(snaps) == 1:
                new_state = snaps[0]
            elif snaps:
                resolved = await self.resolve(room, [s.state for s in snaps], pending)
                new_state = Snapshot(resolved, base=snaps[0])
        if remote or new_state is not None:
            await self.hs.rooms.persister.persist_remote_events(
                room,
                remote,
                new_state=new_state,
                extremities=extremities if extremities != room.extremities else None,
                deoutlier=[e.event.event_id for e in remote if e.event.event_id in outlier_ids],
            )
        return reasons
