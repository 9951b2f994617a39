"""Reading a room's history over federation, both ways.

Serving: /backfill, /event, /state, /state_ids, /event_auth and /get_missing_events,
each filtered by what the requesting *server* may see (history visibility at each
event, judged by that server's users' memberships; an event it may not see is served
redacted, as Synapse does).

Fetching: ``backfill(room_id, ...)`` (``hs.federation.backfill``): when /messages runs out
of stored history it asks the room's other servers for older events and stores them
with negative stream positions (so /sync never shows them as new) ordered by depth.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from federation.client import q
from federation.rooms.event_validation import InvalidPdu, check_signatures_and_hash, parse_pdu
from federation.rooms.ingest import auth_ids_of, dag_order
from federation.rooms.membership import pdu_for_federation
from homeserver.events.event import Event
from homeserver.handlers.room_events import RemoteEvent, RoomInfo, Snapshot
from homeserver.http.errors import Forbidden, MatrixError, NotFound
from homeserver.protocol.redaction import redact_event
from homeserver.storage.events import StateMap
from homeserver.util.ids import now_ms, server_of

if TYPE_CHECKING:
    from federation.service import Federation
    from homeserver.app import HomeServer

logger = logging.getLogger(__name__)

MAX_BACKFILL = 100
BACKFILL_BATCH = 100
# Backfill rounds (of BACKFILL_BATCH events) spent reaching an event /timestamp_to_event
# found on another server before giving up on it.
MAX_TIMESTAMP_BACKFILLS = 10


class FederationHistory:
    def __init__(self, hs: HomeServer, fed: Federation) -> None:
        self.hs = hs
        self.fed = fed
        self.store = hs.store
        # Rooms whose whole history we hold (no event with missing prev events): /messages
        # reaching their start needs no database walk nor network.
        self.history_complete: set[str] = set()

    # -- who may see what ----------------------------------------------------------

    async def _server_in_room(self, room: RoomInfo, server: str) -> bool:
        return server in await self.store.get_room_server_names(room.room_id)

    async def _check_access(self, origin: str, room_id: str) -> RoomInfo:
        from federation.server_acl import check_server_acl

        room = await self.hs.rooms.get_room(room_id)
        await check_server_acl(self.hs, room_id, origin)
        if room is None or room.state_group is None or not await self._server_in_room(room, origin):
            # Synapse's assert_host_in_room, for an unknown room too.
            raise Forbidden("Host not in room.")
        return room

    async def filter_for_server(self, server: str, events: list[Event]) -> list[dict[str, Any]]:
        """PDUs for ``server``: events it may not see (history visibility and its users'
        memberships at each event) come redacted."""
        out = []
        for ev in events:
            pdu = pdu_for_federation(ev)
            if not await self._visible_to_server(ev, server):
                pdu = redact_event(pdu, ev.room_version)
            out.append(pdu)
        return out

    async def _visible_to_server(self, ev: Event, server: str) -> bool:
        if ev.outlier or ev.state_group is None:
            # No state at an outlier (an auth event, a join's state, an invite): Synapse
            # counts it as history_visibility "shared" (_event_to_history_vis), visible to
            # any server it serves. Who may be served at all is for the caller to check.
            return True
        state = await self.store.get_state_group(ev.state_group)
        vis_id = state.get(("m.room.history_visibility", ""))
        vis = "shared"
        if vis_id:
            vis_ev = await self.store.get_event(vis_id)
            if vis_ev is not None:
                vis = vis_ev.content.get("history_visibility", "shared")
        if vis in ("world_readable", "shared"):
            return True
        members = [eid for (t, sk), eid in state.items() if t == "m.room.member" and server_of(sk) == server]
        events = await self.store.get_events(members)
        allowed = ("join", "invite") if vis == "invited" else ("join",)
        return any(e.membership in allowed for e in events.values())

    # -- serving -----------------------------------------------------------------------

    async def on_backfill(self, origin: str, room_id: str, from_ids: list[str], limit: int) -> dict[str, Any]:
        await self._check_access(origin, room_id)
        limit = max(0, min(limit, MAX_BACKFILL))
        starts = await self.store.get_events(from_ids)
        starts = {k: v for k, v in starts.items() if v.room_id == room_id and not v.outlier}
        ids = list(starts)[:limit] + await self.store.walk_prev_events(room_id, list(starts), max(0, limit - len(starts)))
        events = await self.store.get_events(ids)
        ordered = sorted((events[i] for i in ids if i in events and not events[i].outlier), key=lambda e: -e.depth)
        return {
            "origin": self.hs.server_name,
            "origin_server_ts": now_ms(),
            "pdus": await self.filter_for_server(origin, ordered),
        }

    async def on_get_missing_events(self, origin: str, room_id: str, body: dict[str, Any]) -> dict[str, Any]:
        await self._check_access(origin, room_id)
        earliest = [e for e in body.get("earliest_events", []) if isinstance(e, str)]
        latest = [e for e in body.get("latest_events", []) if isinstance(e, str)]
        limit = body.get("limit", 10)
        limit = max(0, min(limit if isinstance(limit, int) else 10, 100))
        min_depth = body.get("min_depth", 0)
        min_depth = min_depth if isinstance(min_depth, int) else 0
        ids = await self.store.walk_prev_events(room_id, latest, limit, stop=earliest, min_depth=min_depth)
        events = await self.store.get_events(ids)
        ordered = sorted((e for e in events.values() if not e.outlier), key=lambda e: (e.depth, e.stream_ordering))
        return {"events": await self.filter_for_server(origin, ordered)}

    async def on_event(self, origin: str, event_id: str) -> dict[str, Any]:
        """GET /event/{eventId} as Synapse's get_persisted_pdu answers it: 404 for an event
        we do not have; 403 "Host not in room." unless one of the asking server's users
        is joined to the room now -- whatever the event's visibility, an outlier or
        world-readable history included; then the event, redacted if that server may
        not see it. Rejected events are served too (Synapse's allow_rejected)."""
        from federation.server_acl import check_server_acl

        ev = await self.store.get_event(event_id, allow_rejected=True)
        if ev is None:
            raise NotFound("Event not found")
        await check_server_acl(self.hs, ev.room_id, origin)
        room = await self.hs.rooms.get_room(ev.room_id)
        if room is None or not await self._server_in_room(room, origin):
            raise Forbidden("Host not in room.")
        return {
            "origin": self.hs.server_name,
            "origin_server_ts": now_ms(),
            "pdus": await self.filter_for_server(origin, [ev]),
        }

    async def _state_at(self, origin: str, room_id: str, event_id: str) -> tuple[StateMap, set[str]]:
        await self._check_access(origin, room_id)
        ev = await self.store.get_event(event_id)
        if ev is None or ev.room_id != room_id or ev.outlier or ev.state_group is None:
            raise NotFound("Event not found")
        state = await self.store.get_state_group(ev.state_group)
        if ev.type == "m.room.create" and ev.state_key == "":
            state = {}
        chain = await self.store.get_auth_chain_ids(state.values())
        return state, chain

    async def on_state_ids(self, origin: str, room_id: str, event_id: str) -> dict[str, Any]:
        state, chain = await self._state_at(origin, room_id, event_id)
        return {"pdu_ids": sorted(state.values()), "auth_chain_ids": sorted(chain)}

    async def on_state(self, origin: str, room_id: str, event_id: str) -> dict[str, Any]:
        state, chain = await self._state_at(origin, room_id, event_id)
        events = await self.store.get_events(list(state.values()) + sorted(chain))
        return {
            "pdus": [pdu_for_federation(events[i]) for i in state.values() if i in events],
            "auth_chain": [pdu_for_federation(events[i]) for i in sorted(chain) if i in events],
        }

    async def on_event_auth(self, origin: str, room_id: str, event_id: str) -> dict[str, Any]:
        await self._check_access(origin, room_id)
        ev = await self.store.get_event(event_id, allow_rejected=True)
        if ev is None or ev.room_id != room_id:
            raise NotFound("Event not found")
        chain = await self.store.get_auth_chain_ids([event_id])
        room = await self.hs.rooms.get_room(room_id)
        if room is not None:
            chain |= set(auth_ids_of(ev, room.version))  # v12: the implied create event
        events = await self.store.get_events(chain)
        return {"auth_chain": [pdu_for_federation(e) for e in events.values()]}

    # -- fetching (client /messages ran out of history) ------------------------------------

    async def on_timestamp_to_event(self, origin: str, room_id: str, ts: int, direction: str) -> dict[str, Any]:
        """GET /timestamp_to_event/{roomId}: our event closest to ``ts`` (from our own
        timeline only, as Synapse answers), for servers in the room."""
        await self._check_access(origin, room_id)
        event_id = await self.store.get_event_id_for_timestamp(room_id, ts, direction)
        ev = await self.store.get_event(event_id) if event_id else None
        if ev is None:
            raise NotFound(f"Unable to find event from {ts} in direction {direction}")
        return {"event_id": ev.event_id, "origin_server_ts": ev.origin_server_ts}

    async def remote_event_for_timestamp(self, room_id: str, ts: int, direction: str) -> tuple[str, int] | None:
        """Asks the room's other servers (its creator's first) for the event closest to
        ``ts``; the first answer whose event we can then backfill into our timeline wins."""
        servers = sorted(await self.store.get_room_server_names(room_id) - {self.hs.server_name})
        if server_of(room_id) in servers:
            servers.remove(server_of(room_id))
            servers.insert(0, server_of(room_id))
        for server in servers:
            try:
                resp = await self.fed.request(
                    server, "GET", f"/_matrix/federation/v1/timestamp_to_event/{q(room_id)}",
                    query={"ts": str(ts), "dir": direction},
                )
            except MatrixError as e:
                logger.info("timestamp_to_event in %s from %s failed: %s", room_id, server, e)
                continue
            event_id = resp.get("event_id") if isinstance(resp, dict) else None
            if not isinstance(event_id, str):
                continue
            for _ in range(MAX_TIMESTAMP_BACKFILLS):
                ev = await self.store.get_event(event_id)
                if ev is not None and not ev.outlier:
                    # Its timestamp as we hold it, not as the remote claims it.
                    return ev.event_id, ev.origin_server_ts
                if not await self.backfill(room_id, None):
                    break
        return None

    async def backfill(self, room_id: str, oldest_event_id: str | None) -> bool:
        if room_id in self.history_complete:
            return False
        room = await self.hs.rooms.get_room(room_id)
        if room is None or room.state_group is None:
            return False
        servers = sorted(await self.store.get_room_server_names(room_id) - {self.hs.server_name})
        if not servers:
            return False
        from_ids = await self.store.get_oldest_events_in_room(room_id)
        if not from_ids:
            self.history_complete.add(room_id)
            return False
        if server_of(room_id) in servers:  # the creator's server first: it has everything
            servers.remove(server_of(room_id))
            servers.insert(0, server_of(room_id))
        for server in servers:
            try:
                resp = await self.fed.request(
                    server,
                    "GET",
                    f"/_matrix/federation/v1/backfill/{q(room_id)}",
                    query={"v": from_ids, "limit": str(BACKFILL_BATCH)},
                )
            except MatrixError as e:
                logger.info("backfill of %s from %s failed: %s", room_id, server, e)
                continue
            pdus = resp.get("pdus") if isinstance(resp, dict) else None
            if not isinstance(pdus, list):
                continue
            if await self._persist_backfilled(room, server, pdus):
                return True
        return False

    async def _persist_backfilled(self, room: RoomInfo, origin: str, pdus: list[Any]) -> bool:
        version = room.version
        ingest = self.fed.ingest
        events: dict[str, Event] = {}
        for raw in pdus:
            try:
                ev = await check_signatures_and_hash(self.fed.keyring, parse_pdu(raw, version), version)
            except InvalidPdu as e:
                logger.info("dropping backfilled event from %s: %s", origin, e)
                continue
            if ev.room_id == room.room_id:
                events[ev.event_id] = ev
        have = await self.store.have_events(events)
        outliers = await self.store.get_outlier_ids(have)
        for eid in have - outliers:
            events.pop(eid)
        if not events:
            return False
        # Auth events we lack come with /event_auth (stored as outliers).
        await ingest._fetch_missing_auth(room, list(events.values()), {e: origin for e in events}, events)
        ordered = dag_order(events.values())
        pending = dict(events)
        remote: list[RemoteEvent] = []
        for ev in ordered:
            is_create = ev.type == "m.room.create" and ev.state_key == ""
            before: Snapshot | None
            if is_create:
                before = Snapshot({})
            else:
                before = await ingest._state_before(room, ev, pending)
            if before is None:
                before = await self._state_from_remote(room, ev, origin)
            if before is None:
                logger.info("no state for backfilled %s: skipped", ev.event_id)
                pending.pop(ev.event_id, None)
                continue
            reason = await ingest.check_against_auth_events(ev, version, pending)
            if reason is None and not is_create:
                reason = await ingest.check_against_state(ev, version, before.state, pending)
            ev.rejected_reason = reason
            after = before
            if ev.is_state and reason is None and not is_create:
                after = Snapshot({**before.state, ev.state_pair: ev.event_id}, base=before)
            elif is_create and reason is None:
                after = Snapshot({ev.state_pair: ev.event_id})
                before = after  # a create event's snapshot holds itself, as for local rooms
            ingest._after.put(ev.event_id, after)
            remote.append(RemoteEvent(ev, before))
        if not remote:
            return False

        async def persist() -> None:
            # again inside the room's exclusive section: nothing stored twice
            have = await self.store.have_events(r.event.event_id for r in remote)
            outlier_ids = await self.store.get_outlier_ids(have) if have else set()
            todo = [r for r in remote if r.event.event_id not in have or r.event.event_id in outlier_ids]
            if todo:
                await self.hs.rooms.persister.persist_remote_events(
                    room, todo, backfilled=True, deoutlier=[r.event.event_id for r in todo if r.event.event_id in outlier_ids]
                )

        await self.hs.rooms.run_exclusive(room, persist)
        return True

    async def _state_from_remote(self, room: RoomInfo, ev: Event, origin: str) -> Snapshot | None:
        """The state before a backfilled event whose prev events we lack, from /state_ids."""
        ingest = self.fed.ingest
        try:
            resp = await self.fed.request(
                origin, "GET", f"/_matrix/federation/v1/state_ids/{q(room.room_id)}", query={"event_id": ev.event_id}
            )
            state_ids = [i for i in resp.get("pdu_ids", []) if isinstance(i, str)]
            auth_ids = [i for i in resp.get("auth_chain_ids", []) if isinstance(i, str)]
        except (MatrixError, AttributeError) as e:
            logger.info("state_ids at %s from %s failed: %s", ev.event_id, origin, e)
            return None
        fetched = await ingest.fetch_events(room, set(state_ids) | set(auth_ids), origin, state_at=ev.event_id)
        await ingest.persist_outliers(room, list(fetched.values()), dict(fetched))
        known = await self.store.get_events(state_ids)
        state: StateMap = {e.state_pair: e.event_id for e in known.values() if e.is_state}
        return Snapshot(state, base=room.snapshot())
