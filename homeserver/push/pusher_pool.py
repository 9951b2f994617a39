"""The pusher pool (``hs.pushers``): /pushers and /pushers/set, and the running pushers.

Every ``http`` pusher in storage runs as an ``HttpPusher`` from start-up on. The push
actions handler tells the pool of new notifications (``on_new_notifications``, on the
write path of every batch: with no pusher it returns at once) and of receipts
(``on_new_receipts``, for badge updates); each pusher then works in the background, and
nothing waits for a gateway.

Which pushers exist follows Synapse's ``PusherPool``: registering a pushkey with
``append: false`` takes it from every other user; a pusher belongs to the device that
registered it and goes when the device does (logout, deletion, a password change that
signs the other devices out); a gateway's ``rejected`` removes it. Pushers of kinds other
than ``http`` (``email``) are stored and listed but send nothing, as on a Synapse without
e-mail notifications.

Gateway URLs are checked against the federation IP blocklist at connect time
(``util/outbound_http.py``), so a user cannot aim the server at internal addresses.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.python.failure import Failure

from homeserver.http.errors import MatrixError
from homeserver.push.http_pusher import (
    HttpPusher,
    PusherConfigError,
    check_http_pusher_data,
)
from homeserver.storage.push import PushActionRow, PusherRecord
from homeserver.util.ids import now_ms
from homeserver.util.ip_filter import IPFilter
from homeserver.util.outbound_http import OutboundHttpClient

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester

logger = logging.getLogger(__name__)

# /pushers/set fields a pusher must have (Synapse's assert_params_in_dict).
REQUIRED_FIELDS = ("kind", "app_id", "app_display_name", "device_display_name", "pushkey", "lang", "data")


def pusher_json(p: PusherRecord) -> dict[str, Any]:
    """A pusher as GET /pushers lists it (Synapse's PusherConfig.as_dict)."""
    return {
        "app_display_name": p.app_display_name,
        "app_id": p.app_id,
        "data": p.data,
        "device_display_name": p.device_display_name,
        "kind": p.kind,
        "lang": p.lang,
        "profile_tag": p.profile_tag,
        "pushkey": p.pushkey,
    }


def _canonical_email(address: str) -> str | None:
    local, at, domain = address.strip().partition("@")
    if not at or "@" in domain:
        return None
    return local.casefold() + "@" + domain.lower()


class PusherPool:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store
        fed = hs.config.federation
        self.http = OutboundHttpClient(hs.reactor, IPFilter(fed.ip_range_blocklist, fed.ip_range_allowlist))
        # user -> (app_id, pushkey) -> running pusher
        self._pushers: dict[str, dict[tuple[str, str], HttpPusher]] = {}
        # Background work (deliveries, badge updates): stop() cancels it; tests wait for it.
        self.inflight: set[defer.Deferred[Any]] = set()

    # -- start and stop ---------------------------------------------------------------

    async def start(self) -> None:
        """Starts every stored http pusher; each sends what it had left."""
        for record in await self.store.get_all_pushers():
            self._start_pusher(record)

    async def stop(self) -> None:
        for by_key in self._pushers.values():
            for pusher in by_key.values():
                pusher.on_stop()
        self._pushers.clear()
        for d in list(self.inflight):
            d.cancel()

    def run_in_background(self, work: Coroutine[Any, Any, None]) -> None:
        d = defer.ensureDeferred(work)
        if d.called:
            return
        self.inflight.add(d)

        def done(result: Any) -> None:
            self.inflight.discard(d)
            if isinstance(result, Failure) and not result.check(defer.CancelledError):
                logger.error("pusher work failed: %s", result.getTraceback())

        d.addBoth(done)

    def _start_pusher(self, record: PusherRecord) -> None:
        self._stop_pusher(record.user_id, record.app_id, record.pushkey)
        if record.kind != "http":
            return
        try:
            pusher = HttpPusher(self, record)
        except PusherConfigError as e:
            logger.warning("pusher %s/%s of %s is misconfigured: %s", record.app_id, record.pushkey, record.user_id, e)
            return
        self._pushers.setdefault(record.user_id, {})[(record.app_id, record.pushkey)] = pusher
        pusher.on_started()

    def _stop_pusher(self, user_id: str, app_id: str, pushkey: str) -> None:
        by_key = self._pushers.get(user_id)
        if by_key is None:
            return
        pusher = by_key.pop((app_id, pushkey), None)
        if pusher is not None:
            pusher.on_stop()
        if not by_key:
            del self._pushers[user_id]

    # -- what happens elsewhere ---------------------------------------------------------

    def on_new_notifications(self, rows: list[PushActionRow]) -> None:
        if not self._pushers:
            return
        newest: dict[str, int] = {}
        for row in rows:
            if row.user_id in self._pushers and row.stream_ordering > newest.get(row.user_id, 0):
                newest[row.user_id] = row.stream_ordering
        for user_id, stream_ordering in newest.items():
            for pusher in list(self._pushers.get(user_id, {}).values()):
                pusher.on_new_notifications(stream_ordering)

    def on_new_receipts(self, user_id: str) -> None:
        for pusher in list(self._pushers.get(user_id, {}).values()):
            pusher.on_new_receipts()

    async def on_devices_deleted(self, user_id: str, device_ids: list[str]) -> None:
        """A DeviceHandler delete hook: the devices' pushers go with them."""
        gone = set(device_ids)
        for p in await self.store.get_pushers(user_id):
            if p.device_id in gone:
                await self.remove_pusher(p.app_id, p.pushkey, user_id)

    async def badge_count(self, user_id: str) -> int:
        return await self.hs.push_actions.badge_count(user_id, self.hs.config.push.group_unread_count_by_room)

    # -- the client API -----------------------------------------------------------------

    async def get_pushers(self, user_id: str) -> list[dict[str, Any]]:
        return [pusher_json(p) for p in await self.store.get_pushers(user_id)]

    async def remove_pusher(self, app_id: str, pushkey: str, user_id: str) -> None:
        self._stop_pusher(user_id, app_id, pushkey)
        await self.store.delete_pusher(user_id, app_id, pushkey)

    async def set_pusher(self, requester: Requester, body: dict[str, Any]) -> None:
        """POST /pushers/set, validated as Synapse's PushersSetRestServlet."""
        user_id = requester.user_id
        if "app_id" in body and "pushkey" in body and "kind" in body and body["kind"] is None:
            if isinstance(body["app_id"], str) and isinstance(body["pushkey"], str):
                await self.remove_pusher(body["app_id"], body["pushkey"], user_id)
            return
        missing = [k for k in REQUIRED_FIELDS if k not in body]
        if missing:
            raise MatrixError(400, "M_MISSING_PARAM", f"Missing params: {missing!r}")
        app_id, pushkey, kind = body["app_id"], body["pushkey"], body["kind"]
        # Synapse stores whatever it is given; strings are what the spec allows.
        for key in ("kind", "app_id", "pushkey", "app_display_name", "device_display_name", "lang"):
            if not isinstance(body[key], str):
                raise MatrixError(400, "M_INVALID_PARAM", f"{key} must be a string")
        # The spec's limits (Synapse has none): the gateway may not take longer ones.
        if len(app_id) > 64 or len(pushkey.encode("utf-8")) > 512:
            raise MatrixError(400, "M_INVALID_PARAM", "app_id or pushkey too long")
        profile_tag = body.get("profile_tag", "")
        if not isinstance(profile_tag, str):
            raise MatrixError(400, "M_INVALID_PARAM", "profile_tag must be a string")
        append = body.get("append", False)
        if not isinstance(append, bool):
            raise MatrixError(400, "M_INVALID_PARAM", "append must be a boolean")
        data = body["data"]
        if kind == "email":
            address = _canonical_email(pushkey)
            owner = await self.store.get_user_by_threepid("email", address) if address else None
            if owner != user_id:
                raise MatrixError(400, "M_THREEPID_NOT_FOUND", "Email not found")
        if kind == "http":
            try:
                check_http_pusher_data(data)
            except PusherConfigError as e:
                # Synapse's errcode for every pusher configuration error.
                raise MatrixError(400, "M_MISSING_PARAM", f"Config Error: {e}") from None
        if not append:
            # The device token now belongs to this user only.
            for other in await self.store.get_pushers_by_app_id_and_pushkey(app_id, pushkey):
                if other.user_id != user_id:
                    await self.remove_pusher(other.app_id, other.pushkey, other.user_id)
        device_id: str | None = requester.device_id
        for existing in await self.store.get_pushers_by_app_id_and_pushkey(app_id, pushkey):
            if existing.user_id == user_id:
                # One device may change another's pusher: it stays that device's.
                device_id = existing.device_id
        record = PusherRecord(
            user_id=user_id,
            app_id=app_id,
            pushkey=pushkey,
            kind=kind,
            app_display_name=body["app_display_name"],
            device_display_name=body["device_display_name"],
            profile_tag=profile_tag,
            lang=body["lang"],
            data=data,
            device_id=device_id,
            ts=now_ms(),
            # Only what happens from now on is pushed.
            last_stream_ordering=self.hs.streams.current,
            last_success=None,
            failing_since=None,
        )
        await self.store.add_pusher(record)
        self._start_pusher(record)
