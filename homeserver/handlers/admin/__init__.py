"""What the admin API does (``hs.admin``): the logic behind ``homeserver/rest/admin``.

``hs.admin.users``, ``.rooms``, ``.media``, ``.reports``, ``.registration_tokens`` and
``.notices``; each admin action that changes something is recorded in the audit log
(``hs.audit``) with the admin who did it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeserver.handlers.admin.media import AdminMediaHandler
from homeserver.handlers.admin.notices import ServerNoticesHandler
from homeserver.handlers.admin.registration_tokens import RegistrationTokensHandler
from homeserver.handlers.admin.reports import AdminReportsHandler
from homeserver.handlers.admin.rooms import AdminRoomsHandler
from homeserver.handlers.admin.users import AdminUsersHandler

if TYPE_CHECKING:
    from homeserver.app import HomeServer


class AdminHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.users = AdminUsersHandler(hs)
        self.rooms = AdminRoomsHandler(hs)
        self.media = AdminMediaHandler(hs)
        self.reports = AdminReportsHandler(hs)
        self.registration_tokens = RegistrationTokensHandler(hs)
        self.notices = ServerNoticesHandler(hs)

    async def start(self) -> None:
        await self.rooms.resume_deletes()

    async def stop(self) -> None:
        await self.rooms.wait_for_deletes()


__all__ = ["AdminHandler"]
