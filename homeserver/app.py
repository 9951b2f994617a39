"""The HomeServer object: builds every service once and wires them together.

Handlers reach each other through it (``hs.store``, ``hs.rooms``, ``hs.notifier``...),
so there is one instance of each service and one place to see them all.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from signedjson.key import SigningKey
from twisted.internet import defer, reactor as default_reactor
from twisted.internet.interfaces import IListeningPort

from homeserver.config import HomeServerConfig
from homeserver.http.server import Router, Site, close_listener
from homeserver.notifier import Notifier
from homeserver.protocol.signing import read_signing_keys
from homeserver.ratelimit import RateLimiter
from homeserver.storage import DataStore, Database, prepare_database
from homeserver.streams import Counter, StreamIdGenerator

logger = logging.getLogger(__name__)


class HomeServer:
    def __init__(self, config: HomeServerConfig, reactor: Any = None) -> None:
        self.config = config
        self.reactor = reactor or default_reactor
        self.server_name = config.server_name
        with open(config.signing_key_path, encoding="utf-8") as f:
            self.signing_key: SigningKey = read_signing_keys(f.read())[0]
        self.db = Database(config.database_url, self.reactor)
        self.store = DataStore(self.db)
        self.ratelimiter = RateLimiter(config.rate_limits)
        self.listening_ports: list[IListeningPort] = []
        self.client_router = Router()
        self.federation_router = Router()
        self._started = False
        # Optional services that later layers plug in (push rules, E2EE keys, federation).
        self.push: Any = None
        self.e2e_keys: Any = None
        self.federation: Any = None
        # Extra endpoint modules (SFU token service, media, keys...) and /.well-known additions.
        self.extra_servlets: list[Any] = []
        self.well_known_extra: dict[str, Any] = {}
        self.startup_hooks: list[Any] = []
        self.shutdown_hooks: list[Any] = []

    def setup(self) -> None:
        """Synchronous start-up work: schema migrations and service construction."""
        self.db.start()
        prepare_database(self.db)
        self._build_services()

    def _build_services(self) -> None:
        # Imported here so the module graph stays acyclic: handlers import app for typing only.
        from homeserver.handlers.account_data import AccountDataHandler
        from homeserver.handlers.auth import AuthHandler
        from homeserver.handlers.call_tokens import CallTokenHandler
        from homeserver.sfu_process import SFUProcess
        from homeserver.handlers.devices import DeviceHandler
        from homeserver.handlers.directory import DirectoryHandler
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
        from homeserver.handlers.sync import SyncHandler
        from homeserver.handlers.typing import TypingHandler
        from homeserver.handlers.visibility import VisibilityHandler

        self.rooms = RoomEventPipeline(self)
        self.notifier = Notifier(self.reactor, self.rooms.local_users_in_room)
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
        self.account_data = AccountDataHandler(self)
        self.receipts = ReceiptHandler(self)
        self.typing = TypingHandler(self)
        self.presence = PresenceHandler(self)
        self.sync = SyncHandler(self)
        self.openid = OpenIdHandler(self)
        self.push = _push_service(self)
        self.media = _media_service(self)
        self.user_directory = _user_directory_service(self)
        self.e2e_keys, self.to_device, self.room_keys = _e2e_services(self)
        self.call_tokens = CallTokenHandler(self)
        self.sfu_process = SFUProcess(self)
        self.startup_hooks.append(self.sfu_process.start)
        self.shutdown_hooks.append(self.sfu_process.stop)
        from federation.setup import setup_federation

        setup_federation(self)
        from federation.rooms import setup_federation_rooms

        setup_federation_rooms(self)

    async def start_services(self) -> None:
        ids = await self.store.get_max_ids()
        self.streams = StreamIdGenerator(ids["stream"])
        self.store.set_change_floor(ids["stream"])
        # Backfilled history takes negative stream positions so it never shows up as new in /sync.
        self.backfill_stream = Counter(ids["min_stream"] if ids["min_stream"] < 0 else 0, step=-1)
        self.state_group_ids = Counter(ids["state_group"])
        await self.rooms.load_local_joins()
        from homeserver.rest import register_client_servlets

        register_client_servlets(self, self.client_router)

    def listen(self) -> None:
        from homeserver.http.static import attach_web_client

        attach_web_client(self, self.client_router)
        lc = self.config.client_listener
        site = Site(self.client_router)
        site.displayTracebacks = False
        self.listening_ports.append(self.reactor.listenTCP(lc.port, site, interface=lc.bind_address))
        if self.config.metrics_listener.enabled:
            from homeserver.http.metrics import metrics_site

            ml = self.config.metrics_listener
            self.listening_ports.append(self.reactor.listenTCP(ml.port, metrics_site(), interface=ml.bind_address))
        logger.info("client API listening on http://%s:%d", lc.bind_address, lc.port)

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
        for port in self.listening_ports:
            await close_listener(port)
        self.listening_ports.clear()
        if hasattr(self, "typing"):
            self.typing.stop()
        self.db.close()

    @property
    def client_port(self) -> int:
        return self.listening_ports[0].getHost().port

    def is_mine(self, identifier: str) -> bool:
        return identifier.split(":", 1)[-1] == self.server_name if ":" in identifier else False


def ensure_dir(path: str) -> None:
    os.makedirs(path, exist_ok=True)


def _e2e_services(hs: HomeServer) -> tuple[Any, Any, Any]:
    from homeserver.handlers.e2e_keys import E2EKeysHandler
    from homeserver.handlers.e2e_room_keys import RoomKeysHandler
    from homeserver.handlers.to_device import ToDeviceHandler

    return E2EKeysHandler(hs), ToDeviceHandler(hs), RoomKeysHandler(hs)


def _push_service(hs: HomeServer) -> Any:
    from homeserver.handlers.push import PushHandler

    return PushHandler(hs)


def _media_service(hs: HomeServer) -> Any:
    from homeserver.media import MediaHandler

    return MediaHandler(hs)


def _user_directory_service(hs: HomeServer) -> Any:
    from homeserver.handlers.user_directory import UserDirectoryHandler

    return UserDirectoryHandler(hs)
