"""Outbound transactions: one queue per destination.

PDUs and durable EDUs are written to ``federation_outbox`` before anything is sent, so a
restart loses nothing; ephemeral EDUs (typing, presence, receipts) stay in memory, as
they are worthless once stale. Each destination has at most one transaction in flight:
up to 50 PDUs and 100 EDUs, in outbox order.

A failing destination (unreachable, 5xx, 429) is retried with exponential backoff from
``federation.min_retry_interval`` doubling to ``max_retry_interval``, persisted so a
restart keeps it; the backoff resets when the destination answers or contacts us (as
Synapse does). A 4xx answer drops that transaction instead of wedging the queue. When
a destination comes back from an outage with a long backlog (> 500 PDUs), only the newest
50 per room are sent (catch-up): the remote pulls the gap with get_missing_events and
backfill, as it would after Synapse's catch-up (which sends only the newest event).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter
from twisted.internet import defer
from twisted.python.failure import Failure

from federation.errors import FederationDenied, FederationError
from homeserver.util.ids import now_ms, random_string

if TYPE_CHECKING:
    from homeserver.app import HomeServer

logger = logging.getLogger(__name__)

MAX_PDUS_PER_TXN = 50
MAX_EDUS_PER_TXN = 100
# A destination that comes back with more PDUs than this waiting gets only the newest
# CATCH_UP_KEEP_PER_ROOM of each room (a short blip replays everything, losing nothing).
CATCH_UP_THRESHOLD = 500
CATCH_UP_KEEP_PER_ROOM = 50
# EDU types that are not persisted (stale soon; Synapse keeps them in memory too).
EPHEMERAL_EDUS = {"m.typing", "m.presence", "m.receipt"}
MAX_MEMORY_EDUS = 1000
TXN_TIMEOUT_S = 60

TXNS_SENT = Counter("wspr_federation_transactions_sent_total", "Federation transactions sent", ["result"])


@dataclass
class _Destination:
    name: str
    retry_last_ts: int = 0
    retry_interval_ms: int = 0
    memory_edus: list[dict[str, Any]] = field(default_factory=list)
    running: bool = False
    retry_dirty: bool = False
    retry_writing: bool = False
    # Set by a failure, cleared by the next delivered transaction: the destination
    # missed things and gets the catch-up treatment.
    catching_up: bool = False
    dirty: bool = False
    timer: Any = None

    def in_backoff(self, now: int) -> bool:
        return self.retry_interval_ms > 0 and now < self.retry_last_ts + self.retry_interval_ms


class FederationSender:
    def __init__(self, hs: HomeServer, transport: Any) -> None:
        self.hs = hs
        self.store = hs.store
        self.transport = transport
        cfg = hs.config.federation
        self.min_retry_ms = int(cfg.min_retry_interval_s * 1000)
        self.max_retry_ms = int(cfg.max_retry_interval_s * 1000)
        self._dests: dict[str, _Destination] = {}
        self._writes: list[tuple[str, str, str | None, dict[str, Any]]] = []
        self._writing = False
        self._stopped = True
        self._txn_counter = 0
        self._txn_prefix = random_string(8)
        self._inflight: set[defer.Deferred[Any]] = set()
        self._db_writes: set[defer.Deferred[Any]] = set()
        # Tests observe transactions here: fn(destination, txn_body, ok)
        self.sent_hooks: list[Any] = []

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        self._stopped = False
        for name, (last, interval) in (await self.store.get_destination_retries()).items():
            d = self._dest(name)
            d.retry_last_ts, d.retry_interval_ms = last, interval
            d.catching_up = interval > 0
        for name in await self.store.outbox_destinations():
            self._wake(name)

    async def stop(self) -> None:
        self._stopped = True
        for d in self._dests.values():
            if d.timer is not None and d.timer.active():
                d.timer.cancel()
            d.timer = None
        # Transmissions are abandoned (the outbox still holds their items); database
        # writes (outbox, retry state) are let finish so a restart finds them.
        for work in list(self._inflight):
            if work not in self._db_writes:
                work.cancel()
        for work in list(self._inflight):
            try:
                await work
            except BaseException:
                pass

    def _dest(self, name: str) -> _Destination:
        d = self._dests.get(name)
        if d is None:
            d = self._dests[name] = _Destination(name)
        return d

    # -- enqueueing -------------------------------------------------------------------

    def _targets(self, destinations: Iterable[str]) -> list[str]:
        out = []
        for dest in destinations:
            if dest == self.hs.server_name or dest in out:
                continue
            out.append(dest)
        return out

    def send_pdu(self, destinations: Iterable[str], event: Any) -> None:
        """Queue a PDU (an Event or a PDU dict) for each destination (ours skipped)."""
        pdu = event.pdu if hasattr(event, "pdu") else dict(event)
        room_id = pdu.get("room_id") or getattr(event, "room_id", None)
        for dest in self._targets(destinations):
            self._writes.append((dest, "pdu", room_id, pdu))
        self._flush_writes()

    def send_edu(self, destination: str, edu_type: str, content: dict[str, Any]) -> None:
        for dest in self._targets([destination]):
            edu = {"edu_type": edu_type, "content": content}
            if edu_type in EPHEMERAL_EDUS:
                d = self._dest(dest)
                if len(d.memory_edus) < MAX_MEMORY_EDUS:
                    d.memory_edus.append(edu)
                self._wake(dest)
            else:
                self._writes.append((dest, "edu", None, edu))
                self._flush_writes()

    def _flush_writes(self) -> None:
        if not self._writing and self._writes:
            self._writing = True
            self._track(self._write_loop(), db_write=True)

    def _track(self, coro: Any, db_write: bool = False) -> None:
        d = defer.ensureDeferred(coro)
        if d.called:
            d.addErrback(lambda f: logger.error("federation sender: %s", f.getTraceback()))
            return
        self._inflight.add(d)
        if db_write:
            self._db_writes.add(d)

        def done(result: Any) -> None:
            self._inflight.discard(d)
            self._db_writes.discard(d)
            if isinstance(result, Failure) and not result.check(defer.CancelledError):
                logger.error("federation sender: %s", result.getTraceback())

        d.addBoth(done)

    async def _write_loop(self) -> None:
        # One writer, so outbox order is enqueue order; everything waiting goes in one
        # database transaction.
        try:
            while self._writes:
                batch, self._writes = self._writes, []
                try:
                    await self.store.add_to_outbox(batch, now_ms())
                except Exception:
                    logger.exception("failed to queue %d federation items", len(batch))
                    continue
                for dest in {b[0] for b in batch}:
                    self._wake(dest)
        finally:
            self._writing = False

    # -- backoff --------------------------------------------------------------------------

    def on_remote_alive(self, destination: str) -> None:
        """The destination contacted us: stop backing off (as Synapse does)."""
        d = self._dests.get(destination)
        if d is not None and d.retry_interval_ms > 0:
            self._reset_backoff(d)
            self._wake(destination)

    def _reset_backoff(self, d: _Destination) -> None:
        if d.retry_interval_ms == 0:
            return
        d.retry_interval_ms = 0
        d.retry_last_ts = 0
        self._persist_retry(d)

    def _backoff(self, d: _Destination) -> None:
        if d.retry_interval_ms == 0:
            d.retry_interval_ms = self.min_retry_ms
        else:
            d.retry_interval_ms = min(d.retry_interval_ms * 2, self.max_retry_ms)
        d.retry_last_ts = now_ms()
        d.catching_up = True
        self._persist_retry(d)
        # Stale typing/presence is not worth delivering late.
        d.memory_edus.clear()

    def _persist_retry(self, d: _Destination) -> None:
        # One writer per destination, always writing the latest state, so two quick
        # changes cannot commit out of order (PostgreSQL runs writes in parallel).
        d.retry_dirty = True
        if not d.retry_writing:
            d.retry_writing = True
            self._track(self._retry_writer(d), db_write=True)

    async def _retry_writer(self, d: _Destination) -> None:
        try:
            while d.retry_dirty:
                d.retry_dirty = False
                await self.store.set_destination_retry(d.name, d.retry_last_ts, d.retry_interval_ms)
        finally:
            d.retry_writing = False

    def retry_state(self, destination: str) -> tuple[int, int]:
        d = self._dests.get(destination)
        return (d.retry_last_ts, d.retry_interval_ms) if d else (0, 0)

    # -- transmission -------------------------------------------------------------------

    def _wake(self, destination: str) -> None:
        if self._stopped:
            return
        d = self._dest(destination)
        if d.running:
            d.dirty = True
            return
        now = now_ms()
        if d.in_backoff(now):
            if d.timer is None or not d.timer.active():
                delay = (d.retry_last_ts + d.retry_interval_ms - now) / 1000
                d.timer = self.hs.reactor.callLater(max(delay, 0), self._on_timer, destination)
            return
        d.running = True
        self._track(self._run(d))

    def _on_timer(self, destination: str) -> None:
        d = self._dests.get(destination)
        if d is not None:
            d.timer = None
        self._wake(destination)

    def _next_txn_id(self) -> str:
        self._txn_counter += 1
        return f"{self._txn_prefix}{now_ms()}.{self._txn_counter}"

    async def _run(self, d: _Destination) -> None:
        try:
            while not self._stopped:
                d.dirty = False
                if d.in_backoff(now_ms()):
                    break
                if d.catching_up:
                    # First attempt after an outage: don't replay a long backlog.
                    pdus, _ = await self.store.count_outbox(d.name)
                    if pdus > CATCH_UP_THRESHOLD:
                        dropped = await self.store.collapse_outbox_pdus(d.name, CATCH_UP_KEEP_PER_ROOM)
                        logger.info("catch-up to %s: skipping %d old PDUs", d.name, dropped)
                rows = await self.store.get_outbox(d.name, 0, MAX_PDUS_PER_TXN + MAX_EDUS_PER_TXN)
                pdus_out: list[dict[str, Any]] = []
                edus_out: list[dict[str, Any]] = []
                ids: list[int] = []
                for row in rows:
                    target = pdus_out if row.kind == "pdu" else edus_out
                    if len(target) >= (MAX_PDUS_PER_TXN if row.kind == "pdu" else MAX_EDUS_PER_TXN):
                        break  # keep outbox order: stop at the first item that doesn't fit
                    target.append(row.payload)
                    ids.append(row.id)
                room = MAX_EDUS_PER_TXN - len(edus_out)
                mem, d.memory_edus = d.memory_edus[:room], d.memory_edus[room:]
                edus_out.extend(mem)
                if not pdus_out and not edus_out:
                    if d.dirty:
                        continue
                    break
                ok = await self._send_txn(d, pdus_out, edus_out)
                if ok:
                    await self.store.delete_from_outbox(ids)
                else:
                    break
        except defer.CancelledError:
            pass
        except Exception:
            logger.exception("federation queue to %s failed", d.name)
        finally:
            d.running = False
        if not self._stopped and d.dirty:
            self._wake(d.name)
        elif not self._stopped and d.in_backoff(now_ms()):
            self._wake(d.name)  # arms the retry timer

    async def _send_txn(self, d: _Destination, pdus: list[dict[str, Any]], edus: list[dict[str, Any]]) -> bool:
        """True when the transaction is done with (sent, or refused for good)."""
        txn_id = self._next_txn_id()
        body = {"origin": self.hs.server_name, "origin_server_ts": now_ms(), "pdus": pdus, "edus": edus}
        try:
            resp = await self.transport.request(
                d.name, "PUT", f"/_matrix/federation/v1/send/{txn_id}", body=body, timeout=TXN_TIMEOUT_S
            )
        except FederationDenied as e:
            logger.info("not sending to %s: %s", d.name, e.msg)
            TXNS_SENT.labels("denied").inc()
            self._notify(d.name, body, False)
            return True
        except FederationError as e:
            if 400 <= e.code < 500 and e.code != 429 and type(e) is FederationError:
                # The destination answered: it is up, it just refuses this transaction.
                logger.warning("%s refused transaction %s: %s %s", d.name, txn_id, e.code, e.errcode)
                self._reset_backoff(d)
                TXNS_SENT.labels("refused").inc()
                self._notify(d.name, body, False)
                return True
            logger.info("transaction %s to %s failed: %s", txn_id, d.name, e.msg)
            self._backoff(d)
            TXNS_SENT.labels("failed").inc()
            self._notify(d.name, body, False)
            return False
        self._reset_backoff(d)
        d.catching_up = False
        TXNS_SENT.labels("ok").inc()
        results = resp.get("pdus") if isinstance(resp, dict) else None
        if isinstance(results, dict):
            for event_id, result in results.items():
                if isinstance(result, dict) and result.get("error"):
                    logger.info("%s rejected %s: %s", d.name, event_id, result["error"])
        self._notify(d.name, body, True)
        return True

    def _notify(self, dest: str, body: dict[str, Any], ok: bool) -> None:
        for hook in self.sent_hooks:
            try:
                hook(dest, body, ok)
            except Exception:
                logger.exception("sent hook failed")
