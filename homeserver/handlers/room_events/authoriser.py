"""Authorising an event: the auth rules of its room version against a state (for a
local event, the in-memory current state plus events of the same batch not yet stored).
Raises ``auth_rules.AuthError``; the pipeline turns it into 403 M_FORBIDDEN. The
federation layer uses it too: for ``make_join`` templates, and for received events
against the state before them and the current state."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from homeserver.events.event import Event
from homeserver.protocol import auth_rules
from homeserver.protocol.room_versions import RoomVersion
from homeserver.storage.events import StateMap

if TYPE_CHECKING:
    from homeserver.storage import DataStore


class EventAuthoriser:
    def __init__(self, store: DataStore) -> None:
        self.store = store

    async def check(
        self,
        pdu: Mapping[str, Any],
        version: RoomVersion,
        state: StateMap,
        built: Mapping[str, Event] | None = None,
        *,
        allow_rejected: bool = False,
    ) -> None:
        """``pdu`` (with its ``event_id``) against ``state``; ``built`` holds events the
        state may name that are not in storage yet. ``allow_rejected``: a state from
        another server may name events we stored as rejected (they count as they are)."""
        keys = auth_rules.auth_state_keys_for_event(pdu, version)
        ids = {k: state[k] for k in keys if k in state}
        fetched: dict[str, Event] = {}
        if built:
            fetched = {i: built[i] for i in ids.values() if i in built}
        missing = [i for i in ids.values() if i not in fetched]
        if missing:
            fetched.update(await self.store.get_events(missing, allow_rejected=allow_rejected))
        auth_events = {k: fetched[i].with_event_id() for k, i in ids.items() if i in fetched}
        auth_rules.check_auth_rules(pdu, auth_events, version)
