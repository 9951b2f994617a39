"""What the parts of the E2E keys handler share: the shapes of uploaded keys, signature
checks, per-user locks, and how a remote server's failure is reported."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from twisted.internet import defer

from homeserver.http.errors import BadJson, MatrixError
from homeserver.protocol.canonical_json import encode_canonical_json
from homeserver.protocol.signing import SignatureError, decode_verify_key_base64, verify_json

T = TypeVar("T")

DEFAULT_REMOTE_TIMEOUT_MS = 10_000
MAX_REMOTE_TIMEOUT_MS = 60_000
FALLBACK_KEY_FIELDS = ("fallback_keys", "org.matrix.msc2732.fallback_keys")


def same_json(a: Any, b: Any) -> bool:
    """Whether two JSON values are the same (compared as canonical JSON)."""
    return encode_canonical_json(a) == encode_canonical_json(b)


def strip_unsigned(key: dict[str, Any]) -> dict[str, Any]:
    """A key without the parts that legitimately vary (signatures, unsigned)."""
    return {k: v for k, v in key.items() if k not in ("signatures", "unsigned")}


def cross_signing_pubkey(key: Any) -> str | None:
    if not isinstance(key, dict):
        return None
    keys = key.get("keys")
    if not isinstance(keys, dict) or len(keys) != 1:
        return None
    key_id, value = next(iter(keys.items()))
    if not isinstance(value, str) or key_id != f"ed25519:{value}":
        return None
    return value


def is_signed_by(obj: dict[str, Any], user_id: str, pubkey: str, key_version: str | None = None) -> bool:
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


def is_str_map(value: Any, depth: int = 1) -> bool:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        return False
    if depth == 1:
        return all(isinstance(v, str) for v in value.values())
    return all(is_str_map(v, depth - 1) for v in value.values())


def is_key_object(key: Any) -> bool:
    return (
        isinstance(key, dict)
        and isinstance(key.get("key"), str)
        and is_str_map(key.get("signatures"), 2)
        and isinstance(key.get("fallback", False), bool)
    )


def check_device_keys(keys: dict[str, Any]) -> None:
    """The shape Synapse enforces for uploaded device keys."""
    algorithms = keys.get("algorithms")
    if not isinstance(algorithms, list) or not all(isinstance(a, str) for a in algorithms):
        raise BadJson("device_keys.algorithms must be a list of strings")
    if not is_str_map(keys.get("keys")):
        raise BadJson("device_keys.keys must map key ids to strings")
    if not is_str_map(keys.get("signatures"), 2):
        raise BadJson("device_keys.signatures must be signatures")


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def failure_of(e: Exception) -> dict[str, Any]:
    if isinstance(e, MatrixError):
        return {"status": e.code, "message": e.msg}
    code = getattr(e, "code", None)
    if isinstance(code, int):
        return {"status": code, "message": str(e)}
    return {"status": 503, "message": str(e) or type(e).__name__}


def split_keys(keys: Any, field: str) -> dict[tuple[str, str], Any]:
    """Uploaded one-time or fallback keys by (algorithm, key id)."""
    if not isinstance(keys, dict):
        raise BadJson(f"{field} must be an object")
    out: dict[tuple[str, str], Any] = {}
    for full_id, key in keys.items():
        alg, sep, kid = full_id.partition(":")
        if not sep or not alg or not kid:
            raise BadJson(f"Invalid key id {full_id!r} in {field}")
        if not isinstance(key, str) and not is_key_object(key):
            # Synapse's shape: a string, or {key, signatures[, fallback]}.
            raise BadJson(f"Invalid key {full_id!r} in {field}")
        out[(alg, kid)] = key
    return out


def parse_timeout(body: dict[str, Any]) -> int:
    """A /keys/query or /keys/claim ``timeout``, bounded."""
    timeout_ms = body.get("timeout", DEFAULT_REMOTE_TIMEOUT_MS)
    if not isinstance(timeout_ms, int) or isinstance(timeout_ms, bool):
        raise BadJson("timeout must be an integer")
    return min(max(timeout_ms, 0), MAX_REMOTE_TIMEOUT_MS)


async def with_timeout(reactor: Any, awaitable: Coroutine[Any, Any, T] | defer.Deferred[T], timeout_ms: int) -> T:
    d = defer.ensureDeferred(awaitable) if not isinstance(awaitable, defer.Deferred) else awaitable
    d.addTimeout(timeout_ms / 1000, reactor)
    return await d
