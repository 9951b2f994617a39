"""Server notices (Synapse's server_notices config and POST
/_synapse/admin/v1/send_server_notice): messages from the server's notices account, in a
room of their own per user that the user cannot speak in, tagged ``m.server_notice``.

The notices account is a local account without a password, made at the first notice
(so nobody can register its name afterwards). A user's notices room is the room they are
joined or invited to that the notices account is joined to; when there is none (they
left it), the next notice makes a new one."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from homeserver.handlers.audit import Actor, AuditEvent
from homeserver.handlers.room_creation import RoomRequest
from homeserver.http.errors import MatrixError, NotFound

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.events.event import Event
    from homeserver.handlers.auth import Requester

SERVER_NOTICE_ROOM_TAG = "m.server_notice"


class ServerNoticesHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store
        self.config = hs.config.server_notices
        # one room creation at a time per user
        self._locks: dict[str, defer.DeferredLock] = {}

    @property
    def enabled(self) -> bool:
        return self.config.system_mxid_localpart is not None

    @property
    def notices_user(self) -> str:
        return f"@{self.config.system_mxid_localpart}:{self.hs.server_name}"

    def _as_notices_user(self) -> Requester:
        from homeserver.handlers.auth import Requester

        return Requester(self.notices_user, "", False, "")

    async def send(
        self,
        user_id: str,
        event_type: str,
        content: dict[str, Any],
        state_key: str | None,
        txn_id: str | None,
        by: Actor,
    ) -> Event:
        if not self.enabled:
            raise MatrixError(400, "M_UNKNOWN", "Server notices are not enabled on this server")
        if not self.hs.is_mine(user_id):
            raise MatrixError(400, "M_UNKNOWN", "Server notices can only be sent to local users")
        if await self.store.get_user(user_id) is None:
            raise NotFound("User not found")
        lock = self._locks.setdefault(user_id, defer.DeferredLock())
        await lock.acquire()
        try:
            room_id = await self._room_for(user_id)
        finally:
            lock.release()
            if not lock.locked and not lock.waiting:
                self._locks.pop(user_id, None)
        # A transaction id is the sending admin's: kept apart per admin.
        sender = replace(self._as_notices_user(), device_id=f"admin:{by.user_id}")
        event = await self.hs.messages.send_event(sender, room_id, event_type, content, txn_id, state_key)
        await self.hs.audit.record_by(
            AuditEvent.ADMIN_SERVER_NOTICE, user_id, by, {"event_id": event.event_id, "type": event_type}
        )
        return event

    async def _ensure_notices_account(self) -> None:
        if await self.store.get_user(self.notices_user) is not None:
            return
        try:
            await self.hs.registration.register_user(
                self.config.system_mxid_localpart, None, displayname=self.config.system_mxid_display_name
            )
        except MatrixError as e:
            if e.errcode != "M_USER_IN_USE":
                raise
        if self.config.system_mxid_avatar_url:
            await self.store.set_profile_field(self.notices_user, "avatar_url", self.config.system_mxid_avatar_url)

    async def _room_for(self, user_id: str) -> str:
        """The user's notices room, made and the user invited (and joined, with
        auto_join) if need be."""
        room_id = await self.store.get_notice_room(user_id, self.notices_user)
        if room_id is not None:
            return room_id
        await self._ensure_notices_account()
        cfg = self.config
        initial_state = []
        if cfg.room_avatar_url:
            initial_state.append({"type": "m.room.avatar", "state_key": "", "content": {"url": cfg.room_avatar_url}})
        created = await self.hs.room_creation.create_room(
            self._as_notices_user(),
            RoomRequest(
                preset="private_chat",
                name=cfg.room_name or None,
                topic=cfg.room_topic or None,
                initial_state=initial_state,
                power_level_content_override={"users_default": -10},
            ),
        )
        room_id = created["room_id"]
        await self.hs.account_data.add_tag(user_id, room_id, SERVER_NOTICE_ROOM_TAG, {})
        await self.hs.membership.update_membership(self._as_notices_user(), room_id, user_id, "invite")
        if cfg.auto_join:
            from homeserver.handlers.auth import Requester

            await self.hs.membership.update_membership(Requester(user_id, "", False, ""), room_id, user_id, "join")
        return room_id
