"""Storage: every SQL statement of the server lives in this package."""

from __future__ import annotations

from homeserver.storage.account_data import AccountDataStore, FilterStore
from homeserver.storage.admin import AdminStore
from homeserver.storage.audit import AuditStore
from homeserver.storage.change_cache import StreamChangeCache
from homeserver.storage.client_ips import ClientIpStore
from homeserver.storage.database import Database
from homeserver.storage.e2e_keys import E2EKeysStore
from homeserver.storage.e2e_room_keys import E2ERoomKeysStore
from homeserver.storage.events import EventsStore, ThreadStore
from homeserver.storage.federation import FederationStore
from homeserver.storage.federation_rooms import FederationRoomStore
from homeserver.storage.media import MediaStore
from homeserver.storage.migrations import prepare_database
from homeserver.storage.push import PushStore
from homeserver.storage.receipts import PresenceStore, ReceiptStore, ToDeviceStore
from homeserver.storage.reports import ReportStore
from homeserver.storage.rooms import RoomStore
from homeserver.storage.search import SearchStore
from homeserver.storage.sessions import SessionStore
from homeserver.storage.sign_in_factors import SignInFactorStore
from homeserver.storage.sliding_sync import SlidingSyncStore
from homeserver.storage.threepids import ThreepidStore
from homeserver.storage.user_directory import UserDirectoryStore
from homeserver.storage.users import DeviceListStore, UserStore


class DataStore(
    UserStore,
    SessionStore,
    DeviceListStore,
    # before EventsStore: it wraps EventsStore's persist transaction for remote events
    FederationRoomStore,
    EventsStore,
    ThreadStore,
    RoomStore,
    AccountDataStore,
    FilterStore,
    ReceiptStore,
    ToDeviceStore,
    PresenceStore,
    E2EKeysStore,
    E2ERoomKeysStore,
    FederationStore,
    PushStore,
    MediaStore,
    UserDirectoryStore,
    SlidingSyncStore,
    SearchStore,
    ReportStore,
    ClientIpStore,
    AdminStore,
    AuditStore,
    ThreepidStore,
    SignInFactorStore,
):
    """All stores over one database. Each area's queries live in its own module."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._init_event_caches()
        self._init_sliding_sync_caches()
        # In-memory "what changed after position N" for the /sync hot path.
        self.receipts_changes = StreamChangeCache()  # by room
        self.account_data_changes = StreamChangeCache()  # by user
        self.presence_changes = StreamChangeCache()  # by user
        self.device_list_changes = StreamChangeCache()  # by user
        self.membership_changes = StreamChangeCache()  # by local user
        self.room_member_changes = StreamChangeCache()  # by room
        self.to_device_changes = StreamChangeCache()  # by (user, device)

    def set_change_floor(self, position: int) -> None:
        """Called at start with the current stream position: earlier changes are unknown."""
        for cache in (
            self.receipts_changes,
            self.account_data_changes,
            self.presence_changes,
            self.device_list_changes,
            self.membership_changes,
            self.room_member_changes,
            self.to_device_changes,
        ):
            cache.floor = cache.max = position
        self.relations_floor = position
        self.recent_floor = position


__all__ = ["DataStore", "Database", "prepare_database"]
