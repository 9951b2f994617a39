"""One worker for outbound fan-out: PDUs and EDUs leave in the order they happened
(a receipt never overtakes the event it is for), without holding up the caller."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from twisted.internet import defer

logger = logging.getLogger(__name__)

Work = Callable[[], Awaitable[None]]


class OrderedWork:
    def __init__(self) -> None:
        self._pending: list[Work] = []
        self._running = False

    def run(self, work: Work) -> None:
        self._pending.append(work)
        if not self._running:
            self._running = True
            defer.ensureDeferred(self._drain())

    async def _drain(self) -> None:
        try:
            while self._pending:
                work = self._pending.pop(0)
                try:
                    await work()
                except Exception:
                    logger.exception("outbound federation work failed")
        finally:
            self._running = False
