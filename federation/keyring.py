"""Server signing keys: ours (served at ``/_matrix/key/v2/server``) and other servers'
(fetched from them, checked, cached in memory and in the database by validity).

``get_verify_key(server, key_id, valid_at_ts)`` answers "which key signed this object at
that time": a current key must have ``valid_until_ts >= valid_at_ts``; an old key
(``old_verify_keys``) is good for objects older than its ``expired_ts``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from signedjson.key import VerifyKey

from federation.errors import FederationError, unauthorized
from homeserver.http.errors import MatrixError
from homeserver.protocol.signing import (
    SignatureError,
    decode_verify_key_base64,
    encode_verify_key_base64,
    get_verify_key,
    key_id,
    sign_json,
    verify_json_with_keys,
)
from homeserver.storage.federation import StoredServerKey
from homeserver.util.async_helpers import SharedResult
from homeserver.util.ids import now_ms

if TYPE_CHECKING:
    from homeserver.app import HomeServer

logger = logging.getLogger(__name__)

# How long others may cache our key (Synapse's default key_refresh_interval).
LOCAL_KEY_VALIDITY_MS = 24 * 3600 * 1000
# Don't refetch a server's keys more often than this when a key id is unknown.
MIN_REFETCH_INTERVAL_MS = 10_000
# Servers whose keys (and last fetch time) are kept in memory. Any request naming a new
# origin adds one, so the memory is bounded: past this many, start again from the store.
MAX_SERVERS_IN_MEMORY = 10_000


class KeyLookupError(MatrixError):
    def __init__(self, msg: str) -> None:
        super().__init__(401, "M_UNAUTHORIZED", msg)


@dataclass(frozen=True)
class CachedKey:
    verify_key: VerifyKey
    valid_until_ts: int
    expired_ts: int | None

    def usable_at(self, ts: int) -> bool:
        if self.expired_ts is not None:
            return ts < self.expired_ts
        return self.valid_until_ts >= ts


class Keyring:
    def __init__(self, hs: HomeServer, transport: Any) -> None:
        self.hs = hs
        self.transport = transport
        self.store = hs.store
        self._keys: dict[str, dict[str, CachedKey]] = {}
        self._loaded_from_db: set[str] = set()
        self._last_fetch: dict[str, int] = {}
        self.max_servers_in_memory = MAX_SERVERS_IN_MEMORY
        self._fetching: dict[str, SharedResult[None]] = {}
        self.old_verify_keys: dict[str, dict[str, Any]] = {}  # key id -> {"key", "expired_ts"}
        self._local_response: dict[str, Any] | None = None

    # -- our own keys ----------------------------------------------------------------

    def local_key_response(self) -> dict[str, Any]:
        """The signed /_matrix/key/v2/server body, re-signed before it goes stale."""
        now = now_ms()
        cached = self._local_response
        if cached is not None and cached["valid_until_ts"] - now > LOCAL_KEY_VALIDITY_MS // 2:
            return cached
        key = self.hs.signing_key
        body = {
            "server_name": self.hs.server_name,
            "verify_keys": {key_id(key): {"key": encode_verify_key_base64(get_verify_key(key))}},
            "old_verify_keys": {k: dict(v) for k, v in self.old_verify_keys.items()},
            "valid_until_ts": now + LOCAL_KEY_VALIDITY_MS,
        }
        self._local_response = sign_json(body, self.hs.server_name, key)
        return self._local_response

    # -- remote keys ------------------------------------------------------------------

    async def get_verify_key(self, server_name: str, kid: str, valid_at_ts: int | None = None) -> VerifyKey:
        """The key ``server_name`` signs with under ``kid``, usable at ``valid_at_ts`` (now
        by default); raises KeyLookupError (401 M_UNAUTHORIZED) when there is none."""
        ts = valid_at_ts if valid_at_ts is not None else now_ms()
        if server_name == self.hs.server_name:
            key = self.hs.signing_key
            if key_id(key) == kid:
                return get_verify_key(key)
            raise KeyLookupError(f"Unknown key {kid} for this server")
        found = self._usable(server_name, kid, ts)
        if found is not None:
            return found
        if server_name not in self._loaded_from_db:
            await self._load_from_db(server_name)
            found = self._usable(server_name, kid, ts)
            if found is not None:
                return found
        last = self._last_fetch.get(server_name, 0)
        if now_ms() - last >= MIN_REFETCH_INTERVAL_MS or server_name in self._fetching:
            try:
                await self._fetch_keys(server_name)
            except MatrixError as e:
                raise KeyLookupError(f"Failed to fetch keys of {server_name}: {e.msg}") from None
            found = self._usable(server_name, kid, ts)
            if found is not None:
                return found
        cached = self._keys.get(server_name, {}).get(kid)
        if cached is not None:
            raise KeyLookupError(f"Key {kid} of {server_name} is not valid at {ts}")
        raise KeyLookupError(f"Unknown key {kid} for {server_name}")

    def _usable(self, server_name: str, kid: str, ts: int) -> VerifyKey | None:
        cached = self._keys.get(server_name, {}).get(kid)
        if cached is not None and cached.usable_at(ts):
            return cached.verify_key
        return None

    async def _load_from_db(self, server_name: str) -> None:
        rows = await self.store.get_server_keys(server_name)
        if len(self._loaded_from_db) >= self.max_servers_in_memory:
            self._keys.clear()
            self._loaded_from_db.clear()
        self._loaded_from_db.add(server_name)
        keys = self._keys.setdefault(server_name, {})
        for row in rows:
            if row.key_id not in keys or keys[row.key_id].valid_until_ts < row.valid_until_ts:
                try:
                    vk = decode_verify_key_base64("ed25519", row.key_id.split(":", 1)[1], row.verify_key)
                except Exception:
                    continue
                keys[row.key_id] = CachedKey(vk, row.valid_until_ts, row.expired_ts)

    async def _fetch_keys(self, server_name: str) -> None:
        shared = self._fetching.get(server_name)
        if shared is not None:
            await shared.wait()
            return
        shared = SharedResult()
        self._fetching[server_name] = shared
        if len(self._last_fetch) >= self.max_servers_in_memory:
            self._last_fetch.clear()
        self._last_fetch[server_name] = now_ms()
        try:
            await self._do_fetch(server_name)
        except BaseException as e:
            shared.errback(e)
            raise
        else:
            shared.callback(None)
        finally:
            self._fetching.pop(server_name, None)

    async def _do_fetch(self, server_name: str) -> None:
        response = await self.transport.request(server_name, "GET", "/_matrix/key/v2/server", timeout=30)
        await self.process_key_response(server_name, response)

    async def process_key_response(self, server_name: str, response: Any) -> list[StoredServerKey]:
        """Check a /key/v2/server body (self-signed by the keys it lists) and cache it."""
        if not isinstance(response, dict) or response.get("server_name") != server_name:
            raise FederationError(502, "M_UNKNOWN", f"Key response is not for {server_name}", server_name)
        valid_until = response.get("valid_until_ts")
        verify_keys = response.get("verify_keys")
        if not isinstance(valid_until, int) or not isinstance(verify_keys, dict):
            raise FederationError(502, "M_UNKNOWN", f"Malformed key response from {server_name}", server_name)
        decoded: dict[str, VerifyKey] = {}
        for kid, entry in verify_keys.items():
            if not (isinstance(kid, str) and kid.startswith("ed25519:") and isinstance(entry, dict)):
                continue
            try:
                decoded[kid] = decode_verify_key_base64("ed25519", kid.split(":", 1)[1], entry["key"])
            except Exception:
                continue
        try:
            verify_json_with_keys(response, server_name, decoded)
        except SignatureError as e:
            raise FederationError(502, "M_UNKNOWN", f"Key response of {server_name} is not self-signed: {e}", server_name) from None
        now = now_ms()
        raw = json.dumps(response)
        rows = [
            StoredServerKey(server_name, kid, encode_verify_key_base64(vk), valid_until, None, now, raw)
            for kid, vk in decoded.items()
        ]
        old = response.get("old_verify_keys")
        for kid, entry in (old.items() if isinstance(old, dict) else []):
            if kid in decoded or not (isinstance(kid, str) and kid.startswith("ed25519:") and isinstance(entry, dict)):
                continue
            expired = entry.get("expired_ts")
            if not isinstance(expired, int):
                continue
            try:
                vk = decode_verify_key_base64("ed25519", kid.split(":", 1)[1], entry["key"])
            except Exception:
                continue
            rows.append(StoredServerKey(server_name, kid, encode_verify_key_base64(vk), expired, expired, now, raw))
        keys = self._keys.setdefault(server_name, {})
        for row in rows:
            vk = decode_verify_key_base64("ed25519", row.key_id.split(":", 1)[1], row.verify_key)
            keys[row.key_id] = CachedKey(vk, row.valid_until_ts, row.expired_ts)
        await self.store.store_server_keys(rows)
        return rows

    async def verify_json_for_server(self, server_name: str, obj: Mapping[str, Any], valid_at_ts: int | None = None) -> None:
        """Raise KeyLookupError (401 M_UNAUTHORIZED) unless ``obj`` carries a valid
        signature of ``server_name`` by a key usable at ``valid_at_ts`` (default now)."""
        signatures = obj.get("signatures")
        sigs = signatures.get(server_name) if isinstance(signatures, Mapping) else None
        if not isinstance(sigs, Mapping) or not sigs:
            raise KeyLookupError(f"Not signed by {server_name}")
        kids = [k for k in sigs if isinstance(k, str) and k.startswith("ed25519:")]
        if not kids:
            raise KeyLookupError(f"No supported signature from {server_name}")
        keys: dict[str, VerifyKey] = {}
        errors = []
        for kid in kids:
            try:
                keys[kid] = await self.get_verify_key(server_name, kid, valid_at_ts)
            except KeyLookupError as e:
                errors.append(e.msg)
        if not keys:
            raise KeyLookupError("; ".join(errors))
        try:
            verify_json_with_keys(obj, server_name, keys)
        except SignatureError as e:
            raise unauthorized(f"Invalid signature for server {server_name}: {e}") from None

    # -- notary -------------------------------------------------------------------------

    async def key_responses_for(self, server_name: str, minimum_valid_until_ts: int) -> list[dict[str, Any]]:
        """Signed key responses of ``server_name`` for /key/v2/query (fetched if we hold
        none valid until ``minimum_valid_until_ts``), countersigned by us."""
        if server_name == self.hs.server_name:
            return [self.local_key_response()]
        rows = await self.store.get_server_keys(server_name)
        bodies = {r.key_json for r in rows if r.expired_ts is None and r.valid_until_ts >= minimum_valid_until_ts}
        if not bodies:
            try:
                await self._fetch_keys(server_name)
            except MatrixError as e:
                logger.info("notary fetch of %s keys failed: %s", server_name, e)
            rows = await self.store.get_server_keys(server_name)
            bodies = {r.key_json for r in rows if r.expired_ts is None}
        out = []
        for raw in bodies:
            out.append(sign_json(json.loads(raw), self.hs.server_name, self.hs.signing_key))
        return out
