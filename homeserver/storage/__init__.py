"""Storage: every SQL statement of the server lives in this package."""

from __future__ import annotations

from homeserver.storage.account_data import AccountDataStore, FilterStore
from homeserver.storage.database import Database
from homeserver.storage.events import EventsStore, ThreadStore
from homeserver.storage.federation_rooms import FederationRoomStore
from homeserver.storage.federation import FederationStore
from homeserver.storage.migrations import prepare_database
from homeserver.storage.receipts import PresenceStore, ReceiptStore, ToDeviceStore
from homeserver.storage.rooms import RoomStore
from homeserver.storage.users import DeviceListStore, UserStore


class DataStore(
    UserStore,
    DeviceListStore,
    EventsStore,
    ThreadStore,
    FederationRoomStore,
    RoomStore,
    AccountDataStore,
    FilterStore,
    ReceiptStore,
    ToDeviceStore,
    PresenceStore,
    FederationStore,
):
    """All stores over one database. Each area's queries live in its own module."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._init_event_caches()


__all__ = ["DataStore", "Database", "prepare_database"]
