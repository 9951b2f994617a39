"""Small async building blocks shared across handlers."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from twisted.internet import defer
from twisted.python.failure import Failure

T = TypeVar("T")


class SharedResult(Generic[T]):
    """A result many coroutines can await; each waiter gets its own copy of the outcome
    (a plain Deferred hands its result to the first callback only)."""

    def __init__(self) -> None:
        self._done = False
        self._value: Any = None
        self._failure: Failure | None = None
        self._waiters: list[defer.Deferred[T]] = []

    @property
    def called(self) -> bool:
        return self._done

    def callback(self, value: T) -> None:
        self._done, self._value = True, value
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(value)

    def errback(self, exc: BaseException | Failure) -> None:
        self._done = True
        self._failure = exc if isinstance(exc, Failure) else Failure(exc)
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.errback(self._failure)

    def wait(self) -> defer.Deferred[T]:
        if self._done:
            if self._failure is not None:
                return defer.fail(self._failure)
            return defer.succeed(self._value)
        d: defer.Deferred[T] = defer.Deferred()
        self._waiters.append(d)
        return d
