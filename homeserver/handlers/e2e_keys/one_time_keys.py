"""One-time and fallback keys: upload, the counts /sync reports, and /keys/claim (local
keys from storage, other users' from their servers)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from homeserver.handlers.e2e_keys.common import (
    FALLBACK_KEY_FIELDS,
    as_dict,
    failure_of,
    parse_timeout,
    split_keys,
    with_timeout,
)
from homeserver.http.errors import BadJson, MatrixError
from homeserver.util.ids import is_valid_user_id, server_of

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester

logger = logging.getLogger(__name__)


class OneTimeKeysHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store
        # /sync asks for key counts on every request: keep them in memory, dropped whenever
        # this process uploads, claims or deletes keys (all key writes go through here).
        self._counts: dict[tuple[str, str], tuple[dict[str, int], list[str]]] = {}
        self._counts_generation: dict[tuple[str, str], int] = {}
        self._counts_tick = 0
        self._counts_floor = 0

    # -- upload ----------------------------------------------------------------------

    async def upload(self, user_id: str, device_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """The one-time and fallback keys of a /keys/upload; the device's key counts."""
        one_time_keys = body.get("one_time_keys")
        if one_time_keys is not None:
            rows = [(alg, kid, key) for (alg, kid), key in split_keys(one_time_keys, "one_time_keys").items()]
            if rows:
                conflicts = await self.store.e2e_add_one_time_keys(user_id, device_id, rows)
                if conflicts:
                    raise MatrixError(
                        400, "M_INVALID_PARAM", f"One time key {conflicts[0]} already exists with different content"
                    )

        for field in FALLBACK_KEY_FIELDS:
            fallback = body.get(field)
            if fallback is None:
                continue
            by_alg: dict[str, tuple[str, Any]] = {}
            for (alg, kid), key in split_keys(fallback, field).items():
                by_alg[alg] = (kid, key)
            if by_alg:
                await self.store.e2e_set_fallback_keys(user_id, device_id, by_alg)

        self.invalidate_counts([(user_id, device_id)])
        counts, _ = await self._key_counts(user_id, device_id)
        counts.setdefault("signed_curve25519", 0)
        return {"one_time_key_counts": counts}

    # -- counts ----------------------------------------------------------------------

    def _counts_gen(self, key: tuple[str, str]) -> int:
        return self._counts_generation.get(key, self._counts_floor)

    def invalidate_counts(self, keys: Any) -> None:
        for key in keys:
            self._counts.pop(key, None)
            self._counts_tick += 1
            self._counts_generation[key] = self._counts_tick
        if len(self._counts_generation) > 100_000:
            # Bound memory. Every key now reads as a generation newer than any a read
            # in flight could have seen, so none of those reads gets cached.
            self._counts_tick += 1
            self._counts_floor = self._counts_tick
            self._counts.clear()
            self._counts_generation.clear()

    async def _key_counts(self, user_id: str, device_id: str) -> tuple[dict[str, int], list[str]]:
        key = (user_id, device_id)
        cached = self._counts.get(key)
        if cached is not None:
            return dict(cached[0]), list(cached[1])
        generation = self._counts_gen(key)
        counts, fallback = await self.store.e2e_key_counts(user_id, device_id)
        # Only cache if nothing changed the keys while we were reading.
        if self._counts_gen(key) == generation and len(self._counts) < 50_000:
            self._counts[key] = (dict(counts), list(fallback))
        return counts, fallback

    async def sync_counts(self, user_id: str, device_id: str) -> dict[str, Any]:
        counts, fallback = await self._key_counts(user_id, device_id)
        # Synapse always reports signed_curve25519, and some clients rely on it.
        counts.setdefault("signed_curve25519", 0)
        return {
            "device_one_time_keys_count": counts,
            "device_unused_fallback_key_types": fallback,
            "org.matrix.msc2732.device_unused_fallback_key_types": fallback,
        }

    # -- claim -----------------------------------------------------------------------

    async def claim_keys(self, requester: Requester, body: dict[str, Any]) -> dict[str, Any]:
        wanted = body.get("one_time_keys")
        if not isinstance(wanted, dict):
            raise BadJson("one_time_keys must be an object")
        for devices in wanted.values():
            if not isinstance(devices, dict) or not all(isinstance(a, str) for a in devices.values()):
                raise BadJson("one_time_keys must map users to {device_id: algorithm}")
        timeout_ms = parse_timeout(body)
        local = {u: d for u, d in wanted.items() if self.hs.is_mine(u)}
        result = await self.claim_local_keys(local)
        result["failures"] = {}
        by_server: dict[str, dict[str, dict[str, str]]] = {}
        for user_id, devices in wanted.items():
            if not self.hs.is_mine(user_id) and is_valid_user_id(user_id):
                by_server.setdefault(server_of(user_id), {})[user_id] = devices
        if not by_server:
            return result

        async def one(server: str, users: dict[str, dict[str, str]]) -> None:
            try:
                response = await with_timeout(
                    self.hs.reactor, self.hs.federation.claim_user_keys(server, {"one_time_keys": users}), timeout_ms
                )
            except Exception as e:
                logger.info("keys claim to %s failed: %r", server, e)
                result["failures"][server] = failure_of(e)
                return
            for user_id, devices in as_dict(as_dict(response).get("one_time_keys")).items():
                if server_of(user_id) == server and user_id in users:
                    result["one_time_keys"][user_id] = as_dict(devices)

        await defer.DeferredList(
            [defer.ensureDeferred(one(s, u)) for s, u in by_server.items()], consumeErrors=True
        )
        return result

    async def claim_local_keys(self, one_time_keys: dict[str, dict[str, str]]) -> dict[str, Any]:
        """Claims local users' keys (also the federation /user/keys/claim answer)."""
        wanted = [
            (user_id, device_id, algorithm)
            for user_id, devices in one_time_keys.items()
            if self.hs.is_mine(user_id) and isinstance(devices, dict)
            for device_id, algorithm in devices.items()
            if isinstance(algorithm, str)
        ]
        claimed = None
        if wanted:
            try:
                claimed = await self.store.e2e_claim_keys(wanted)
            finally:
                self.invalidate_counts({(u, d) for u, d, _ in wanted})
        return {"one_time_keys": claimed.one_time_keys if claimed else {}}
