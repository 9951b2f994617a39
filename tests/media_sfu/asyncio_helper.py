"""Run asyncio code from twisted.trial tests.

aiortc and the livekit SDK are asyncio-only. trial runs its own (non-asyncio) reactor, which
these tests do not need: each test runs its scenario to completion in a fresh asyncio loop.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, TypeVar

T = TypeVar("T")


def run(coro: Awaitable[T], timeout: float = 60) -> T:
    async def _bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(_bounded())
