"""A small, fixed pool of threads for image decoding, apart from the reactor's shared
pool (whose queue is unbounded and which the database and file I/O also use).

A decoded image can take hundreds of MiB, so how many are decoded at once is what
bounds the server's memory: one pool per process, however many homeservers a process
runs (tests run several). After each job the C allocator is asked to hand freed memory
back to the system: glibc keeps Pillow's large freed blocks in per-thread arenas
otherwise, and RSS stays at its peak long after the work is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet import threads
from twisted.python.threadpool import ThreadPool

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _load_malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_malloc_trim = _load_malloc_trim()


def _run_and_trim(fn: Callable[..., T], *args: Any) -> T:
    try:
        return fn(*args)
    finally:
        if _malloc_trim is not None:
            _malloc_trim(0)


class WorkerPool:
    def __init__(self, reactor: Any, size: int, name: str) -> None:
        self._reactor = reactor
        self._pool = ThreadPool(0, size, name=name)
        self._started = False

    @property
    def size(self) -> int:
        return self._pool.max

    def _start(self) -> None:
        if self._pool.joined:
            # Stopped by a reactor shutdown that the process outlived (trial's workers run
            # test after test in one process): a stopped ThreadPool never runs a job again,
            # so a fresh one takes its place instead of queueing work forever.
            self._pool = ThreadPool(0, self._pool.max, name=self._pool.name)
            self._started = False
        if not self._started:
            self._started = True
            self._pool.start()
            self._reactor.addSystemEventTrigger("during", "shutdown", self._pool.stop)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        self._start()
        return await threads.deferToThreadPool(self._reactor, self._pool, _run_and_trim, fn, *args)


_pools: dict[str, WorkerPool] = {}


def shared_pool(reactor: Any, size: int, name: str) -> WorkerPool:
    """The process's pool of that name (created on first use)."""
    pool = _pools.get(name)
    if pool is None:
        pool = _pools[name] = WorkerPool(reactor, size, name)
    return pool
