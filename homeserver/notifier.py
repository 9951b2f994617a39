"""Wakes waiting /sync requests the moment something relevant to their user happens.

A sync request registers a Deferred for its user; producers (event persistence,
receipts, typing, account data, to-device, presence) call ``notify_users`` or
``notify_room``. No polling loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import Counter
from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime

SYNC_WAKEUPS = Counter("wspr_sync_wakeups_total", "Long-poll /sync requests woken by a new event")


class Notifier:
    def __init__(self, reactor: IReactorTime, users_in_room: Callable[[str], Iterable[str]]) -> None:
        self._reactor = reactor
        self._users_in_room = users_in_room
        self._waiters: dict[str, list[defer.Deferred[bool]]] = {}
        self._timers: set[IDelayedCall] = set()
        # Users who are not joined but still need waking for a room (invitees, the just-left).
        self._listeners: list[Callable[[set[str]], None]] = []

    def add_listener(self, fn: Callable[[set[str]], None]) -> None:
        self._listeners.append(fn)

    def stop(self) -> None:
        """At shutdown: the long-polls still waiting get no timer (their connections are
        being closed), so nothing of the stopped server stays scheduled on the reactor."""
        for call in self._timers:
            if call.active():
                call.cancel()
        self._timers.clear()

    def notify_users(self, user_ids: Iterable[str]) -> None:
        users = set(user_ids)
        for user_id in users:
            waiters = self._waiters.pop(user_id, None)
            if waiters:
                for d in waiters:
                    if not d.called:
                        SYNC_WAKEUPS.inc()
                        d.callback(True)
        for fn in self._listeners:
            fn(users)

    def notify_room(self, room_id: str, extra_users: Iterable[str] = ()) -> None:
        users = set(self._users_in_room(room_id))
        users.update(extra_users)
        self.notify_users(users)

    async def wait_for_user(self, user_id: str, timeout_ms: int) -> bool:
        """Resolves True when notified, False on timeout."""
        if timeout_ms <= 0:
            return False
        d: defer.Deferred[bool] = defer.Deferred()
        self._waiters.setdefault(user_id, []).append(d)

        def expire() -> None:
            if not d.called:
                d.callback(False)

        call = self._reactor.callLater(timeout_ms / 1000.0, expire)
        self._timers.add(call)
        try:
            return await d
        finally:
            self._timers.discard(call)
            if call.active():
                call.cancel()
            waiters = self._waiters.get(user_id)
            if waiters and d in waiters:
                waiters.remove(d)
                if not waiters:
                    del self._waiters[user_id]
