"""HTTP endpoints. Each module parses and validates requests, then calls a handler."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeserver.http.server import Router

if TYPE_CHECKING:
    from homeserver.app import HomeServer


def register_client_servlets(hs: HomeServer, router: Router) -> None:
    from homeserver.oauth import rest as oauth_rest

    # First: with password_login: oauth_only it answers the legacy sign-in endpoints
    # (as Synapse with MAS does), ahead of the modules that serve them otherwise.
    oauth_rest.register(hs, router)
    from homeserver.rest import admin
    from homeserver.rest.client import (
        account,
        account_data,
        compat,
        devices,
        directory,
        events,
        filters,
        keys,
        matrixrtc,
        media,
        presence,
        profile,
        push_rules,
        reports,
        room_keys,
        rooms,
        search,
        sliding_sync,
        sync,
        to_device,
        user_directory,
        versions,
        websocket,
    )
    from homeserver.rest.client import admin as client_admin

    for module in (versions, account, devices, profile, rooms, events, sync, sliding_sync, directory, account_data, presence, filters, push_rules, media, matrixrtc, keys, room_keys, to_device, user_directory, compat, admin, search, reports, client_admin, websocket):
        module.register(hs, router)
    from homeserver.rest.client import events_stream, initial_sync

    for legacy in (initial_sync, events_stream):
        legacy.register(hs, router)
    from homeserver.push_gateway import rest as push_gateway

    # WSPR's Web Push gateway (/_wspr/push/v1/...)
    push_gateway.register(hs, router)
    for extra in hs.extra_servlets:
        extra(hs, router)
