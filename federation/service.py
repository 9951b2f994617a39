"""``Federation`` (``hs.federation``, built and injected by ``app.py``): the one object
that builds and owns every part of federation, and the homeserver's ``FederationAPI``.

It is also the client (``FederationClient``: ``request`` and one method per endpoint
of another server). Parts reach each other through it (``fed.request``,
``fed.keyring``, ``fed.ingest``, ``fed.sender``...), never through attributes set on
the HomeServer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.tcp import Port

from federation.client import FederationClient
from federation.destinations import RoomServers
from federation.edus.outbound import OutboundEdus
from federation.keyring import Keyring
from federation.keys_server import register_key_servlets
from federation.media import MediaClient
from federation.queries.endpoints import QueryEndpoints
from federation.queries.hierarchy import HierarchyEndpoint
from federation.queries.outbound import OutboundQueries
from federation.rooms.endpoints import register_room_endpoints
from federation.rooms.history import FederationHistory
from federation.rooms.ingest import FederationEventHandler
from federation.rooms.membership import FederationMembership
from federation.sender.ordered_work import OrderedWork
from federation.sender.pdu_fanout import PduFanout
from federation.sender.queue import FederationSender
from federation.transactions import TransactionReceiver
from federation.transport.client import FederationTransport
from federation.transport.server import InboundRequests, start_federation_listener, stop_federation_listener
from homeserver.events.event import Event
from homeserver.federation_api import RouteHandler

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.media.records import RemoteMedia

logger = logging.getLogger(__name__)


class Federation(FederationClient):
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        # Talking to other servers: signed requests (FederationClient), their keys.
        super().__init__(FederationTransport(hs))
        self.keyring = Keyring(hs, self.transport)
        self.queries = OutboundQueries(self)
        # Sending: per-destination transaction queues, fed by the PDU fan-out (a listener
        # of the event persister) and the outbound EDUs (listeners of typing, receipts,
        # presence), in the order things happened.
        self.sender = FederationSender(hs, self.transport)
        self.room_servers = RoomServers(hs)
        self.outbound_work = OrderedWork()
        self.pdu_fanout = PduFanout(hs, self.sender, self.room_servers, self.outbound_work)
        self.outbound_edus = OutboundEdus(hs, self.sender, self.room_servers, self.outbound_work)
        # Receiving: X-Matrix authentication, transactions (PDUs into rooms, EDUs),
        # membership handshakes, history, queries.
        self.inbound = InboundRequests(hs, self)
        self.transactions = TransactionReceiver(hs, self)
        self.ingest = FederationEventHandler(hs, self)
        self.membership = FederationMembership(hs, self)
        self.history = FederationHistory(hs, self)
        # Media of other servers, for hs.media (federation/media.py).
        self.media = MediaClient(self)
        self.listener: Port | None = None
        self._register_endpoints()

    def _register_endpoints(self) -> None:
        register_key_servlets(self.hs, self)
        self.transactions.register()
        QueryEndpoints(self.hs).register(self.inbound)
        HierarchyEndpoint(self.hs, self.room_servers).register(self.inbound)
        register_room_endpoints(self.hs, self)

    # -- lifecycle (``wspr run``'s startup and shutdown hooks) ------------------------------

    async def start(self) -> None:
        if self.hs.config.federation_listener.enabled:
            self.listener = start_federation_listener(self.hs)
        if self.hs.config.federation.enabled:
            await self.sender.start()

    async def stop(self) -> None:
        await self.sender.stop()
        port, self.listener = self.listener, None
        if port is not None:
            await stop_federation_listener(port)
        await self.transport.close()

    @property
    def listening_port(self) -> int | None:
        """The port the TLS listener is bound to (None when not listening)."""
        return self.listener.getHost().port if self.listener is not None else None

    # -- FederationAPI (query_user_keys, claim_user_keys, openid_userinfo: FederationClient) ---

    async def remote_join(self, room_id: str, user_id: str, servers: list[str], content: dict[str, Any]) -> str:
        return await self.membership.remote_join(room_id, user_id, servers, content)

    async def remote_leave(self, room_id: str, user_id: str, servers: list[str], content: dict[str, Any]) -> None:
        await self.membership.remote_leave(room_id, user_id, servers, content)

    async def remote_knock(self, room_id: str, user_id: str, servers: list[str], content: dict[str, Any]) -> str:
        return await self.membership.remote_knock(room_id, user_id, servers, content)

    async def countersign_invite(self, event: Event) -> Event:
        return await self.membership.countersign_invite(event)

    async def backfill(self, room_id: str, oldest_event_id: str | None) -> bool:
        return await self.history.backfill(room_id, oldest_event_id)

    async def remote_event_for_timestamp(self, room_id: str, ts: int, direction: str) -> tuple[str, int] | None:
        return await self.history.remote_event_for_timestamp(room_id, ts, direction)

    async def resolve_remote_alias(self, alias: str) -> tuple[str, list[str]]:
        return await self.queries.resolve_alias(alias)

    async def remote_profile(self, user_id: str) -> dict[str, Any]:
        return await self.queries.profile(user_id)

    async def remote_public_rooms(self, server: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.queries.public_rooms(server, body)

    def send_edu(self, destination: str, edu_type: str, content: dict[str, Any]) -> None:
        self.sender.send_edu(destination, edu_type, content)

    async def fetch_remote_media(
        self, server_name: str, media_id: str, sink: Callable[[bytes], object], max_size: int, timeout_s: float
    ) -> RemoteMedia:
        return await self.media.download(server_name, media_id, sink, max_size, timeout_s)

    async def fetch_remote_thumbnail(
        self,
        server_name: str,
        media_id: str,
        width: int,
        height: int,
        method: str,
        sink: Callable[[bytes], object],
        max_size: int,
        timeout_s: float,
    ) -> RemoteMedia | None:
        return await self.media.thumbnail(server_name, media_id, width, height, method, sink, max_size, timeout_s)

    def authenticated(self, handler: RouteHandler) -> RouteHandler:
        return self.inbound.authenticated(handler)
