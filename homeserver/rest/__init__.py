"""HTTP endpoints. Each module parses and validates requests, then calls a handler."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeserver.http.server import Router

if TYPE_CHECKING:
    from homeserver.app import HomeServer


def register_client_servlets(hs: "HomeServer", router: Router) -> None:
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
        room_keys,
        rooms,
        sync,
        to_device,
        user_directory,
        versions,
    )

    for module in (versions, account, devices, profile, rooms, events, sync, directory, account_data, presence, filters, push_rules, media, matrixrtc, keys, room_keys, to_device, user_directory, compat, admin):
        module.register(hs, router)
    for extra in hs.extra_servlets:
        extra(hs, router)
