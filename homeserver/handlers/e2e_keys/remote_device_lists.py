"""The remote device-list cache: other servers' users' device and cross-signing keys,
kept while we share a room with them (their server then tells us of every change, with
m.device_list_update and m.signing_key_update, which drop the entry), fetched over
federation when missing; and the device-list changes local users hear of through
/sync's device_lists and /keys/changes."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from homeserver.handlers.e2e_keys.common import DEFAULT_REMOTE_TIMEOUT_MS, as_dict, failure_of, with_timeout
from homeserver.util.ids import server_of

if TYPE_CHECKING:
    from homeserver.app import HomeServer

logger = logging.getLogger(__name__)


class RemoteDeviceLists:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store
        # Bumped whenever a remote user's cached keys are invalidated, so a federation
        # query that was already in flight does not write stale keys back into the cache.
        self._remote_generation: dict[str, int] = {}

    # -- queries ---------------------------------------------------------------------

    async def query(self, query: dict[str, list[str]], result: dict[str, Any], timeout_ms: int) -> None:
        """Adds remote users' keys to a /keys/query ``result``: from the cache where it can
        be trusted, else from their servers (and cached); a server that fails is listed in
        ``result["failures"]``."""
        cached = await self.store.e2e_get_remote_cache(list(query))
        tracked = await self.store.e2e_users_sharing_room_with_local(list(query))
        # A cached entry is only trustworthy while we share a room with the user (that is
        # what makes their server send us device-list updates) and if their membership has
        # not changed since (they may have missed updates while sharing no room with us).
        usable = {u: v for u, v in cached.items() if u in tracked}
        for user_id in set(cached) - tracked:
            await self.store.e2e_drop_remote_cache(user_id)
        by_server: dict[str, list[str]] = {}
        for user_id in query:
            if user_id in usable:
                self._add_remote_user(result, user_id, usable[user_id], query[user_id])
            else:
                by_server.setdefault(server_of(user_id), []).append(user_id)
        if not by_server:
            return

        async def one(server: str, users: list[str]) -> None:
            generations = {u: self._remote_generation.get(u, 0) for u in users}
            position = self.hs.streams.current
            try:
                # Ask for every device: the answer is cached whole and filtered here.
                response = await with_timeout(
                    self.hs.reactor,
                    self.hs.federation.query_user_keys(server, {"device_keys": {u: [] for u in users}}),
                    timeout_ms,
                )
            except Exception as e:  # any transport failure is reported per server, as Synapse does
                logger.info("keys query to %s failed: %r", server, e)
                result["failures"][server] = failure_of(e)
                return
            if not isinstance(response, dict):
                result["failures"][server] = {"status": 502, "message": "Invalid response"}
                return
            to_cache = {}
            for user_id in users:
                if server_of(user_id) != server:
                    continue
                # Keep only what is really about this user: a server may not speak for
                # another server's users, or pass one device's keys off as another's.
                devices = {
                    d: k
                    for d, k in as_dict(as_dict(response.get("device_keys")).get(user_id)).items()
                    if isinstance(k, dict) and k.get("user_id") == user_id and k.get("device_id") == d
                }
                entry: dict[str, Any] = {"device_keys": devices}
                for field, name in (("master_keys", "master_key"), ("self_signing_keys", "self_signing_key")):
                    key = as_dict(response.get(field)).get(user_id)
                    if isinstance(key, dict) and key.get("user_id") == user_id:
                        entry[name] = key
                self._add_remote_user(result, user_id, entry, query[user_id])
                if user_id in tracked and self._remote_generation.get(user_id, 0) == generations[user_id]:
                    to_cache[user_id] = entry
            if to_cache:
                await self.store.e2e_set_remote_cache(to_cache, position)

        await defer.DeferredList(
            [defer.ensureDeferred(one(s, u)) for s, u in by_server.items()], consumeErrors=True
        )

    @staticmethod
    def _add_remote_user(result: dict[str, Any], user_id: str, entry: dict[str, Any], devices: list[str]) -> None:
        keys = as_dict(entry.get("device_keys"))
        if devices:
            keys = {d: k for d, k in keys.items() if d in devices}
        result["device_keys"][user_id] = keys
        if isinstance(entry.get("master_key"), dict):
            result["master_keys"][user_id] = entry["master_key"]
        if isinstance(entry.get("self_signing_key"), dict):
            result["self_signing_keys"][user_id] = entry["self_signing_key"]

    async def master_key(self, user_id: str) -> dict[str, Any] | None:
        """A remote user's master key (cache or federation), to check a signature on it."""
        result: dict[str, Any] = {"device_keys": {}, "master_keys": {}, "self_signing_keys": {}, "failures": {}}
        await self.query({user_id: []}, result, DEFAULT_REMOTE_TIMEOUT_MS)
        return result["master_keys"].get(user_id)

    # -- changes ---------------------------------------------------------------------

    async def record_changes(self, user_ids: list[str], notify: list[str] | None = None) -> None:
        """A device-list change for (remote or signed) users without running the local
        device hooks: /sync's device_lists and /keys/changes read these rows."""
        interested: set[str] = set(notify or [])
        for user_id in user_ids:
            pos = self.hs.streams.allocate()
            try:
                await self.store.add_device_list_change(user_id, pos)
            finally:
                self.hs.streams.complete(pos)
            if notify is None:
                # (get_shared_room_users only works for local users; these may be remote.)
                interested |= await self.store.e2e_local_users_sharing_room(user_id)
        self.hs.notifier.notify_users(u for u in interested if self.hs.is_mine(u))

    async def on_remote_device_list_update(self, origin: str, content: dict[str, Any]) -> None:
        user_id = content.get("user_id") if isinstance(content, dict) else None
        if not isinstance(user_id, str) or server_of(user_id) != origin or self.hs.is_mine(user_id):
            logger.info("ignoring device list update from %s for %r", origin, user_id)
            return
        await self._invalidate_remote(user_id)

    async def on_remote_signing_key_update(self, origin: str, content: dict[str, Any]) -> None:
        user_id = content.get("user_id") if isinstance(content, dict) else None
        if not isinstance(user_id, str) or server_of(user_id) != origin or self.hs.is_mine(user_id):
            logger.info("ignoring signing key update from %s for %r", origin, user_id)
            return
        await self._invalidate_remote(user_id)

    async def _invalidate_remote(self, user_id: str) -> None:
        # Drop the cached keys (the next /keys/query refetches them) and tell local users
        # who share a room with this user, through device_lists.changed.
        self._remote_generation[user_id] = self._remote_generation.get(user_id, 0) + 1
        await self.store.e2e_drop_remote_cache(user_id)
        await self.record_changes([user_id])
