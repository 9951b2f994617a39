"""The admin API: Synapse's ``/_synapse/admin/v1|v2|v3`` paths and formats, so that the
tools written for Synapse (synadm, synapse-admin, provisioning scripts) work with WSPR,
and WSPR's own ``/_wspr/admin/v1`` (the audit log). Every endpoint but shared-secret
registration and the server version needs a server admin's access token (the
``users.is_admin`` flag: ``wspr register --admin``); anyone else gets Synapse's 403
``M_FORBIDDEN`` "You are not a server admin". The logic is in ``homeserver/handlers/admin``.

``/_synapse/admin/v1/whois/{userId}`` is served with the client API's whois
(rest/client/admin.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeserver.http.server import Router

if TYPE_CHECKING:
    from homeserver.app import HomeServer


def register(hs: HomeServer, router: Router) -> None:
    from homeserver.rest.admin import audit, media, registration, registration_tokens, reports, rooms, server, users

    for module in (registration, users, rooms, media, reports, registration_tokens, server, audit):
        module.register(hs, router)
