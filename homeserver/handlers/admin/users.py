"""Accounts as the server's admins see them (Synapse's admin API for users): the user
record in Synapse's format, creating and changing accounts, deactivation, password
resets, an admin's devices view and signing in as a user."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from homeserver.handlers.audit import Actor, AuditEvent
from homeserver.http.errors import MatrixError, NotFound
from homeserver.storage.admin import AdminUser, UserQuery
from homeserver.util.ids import hash_token, new_token, now_ms

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester

# Synapse's user types (config user_types: none extra by default).
USER_TYPES = ("support", "bot")


@dataclass(frozen=True)
class UserChanges:
    """The body of PUT /_synapse/admin/v2/users/{userId}, checked. ``given`` names the
    keys the body had (a key given as null is not the same as a key left out)."""

    given: frozenset[str] = frozenset()
    password: str | None = None
    logout_devices: bool = True
    displayname: str | None = None
    avatar_url: str | None = None
    admin: bool = False
    deactivated: bool = False
    user_type: str | None = None
    # (medium, address) pairs
    threepids: frozenset[tuple[str, str]] = field(default_factory=frozenset)


def user_list_json(u: AdminUser) -> dict[str, Any]:
    """One entry of the user list (Synapse's UserPaginateResponse without MSC3866's
    approved, which Synapse leaves out when that is off)."""
    return {
        "name": u.name,
        "user_type": u.user_type,
        "is_guest": u.is_guest,
        "admin": u.admin,
        "deactivated": u.deactivated,
        # no shadow-banning or locking here
        "shadow_banned": False,
        "displayname": u.displayname,
        "avatar_url": u.avatar_url,
        "creation_ts": u.creation_ts,
        "erased": u.erased,
        "last_seen_ts": u.last_seen_ts,
        "locked": False,
    }


class AdminUsersHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store

    async def user_json(self, user_id: str) -> dict[str, Any] | None:
        """Synapse's AdminHandler.get_user."""
        u = await self.store.get_admin_user(user_id)
        if u is None:
            return None
        threepids = await self.store.get_threepids(user_id)
        return {
            "name": u.name,
            "admin": u.admin,
            "deactivated": u.deactivated,
            "locked": False,
            "shadow_banned": False,
            "creation_ts": u.creation_ts,
            "appservice_id": None,
            "consent_server_notice_sent": None,
            "consent_version": None,
            "consent_ts": None,
            "user_type": u.user_type,
            "is_guest": u.is_guest,
            "suspended": False,
            "displayname": u.displayname,
            "avatar_url": u.avatar_url,
            "threepids": [
                {"medium": t.medium, "address": t.address, "validated_at": t.validated_at, "added_at": t.added_at}
                for t in threepids
            ],
            "external_ids": [],
            "erased": u.erased,
            "last_seen_ts": u.last_seen_ts,
        }

    async def list_users(
        self, query: UserQuery, start: int, limit: int, order_by: str, descending: bool
    ) -> tuple[list[dict[str, Any]], int]:
        users, total = await self.store.list_users(query, start, limit, order_by, descending)
        return [user_list_json(u) for u in users], total

    async def require_user(self, user_id: str, message: str = "User not found") -> None:
        if await self.store.get_user(user_id) is None:
            raise NotFound(message)

    # -- create or modify -------------------------------------------------------------

    async def create_or_modify(self, admin: Requester, user_id: str, changes: UserChanges, by: Actor) -> tuple[int, dict[str, Any]]:
        """201 and the new user, or 200 and the changed one (Synapse's order of changes)."""
        existing = await self.store.get_user(user_id)
        if existing is None:
            await self._create(user_id, changes, by)
            user = await self.user_json(user_id)
            assert user is not None
            return 201, user
        given = changes.given
        if "displayname" in given:
            await self.hs.profile.set_field(user_id, user_id, "displayname", changes.displayname)
        if "threepids" in given:
            await self._replace_threepids(user_id, changes.threepids)
        if "avatar_url" in given:
            await self.hs.profile.set_field(user_id, user_id, "avatar_url", changes.avatar_url)
        if "admin" in given and changes.admin != existing.is_admin:
            if user_id == admin.user_id and not changes.admin:
                raise MatrixError(400, "M_UNKNOWN", "You may not demote yourself.")
            await self.store.set_user_admin(user_id, changes.admin)
        if changes.password is not None:
            await self.set_password(user_id, changes.password, changes.logout_devices, admin, by)
        if "deactivated" in given:
            if changes.deactivated and not existing.deactivated:
                await self.deactivate(user_id, False, by)
            elif not changes.deactivated and existing.deactivated:
                await self.store.reactivate_account(user_id)
        if "user_type" in given:
            await self.store.set_user_type(user_id, changes.user_type)
        await self.hs.audit.record_by(
            AuditEvent.ADMIN_USER_MODIFIED, user_id, by, {"fields": sorted(k for k in given if k != "password")
                                                           + (["password"] if changes.password is not None else [])}
        )
        user = await self.user_json(user_id)
        assert user is not None
        return 200, user

    async def _create(self, user_id: str, changes: UserChanges, by: Actor) -> None:
        localpart = user_id[1:].split(":", 1)[0]
        await self.hs.registration.register_user(
            localpart, changes.password, admin=changes.admin, displayname=changes.displayname
        )
        if changes.user_type is not None:
            await self.store.set_user_type(user_id, changes.user_type)
        ts = now_ms()
        for medium, address in sorted(changes.threepids):
            await self.store.add_threepid(user_id, medium, address, ts, ts)
        if isinstance(changes.avatar_url, str):
            await self.hs.profile.set_field(user_id, user_id, "avatar_url", changes.avatar_url)
        await self.hs.audit.record_by(
            AuditEvent.ADMIN_USER_CREATED, user_id, by, {"admin": changes.admin, "user_type": changes.user_type}
        )

    async def _replace_threepids(self, user_id: str, wanted: frozenset[tuple[str, str]]) -> None:
        current = {(t.medium, t.address) for t in await self.store.get_threepids(user_id)}
        for medium, address in sorted(current - wanted):
            await self.store.remove_threepid(user_id, medium, address)
        ts = now_ms()
        for medium, address in sorted(wanted - current):
            await self.store.add_threepid(user_id, medium, address, ts, ts)

    # -- passwords, deactivation, admin flag -----------------------------------------------

    async def set_password(
        self, user_id: str, password: str, logout_devices: bool, admin: Requester, by: Actor
    ) -> None:
        """As Synapse's SetPasswordHandler: a new hash, and with ``logout_devices`` every
        device of the user signed out (but the admin's own, when resetting their own)."""
        await self.store.set_password_hash(user_id, await self.hs.auth.hash_password(password))
        if logout_devices:
            keep = admin.device_id if admin.user_id == user_id else None
            devices = [d.device_id for d in await self.store.get_devices(user_id) if d.device_id != keep]
            if devices:
                await self.hs.devices.delete_devices(user_id, devices, by=by)
            if keep is None:
                # sessions on no device (an admin's "login as" token) end too
                await self.hs.auth.sessions.revoke_user(user_id)
                await self.store.delete_other_tokens(user_id, "", None)
            else:
                await self.store.delete_other_tokens(user_id, keep, admin.token_hash)
        await self.hs.audit.record_by(
            AuditEvent.ADMIN_PASSWORD_RESET, user_id, by, {"logout_devices": logout_devices}
        )

    async def deactivate(self, user_id: str, erase: bool, by: Actor) -> None:
        """Leaves the user's rooms and rejects their invites and knocks (as the user), signs
        every device out, and closes the account (storage/admin.py deactivate_account)."""
        from homeserver.handlers.auth import Requester

        as_user = Requester(user_id, "", False, "")
        rooms = list(self.hs.rooms.joined_rooms(user_id))
        for membership in ("invite", "knock"):
            rooms += await self.store.get_rooms_with_membership(user_id, membership)
        for room_id in dict.fromkeys(rooms):
            try:
                await self.hs.membership.update_membership(as_user, room_id, user_id, "leave")
            except MatrixError:
                pass
        devices = [d.device_id for d in await self.store.get_devices(user_id)]
        if devices:
            await self.hs.devices.delete_devices(user_id, devices, by=by)
        await self.hs.auth.sessions.revoke_user(user_id)
        await self.store.deactivate_account(user_id, erase)
        await self.hs.audit.record_by(AuditEvent.ADMIN_USER_DEACTIVATED, user_id, by, {"erase": erase})

    async def set_admin(self, admin: Requester, user_id: str, value: bool, by: Actor) -> None:
        if user_id == admin.user_id and not value:
            raise MatrixError(400, "M_UNKNOWN", "You may not demote yourself.")
        await self.store.set_user_admin(user_id, value)
        await self.hs.audit.record_by(AuditEvent.ADMIN_SET_ADMIN, user_id, by, {"admin": value})

    async def login_as(self, user_id: str, valid_until_ms: int | None, by: Actor) -> str:
        """An access token for the user on no device of theirs (Synapse's puppet token),
        stored hashed like every opaque token; it expires at ``valid_until_ms``."""
        token = new_token("wspr_at")
        await self.store.create_puppet_token(user_id, hash_token(token), valid_until_ms, now_ms())
        await self.hs.audit.record_by(
            AuditEvent.ADMIN_LOGIN_AS_USER, user_id, by, {"valid_until_ms": valid_until_ms}
        )
        return token

    # -- devices ---------------------------------------------------------------------------

    async def devices_json(self, user_id: str) -> list[dict[str, Any]]:
        """Synapse's admin view of devices: every field present (null when unknown), with
        the user agent of each device's latest request."""
        last = await self.store.get_last_connection_by_device(user_id)
        dehydrated = await self.store.dehydrated_get(user_id)
        out = []
        for d in await self.store.get_devices(user_id):
            ip, ua, ts = last.get(d.device_id, (d.last_seen_ip, None, d.last_seen_ts))
            entry: dict[str, Any] = {
                "user_id": user_id,
                "device_id": d.device_id,
                "display_name": d.display_name,
                "last_seen_user_agent": ua,
                "last_seen_ts": ts,
                "last_seen_ip": ip,
            }
            if dehydrated is not None:
                entry["dehydrated"] = d.device_id == dehydrated[0]
            out.append(entry)
        return out

    async def device_json(self, user_id: str, device_id: str) -> dict[str, Any] | None:
        d = await self.store.get_device(user_id, device_id)
        if d is None:
            return None
        last = (await self.store.get_last_connection_by_device(user_id)).get(device_id)
        ip, ua, ts = last if last is not None else (d.last_seen_ip, None, d.last_seen_ts)
        return {
            "user_id": user_id,
            "device_id": device_id,
            "display_name": d.display_name,
            "last_seen_user_agent": ua,
            "last_seen_ts": ts,
            "last_seen_ip": ip,
        }

    async def create_device(self, user_id: str, device_id: str, by: Actor) -> None:
        """A device with no session (Synapse's check_device_registered), for bridges
        and appliances that sign in another way."""
        if await self.store.ensure_device(user_id, device_id):
            await self.hs.devices.notify_device_change(user_id)

    async def update_device(self, user_id: str, device_id: str, body: dict[str, Any], by: Actor) -> None:
        if "display_name" in body:
            await self.hs.devices.rename_device(user_id, device_id, body["display_name"])
        elif await self.store.get_device(user_id, device_id) is None:
            raise NotFound("Not found")
        await self.hs.audit.record_by(AuditEvent.ADMIN_DEVICE_UPDATED, user_id, by, {"device_id": device_id})

    async def delete_devices(self, user_id: str, device_ids: list[str], by: Actor) -> None:
        await self.hs.devices.delete_devices(user_id, device_ids, by=by)
        await self.hs.audit.record_by(AuditEvent.ADMIN_DEVICES_DELETED, user_id, by, {"device_ids": device_ids})
