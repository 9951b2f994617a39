"""Federation of rooms: receiving and validating PDUs, membership handshakes, history.

``setup_federation_rooms(hs)`` builds the services and plugs them into the homeserver's
hooks (``hs.federation_events`` for PUT /send, ``hs.membership.remote_*``,
``hs.messages.backfill``) and registers the federation endpoints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from homeserver.app import HomeServer


def setup_federation_rooms(hs: "HomeServer") -> None:
    from federation.rooms.endpoints import register_room_endpoints
    from federation.rooms.history import FederationHistory
    from federation.rooms.ingest import FederationEventHandler
    from federation.rooms.membership import FederationMembership

    hs.federation_events = FederationEventHandler(hs)  # type: ignore[attr-defined]
    hs.federation_membership = FederationMembership(hs)  # type: ignore[attr-defined]
    hs.federation_history = FederationHistory(hs)  # type: ignore[attr-defined]
    members = hs.federation_membership
    hs.membership.remote_join = members.remote_join
    hs.membership.remote_invite = members.remote_invite
    hs.membership.remote_leave = members.remote_leave
    hs.membership.remote_knock = members.remote_knock
    hs.messages.backfill = hs.federation_history.backfill
    register_room_endpoints(hs)
