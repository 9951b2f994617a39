"""Push actions (``hs.push_actions``): what persisted events mean for each local user's
unread and highlight counts.

A typed persisted-events listener (wired in ``app.py``): ``on_events_persisted`` only
schedules the work, because the bulk evaluation (``bulk_evaluator.py``) needs cached
facts that may need a database read. Its results, new notifications and read positions,
are written in batches; then the pushers of the users concerned are told
(``hs.pushers``). /sync asks for counts through ``unread_counts``, which first waits for
the room's evaluations in flight, so a new event and the count it causes arrive in the
same /sync response.

Counts are rows of ``event_push_actions`` after the user's read position (per room and
thread); they are cached in memory and kept current as writes commit (see
``_apply_to_cached_counts``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from twisted.internet import defer

from homeserver.events.event import Event
from homeserver.push.bulk_evaluator import (
    MAIN_THREAD,
    BulkPushRuleEvaluator,
    ReadPosition,
)
from homeserver.storage.push import PushActionRow
from homeserver.util.async_helpers import SharedResult
from homeserver.util.ids import now_ms

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.room_events import RoomInfo

logger = logging.getLogger(__name__)

MAX_COUNTS_CACHED = 200_000
# Read notifications are kept this long for GET /notifications, then pruned.
KEEP_READ_NOTIFICATIONS_MS = 30 * 24 * 3600 * 1000
PRUNE_INTERVAL_MS = 3600 * 1000

Counts = dict[str, tuple[int, int]]  # thread id -> (notifications, highlights)


@dataclass
class _WriteBatch:
    actions: list[PushActionRow] = field(default_factory=list)
    reads: list[ReadPosition] = field(default_factory=list)
    waiters: list[SharedResult[None]] = field(default_factory=list)


class PushActionsHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store
        self.evaluator = BulkPushRuleEvaluator(hs, hs.push_rules)
        self._counts: dict[tuple[str, str], Counts] = {}
        self._counts_loaded_users: set[str] = set()
        self._counts_gen = 0
        self._inflight: dict[str, list[SharedResult[None]]] = {}
        self._receipts_inflight: dict[tuple[str, str], list[SharedResult[None]]] = {}
        self._batch = _WriteBatch()
        self._flushing = False
        self._last_prune = now_ms()

    # -- evaluating new events ----------------------------------------------------------

    def on_events_persisted(self, events: list[Event], room: RoomInfo) -> None:
        """A PersistedEventsListener (synchronous): schedules evaluation of the batch."""
        events = [
            e for e in events if e.stream_ordering > 0 and not e.rejected_reason and not e.outlier and not e.soft_failed
        ]
        if not events:
            return
        done: SharedResult[None] = SharedResult()
        room_id = room.room_id
        self._inflight.setdefault(room_id, []).append(done)
        defer.ensureDeferred(self._process(events, room, done))

    def on_outlier_memberships(self, events: list[Event], room: RoomInfo) -> None:
        """An OutlierMembershipsListener: invites of our users from other servers, to rooms
        we are not in, are judged by the invitees' rules (``.m.rule.invite_for_me``) as
        Synapse's ``on_invite_request`` does; knocks and rejections notify nobody here."""
        invites = [
            e for e in events
            if e.membership == "invite" and e.stream_ordering > 0 and self.hs.is_mine(e.state_key or "")
        ]
        if not invites:
            return
        done: SharedResult[None] = SharedResult()
        self._inflight.setdefault(room.room_id, []).append(done)
        defer.ensureDeferred(self._process(invites, room, done))

    async def _process(self, events: list[Event], room: RoomInfo, done: SharedResult[None]) -> None:
        try:
            evaluated = await self.evaluator.evaluate(events, room)
            if evaluated is not None:
                await self._enqueue(evaluated.actions, evaluated.reads).wait()
        except Exception:
            logger.exception("push rule evaluation failed in %s", room.room_id)
        finally:
            pending = self._inflight.get(room.room_id)
            if pending is not None:
                try:
                    pending.remove(done)
                except ValueError:
                    pass
                if not pending:
                    del self._inflight[room.room_id]
            done.callback(None)

    # -- batched writes ---------------------------------------------------------------

    def _enqueue(
        self,
        actions: list[PushActionRow],
        reads: list[ReadPosition],
    ) -> SharedResult[None]:
        done: SharedResult[None] = SharedResult()
        self._batch.actions.extend(actions)
        self._batch.reads.extend(reads)
        self._batch.waiters.append(done)
        if not self._flushing:
            defer.ensureDeferred(self._flush())
        return done

    async def _flush(self) -> None:
        self._flushing = True
        try:
            while self._batch.waiters:
                batch, self._batch = self._batch, _WriteBatch()
                recounted: dict[tuple[str, str, str], tuple[int, int]] | None = None
                try:
                    recounted = await self.store.write_push_batch(batch.actions, batch.reads)
                except Exception:
                    logger.exception("writing %d push actions failed", len(batch.actions))
                self._apply_to_cached_counts(batch.actions, batch.reads, recounted)
                if batch.actions and recounted is not None:
                    # Pushers deliver in the background; /sync never waits for them.
                    self.hs.pushers.on_new_notifications(batch.actions)
                for w in batch.waiters:
                    w.callback(None)
            if now_ms() - self._last_prune > PRUNE_INTERVAL_MS:
                # Piggybacks on the write path: no timer to keep running.
                self._last_prune = now_ms()
                try:
                    await self.store.prune_push_actions(self._last_prune - KEEP_READ_NOTIFICATIONS_MS)
                except Exception:
                    logger.exception("pruning push actions failed")
        finally:
            self._flushing = False

    def _apply_to_cached_counts(
        self,
        actions: list[PushActionRow],
        reads: list[ReadPosition],
        recounted: dict[tuple[str, str, str], tuple[int, int]] | None,
    ) -> None:
        """Keeps cached counts current without re-counting the room: new notifications are
        added to the cached numbers, and a thread whose read position moved takes the count
        the write transaction made for it. An unthreaded receipt (or a failed write) drops
        the entry so it is counted afresh. (Re-counting on every event made each /sync scan
        all of a room's unread rows.)"""
        self._counts_gen += 1
        recounted_threads = recounted or {}
        drop = {(u, r) for u, r, t, _ in reads if not t or recounted is None}
        for row in actions:
            key = (row.user_id, row.room_id)
            counts = self._counts.get(key)
            if counts is None or key in drop or (row.user_id, row.room_id, row.thread_id) in recounted_threads:
                continue
            n, h = counts.get(row.thread_id, (0, 0))
            counts[row.thread_id] = (n + 1, h + (1 if row.highlight else 0))
        for (user_id, room_id, thread_id), value in recounted_threads.items():
            counts = self._counts.get((user_id, room_id))
            if counts is not None and (user_id, room_id) not in drop:
                if value == (0, 0):
                    counts.pop(thread_id, None)
                else:
                    counts[thread_id] = value
        self._invalidate(drop)

    def _invalidate(self, keys: set[tuple[str, str]]) -> None:
        self._counts_gen += 1
        for key in keys:
            self._counts.pop(key, None)

    # -- counts -----------------------------------------------------------------------

    async def _wait_pending(self, user_id: str, room_id: str) -> None:
        for d in list(self._inflight.get(room_id, ())):
            await d.wait()
        for d in list(self._receipts_inflight.get((user_id, room_id), ())):
            await d.wait()

    async def _room_counts(self, user_id: str, room_id: str) -> Counts:
        await self._wait_pending(user_id, room_id)
        key = (user_id, room_id)
        counts = self._counts.get(key)
        if counts is not None:
            return counts
        gen = self._counts_gen
        if user_id not in self._counts_loaded_users:
            # First look at this user: load every room at once (initial /sync asks for all).
            by_room = await self.store.get_unread_counts(user_id)
            counts = by_room.get(room_id, {})
            if gen == self._counts_gen:
                if len(self._counts) > MAX_COUNTS_CACHED:
                    self._counts.clear()
                    self._counts_loaded_users.clear()
                for rid in self.hs.rooms.joined_rooms(user_id) | set(by_room):
                    self._counts[(user_id, rid)] = by_room.get(rid, {})
                self._counts_loaded_users.add(user_id)
            return counts
        counts = (await self.store.get_unread_counts(user_id, room_id)).get(room_id, {})
        if gen == self._counts_gen:
            self._counts[key] = counts
        return counts

    async def unread_counts(
        self, user_id: str, room_id: str, threaded: bool = True
    ) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
        """The room's unread counts for /sync and, per thread, those of its threads (empty
        unless ``threaded``; an unthreaded client gets thread counts summed into the room's)."""
        counts = await self._room_counts(user_id, room_id)
        main_n, main_h = counts.get(MAIN_THREAD, (0, 0))
        threads: dict[str, dict[str, int]] = {}
        for thread_id, (n, h) in counts.items():
            if thread_id == MAIN_THREAD:
                continue
            if threaded:
                threads[thread_id] = {"notification_count": n, "highlight_count": h}
            else:
                main_n += n
                main_h += h
        return {"notification_count": main_n, "highlight_count": main_h}, threads

    async def on_receipt(self, user_id: str, room_id: str, event: Event, thread_id: str | None = None) -> None:
        """A user's m.read / m.read.private receipt moved to ``event``: clears the counts up
        to it (in its thread, or in all threads for an unthreaded receipt)."""
        key = (user_id, room_id)
        # Registered before the first await so a /sync woken by the receipt waits for it.
        done: SharedResult[None] = SharedResult()
        self._receipts_inflight.setdefault(key, []).append(done)
        try:
            if thread_id is None:
                receipts = await self.store.get_user_receipt(room_id, user_id, ("m.read", "m.read.private"))
                mine = [r for r in receipts if r.event_id == event.event_id]
                thread_id = max(mine, key=lambda r: r.stream_id).thread_id if mine else ""
            await self._enqueue([], [(user_id, room_id, thread_id, event.stream_ordering)]).wait()
        finally:
            pending = self._receipts_inflight.get(key)
            if pending is not None:
                if done in pending:
                    pending.remove(done)
                if not pending:
                    del self._receipts_inflight[key]
            done.callback(None)
        # The user's devices may show a badge that has just gone down.
        self.hs.pushers.on_new_receipts(user_id)

    async def wait_for_evaluations(self) -> None:
        """Waits for every evaluation in flight (a just-sent mention is then listed)."""
        for pending in list(self._inflight.values()):
            for d in list(pending):
                await d.wait()

    async def badge_count(self, user_id: str, group_by_room: bool = True) -> int:
        """The ``unread`` count pushed to the user's devices, as Synapse's
        ``push_tools.get_badge_count``: the rooms they are invited to, plus per joined room
        with notifications either 1 (``group_by_room``, Synapse's default) or its count of
        notifications, threads included."""
        badge = len(await self.store.get_rooms_with_membership(user_id, "invite"))
        for room_id in self.hs.rooms.joined_rooms(user_id):
            n = sum(n for n, _ in (await self._room_counts(user_id, room_id)).values())
            if n:
                badge += 1 if group_by_room else n
        return badge
