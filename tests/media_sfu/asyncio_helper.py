"""Run asyncio code from twisted.trial tests.

aiortc and the livekit SDK are asyncio-only. trial runs its own (non-asyncio) reactor, which
these tests do not need: each test runs its scenario to completion in a fresh asyncio loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from tests.support.txaio_framework import asyncio_txaio

T = TypeVar("T")


def run(coro: Awaitable[T], timeout: float = 60) -> T:
    async def _bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    with asyncio_txaio():
        return asyncio.run(_bounded())
