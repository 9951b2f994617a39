"""Every open socket, found by user (the notifier's wake-ups), by device (the per-device
cap) and by sign-in session (revocations end them at once)."""

from __future__ import annotations

import heapq
import itertools
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge
from twisted.internet import task

from homeserver.websocket.config import WebSocketConfig
from homeserver.websocket.frames import CloseCode

if TYPE_CHECKING:
    from twisted.web.server import Request

    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester
    from homeserver.websocket.session import Session

SOCKETS = Gauge("wspr_websocket_sockets", "Open WebSocket stream sockets")
FRAMES = Counter("wspr_websocket_frames_total", "Data frames sent on WebSocket streams", ["mode"])
CLOSES = Counter("wspr_websocket_closes_total", "WebSocket stream sockets closed by the server", ["code"])

# How long stop() lets sockets take their close frame before dropping them.
STOP_GRACE_S = 1.0


class WebSocketHub:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.config: WebSocketConfig = hs.config.websocket
        self.sessions: set[Session] = set()
        self._by_user: dict[str, set[Session]] = {}
        self._by_device: dict[tuple[str, str], list[Session]] = {}
        self._by_sign_in: dict[str, set[Session]] = {}
        # Sessions that computed a frame while later stream positions were still being
        # written: (position they wait for, tiebreak, session), woken when it is visible.
        self._lagging: list[tuple[int, int, Session]] = []
        self._tiebreak = itertools.count()
        self._streams_hooked = False
        hs.notifier.add_listener(self._on_notify)
        hs.auth.sessions.revocations.listeners.append(self._on_revoked)
        from homeserver.websocket.server import StreamFactory

        self.factory = StreamFactory(self)

    # -- sockets ---------------------------------------------------------------------

    def upgrade(self, request: Request, requester: Requester | None, access_token: str | None) -> None:
        """Takes over the request's connection (a WebSocket upgrade)."""
        if not self._streams_hooked:
            # The stream position exists once the server has started; sockets come after.
            self.hs.streams.listeners.append(self._on_stream_advanced)
            self._streams_hooked = True
        self.factory.upgrade(request, requester, access_token)

    def opened(self, session: Session) -> None:
        self.sessions.add(session)
        SOCKETS.set(len(self.sessions))

    def authenticated(self, session: Session) -> None:
        assert session.requester is not None
        requester = session.requester
        device = (requester.user_id, requester.device_id)
        others = self._by_device.setdefault(device, [])
        while len(others) >= self.config.max_per_device:
            oldest = others.pop(0)
            oldest.close(CloseCode.TOO_MANY, "too many sockets for this device")
        others.append(session)
        self._by_user.setdefault(requester.user_id, set()).add(session)
        self._index_sign_in(session, requester)

    def reauthenticated(self, session: Session, requester: Requester) -> None:
        old = session.requester
        if old is not None and old.session_id:
            self._discard(self._by_sign_in, old.session_id, session)
        self._index_sign_in(session, requester)

    def _index_sign_in(self, session: Session, requester: Requester) -> None:
        if requester.session_id:
            self._by_sign_in.setdefault(requester.session_id, set()).add(session)

    def subscribed(self, session: Session) -> None:
        pass

    def forget(self, session: Session) -> None:
        self.sessions.discard(session)
        SOCKETS.set(len(self.sessions))
        requester = session.requester
        if requester is None:
            return
        self._discard(self._by_user, requester.user_id, session)
        if requester.session_id:
            self._discard(self._by_sign_in, requester.session_id, session)
        device = (requester.user_id, requester.device_id)
        others = self._by_device.get(device)
        if others is not None and session in others:
            others.remove(session)
            if not others:
                del self._by_device[device]

    @staticmethod
    def _discard(index: dict[str, set[Session]], key: str, session: Session) -> None:
        members = index.get(key)
        if members is not None:
            members.discard(session)
            if not members:
                del index[key]

    def sockets_of(self, user_id: str) -> set[Session]:
        return set(self._by_user.get(user_id, ()))

    # -- wake-ups --------------------------------------------------------------------

    def _on_notify(self, users: set[str]) -> None:
        by_user = self._by_user
        if len(users) > len(by_user):
            users = by_user.keys() & users
        for user_id in users:
            for session in by_user.get(user_id, ()):
                session.poke()

    def expect_stream_position(self, session: Session) -> None:
        """Called as a session computes a frame up to the visible position: positions
        allocated beyond it are still being written (and their writers' wake-ups may
        already have come), so the session looks again once they are visible."""
        streams = self.hs.streams
        if streams.last_allocated > streams.current:
            heapq.heappush(self._lagging, (streams.last_allocated, next(self._tiebreak), session))

    def _on_stream_advanced(self, position: int) -> None:
        lagging = self._lagging
        while lagging and lagging[0][0] <= position:
            _, _, session = heapq.heappop(lagging)
            if not session.closed:
                session.poke()

    def _on_revoked(self, session_ids: list[str]) -> None:
        from homeserver.http.errors import MatrixError

        for sid in session_ids:
            for session in list(self._by_sign_in.get(sid, ())):
                session.fail(MatrixError(401, "M_UNKNOWN_TOKEN", "Access token has been revoked", soft_logout=False))

    # -- metrics ---------------------------------------------------------------------

    @staticmethod
    def count_frame(mode: str) -> None:
        FRAMES.labels(mode).inc()

    @staticmethod
    def count_close(code: int) -> None:
        CLOSES.labels(str(code)).inc()

    # -- shutdown --------------------------------------------------------------------

    async def stop(self) -> None:
        """Closes every socket with 1001 (going away): clients reconnect with their token."""
        if not self.sessions:
            self._cancel_ping_timers()
            return
        for session in list(self.sessions):
            session.close(CloseCode.GOING_AWAY, "server shutting down")
        for _ in range(int(STOP_GRACE_S / 0.05)):
            if not self.sessions:
                break
            await task.deferLater(self.hs.reactor, 0.05, lambda: None)
        for session in list(self.sessions):
            session.conn.abort()
            session.connection_lost()
        self._cancel_ping_timers()

    def _cancel_ping_timers(self) -> None:
        # autobahn's ping/pong timers share one batched timer per factory, whose buckets
        # stay scheduled after their sockets close: a stopped server leaves none behind.
        timer = getattr(self.factory, "_batched_timer", None)
        for delayed_call, _ in list(getattr(timer, "_buckets", {}).values()):
            if delayed_call.active():
                delayed_call.cancel()
        if timer is not None:
            timer._buckets.clear()
