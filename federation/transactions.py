"""``PUT /_matrix/federation/v1/send/{txnId}``: inbound transactions.

Transaction ids are deduplicated per origin (a retried transaction gets the stored
answer; one still being processed is awaited), transactions from one origin are handled
one at a time in arrival order, and the spec's limits (50 PDUs, 100 EDUs) are enforced.
PDUs go to the ingest of the rooms layer (``federation/rooms/ingest.py``); EDUs to
``federation/edus/inbound.py``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.web.server import Request

from federation.edus.inbound import receive_edu
from federation.transport.server import json_body
from homeserver.http.errors import BadJson
from homeserver.util.async_helpers import SharedResult
from homeserver.util.ids import now_ms

if TYPE_CHECKING:
    from federation.service import Federation
    from homeserver.app import HomeServer

logger = logging.getLogger(__name__)

MAX_PDUS = 50
MAX_EDUS = 100


class TransactionReceiver:
    def __init__(self, hs: HomeServer, fed: Federation) -> None:
        self.hs = hs
        self.fed = fed
        self._inflight: dict[tuple[str, str], SharedResult[dict[str, Any]]] = {}
        self._locks: dict[str, defer.DeferredLock] = {}

    async def on_send(self, request: Request, origin: str, txn_id: str) -> tuple[int, Any]:
        body = json_body(request)
        pdus = body.get("pdus", [])
        edus = body.get("edus", [])
        if not isinstance(pdus, list) or not isinstance(edus, list):
            raise BadJson("pdus and edus must be lists")
        if len(pdus) > MAX_PDUS or len(edus) > MAX_EDUS:
            # Synapse answers 400 too (errcode M_UNKNOWN); M_BAD_JSON is the better fit.
            raise BadJson(f"Transactions carry at most {MAX_PDUS} PDUs and {MAX_EDUS} EDUs")
        key = (origin, txn_id)
        inflight = self._inflight.get(key)
        if inflight is not None:
            return 200, await inflight.wait()
        shared: SharedResult[dict[str, Any]] = SharedResult()
        self._inflight[key] = shared
        try:
            stored = await self.hs.store.get_received_txn(origin, txn_id)
            if stored is not None:
                result = stored
            else:
                lock = self._locks.setdefault(origin, defer.DeferredLock())
                await lock.acquire()
                try:
                    result = await self._process(origin, pdus, edus)
                finally:
                    lock.release()
                    if not lock.locked and not lock.waiting:
                        self._locks.pop(origin, None)
                await self.hs.store.store_received_txn(origin, txn_id, result, now_ms())
        except BaseException as e:
            shared.errback(e)
            raise
        finally:
            self._inflight.pop(key, None)
        shared.callback(result)
        return 200, result

    async def _process(self, origin: str, pdus: list[Any], edus: list[Any]) -> dict[str, Any]:
        results: dict[str, Any] = {}
        if pdus:
            outcome = await self.fed.ingest.on_receive_pdus(origin, pdus)
            for event_id, error in outcome.items():
                results[event_id] = {} if error is None else {"error": str(error)}
        for edu in edus:
            if not isinstance(edu, dict):
                continue
            edu_type, content = edu.get("edu_type"), edu.get("content")
            if not isinstance(edu_type, str) or not isinstance(content, dict):
                continue
            try:
                await receive_edu(self.hs, origin, edu_type, content)
            except Exception as e:
                # One bad EDU must not fail the transaction (the sender would retry it forever).
                logger.info("EDU %s from %s ignored: %s", edu_type, origin, e)
        return {"pdus": results}

    def register(self) -> None:
        self.hs.federation_router.register(
            "PUT", r"/_matrix/federation/v1/send/(?P<txn_id>[^/]+)", self.fed.authenticated(self.on_send)
        )
