"""End-to-end encryption keys: upload, query, claim, cross-signing and signatures, and
the device-list updates that keep other users' (and other servers') views fresh.

The server only moves public keys and signatures around; it checks the signatures it
must rely on (cross-signing keys signed by the master key, uploaded signatures) so a
client cannot plant a forged signature in someone else's key list.

``hs.e2e_keys`` is this handler. The federation layer calls ``query_local_keys``,
``claim_local_keys``, ``get_user_devices``, ``on_remote_device_list_update`` and
``on_remote_signing_key_update``; outbound it uses ``hs.federation.send_edu``,
``query_user_keys`` and ``claim_user_keys`` when ``hs.federation`` is set.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable, TypeVar

from twisted.internet import defer

from homeserver.http.errors import BadJson, InvalidParam, MatrixError
from homeserver.protocol.signing import SignatureError, decode_verify_key_base64, verify_json
from homeserver.util.ids import is_valid_user_id, server_of

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_REMOTE_TIMEOUT_MS = 10_000
MAX_REMOTE_TIMEOUT_MS = 60_000
FALLBACK_KEY_FIELDS = ("fallback_keys", "org.matrix.msc2732.fallback_keys")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _strip(key: dict[str, Any]) -> dict[str, Any]:
    """A key without the parts that legitimately vary (signatures, unsigned)."""
    return {k: v for k, v in key.items() if k not in ("signatures", "unsigned")}


def _cross_signing_pubkey(key: Any) -> str | None:
    if not isinstance(key, dict):
        return None
    keys = key.get("keys")
    if not isinstance(keys, dict) or len(keys) != 1:
        return None
    key_id, value = next(iter(keys.items()))
    if not isinstance(value, str) or key_id != f"ed25519:{value}":
        return None
    return value


def _verify_key(pubkey: str) -> Any:
    return decode_verify_key_base64("ed25519", pubkey, pubkey)


def _is_signed_by(obj: dict[str, Any], user_id: str, pubkey: str, key_version: str | None = None) -> bool:
    """Does ``obj`` carry a valid signature by ``user_id`` with the ed25519 key ``pubkey``
    (listed under ``ed25519:<key_version or pubkey>``)?"""
    try:
        vk = decode_verify_key_base64("ed25519", key_version or pubkey, pubkey)
        verify_json(obj, user_id, vk)
        return True
    except (SignatureError, ValueError, TypeError, KeyError):
        return False


class UserLocks:
    """One async lock per key: serialises device-list bookkeeping per user."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[defer.DeferredLock, int]] = {}

    async def run(self, key: str, fn: Callable[[], Awaitable[T]]) -> T:
        lock, users = self._locks.get(key, (defer.DeferredLock(), 0))
        self._locks[key] = (lock, users + 1)
        await lock.acquire()
        try:
            return await fn()
        finally:
            lock.release()
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class E2EKeysHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self.hs = hs
        self.store = hs.store
        self._outbound_locks = UserLocks()
        # Bumped whenever a remote user's cached keys are invalidated, so a federation
        # query that was already in flight does not write stale keys back into the cache.
        self._remote_generation: dict[str, int] = {}
        # /sync asks for key counts on every request: keep them in memory, dropped whenever
        # this process uploads, claims or deletes keys (all key writes go through here).
        self._counts: dict[tuple[str, str], tuple[dict[str, int], list[str]]] = {}
        self._counts_generation: dict[tuple[str, str], int] = {}
        self._counts_tick = 0
        self._counts_floor = 0
        hs.devices.delete_hooks.append(self._on_devices_deleted)
        hs.devices.change_hooks.append(self._on_local_device_change)

    # -- upload ----------------------------------------------------------------------

    async def upload_keys(self, requester: "Requester", body: dict[str, Any]) -> dict[str, Any]:
        user_id, device_id = requester.user_id, requester.device_id
        device_keys = body.get("device_keys")
        if device_keys is not None:
            if not isinstance(device_keys, dict):
                raise BadJson("device_keys must be an object")
            if device_keys.get("user_id") != user_id or device_keys.get("device_id") != device_id:
                raise InvalidParam("device_keys must be for the authenticated user and device")
            _check_device_keys(device_keys)
            # Never store what the server adds on the way out.
            device_keys = {k: v for k, v in device_keys.items() if k != "unsigned"}
            if await self.store.e2e_set_device_keys(user_id, device_id, device_keys):
                await self.hs.devices.notify_device_change(user_id)

        one_time_keys = body.get("one_time_keys")
        if one_time_keys is not None:
            rows = [(alg, kid, key) for (alg, kid), key in self._split_keys(one_time_keys, "one_time_keys").items()]
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
            for (alg, kid), key in self._split_keys(fallback, field).items():
                by_alg[alg] = (kid, key)
            if by_alg:
                await self.store.e2e_set_fallback_keys(user_id, device_id, by_alg)

        self._invalidate_counts([(user_id, device_id)])
        counts, _ = await self._key_counts(user_id, device_id)
        counts.setdefault("signed_curve25519", 0)
        return {"one_time_key_counts": counts}

    @staticmethod
    def _split_keys(keys: Any, field: str) -> dict[tuple[str, str], Any]:
        if not isinstance(keys, dict):
            raise BadJson(f"{field} must be an object")
        out: dict[tuple[str, str], Any] = {}
        for full_id, key in keys.items():
            alg, sep, kid = full_id.partition(":")
            if not sep or not alg or not kid:
                raise BadJson(f"Invalid key id {full_id!r} in {field}")
            if not isinstance(key, str) and not _is_key_object(key):
                # Synapse's shape: a string, or {key, signatures[, fallback]}.
                raise BadJson(f"Invalid key {full_id!r} in {field}")
            out[(alg, kid)] = key
        return out

    def _counts_gen(self, key: tuple[str, str]) -> int:
        return self._counts_generation.get(key, self._counts_floor)

    def _invalidate_counts(self, keys: Any) -> None:
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

    # -- query -----------------------------------------------------------------------

    @staticmethod
    def _parse_device_query(query: Any) -> dict[str, list[str]]:
        if not isinstance(query, dict):
            raise BadJson("device_keys must be an object")
        out: dict[str, list[str]] = {}
        for user_id, devices in query.items():
            if devices is None:
                devices = []
            if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
                raise BadJson("device_keys values must be lists of device ids")
            out[user_id] = devices
        return out

    async def query_keys(self, requester: "Requester", body: dict[str, Any]) -> dict[str, Any]:
        query = self._parse_device_query(body.get("device_keys", {}))
        timeout_ms = body.get("timeout", DEFAULT_REMOTE_TIMEOUT_MS)
        if not isinstance(timeout_ms, int) or isinstance(timeout_ms, bool):
            raise BadJson("timeout must be an integer")
        local = {u: d for u, d in query.items() if self.hs.is_mine(u)}
        remote = {u: d for u, d in query.items() if not self.hs.is_mine(u) and is_valid_user_id(u)}
        result = await self.query_local_keys(local, from_user_id=requester.user_id)
        result["failures"] = {}
        if remote:
            await self._query_remote(remote, result, min(max(timeout_ms, 0), MAX_REMOTE_TIMEOUT_MS))
        return result

    async def query_local_keys(
        self, device_keys_query: dict[str, list[str]], from_user_id: str | None = None
    ) -> dict[str, Any]:
        """Keys of local users, as in the federation user/keys/query response (and, with
        ``from_user_id``, the client one: that user's own user-signing key and the
        signatures they made are included)."""
        query = {u: list(d or []) for u, d in device_keys_query.items() if self.hs.is_mine(u)}
        devices = await self.store.e2e_get_devices_with_keys(query)
        device_keys: dict[str, dict[str, Any]] = {}
        for user_id in query:
            out: dict[str, Any] = {}
            for device_id, (keys, display_name) in devices.get(user_id, {}).items():
                if keys is None:
                    continue
                keys = dict(keys)
                unsigned = {}
                # Device names stay on this server (Synapse's default,
                # allow_device_name_lookup_over_federation: false).
                if display_name is not None and from_user_id is not None:
                    unsigned["device_display_name"] = display_name
                keys["unsigned"] = unsigned
                out[device_id] = keys
            device_keys[user_id] = out
        cross = await self.store.e2e_get_cross_signing_keys(query.keys(), from_user_id)
        result: dict[str, Any] = {
            "device_keys": device_keys,
            "master_keys": {},
            "self_signing_keys": {},
            "user_signing_keys": {},
        }
        for user_id, keys in cross.items():
            if "master" in keys:
                result["master_keys"][user_id] = keys["master"]
            if "self_signing" in keys:
                result["self_signing_keys"][user_id] = keys["self_signing"]
            # The user-signing key is only ever shown to its owner.
            if "user_signing" in keys and user_id == from_user_id:
                result["user_signing_keys"][user_id] = keys["user_signing"]
        return result

    async def _query_remote(self, query: dict[str, list[str]], result: dict[str, Any], timeout_ms: int) -> None:
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
        if self.hs.federation is None:
            for server in by_server:
                result["failures"][server] = {"status": 503, "message": "Federation is not available"}
            return

        async def one(server: str, users: list[str]) -> None:
            generations = {u: self._remote_generation.get(u, 0) for u in users}
            position = self.hs.streams.current
            try:
                # Ask for every device: the answer is cached whole and filtered here.
                response = await self._with_timeout(
                    self.hs.federation.query_user_keys(server, {"device_keys": {u: [] for u in users}}), timeout_ms
                )
            except Exception as e:  # any transport failure is reported per server, as Synapse does
                logger.info("keys query to %s failed: %r", server, e)
                result["failures"][server] = _failure(e)
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
                    for d, k in _dict(_dict(response.get("device_keys")).get(user_id)).items()
                    if isinstance(k, dict) and k.get("user_id") == user_id and k.get("device_id") == d
                }
                entry: dict[str, Any] = {"device_keys": devices}
                for field, name in (("master_keys", "master_key"), ("self_signing_keys", "self_signing_key")):
                    key = _dict(response.get(field)).get(user_id)
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
        keys = _dict(entry.get("device_keys"))
        if devices:
            keys = {d: k for d, k in keys.items() if d in devices}
        result["device_keys"][user_id] = keys
        if isinstance(entry.get("master_key"), dict):
            result["master_keys"][user_id] = entry["master_key"]
        if isinstance(entry.get("self_signing_key"), dict):
            result["self_signing_keys"][user_id] = entry["self_signing_key"]

    async def _with_timeout(self, awaitable: Awaitable[T], timeout_ms: int) -> T:
        d = defer.ensureDeferred(awaitable) if not isinstance(awaitable, defer.Deferred) else awaitable
        d.addTimeout(timeout_ms / 1000, self.hs.reactor)
        return await d

    # -- claim -----------------------------------------------------------------------

    async def claim_keys(self, requester: "Requester", body: dict[str, Any]) -> dict[str, Any]:
        wanted = body.get("one_time_keys")
        if not isinstance(wanted, dict):
            raise BadJson("one_time_keys must be an object")
        for devices in wanted.values():
            if not isinstance(devices, dict) or not all(isinstance(a, str) for a in devices.values()):
                raise BadJson("one_time_keys must map users to {device_id: algorithm}")
        timeout_ms = body.get("timeout", DEFAULT_REMOTE_TIMEOUT_MS)
        if not isinstance(timeout_ms, int) or isinstance(timeout_ms, bool):
            raise BadJson("timeout must be an integer")
        local = {u: d for u, d in wanted.items() if self.hs.is_mine(u)}
        result = await self.claim_local_keys(local)
        result["failures"] = {}
        by_server: dict[str, dict[str, dict[str, str]]] = {}
        for user_id, devices in wanted.items():
            if not self.hs.is_mine(user_id) and is_valid_user_id(user_id):
                by_server.setdefault(server_of(user_id), {})[user_id] = devices
        if not by_server:
            return result
        if self.hs.federation is None:
            for server in by_server:
                result["failures"][server] = {"status": 503, "message": "Federation is not available"}
            return result
        timeout_ms = min(max(timeout_ms, 0), MAX_REMOTE_TIMEOUT_MS)

        async def one(server: str, users: dict[str, dict[str, str]]) -> None:
            try:
                response = await self._with_timeout(
                    self.hs.federation.claim_user_keys(server, {"one_time_keys": users}), timeout_ms
                )
            except Exception as e:
                logger.info("keys claim to %s failed: %r", server, e)
                result["failures"][server] = _failure(e)
                return
            for user_id, devices in _dict(_dict(response).get("one_time_keys")).items():
                if server_of(user_id) == server and user_id in users:
                    result["one_time_keys"][user_id] = _dict(devices)

        await defer.DeferredList(
            [defer.ensureDeferred(one(s, u)) for s, u in by_server.items()], consumeErrors=True
        )
        return result

    async def claim_local_keys(self, one_time_keys: dict[str, dict[str, str]]) -> dict[str, Any]:
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
                self._invalidate_counts({(u, d) for u, d, _ in wanted})
        return {"one_time_keys": claimed.one_time_keys if claimed else {}}

    # -- changes ---------------------------------------------------------------------

    async def key_changes(self, requester: "Requester", from_token: str, to_token: str) -> dict[str, list[str]]:
        from homeserver.handlers.sync import SyncToken

        since = SyncToken.parse(from_token)
        up_to = min(SyncToken.parse(to_token).stream, self.hs.streams.current)
        memberships = await self.store.get_local_memberships(requester.user_id)
        # The same computation /sync uses for device_lists, over the given range.
        return await self.hs.sync._device_lists(requester.user_id, since, up_to, memberships)

    # -- cross-signing -----------------------------------------------------------------

    async def upload_signing_keys(self, requester: "Requester", body: dict[str, Any]) -> None:
        user_id = requester.user_id
        uploaded: dict[str, dict[str, Any]] = {}
        for field, keytype in (
            ("master_key", "master"),
            ("self_signing_key", "self_signing"),
            ("user_signing_key", "user_signing"),
        ):
            key = body.get(field)
            if key is None:
                continue
            if not isinstance(key, dict):
                raise BadJson(f"{field} must be an object")
            if key.get("user_id") != user_id:
                raise InvalidParam(f"{field} is not for the authenticated user")
            usage = key.get("usage")
            if not isinstance(usage, list) or keytype not in usage:
                raise InvalidParam(f"{field} must have usage {keytype!r}")
            if _cross_signing_pubkey(key) is None:
                raise InvalidParam(f"{field} must contain exactly one ed25519 key")
            uploaded[keytype] = key
        existing = await self.store.e2e_get_cross_signing_keys([user_id])
        existing = existing.get(user_id, {})
        changes = {t: k for t, k in uploaded.items() if t not in existing or _canonical(existing[t]) != _canonical(k)}
        if not changes:
            return  # re-uploading identical keys is allowed without auth (as in Synapse)
        if "master" in existing:
            # Replacing cross-signing keys needs the password; setting them up for the
            # first time does not (MSC3967, spec v1.11).
            await self.hs.auth.check_ui_auth(body, [["m.login.password"]], "device_signing_upload", requester)
        master = uploaded.get("master") or existing.get("master")
        if master is None:
            raise InvalidParam("A master key is required before other cross-signing keys")
        master_pub = _cross_signing_pubkey(master)
        assert master_pub is not None
        for keytype in ("self_signing", "user_signing"):
            key = uploaded.get(keytype)
            if key is not None and not _is_signed_by(key, user_id, master_pub):
                raise MatrixError(400, "M_INVALID_SIGNATURE", f"The {keytype} key is not signed by the master key")
        pos = self.hs.streams.allocate()
        try:
            await self.store.e2e_set_cross_signing_keys(user_id, changes, pos)
        finally:
            self.hs.streams.complete(pos)
        await self.hs.devices.notify_device_change(user_id)

    async def upload_signatures(self, requester: "Requester", body: dict[str, Any]) -> dict[str, Any]:
        signer = requester.user_id
        failures: dict[str, dict[str, Any]] = {}
        own_changed = False
        others_changed: set[str] = set()

        def fail(user_id: str, key_id: str, errcode: str, msg: str) -> None:
            failures.setdefault(user_id, {})[key_id] = {"errcode": errcode, "error": msg}

        my_keys = (await self.store.e2e_get_cross_signing_keys([signer])).get(signer, {})
        for target_user, objects in body.items():
            if not isinstance(objects, dict):
                raise BadJson("Each user's signatures must be an object")
            for key_id, obj in objects.items():
                if not isinstance(obj, dict):
                    fail(target_user, key_id, "M_INVALID_PARAM", "Signed object must be an object")
                    continue
                try:
                    if target_user == signer:
                        rows = await self._own_signature_rows(signer, key_id, obj, my_keys)
                        own_changed = own_changed or bool(rows)
                    else:
                        rows = await self._other_signature_rows(signer, target_user, key_id, obj, my_keys)
                        if rows:
                            others_changed.add(target_user)
                except MatrixError as e:
                    fail(target_user, key_id, e.errcode, e.msg)
                    continue
                if rows:
                    await self.store.e2e_store_signatures(signer, rows)
        if own_changed:
            await self.hs.devices.notify_device_change(signer)
        if others_changed:
            # Only the signer sees user-signing signatures: tell the signer's clients to
            # re-query those users.
            await self._record_changes(sorted(others_changed), notify=[signer])
        return {"failures": failures}

    async def _own_signature_rows(
        self, user_id: str, key_id: str, obj: dict[str, Any], my_keys: dict[str, dict[str, Any]]
    ) -> list[tuple[str, str, str, str]]:
        master_pub = _cross_signing_pubkey(my_keys.get("master"))
        if master_pub is not None and key_id == master_pub:
            # The master key, signed by one of the user's devices.
            if _canonical(_strip(obj)) != _canonical(_strip(my_keys["master"])):
                raise MatrixError(400, "M_INVALID_SIGNATURE", "Master key does not match the stored one")
            rows = []
            for sig_key_id, sig in _dict(_dict(obj.get("signatures")).get(user_id)).items():
                alg, _, device_id = sig_key_id.partition(":")
                if alg != "ed25519" or device_id == master_pub or not isinstance(sig, str):
                    continue
                device = await self.store.e2e_get_device_key(user_id, device_id)
                device_pub = _dict(_dict(device).get("keys")).get(sig_key_id)
                if not isinstance(device_pub, str):
                    continue
                if not _is_signed_by(obj, user_id, device_pub, key_version=device_id):
                    raise MatrixError(400, "M_INVALID_SIGNATURE", "Invalid signature")
                rows.append((sig_key_id, user_id, master_pub, sig))
            if not rows:
                raise MatrixError(400, "M_INVALID_SIGNATURE", "No signature by a known device")
            return rows
        # Otherwise: one of the user's devices, signed by their self-signing key.
        device = await self.store.e2e_get_device_key(user_id, key_id)
        if device is None:
            raise MatrixError(404, "M_NOT_FOUND", "Unknown device or key")
        ssk_pub = _cross_signing_pubkey(my_keys.get("self_signing"))
        if ssk_pub is None:
            raise MatrixError(400, "M_MISSING_PARAM", "No self-signing key uploaded")
        if _canonical(_strip(obj)) != _canonical(_strip(device)):
            raise MatrixError(400, "M_INVALID_SIGNATURE", "Device key does not match the stored one")
        sig_key_id = f"ed25519:{ssk_pub}"
        sig = _dict(_dict(obj.get("signatures")).get(user_id)).get(sig_key_id)
        if not isinstance(sig, str) or not _is_signed_by(obj, user_id, ssk_pub):
            raise MatrixError(400, "M_INVALID_SIGNATURE", "Not signed by the self-signing key")
        return [(sig_key_id, user_id, key_id, sig)]

    async def _other_signature_rows(
        self, signer: str, target_user: str, key_id: str, obj: dict[str, Any], my_keys: dict[str, dict[str, Any]]
    ) -> list[tuple[str, str, str, str]]:
        # Another user's master key, signed by the signer's user-signing key.
        usk_pub = _cross_signing_pubkey(my_keys.get("user_signing"))
        if usk_pub is None:
            raise MatrixError(400, "M_MISSING_PARAM", "No user-signing key uploaded")
        if self.hs.is_mine(target_user):
            target_master = (await self.store.e2e_get_cross_signing_keys([target_user])).get(target_user, {}).get("master")
        else:
            remote = await self.query_keys_for_signing(target_user)
            target_master = remote
        if target_master is None or _cross_signing_pubkey(target_master) != key_id:
            raise MatrixError(404, "M_NOT_FOUND", "Unknown master key")
        if _canonical(_strip(obj)) != _canonical(_strip(target_master)):
            raise MatrixError(400, "M_INVALID_SIGNATURE", "Master key does not match the stored one")
        sig_key_id = f"ed25519:{usk_pub}"
        sig = _dict(_dict(obj.get("signatures")).get(signer)).get(sig_key_id)
        if not isinstance(sig, str) or not _is_signed_by(obj, signer, usk_pub):
            raise MatrixError(400, "M_INVALID_SIGNATURE", "Not signed by the user-signing key")
        return [(sig_key_id, target_user, key_id, sig)]

    async def query_keys_for_signing(self, user_id: str) -> dict[str, Any] | None:
        """A remote user's master key (cache or federation), to check a signature on it."""
        result: dict[str, Any] = {"device_keys": {}, "master_keys": {}, "self_signing_keys": {}, "failures": {}}
        await self._query_remote({user_id: []}, result, DEFAULT_REMOTE_TIMEOUT_MS)
        return result["master_keys"].get(user_id)

    # -- dehydrated devices (MSC3814, as Synapse implements it) ---------------------------

    async def get_dehydrated_device(self, user_id: str) -> dict[str, Any]:
        found = await self.store.dehydrated_get(user_id)
        if found is None:
            raise MatrixError(404, "M_NOT_FOUND", "No dehydrated device available")
        return {"device_id": found[0], "device_data": found[1]}

    async def put_dehydrated_device(self, requester: "Requester", body: dict[str, Any]) -> dict[str, Any]:
        from homeserver.handlers.auth import Requester

        user_id = requester.user_id
        device_id = body.get("device_id")
        device_data = body.get("device_data")
        display_name = body.get("initial_device_display_name")
        if not isinstance(device_id, str) or not device_id:
            raise BadJson("device_id must be a string")
        if not isinstance(device_data, dict):
            raise BadJson("device_data must be an object")
        if display_name is not None and not isinstance(display_name, str):
            raise BadJson("initial_device_display_name must be a string")
        if "device_keys" not in body:
            raise BadJson("Device key(s) not found, these must be provided.")
        existing = await self.store.get_device(user_id, device_id)
        current = await self.store.dehydrated_get(user_id)
        if existing is not None and (current is None or current[0] != device_id):
            # Never turn someone's real (logged-in) device into the dehydrated one.
            raise InvalidParam("device_id is already in use")
        old = await self.store.dehydrated_set(user_id, device_id, device_data, display_name)
        if old is not None:
            await self.hs.devices.delete_devices(user_id, [old])
        keys = {k: body[k] for k in ("device_keys", "one_time_keys", *FALLBACK_KEY_FIELDS) if k in body}
        await self.upload_keys(Requester(user_id, device_id, requester.is_guest, ""), keys)
        if existing is None:
            await self.hs.devices.notify_device_change(user_id)
        return {"device_id": device_id}

    async def delete_dehydrated_device(self, user_id: str) -> dict[str, Any]:
        found = await self.store.dehydrated_get(user_id)
        if found is None:
            raise MatrixError(404, "M_NOT_FOUND", "No dehydrated device available")
        await self.store.dehydrated_forget(user_id, found[0])
        await self.hs.devices.delete_devices(user_id, [found[0]])
        return {"device_id": found[0]}

    async def dehydrated_device_events(
        self, user_id: str, device_id: str, from_token: str | None, limit: int
    ) -> tuple[dict[str, Any], bool]:
        """(response, limited): the to-device messages queued for the dehydrated device,
        paginated by ``d<stream id>`` tokens."""
        found = await self.store.dehydrated_get(user_id)
        if found is None:
            raise MatrixError(403, "M_FORBIDDEN", "No dehydrated device exists")
        if found[0] != device_id:
            raise MatrixError(403, "M_FORBIDDEN", "You may only fetch messages for your dehydrated device")
        since = 0
        if from_token:
            try:
                if not from_token.startswith("d"):
                    raise ValueError
                since = int(from_token[1:])
            except ValueError:
                raise InvalidParam(f"from parameter {from_token!r} has an invalid format") from None
        up_to = self.hs.streams.current
        limit = max(1, min(limit, 1000))
        events, last = await self.store.dehydrated_messages(user_id, device_id, since, up_to, limit)
        limited = len(events) == limit
        return {"events": events, "next_batch": f"d{last}"}, limited

    # -- devices: deletion and change propagation ----------------------------------------

    async def _on_devices_deleted(self, user_id: str, device_ids: list[str]) -> None:
        await self.store.e2e_delete_device_keys(user_id, device_ids)
        self._invalidate_counts([(user_id, d) for d in device_ids])

    async def _record_changes(self, user_ids: list[str], notify: list[str] | None = None) -> None:
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

    async def _on_local_device_change(self, user_id: str) -> None:
        """Sends other servers m.device_list_update for each device that changed since we
        last told them, and m.signing_key_update when the cross-signing keys changed."""
        if not self.hs.is_mine(user_id) or self.hs.federation is None:
            return
        try:
            await self._outbound_locks.run(user_id, lambda: self._send_device_updates(user_id))
        except Exception:
            logger.exception("sending device list updates for %s failed", user_id)

    async def _destinations(self, user_id: str) -> set[str]:
        users = await self.store.get_shared_room_users(user_id)
        return {server_of(u) for u in users if not self.hs.is_mine(u) and server_of(u)}

    async def _send_device_updates(self, user_id: str) -> None:
        stream_id, sent = await self.store.e2e_get_outbound_state(user_id)
        devices = (await self.store.e2e_get_devices_with_keys({user_id: []})).get(user_id, {})
        cross = (await self.store.e2e_get_cross_signing_keys([user_id])).get(user_id, {})
        current: dict[str, tuple[str, dict[str, Any]]] = {}
        for device_id, (keys, display_name) in devices.items():
            # No device_display_name: names are not shared over federation (as in Synapse).
            content: dict[str, Any] = {"user_id": user_id, "device_id": device_id, "deleted": False}
            if keys is not None:
                content["keys"] = keys
            current[device_id] = (hashlib.sha256(_canonical(content).encode()).hexdigest(), content)
        public_cross = {t: cross[t] for t in ("master", "self_signing") if t in cross}
        cross_hash = hashlib.sha256(_canonical(public_cross).encode()).hexdigest() if public_cross else None

        updates: list[dict[str, Any]] = []
        changes: dict[str, str | None] = {}
        for device_id, (digest, content) in sorted(current.items()):
            if sent.get(device_id) != digest:
                updates.append(content)
                changes[device_id] = digest
        for device_id in sorted(set(sent) - set(current) - {""}):
            updates.append({"user_id": user_id, "device_id": device_id, "deleted": True})
            changes[device_id] = None
        signing_update = cross_hash is not None and sent.get("") != cross_hash
        if signing_update:
            changes[""] = cross_hash
        if not changes:
            return
        destinations = await self._destinations(user_id)
        for content in updates:
            content["prev_id"] = [stream_id] if stream_id else []
            stream_id += 1
            content["stream_id"] = stream_id
        # Record first: a failed send is repaired by the remote's resync (prev_id gap).
        await self.store.e2e_set_outbound_state(user_id, stream_id, changes)
        for destination in sorted(destinations):
            for content in updates:
                await self._send_edu(destination, "m.device_list_update", content)
            if signing_update:
                edu = {"user_id": user_id, **{f"{t}_key": k for t, k in public_cross.items()}}
                await self._send_edu(destination, "m.signing_key_update", edu)

    async def _send_edu(self, destination: str, edu_type: str, content: dict[str, Any]) -> None:
        try:
            result = self.hs.federation.send_edu(destination, edu_type, content)
            if isinstance(result, defer.Deferred) or hasattr(result, "__await__"):
                await result
        except Exception:
            logger.exception("sending %s to %s failed", edu_type, destination)

    async def get_user_devices(self, user_id: str) -> dict[str, Any]:
        """The federation /user/devices/{userId} response for a local user."""
        devices = (await self.store.e2e_get_devices_with_keys({user_id: []})).get(user_id, {})
        out = []
        for device_id, (keys, display_name) in sorted(devices.items()):
            entry: dict[str, Any] = {"device_id": device_id}
            if keys is not None:
                entry["keys"] = keys
            out.append(entry)
        result: dict[str, Any] = {
            "user_id": user_id,
            "stream_id": await self.store.e2e_outbound_stream_id(user_id),
            "devices": out,
        }
        cross = (await self.store.e2e_get_cross_signing_keys([user_id])).get(user_id, {})
        if "master" in cross:
            result["master_key"] = cross["master"]
        if "self_signing" in cross:
            result["self_signing_key"] = cross["self_signing"]
        return result

    # -- inbound from other servers -------------------------------------------------------

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
        await self._record_changes([user_id])


def _is_str_map(value: Any, depth: int = 1) -> bool:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        return False
    if depth == 1:
        return all(isinstance(v, str) for v in value.values())
    return all(_is_str_map(v, depth - 1) for v in value.values())


def _is_key_object(key: Any) -> bool:
    return (
        isinstance(key, dict)
        and isinstance(key.get("key"), str)
        and _is_str_map(key.get("signatures"), 2)
        and isinstance(key.get("fallback", False), bool)
    )


def _check_device_keys(keys: dict[str, Any]) -> None:
    """The shape Synapse enforces for uploaded device keys."""
    algorithms = keys.get("algorithms")
    if not isinstance(algorithms, list) or not all(isinstance(a, str) for a in algorithms):
        raise BadJson("device_keys.algorithms must be a list of strings")
    if not _is_str_map(keys.get("keys")):
        raise BadJson("device_keys.keys must map key ids to strings")
    if not _is_str_map(keys.get("signatures"), 2):
        raise BadJson("device_keys.signatures must be signatures")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _failure(e: Exception) -> dict[str, Any]:
    if isinstance(e, MatrixError):
        return {"status": e.code, "message": e.msg}
    code = getattr(e, "code", None)
    if isinstance(code, int):
        return {"status": code, "message": str(e)}
    return {"status": 503, "message": str(e) or type(e).__name__}

