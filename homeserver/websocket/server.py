"""The WebSocket side of a socket (autobahn on Twisted): takes over the HTTP connection of
an upgrade request and hands frames to its ``Session``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet.interfaces import IConsumer
from twisted.web.server import Request

from homeserver.http.request import MAX_JSON_BODY
from homeserver.http.server import Site, client_ip
from homeserver.websocket.session import Session

if TYPE_CHECKING:
    from homeserver.handlers.auth import Requester
    from homeserver.websocket.hub import WebSocketHub

logger = logging.getLogger(__name__)

# After the server's close frame, how long the client has to answer it before the
# connection is dropped (a slow client still reading its backlog gets this long).
CLOSE_HANDSHAKE_TIMEOUT_S = 5


@dataclass
class _Upgrade:
    requester: Requester | None
    access_token: str | None
    client_ip: str
    user_agent: str


class StreamProtocol(WebSocketServerProtocol):
    session: Session | None = None
    _upgrade: _Upgrade | None = None
    _incoming = 0  # bytes of the client message being received

    def onOpen(self) -> None:
        upgrade = self._upgrade
        self._upgrade = None
        assert upgrade is not None
        hub: WebSocketHub = self.factory.hub
        session = Session(hub, self, upgrade.requester, upgrade.access_token, upgrade.client_ip, upgrade.user_agent)
        self.session = session
        # Twisted tells the session when the TCP send buffer fills and drains.
        cast(IConsumer, self.transport).registerProducer(session, True)
        hub.opened(session)
        session.opened()

    def onMessageBegin(self, isBinary: bool) -> None:
        self._incoming = 0
        super().onMessageBegin(isBinary)

    def onMessageFrameBegin(self, length: int) -> None:
        self._incoming += length
        if self._incoming > MAX_JSON_BODY:
            # Only a hostile client fragments a message past this: no close handshake.
            self.dropConnection(abort=True)
            return
        super().onMessageFrameBegin(length)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.session is not None:
            self.session.frame_received(payload, isBinary)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if self.session is not None:
            self.session.connection_lost()
            self.session = None

    # -- the session's Connection --------------------------------------------------

    def send_text(self, data: bytes) -> None:
        if self.state == WebSocketServerProtocol.STATE_OPEN:
            self.sendMessage(data, isBinary=False)

    def close(self, code: int, reason: str) -> None:
        if self.state != WebSocketServerProtocol.STATE_OPEN:
            return
        if code in (1001, 1011):
            # RFC 6455 has an endpoint send these (going away, internal error); autobahn's
            # sendClose takes only 1000 and 3000-4999 from applications.
            self.sendCloseFrame(code=int(code), reasonUtf8=reason.encode("utf-8")[:123])
        else:
            self.sendClose(int(code), reason)

    def abort(self) -> None:
        self.dropConnection(abort=True)


class StreamFactory(WebSocketServerFactory):
    protocol = StreamProtocol

    def __init__(self, hub: WebSocketHub) -> None:
        super().__init__()
        self.hub = hub
        config = hub.config
        self.setProtocolOptions(
            # Client frames are small (a sliding sync body at most): bounded as HTTP bodies
            # are. autobahn applies its message limit to what it sends too, so messages
            # (fragmented ones) are bounded in onMessageFrameBegin instead.
            maxMessagePayloadSize=0,
            maxFramePayloadSize=MAX_JSON_BODY,
            autoPingInterval=config.heartbeat_ms / 1000,
            autoPingTimeout=config.ping_timeout_ms / 1000,
            closeHandshakeTimeout=CLOSE_HANDSHAKE_TIMEOUT_S,
            openHandshakeTimeout=30,
            # No permessage-deflate: its zlib contexts would cost ~300 KiB a socket.
            perMessageCompressionAccept=None,
        )
        self._resource = WebSocketResource(self)
        self._pending: _Upgrade | None = None

    def buildProtocol(self, addr: Any) -> StreamProtocol:
        proto = cast(StreamProtocol, super().buildProtocol(addr))
        proto._upgrade = self._pending
        self._pending = None
        return proto

    def upgrade(self, request: Request, requester: Requester | None, access_token: str | None) -> None:
        # The connection (TCP, or TLS over it): its protocol is the HTTP channel, and it is
        # the consumer the channel registered as a producer with.
        transport: Any = request.channel.transport
        http_protocol = transport.protocol
        # The HTTP channel stops watching the connection's send buffer: the socket's
        # session does from now on.
        transport.unregisterProducer()
        user_agent = (request.getHeader(b"User-Agent") or b"").decode("utf-8", "replace")[:512]
        self._pending = _Upgrade(requester, access_token, client_ip(request), user_agent)
        try:
            # Answers the handshake and opens the socket, synchronously.
            self._resource.render(request)
        finally:
            self._pending = None
        site = getattr(request, "site", None)
        if isinstance(site, Site):
            site.connection_upgraded(http_protocol)
