"""HTTP for sign-in: the OAuth 2.0 API's endpoints and the sign-in and account pages."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeserver.http.server import Router

if TYPE_CHECKING:
    from homeserver.app import HomeServer


def register(hs: HomeServer, router: Router) -> None:
    from homeserver.oauth.rest import endpoints, pages

    endpoints.register(hs, router)
    if hs.config.auth.oauth_enabled:
        pages.register(hs, router)
