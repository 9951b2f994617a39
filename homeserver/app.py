"""The HomeServer object: builds every service once and wires them together.

Handlers reach each other through it (``hs.store``, ``hs.rooms``, ``hs.notifier``...),
so there is one instance of each service and one place to see them all. It is the
composition root: the only place that builds the federation layer
(``federation.service.Federation``), which the homeserver knows only as a
``FederationAPI``, and that wires the listeners (what runs when events are persisted,
when a user types, reads or changes presence).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from signedjson.key import SigningKey
from twisted.internet import reactor as default_reactor
from twisted.internet.interfaces import IListeningPort

from homeserver.config import HomeServerConfig
from homeserver.http.request import MAX_FEDERATION_BODY
from homeserver.http.server import Router, close_listener
from homeserver.notifier import Notifier
from homeserver.protocol.identifiers import server_name_of
from homeserver.protocol.signing import read_signing_keys
from homeserver.ratelimit import RateLimiter
from homeserver.storage import Database, DataStore, prepare_database
from homeserver.streams import Counter, StreamIdGenerator

if TYPE_CHECKING:
    from twisted.internet.address import IPv4Address, IPv6Address

    from homeserver.federation_api import FederationAPI
    from homeserver.handlers.account_data import AccountDataHandler
    from homeserver.handlers.admin import AdminHandler
    from homeserver.handlers.audit import AuditLog
    from homeserver.handlers.auth import AuthHandler
    from homeserver.handlers.call_tokens import CallTokenHandler
    from homeserver.handlers.devices import DeviceHandler
    from homeserver.handlers.directory import DirectoryHandler
    from homeserver.handlers.e2e_keys import E2EKeysHandler
    from homeserver.handlers.e2e_room_keys import RoomKeysHandler
    from homeserver.handlers.event_stream import EventStreamHandler
    from homeserver.handlers.guests import GuestAccessHandler
    from homeserver.handlers.initial_sync import InitialSyncHandler
    from homeserver.handlers.login import LoginHandler
    from homeserver.handlers.membership import MembershipHandler
    from homeserver.handlers.messages import MessageHandler
    from homeserver.handlers.openid import OpenIdHandler
    from homeserver.handlers.presence import PresenceHandler
    from homeserver.handlers.profile import ProfileHandler
    from homeserver.handlers.receipts import ReceiptHandler
    from homeserver.handlers.registration import RegistrationHandler
    from homeserver.handlers.relations import RelationsHandler
    from homeserver.handlers.room_creation import RoomCreationHandler
    from homeserver.handlers.room_events import RoomEventPipeline
    from homeserver.handlers.room_hierarchy import RoomHierarchyHandler
    from homeserver.handlers.sliding_sync import SlidingSyncHandler
    from homeserver.handlers.sync import SyncHandler
    from homeserver.handlers.to_device import ToDeviceHandler
    from homeserver.handlers.typing import TypingHandler
    from homeserver.handlers.user_directory import UserDirectoryHandler
    from homeserver.handlers.visibility import VisibilityHandler
    from homeserver.media import MediaHandler
    from homeserver.oauth.accounts import AccountPages
    from homeserver.push.notifications import NotificationsHandler
    from homeserver.push.push_actions import PushActionsHandler
    from homeserver.push.pusher_pool import PusherPool
    from homeserver.push.rules import PushRulesHandler
    from homeserver.sfu_process import SFUProcess
    from homeserver.websocket.hub import WebSocketHub

logger = logging.getLogger(__name__)

LifecycleHook = Callable[[], Awaitable[None]]


class HomeServer:
    # Services, built by setup() (see _build_services for the order).
    rooms: RoomEventPipeline
    notifier: Notifier
    audit: AuditLog
    auth: AuthHandler
    devices: DeviceHandler
    login: LoginHandler
    registration: RegistrationHandler
    profile: ProfileHandler
    visibility: VisibilityHandler
    room_creation: RoomCreationHandler
    membership: MembershipHandler
    messages: MessageHandler
    relations: RelationsHandler
    directory: DirectoryHandler
    # Spaces: GET /rooms/{roomId}/hierarchy.
    room_hierarchy: RoomHierarchyHandler
    guests: GuestAccessHandler
    # The deprecated /initialSync, /rooms/{roomId}/initialSync and /events.
    initial_sync: InitialSyncHandler
    event_stream: EventStreamHandler
    account_data: AccountDataHandler
    receipts: ReceiptHandler
    typing: TypingHandler
    presence: PresenceHandler
    sync: SyncHandler
    sliding_sync: SlidingSyncHandler
    # The WebSocket stream's sockets (homeserver/websocket/)
    websocket: WebSocketHub
    openid: OpenIdHandler
    federation: FederationAPI
    push_rules: PushRulesHandler
    push_actions: PushActionsHandler
    notifications: NotificationsHandler
    pushers: PusherPool
    media: MediaHandler
    user_directory: UserDirectoryHandler
    e2e_keys: E2EKeysHandler
    to_device: ToDeviceHandler
    room_keys: RoomKeysHandler
    call_tokens: CallTokenHandler
    sfu_process: SFUProcess
    admin: AdminHandler
    # The account pages (sign-in sessions, password, e-mail) behind the OAuth 2.0 server.
    account_pages: AccountPages
    # Positions, built by start_services() from what storage holds.
    streams: StreamIdGenerator
    backfill_stream: Counter
    state_group_ids: Counter

    def __init__(self, config: HomeServerConfig, reactor: Any = None) -> None:
        self.config = config
        # Twisted's reactor or a test's (a Clock, a MemoryReactor): no one interface covers all
        # that is asked of it (TCP, time, threads, name resolution, system events).
        self.reactor: Any = reactor or cast(Any, default_reactor)
        self.server_name = config.server_name
        with open(config.signing_key_path, encoding="utf-8") as f:
            self.signing_key: SigningKey = read_signing_keys(f.read())[0]
        self.db = Database(config.database_url, self.reactor, synchronous=config.database_synchronous)
        self.store = DataStore(self.db)
        self.ratelimiter = RateLimiter(config.rate_limits)
        self.listening_ports: list[IListeningPort] = []
        self.client_router = Router()
        self.federation_router = Router(max_body=MAX_FEDERATION_BODY)
        self._started = False
        self._services_built = False
        # Extra endpoint modules (``fn(hs, router)``) and /.well-known additions.
        self.extra_servlets: list[Callable[[HomeServer, Router], None]] = []
        self.well_known_extra: dict[str, Any] = {}
        # What ``wspr run`` starts after the client API, and stops at shutdown (in reverse).
        self.startup_hooks: list[LifecycleHook] = []
        self.shutdown_hooks: list[LifecycleHook] = []

    def setup(self) -> None:
        """Synchronous start-up work: schema migrations and service construction."""
        self.db.start()
        prepare_database(self.db)
        self._build_services()

    def _build_services(self) -> None:
        # Imported here so the module graph stays acyclic: handlers import app for typing only.
        from federation.service import Federation
        from homeserver.handlers.account_data import AccountDataHandler
        from homeserver.handlers.admin import AdminHandler
        from homeserver.handlers.audit import AuditLog
        from homeserver.handlers.auth import AuthHandler
        from homeserver.handlers.call_tokens import CallTokenHandler
        from homeserver.handlers.devices import DeviceHandler
        from homeserver.handlers.directory import DirectoryHandler
        from homeserver.handlers.e2e_keys import E2EKeysHandler
        from homeserver.handlers.e2e_room_keys import RoomKeysHandler
        from homeserver.handlers.event_stream import EventStreamHandler
        from homeserver.handlers.guests import GuestAccessHandler
        from homeserver.handlers.initial_sync import InitialSyncHandler
        from homeserver.handlers.login import LoginHandler
        from homeserver.handlers.membership import MembershipHandler
        from homeserver.handlers.messages import MessageHandler
        from homeserver.handlers.openid import OpenIdHandler
        from homeserver.handlers.presence import PresenceHandler
        from homeserver.handlers.profile import ProfileHandler
        from homeserver.handlers.receipts import ReceiptHandler
        from homeserver.handlers.registration import RegistrationHandler
        from homeserver.handlers.relations import RelationsHandler
        from homeserver.handlers.room_creation import RoomCreationHandler
        from homeserver.handlers.room_events import RoomEventPipeline
        from homeserver.handlers.room_hierarchy import RoomHierarchyHandler
        from homeserver.handlers.sliding_sync import SlidingSyncHandler
        from homeserver.handlers.sync import SyncHandler
        from homeserver.handlers.to_device import ToDeviceHandler
        from homeserver.handlers.typing import TypingHandler
        from homeserver.handlers.user_directory import UserDirectoryHandler
        from homeserver.handlers.visibility import VisibilityHandler
        from homeserver.media import MediaHandler
        from homeserver.push.notifications import NotificationsHandler
        from homeserver.push.push_actions import PushActionsHandler
        from homeserver.push.pusher_pool import PusherPool
        from homeserver.push.rules import PushRulesHandler
        from homeserver.sfu_process import SFUProcess

        self.rooms = RoomEventPipeline(self)
        self.notifier = Notifier(self.reactor, self.rooms.local_users_in_room)
        self.audit = AuditLog(self)
        self.auth = AuthHandler(self)
        self.devices = DeviceHandler(self)
        self.login = LoginHandler(self)
        self.registration = RegistrationHandler(self)
        self.profile = ProfileHandler(self)
        self.visibility = VisibilityHandler(self)
        self.room_creation = RoomCreationHandler(self)
        self.membership = MembershipHandler(self)
        self.messages = MessageHandler(self)
        self.relations = RelationsHandler(self)
        self.directory = DirectoryHandler(self)
        self.room_hierarchy = RoomHierarchyHandler(self)
        self.guests = GuestAccessHandler(self)
        self.initial_sync = InitialSyncHandler(self)
        self.event_stream = EventStreamHandler(self)
        self.account_data = AccountDataHandler(self)
        self.receipts = ReceiptHandler(self)
        self.typing = TypingHandler(self)
        self.presence = PresenceHandler(self)
        self.sync = SyncHandler(self)
        self.sliding_sync = SlidingSyncHandler(self)
        self.openid = OpenIdHandler(self)
        federation = Federation(self)
        self.federation = federation
        self.push_rules = PushRulesHandler(self)
        self.push_actions = PushActionsHandler(self)
        self.notifications = NotificationsHandler(self)
        self.pushers = PusherPool(self)
        self.media = MediaHandler(self)
        self.user_directory = UserDirectoryHandler(self)
        self.e2e_keys = E2EKeysHandler(self)
        self.to_device = ToDeviceHandler(self)
        self.room_keys = RoomKeysHandler(self)
        self.call_tokens = CallTokenHandler(self)
        from homeserver.websocket.hub import WebSocketHub

        self.websocket = WebSocketHub(self)
        from homeserver.oauth.accounts import AccountPages
        from homeserver.oauth.login_flow import LoginFlow
        from homeserver.oauth.provider import OAuthProvider

        # The OAuth 2.0 API, the sign-in state machine (extension points for second
        # factors: homeserver/oauth/login_flow.py) and the account pages.
        self.oauth = OAuthProvider(self)
        self.login_flow = LoginFlow(self)
        self.account_pages = AccountPages(self)
        from homeserver.oauth.factors import SignInFactors

        # Second factors, passkeys, OPAQUE and e-mail, and their steps in the login flow.
        self.sign_in_factors = SignInFactors(self)
        self.sign_in_factors.install(self.login_flow)
        self.sfu_process = SFUProcess(self)
        # The admin API (homeserver/rest/admin); the sign-in pages' steps go to the audit log.
        self.admin = AdminHandler(self)
        self.login_flow.listeners.append(self.audit.on_sign_in_step)
        self._services_built = True

        # What runs after new timeline events are committed, in this order.
        self.rooms.persister.listeners.extend([self.push_actions, self.user_directory, federation.pdu_fanout])
        # An invite from another server to a room we are not in rings like a local one.
        self.rooms.persister.outlier_membership_listeners.append(self.push_actions)
        # Guests leave rooms that stop allowing them (homeserver/handlers/guests.py).
        self.rooms.persister.listeners.append(self.guests)
        # /events requests peeking into a room wake on its events.
        self.rooms.persister.listeners.append(self.event_stream)
        # Our users' typing, public receipts and presence go to the servers sharing their rooms.
        self.typing.listeners.append(federation.outbound_edus.on_typing)
        self.receipts.listeners.append(federation.outbound_edus.on_receipt)
        self.presence.listeners.append(federation.outbound_edus.on_presence)
        # A device's pushers go with it (logout, deletion, a password change signing others out).
        self.devices.delete_hooks.append(self.pushers.on_devices_deleted)

        # Federation first: the SFU's start waits until its process listens (seconds).
        self.startup_hooks.append(federation.start)
        self.shutdown_hooks.append(federation.stop)
        self.startup_hooks.append(self.sfu_process.start)
        self.shutdown_hooks.append(self.sfu_process.stop)

    async def start_services(self) -> None:
        ids = await self.store.get_max_ids()
        self.streams = StreamIdGenerator(ids["stream"])
        self.store.set_change_floor(ids["stream"])
        # Backfilled history takes negative stream positions so it never shows up as new in /sync.
        self.backfill_stream = Counter(ids["min_stream"] if ids["min_stream"] < 0 else 0, step=-1)
        self.state_group_ids = Counter(ids["state_group"])
        await self.rooms.load_local_joins()
        # The revocation list is loaded before the first request is authenticated.
        await self.auth.sessions.start()
        # Room deletions that were running when the server stopped go on.
        await self.admin.start()
        # Pushers resume what they had left to send.
        await self.pushers.start()
        from homeserver.rest import register_client_servlets

        register_client_servlets(self, self.client_router)

    def listen(self) -> None:
        """Opens the plain-HTTP listeners (the client listener first: ``client_port``);
        raises ConfigError naming the listener when a port cannot be opened. The TLS
        federation listener is the federation's (``wspr run`` starts it afterwards)."""
        from homeserver.http.listeners import listen, listener_site
        from homeserver.http.static import attach_web_client

        attach_web_client(self, self.client_router)
        plain = [("listeners.client", self.config.client_listener)]
        if self.config.metrics_listener.enabled:
            plain.append(("listeners.metrics", self.config.metrics_listener))
        for key, listener in plain:
            self.listening_ports.append(listen(self, key, listener, listener_site(self, listener)))
            logger.info("%s listening on http://%s:%d (%s)", key, listener.bind_address, listener.port, ", ".join(listener.resources))

    async def start(self) -> None:
        self.setup()
        await self.start_services()
        self.listen()
        self._started = True

    async def start_extras(self) -> None:
        """Services beyond the client API that ``wspr run`` starts (federation, SFU)."""
        for fn in self.startup_hooks:
            await fn()

    async def stop_extras(self) -> None:
        for fn in reversed(self.shutdown_hooks):
            try:
                await fn()
            except Exception:
                logger.exception("shutdown hook failed")

    async def stop(self) -> None:
        if self._services_built:
            # WebSocket clients get a close frame (1001) and reconnect with their token.
            await self.websocket.stop()
        for port in self.listening_ports:
            await close_listener(port)
        self.listening_ports.clear()
        if self._services_built:
            self.notifier.stop()
            self.typing.stop()
            await self.pushers.stop()
            await self.media.stop()
            await self.admin.stop()
            await self.auth.sessions.stop()
        self.db.close()

    @property
    def client_port(self) -> int:
        return cast("IPv4Address | IPv6Address", self.listening_ports[0].getHost()).port

    def is_mine(self, identifier: str) -> bool:
        return server_name_of(identifier) == self.server_name


def ensure_dir(path: str) -> None:
    os.makedirs(path, exist_ok=True)
