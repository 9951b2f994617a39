"""``hs.rooms``: the road every local event takes (build → authorise → persist →
notify), and the room's queue that remote events join to be persisted.

Sends to one room are queued and processed in batches: every event of a batch is built
on top of the previous one and the batch is persisted in a single transaction (group
commit), which is what keeps a busy room fast. Work on remote events (federation)
runs in the same queue, alone, between batches (``run_exclusive``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from homeserver.events.event import Event
from homeserver.handlers.room_events.authoriser import EventAuthoriser
from homeserver.handlers.room_events.builder import EventBuilder, EventSpec
from homeserver.handlers.room_events.persister import EventPersister, LocalBatch
from homeserver.handlers.room_events.room_cache import RoomCache, RoomInfo
from homeserver.handlers.room_events.sent_txns import SentTransactions, TxnKey
from homeserver.http.errors import Forbidden, MatrixError, NotFound
from homeserver.protocol import auth_rules
from homeserver.storage.events import StateMap
from homeserver.util.async_helpers import SharedResult

if TYPE_CHECKING:
    from homeserver.app import HomeServer

logger = logging.getLogger(__name__)

MAX_BATCH = 100

Check = Callable[[RoomInfo, StateMap], None]


@dataclass
class _Pending:
    spec: EventSpec
    deferred: SharedResult[Event]
    check: Check | None = None


@dataclass
class _Exclusive:
    fn: Callable[[], Awaitable[Any]]
    deferred: SharedResult[Any]

    async def run(self) -> None:
        try:
            result = await self.fn()
        except BaseException as e:  # handed to the waiter
            self.deferred.errback(e)
        else:
            self.deferred.callback(result)


QueuedWork = _Pending | _Exclusive


class RoomEventPipeline:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store
        self.cache = RoomCache(hs.store, hs.config.server_name)
        self.builder = EventBuilder(hs.store, hs.config.server_name, hs.signing_key)
        self.authoriser = EventAuthoriser(hs.store)
        self.persister = EventPersister(hs, self.cache)
        # The room cache's reads and registrations, as ``hs.rooms.<name>``: bound methods
        # rather than wrappers, as /sync and every send call them many times.
        self.get_room = self.cache.get_room
        self.get_state_events = self.cache.get_state_events
        self.get_current_state_event = self.cache.get_current_state_event
        self.register_new_room = self.cache.register_new_room
        self.forget_cached_room = self.cache.forget_cached_room
        self.local_users_in_room = self.cache.local_users_in_room
        self.joined_rooms = self.cache.joined_rooms
        self.room_changed_since = self.cache.room_changed_since
        self._inflight_txns: dict[TxnKey, SharedResult[Event]] = {}
        self._sent_txns = SentTransactions()

    async def load_local_joins(self) -> None:
        self._sent_txns.load(await self.store.get_devices_with_txns())
        await self.cache.load_local_joins()

    # -- transaction ids -----------------------------------------------------------------

    async def event_id_for_txn(self, room_id: str, user_id: str, device_id: str, txn_id: str) -> str | None:
        """The event a send with this transaction id made in this room, if any."""
        key = (room_id, user_id, device_id, txn_id)
        if self._sent_txns.prune_due():
            defer.ensureDeferred(self._prune_txn_ids())
        event_id = self._sent_txns.recent(key)
        if event_id is None and self._sent_txns.needs_lookup(user_id, device_id):
            event_id = await self.store.get_event_id_for_txn(*key, sent_after=self._sent_txns.oldest_kept())
        return event_id

    async def _prune_txn_ids(self) -> None:
        try:
            await self.store.prune_event_txn_ids(self._sent_txns.oldest_kept())
        except Exception:
            logger.exception("pruning transaction ids failed")

    # -- sending --------------------------------------------------------------------------

    async def send(self, room_id: str, spec: EventSpec, check: Check | None = None) -> Event:
        """Builds, authorises and persists one local event; idempotent per (room, sender,
        device, txn_id), as Synapse."""
        txn_key: TxnKey | None = None
        if spec.txn_id is not None and spec.device_id is not None:
            txn_key = (room_id, spec.sender, spec.device_id, spec.txn_id)
            inflight = self._inflight_txns.get(txn_key)
            if inflight is not None:
                return await inflight.wait()
            existing = await self.event_id_for_txn(*txn_key)
            if existing is not None:
                ev = await self.store.get_event(existing)
                if ev is not None:
                    return ev
        room = await self.cache.get_room(room_id)
        if room is None:
            raise NotFound("Unknown room")
        d: SharedResult[Event] = SharedResult()
        if txn_key is not None:
            self._inflight_txns[txn_key] = d
        self._enqueue(room, _Pending(spec, d, check))
        try:
            return await d.wait()
        finally:
            if txn_key is not None:
                self._inflight_txns.pop(txn_key, None)

    async def send_batch(self, room: RoomInfo, specs: list[EventSpec]) -> list[Event]:
        """Several events that must land together in order (room creation)."""
        shared = []
        for spec in specs:
            d: SharedResult[Event] = SharedResult()
            room.queue.append(_Pending(spec, d))
            shared.append(d)
        self._wake(room)
        return [await d.wait() for d in shared]

    async def run_exclusive(self, room: RoomInfo, fn: Callable[[], Awaitable[Any]]) -> Any:
        """Runs ``fn`` in the room's queue: no local batch is being built or persisted
        meanwhile, so reading and replacing the room's state, extremities and depth is
        safe (the federation layer persists remote events this way). Local sends queued
        behind it wait; sends queued before it finish first."""
        d: SharedResult[Any] = SharedResult()
        self._enqueue(room, _Exclusive(fn, d))
        return await d.wait()

    def _enqueue(self, room: RoomInfo, work: QueuedWork) -> None:
        room.queue.append(work)
        self._wake(room)

    def _wake(self, room: RoomInfo) -> None:
        if not room.processing:
            defer.ensureDeferred(self._process_queue(room))

    async def _process_queue(self, room: RoomInfo) -> None:
        room.processing = True
        try:
            while room.queue:
                first = room.queue[0]
                if isinstance(first, _Exclusive):
                    # Work on remote events: runs alone, between batches of local sends.
                    room.queue.pop(0)
                    await first.run()
                    continue
                pending: list[_Pending] = []
                for work in room.queue[:MAX_BATCH]:
                    if not isinstance(work, _Pending):
                        break
                    pending.append(work)
                room.queue = room.queue[len(pending):]
                await self._process_batch(room, pending)
        finally:
            room.processing = False

    async def _process_batch(self, room: RoomInfo, pending: list[_Pending]) -> None:
        staged = self.persister.start_local_batch(room)
        accepted: list[tuple[_Pending, Event]] = []
        for item in pending:
            event = await self._prepare(room, item, staged)
            if event is None:
                continue
            self.persister.stage_local(room, staged, event)
            if event.txn_id and event.device_id:
                self._sent_txns.remember((room.room_id, event.sender, event.device_id, event.txn_id), event.event_id)
            accepted.append((item, event))
        if not accepted:
            return
        try:
            await self.persister.commit_local(room, staged)
        except Exception:
            logger.exception("persisting %d events failed", len(accepted))
            for item, _ in accepted:
                item.deferred.errback(MatrixError(500, "M_UNKNOWN", "Failed to persist event"))
            return
        for item, ev in accepted:
            item.deferred.callback(ev)

    async def _prepare(self, room: RoomInfo, item: _Pending, staged: LocalBatch) -> Event | None:
        """Builds and authorises one event of the batch; None (the sender has its error)
        when it is refused."""
        try:
            if item.check is not None:
                item.check(room, staged.state)
            event = await self.builder.build(room, item.spec, staged.state, staged.extremities, staged.depth, staged.built)
            await self.authoriser.check(event.with_event_id(), room.version, staged.state, staged.built)
            if item.spec.before_persist is not None:
                event = await item.spec.before_persist(event)
        except MatrixError as e:
            item.deferred.errback(e)
            return None
        except auth_rules.AuthError as e:
            item.deferred.errback(Forbidden(str(e)))
            return None
        except Exception as e:  # never leave a sender hanging
            logger.exception("failed to build event")
            item.deferred.errback(e)
            return None
        return event
