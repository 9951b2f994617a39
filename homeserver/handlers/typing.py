"""Typing notifications: in memory only, with timeouts; a serial number per change
lets /sync tell what is new."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from homeserver.http.errors import BadJson

if TYPE_CHECKING:
    from homeserver.app import HomeServer

MAX_TYPING_TIMEOUT_MS = 120_000


class TypingHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.serial = 0
        # room -> user -> expiry (reactor seconds)
        self._typing: dict[str, dict[str, float]] = {}
        self._room_serial: dict[str, int] = {}
        self._timers: dict[tuple[str, str], Any] = {}
        # Called for each change of a local user's typing (federation sends it on).
        self.listeners: list[Callable[[str, str, bool], None]] = []

    def _bump(self, room_id: str) -> None:
        self.serial += 1
        self._room_serial[room_id] = self.serial
        self.hs.notifier.notify_room(room_id)

    async def set_typing(self, user_id: str, room_id: str, typing: bool, timeout_ms: int | None, local: bool = True) -> None:
        if local:
            await self.hs.membership.require_joined(room_id, user_id)
        if typing:
            if timeout_ms is None or not isinstance(timeout_ms, int) or timeout_ms < 0:
                raise BadJson("timeout must be a non-negative integer")
            timeout_ms = min(timeout_ms, MAX_TYPING_TIMEOUT_MS)
            users = self._typing.setdefault(room_id, {})
            was_typing = user_id in users
            users[user_id] = self.hs.reactor.seconds() + timeout_ms / 1000
            old = self._timers.pop((room_id, user_id), None)
            if old is not None and old.active():
                old.cancel()
            self._timers[(room_id, user_id)] = self.hs.reactor.callLater(
                timeout_ms / 1000, self._expire, room_id, user_id
            )
            if not was_typing:
                self._bump(room_id)
        else:
            self._stop(room_id, user_id)
        if local:
            for listener in self.listeners:
                listener(room_id, user_id, typing)

    def _stop(self, room_id: str, user_id: str) -> None:
        timer = self._timers.pop((room_id, user_id), None)
        if timer is not None and timer.active():
            timer.cancel()
        users = self._typing.get(room_id)
        if users and user_id in users:
            del users[user_id]
            self._bump(room_id)

    def _expire(self, room_id: str, user_id: str) -> None:
        self._timers.pop((room_id, user_id), None)
        self._stop(room_id, user_id)

    def stop(self) -> None:
        """Cancels the expiry timers (at shutdown)."""
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()

    def room_serial(self, room_id: str) -> int:
        return self._room_serial.get(room_id, 0)

    def typing_event(self, room_id: str) -> dict[str, Any]:
        return {"type": "m.typing", "content": {"user_ids": sorted(self._typing.get(room_id, {}))}}
