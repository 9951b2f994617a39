"""The audit log (``hs.audit``): security events kept in the database for admins, read at
``GET /_wspr/admin/v1/audit_log``.

Record an event with ``await hs.audit.record(AuditEvent.X, user_id, actor, ip, details)``:
``user_id`` is the account it concerns, ``actor`` who did it (the user, an admin, or None
for the server itself), ``ip`` and ``user_agent`` where the request came from, ``details``
a small JSON object (never a secret: no password, token or code). Recording never fails
the action it describes: a database error is logged and swallowed.

Where events are recorded: /login (``handlers/login.py``), password changes
(``rest/client/account.py``), device deletions (``handlers/devices.py``), every admin API
action that changes something (``rest/admin/``), and the sign-in pages' steps (wired in
``app.py`` to ``LoginFlow.listeners``). MFA and OAuth code records its own events with
the members below.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from homeserver.storage.audit import AuditEntry, AuditQuery
from homeserver.util.ids import now_ms

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester

logger = logging.getLogger(__name__)


class AuditEvent(str, Enum):
    """What happened. Values are dotted names: ``GET /audit_log?event_type=login.``
    (with the trailing dot) selects a whole family."""

    # sign-ins (legacy /login, the sign-in pages, the OAuth 2.0 API)
    LOGIN = "login.success"
    LOGIN_FAILED = "login.failure"
    SIGN_IN_STEP = "login.step"
    OAUTH_SIGN_IN = "login.oauth"
    # passwords
    PASSWORD_CHANGED = "password.change"
    PASSWORD_RESET = "password.reset"
    # devices and sessions
    DEVICES_DELETED = "device.delete"
    # second factors (MFA code records these)
    MFA_ENROLLED = "mfa.enrol"
    MFA_REMOVED = "mfa.remove"
    MFA_FAILED = "mfa.failure"
    RECOVERY_CODE_USED = "mfa.recovery_code"
    # admin API actions
    ADMIN_USER_CREATED = "admin.user.create"
    ADMIN_USER_MODIFIED = "admin.user.modify"
    ADMIN_USER_DEACTIVATED = "admin.user.deactivate"
    ADMIN_PASSWORD_RESET = "admin.user.reset_password"
    ADMIN_SET_ADMIN = "admin.user.set_admin"
    ADMIN_LOGIN_AS_USER = "admin.user.login"
    ADMIN_DEVICES_DELETED = "admin.user.delete_devices"
    ADMIN_DEVICE_UPDATED = "admin.user.update_device"
    ADMIN_ROOM_DELETED = "admin.room.delete"
    ADMIN_ROOM_BLOCKED = "admin.room.block"
    ADMIN_MEDIA_QUARANTINED = "admin.media.quarantine"
    ADMIN_MEDIA_PROTECTED = "admin.media.protect"
    ADMIN_MEDIA_DELETED = "admin.media.delete"
    ADMIN_EVENT_REPORT_DELETED = "admin.event_report.delete"
    ADMIN_REGISTRATION_TOKEN = "admin.registration_token"
    ADMIN_SERVER_NOTICE = "admin.server_notice"


@dataclass(frozen=True)
class Actor:
    """Who did something, and from where."""

    user_id: str | None
    ip: str = ""
    user_agent: str = ""

    @classmethod
    def of(cls, requester: Requester, user_agent: str = "") -> Actor:
        return cls(requester.user_id, requester.client_ip, user_agent)


# The longest user agent kept (as auth's client-IP recording).
MAX_USER_AGENT = 512


class AuditLog:
    def __init__(self, hs: HomeServer) -> None:
        self.store = hs.store

    async def record(
        self,
        event_type: AuditEvent,
        user_id: str | None,
        actor: str | None,
        ip: str,
        details: dict[str, Any] | None = None,
        *,
        user_agent: str = "",
    ) -> None:
        try:
            await self.store.add_audit_entry(
                now_ms(), event_type.value, user_id, actor, ip or "", (user_agent or "")[:MAX_USER_AGENT], details or {}
            )
        except Exception:
            logger.exception("could not record %s for %s in the audit log", event_type.value, user_id)

    async def record_by(
        self, event_type: AuditEvent, user_id: str | None, by: Actor, details: dict[str, Any] | None = None
    ) -> None:
        await self.record(event_type, user_id, by.user_id, by.ip, details, user_agent=by.user_agent)

    async def on_sign_in_step(self, event: str, user_id: str | None, client_ip: str, success: bool) -> None:
        """``LoginFlow.listeners``: each step of the sign-in pages (``sign_in_step:password``,
        ``sign_in_failed:totp``...)."""
        kind, _, step = event.partition(":")
        await self.record(
            AuditEvent.SIGN_IN_STEP if success else AuditEvent.LOGIN_FAILED,
            user_id,
            user_id if success else None,
            client_ip,
            {"via": "sign_in_pages", "step": step or kind},
        )

    async def entries(
        self, query: AuditQuery, start: int, limit: int, newest_first: bool
    ) -> tuple[list[AuditEntry], int]:
        return await self.store.get_audit_entries(query, start, limit, newest_first)

    @staticmethod
    def entry_json(entry: AuditEntry) -> dict[str, Any]:
        return {
            "id": entry.id,
            "ts": entry.ts,
            "event_type": entry.event_type,
            "user_id": entry.user_id,
            "actor": entry.actor,
            "ip": entry.ip,
            "user_agent": entry.user_agent,
            "details": entry.details,
        }
