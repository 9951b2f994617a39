"""One socket of the stream: authentication, the subscription, the acknowledgement window,
back-pressure and heartbeats (docs/websocket.md). Independent of the WebSocket library:
it sees its socket as a ``Connection``.

Nothing is queued per socket. A wake-up from the notifier marks the session dirty; when it
may send (window open, TCP send buffer not full) it computes the next frame from the
position of the last one, so everything that happened meanwhile travels in one frame, and
a client that cannot keep up costs one position, not a queue.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Protocol

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IPushProducer
from twisted.python.failure import Failure
from zope.interface import implementer

from homeserver.handlers.sliding_sync.config import SlidingSyncRequest
from homeserver.handlers.sync import SyncToken
from homeserver.http.errors import MatrixError
from homeserver.rest.client.sliding_sync import parse_request
from homeserver.rest.client.sync import sync_filter_from_param
from homeserver.websocket import frames
from homeserver.websocket.frames import (
    AckFrame,
    AuthFrame,
    ClientFrame,
    CloseCode,
    FrameError,
    PingFrame,
    SubscribeFrame,
)
from homeserver.websocket.modes import SlidingSyncMode, SyncMode

if TYPE_CHECKING:
    from homeserver.handlers.auth import Requester
    from homeserver.websocket.hub import WebSocketHub

logger = logging.getLogger(__name__)

# Client frames waiting to be handled (they are handled one at a time, in order); a
# client sending faster than that is misbehaving.
MAX_INBOX = 64


class Connection(Protocol):
    def send_text(self, data: bytes) -> None: ...

    def close(self, code: int, reason: str) -> None: ...

    def abort(self) -> None: ...


@implementer(IPushProducer)
class Session:
    """Also the push producer of its TCP transport: Twisted pauses it when the transport's
    send buffer is full and resumes it once drained."""

    def __init__(
        self,
        hub: WebSocketHub,
        conn: Connection,
        requester: Requester | None,
        access_token: str | None,
        client_ip: str,
        user_agent: str,
    ) -> None:
        self.hub = hub
        self.hs = hub.hs
        self.config = hub.config
        self.conn = conn
        self.requester = requester
        self.access_token = access_token
        self.client_ip = client_ip
        self.user_agent = user_agent
        self.mode: SyncMode | SlidingSyncMode | None = None
        self.set_presence: str | None = None
        # closed: nothing more is sent; gone: the connection itself is over.
        self.closed = False
        self._gone = False
        # Frames sent and not acknowledged: (token, size).
        self._unacked: deque[tuple[str, int]] = deque()
        self._unacked_bytes = 0
        self._paused = False
        self._dirty = False
        self._running = False
        self._inbox: deque[ClientFrame] = deque()
        self._handling = False
        self._last_sent = self.hs.reactor.seconds()
        self._auth_timer: IDelayedCall | None = None
        self._heartbeat: IDelayedCall | None = None
        self._slow_timer: IDelayedCall | None = None

    # -- lifecycle -------------------------------------------------------------------

    def opened(self) -> None:
        if self.requester is not None:
            self._authenticated()
        else:
            self._auth_timer = self.hs.reactor.callLater(self.config.auth_timeout_ms / 1000, self._auth_timed_out)

    def connection_lost(self) -> None:
        if self._gone:
            return
        self._gone = self.closed = True
        for timer in (self._auth_timer, self._heartbeat, self._slow_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._auth_timer = self._heartbeat = self._slow_timer = None
        self._inbox.clear()
        self.hub.forget(self)

    def close(self, code: int, reason: str, error: MatrixError | FrameError | None = None) -> None:
        """Ends the socket (an error frame first, when there is one). Nothing is sent after."""
        if self.closed:
            return
        if error is not None:
            if isinstance(error, MatrixError):
                self.conn.send_text(frames.error_frame(error.errcode, error.msg, **error.extra))
            else:
                self.conn.send_text(frames.error_frame(error.errcode, error.message))
        self.closed = True
        self.hub.count_close(code)
        self.conn.close(code, reason)

    def fail(self, error: MatrixError | FrameError) -> None:
        status = error.code if isinstance(error, MatrixError) else 400
        code = frames.close_code_for(error.errcode, status)
        self.close(code, error.errcode, error)

    # -- client frames ---------------------------------------------------------------

    def frame_received(self, payload: bytes, is_binary: bool) -> None:
        if self.closed:
            return
        try:
            frame = frames.parse_client_frame(payload, is_binary)
        except FrameError as e:
            self.fail(e)
            return
        if isinstance(frame, PingFrame):
            # Answered at once (not behind a slow subscribe): browsers cannot send
            # protocol pings, this is how they check the socket after a sleep.
            self.conn.send_text(frames.pong_frame(frame.id))
            return
        if len(self._inbox) >= MAX_INBOX:
            self.fail(FrameError("M_LIMIT_EXCEEDED", "Too many frames waiting"))
            return
        self._inbox.append(frame)
        if not self._handling:
            self._handling = True
            defer.ensureDeferred(self._handle_inbox()).addErrback(self._crashed)

    async def _handle_inbox(self) -> None:
        try:
            while self._inbox and not self.closed:
                frame = self._inbox.popleft()
                try:
                    await self._handle(frame)
                except (MatrixError, FrameError) as e:
                    self.fail(e)
        finally:
            self._handling = False

    async def _handle(self, frame: ClientFrame) -> None:
        if isinstance(frame, AuthFrame):
            await self._on_auth(frame)
            return
        if self.requester is None:
            raise MatrixError(401, "M_MISSING_TOKEN", "Authenticate first (an auth frame)")
        if isinstance(frame, SubscribeFrame):
            await self._on_subscribe(frame)
        elif isinstance(frame, AckFrame):
            self._on_ack(frame.token)

    async def _on_auth(self, frame: AuthFrame) -> None:
        requester = await self.hs.auth.authenticate(frame.access_token, self.client_ip, self.user_agent, allow_guest=True)
        if self.requester is not None:
            # A refreshed token for the same session keeps the socket open.
            if (requester.user_id, requester.device_id) != (self.requester.user_id, self.requester.device_id):
                raise MatrixError(403, "M_FORBIDDEN", "The token is for another user or device")
            self.hub.reauthenticated(self, requester)
            self.requester, self.access_token = requester, frame.access_token
            return
        self.requester, self.access_token = requester, frame.access_token
        if self._auth_timer is not None and self._auth_timer.active():
            self._auth_timer.cancel()
        self._auth_timer = None
        self._authenticated()

    def _authenticated(self) -> None:
        assert self.requester is not None
        self.hub.authenticated(self)
        if self.closed:
            return
        self.conn.send_text(
            frames.hello_frame(
                self.requester.user_id,
                self.requester.device_id,
                self.config.heartbeat_ms,
                self.config.max_unacked_frames,
                self.config.max_unacked_bytes,
            )
        )
        self._last_sent = self.hs.reactor.seconds()
        self._heartbeat = self.hs.reactor.callLater(self.config.heartbeat_ms / 1000, self._on_heartbeat)

    def _auth_timed_out(self) -> None:
        self._auth_timer = None
        if self.requester is None:
            self.fail(MatrixError(401, "M_MISSING_TOKEN", "No auth frame in time"))

    async def _on_subscribe(self, frame: SubscribeFrame) -> None:
        assert self.requester is not None
        if self.mode is not None:
            if isinstance(self.mode, SlidingSyncMode) and frame.mode == "sliding_sync":
                self.mode.update(self._sliding_sync_request(frame))
                self.poke()
                return
            raise FrameError("M_BAD_JSON", "Already subscribed (only a sliding_sync body can change)")
        if frame.mode == "sliding_sync":
            request = self._sliding_sync_request(frame)
            self.mode = SlidingSyncMode(self.hs, request, self.hs.sliding_sync.parse_pos(frame.pos))
        else:
            since = SyncMode.bounded(self.hs, SyncToken.parse(frame.since)) if frame.since else None
            sync_filter = await sync_filter_from_param(self.hs, self.requester.user_id, frame.filter)
            self.set_presence = frame.set_presence
            # The to-device messages up to `since` are not sent again (frames read past the
            # previous frame's position); they are deleted at the first acknowledgement,
            # not here: a database write per connection would slow a crowd reconnecting.
            self.mode = SyncMode(self.hs, since, sync_filter, frame.full_state)
        await self._refresh_presence()
        if self.closed:
            return
        self.hub.subscribed(self)
        self.poke()

    def _sliding_sync_request(self, frame: SubscribeFrame) -> SlidingSyncRequest:
        return parse_request(frame.body or {})

    def _on_ack(self, token: str) -> None:
        if self.mode is None:
            raise FrameError("M_BAD_JSON", "Nothing to acknowledge before a subscribe")
        index = next((i for i, (t, _) in enumerate(self._unacked) if t == token), None)
        if index is None and token == self.mode.token:
            index = len(self._unacked) - 1  # the position an idle frame showed: everything
        if index is None:
            return  # already acknowledged, or not ours: nothing to do
        was_blocked = self._blocked()
        for _ in range(index + 1):
            _, size = self._unacked.popleft()
            self._unacked_bytes -= size
        to_device = self.mode.acknowledged(token)
        if to_device is not None and self.requester is not None:
            d = defer.ensureDeferred(
                self.hs.store.delete_to_device_messages(self.requester.user_id, self.requester.device_id, to_device)
            )
            d.addErrback(lambda f: logger.warning("deleting acknowledged to-device messages failed: %s", f.value))
        if was_blocked and not self._blocked():
            self._unblocked()

    # -- frames to the client --------------------------------------------------------

    def poke(self) -> None:
        """Something for this user may have happened: compute the next frame when allowed."""
        self._dirty = True
        self._maybe_run()

    def _window(self) -> int:
        window = self.mode.window if self.mode is not None else None
        return window if window is not None else self.config.max_unacked_frames

    def _blocked(self) -> bool:
        return (
            self._paused
            or len(self._unacked) >= self._window()
            or self._unacked_bytes >= self.config.max_unacked_bytes
        )

    def _maybe_run(self) -> None:
        if self.closed or self._running or self.mode is None or not self._dirty:
            return
        if self._blocked():
            self._start_slow_timer()
            return
        self._running = True
        defer.ensureDeferred(self._run()).addErrback(self._crashed)

    async def _run(self) -> None:
        try:
            while self._dirty and not self.closed and not self._blocked():
                self._dirty = False
                assert self.mode is not None and self.requester is not None
                await self._revalidate()
                if self.closed:
                    return
                self.hub.expect_stream_position(self)
                frame = await self.mode.next_frame(self.requester)
                if frame is None or self.closed:
                    continue
                data = frames.data_frame(self.mode.name, frame.token, frame.data)
                self._unacked.append((frame.token, len(data)))
                self._unacked_bytes += len(data)
                self.conn.send_text(data)
                self._last_sent = self.hs.reactor.seconds()
                self.hub.count_frame(self.mode.name)
                if frame.more:
                    self._dirty = True
        except (MatrixError, FrameError) as e:
            self.fail(e)
        finally:
            self._running = False
        if not self.closed and self._blocked():
            self._start_slow_timer()

    async def _revalidate(self) -> None:
        """The token may have been revoked (sign-out, deleted device) or have expired
        since the last frame."""
        assert self.access_token is not None
        await self.hs.auth.get_user_by_token(self.access_token)

    # -- back-pressure ---------------------------------------------------------------

    def _start_slow_timer(self) -> None:
        if self._slow_timer is None and not self.closed:
            self._slow_timer = self.hs.reactor.callLater(self.config.slow_client_timeout_ms / 1000, self._too_slow)

    def _unblocked(self) -> None:
        if self._slow_timer is not None and self._slow_timer.active():
            self._slow_timer.cancel()
        self._slow_timer = None
        self._maybe_run()

    def _too_slow(self) -> None:
        self._slow_timer = None
        if self._blocked():
            self.close(CloseCode.SLOW_CLIENT, "slow client: resume from your last token")

    def pauseProducing(self) -> None:
        self._paused = True
        self._start_slow_timer()

    def resumeProducing(self) -> None:
        self._paused = False
        if not self._blocked():
            self._unblocked()

    def stopProducing(self) -> None:
        self._paused = True

    # -- heartbeats ------------------------------------------------------------------

    def _on_heartbeat(self) -> None:
        self._heartbeat = None
        if self.closed:
            return
        interval = self.config.heartbeat_ms / 1000
        self._heartbeat = self.hs.reactor.callLater(interval, self._on_heartbeat)
        defer.ensureDeferred(self._beat(interval)).addErrback(self._crashed)

    async def _beat(self, interval: float) -> None:
        try:
            await self._revalidate()
        except MatrixError as e:
            self.fail(e)
            return
        await self._refresh_presence()
        if self.closed or self._paused:
            return
        if self.hs.reactor.seconds() - self._last_sent >= interval * 0.9:
            self.conn.send_text(frames.idle_frame(self.mode.token if self.mode is not None else None))
            self._last_sent = self.hs.reactor.seconds()

    async def _refresh_presence(self) -> None:
        """A connected client is online (unless it subscribed saying otherwise), as one
        that keeps syncing is."""
        if self.requester is None or self.mode is None or self.set_presence == "offline":
            return
        await self.hs.presence.set_state(self.requester.user_id, self.set_presence or "online", from_sync=True)

    def _crashed(self, failure: Failure) -> None:
        logger.error("websocket session failed: %s", failure.getTraceback())
        self.close(CloseCode.INTERNAL_ERROR, "internal error", MatrixError(500, "M_UNKNOWN", "Internal server error"))

    def __repr__(self) -> str:
        who = self.requester.user_id if self.requester is not None else "?"
        return f"<Session {who} {self.mode.name if self.mode else '-'}>"
