"""JWT access tokens: the signing keys in the data directory and the token format.

An access token is a JWS (RFC 7515, RFC 9068 ``at+jwt``) signed with Ed25519 (RFC 9864's
fully specified ``Ed25519`` algorithm) naming the user, the device and the session, so
that a request is authenticated by a signature check and a look in the in-memory
revocation list: no database read.

Keys live in a JWKS file (private: mode 0600) with one active key that signs and older
keys that still verify. ``rotate_signing_key`` adds a key and makes it active; tokens
signed by the old one stay valid until they expire, so nobody is signed out. A process
that meets an unknown ``kid`` (another process rotated) re-reads the file, at most once
every few seconds.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OKPKey

from homeserver.util.caches import LruCache

logger = logging.getLogger(__name__)

ALGORITHM = "Ed25519"
TOKEN_TYPE = "at+jwt"
# Re-read the key file for an unknown kid at most this often.
RELOAD_INTERVAL_S = 5.0
# Tokens whose signature was checked, remembered so a busy client costs one signature
# check, not one per request (expiry and revocation are still checked every time).
VERIFIED_CACHE_SIZE = 50_000


class InvalidAccessToken(Exception):
    """Not a token of this server (bad signature, unknown key, malformed) or expired."""

    def __init__(self, msg: str, expired: bool = False) -> None:
        super().__init__(msg)
        self.expired = expired


@dataclass(frozen=True)
class AccessTokenClaims:
    user_id: str
    device_id: str
    session_id: str
    is_guest: bool
    issued_at: int  # seconds
    # Seconds since the epoch; None for a legacy login that asked for no refresh token
    # (the spec's tokens that never expire: see SessionHandler.verify_access_token).
    expires_at: int | None
    client_id: str | None


def looks_like_jwt(token: str) -> bool:
    """A JWS compact serialisation starts with the base64 of '{"' and has three parts."""
    return token.startswith("eyJ") and token.count(".") == 2


def _write_private_atomically(path: str, data: bytes) -> None:
    """Writes a secret file readable by its owner only, replacing any old one in one step
    (a process reading it during rotation sees the old or the new file, never half)."""
    tmp = f"{path}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _new_key() -> OKPKey:
    kid = time.strftime("%Y%m%d") + "-" + secrets.token_hex(4)
    return OKPKey.generate_key("Ed25519", parameters={"kid": kid, "use": "sig", "alg": ALGORITHM})


def _dump(keys: list[OKPKey], active: str) -> bytes:
    return json.dumps({"active": active, "keys": [k.as_dict(private=True) for k in keys]}, indent=2).encode()


def rotate_signing_key(path: str) -> str:
    """Adds a new signing key to the file and makes it the active one; returns its kid.
    Older keys are kept so that the tokens they signed stay valid."""
    keys: list[OKPKey] = []
    if os.path.exists(path):
        keys, _ = _read(path)
    key = _new_key()
    keys.append(key)
    _write_private_atomically(path, _dump(keys, key.kid or ""))
    return key.kid or ""


def _read(path: str) -> tuple[list[OKPKey], str]:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    keys = [OKPKey.import_key(k) for k in data["keys"]]
    return keys, data["active"]


class SigningKeys:
    """The key set of one process, loaded from (or first created in) ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path
        if not os.path.exists(path):
            rotate_signing_key(path)
            logger.info("created the access token signing key file %s", path)
        self._last_reload = 0.0
        self._load()

    def _load(self) -> None:
        keys, active = _read(self.path)
        self.key_set = KeySet([*keys])
        self._by_kid = {k.kid: k for k in keys}
        if active not in self._by_kid:
            raise ValueError(f"{self.path}: the active key {active!r} is not in the file")
        self.active = self._by_kid[active]

    def find(self, kid: str) -> OKPKey | None:
        key = self._by_kid.get(kid)
        if key is None and time.monotonic() - self._last_reload > RELOAD_INTERVAL_S:
            self._last_reload = time.monotonic()
            try:
                self._load()
            except (OSError, ValueError, KeyError) as e:
                logger.warning("re-reading %s failed: %s", self.path, e)
            key = self._by_kid.get(kid)
        return key

    def public_jwks(self) -> dict[str, Any]:
        return {"keys": [k.as_dict(private=False) for k in self._by_kid.values()]}


class AccessTokenCodec:
    """Issues and verifies the JWT access tokens."""

    def __init__(self, keys: SigningKeys, issuer: str, clock: Any = time.time) -> None:
        self.keys = keys
        self.issuer = issuer
        self._clock = clock
        self._verified: LruCache = LruCache(VERIFIED_CACHE_SIZE)

    def issue(
        self,
        *,
        user_id: str,
        device_id: str,
        session_id: str,
        is_guest: bool,
        lifetime_s: int | None,
        client_id: str | None = None,
        scope: str | None = None,
    ) -> str:
        now = int(self._clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": user_id,
            "sid": session_id,
            "device_id": device_id,
            "iat": now,
            # Unique per token, so two tokens of one session issued in the same second differ.
            "jti": secrets.token_urlsafe(9),
        }
        if lifetime_s is not None:
            claims["exp"] = now + lifetime_s
        if is_guest:
            claims["guest"] = True
        if client_id is not None:
            claims["client_id"] = client_id
        if scope is not None:
            claims["scope"] = scope
        key = self.keys.active
        header = {"alg": ALGORITHM, "kid": key.kid, "typ": TOKEN_TYPE}
        return jwt.encode(header, claims, key, algorithms=[ALGORITHM])

    def verify(self, token: str) -> AccessTokenClaims:
        """The claims of a token of this server that has not expired."""
        claims = self.decode(token)
        if claims.expires_at is not None and claims.expires_at <= self._clock():
            raise InvalidAccessToken("Access token has expired", expired=True)
        return claims

    def decode(self, token: str) -> AccessTokenClaims:
        """The claims of a token of this server, expired or not (signature checked)."""
        claims = self._verified.fetch(token)
        if claims is None:
            claims = self._verify_signature(token)
            self._verified.put(token, claims)
        return claims

    def _verify_signature(self, token: str) -> AccessTokenClaims:
        try:
            header = json.loads(_b64decode(token.split(".", 1)[0]))
            kid = header.get("kid") if isinstance(header, dict) else None
        except (ValueError, UnicodeDecodeError):
            raise InvalidAccessToken("Malformed access token") from None
        if not isinstance(kid, str) or header.get("typ") != TOKEN_TYPE:
            raise InvalidAccessToken("Not an access token of this server")
        key = self.keys.find(kid)
        if key is None:
            raise InvalidAccessToken("Access token signed by an unknown key")
        try:
            # The JWS layer only: the claims are ours, checked below (jwt.decode's generic
            # claim handling costs about as much again as the signature).
            verified = jws.deserialize_compact(token, key, algorithms=[ALGORITHM])
            c = json.loads(verified.payload)
        except (JoseError, ValueError):
            raise InvalidAccessToken("Invalid access token signature") from None
        if not isinstance(c, dict):
            raise InvalidAccessToken("Malformed access token claims")
        try:
            if c["iss"] != self.issuer:
                raise InvalidAccessToken("Access token from another issuer")
            exp = c.get("exp")
            return AccessTokenClaims(
                user_id=str(c["sub"]),
                device_id=str(c["device_id"]),
                session_id=str(c["sid"]),
                is_guest=bool(c.get("guest", False)),
                issued_at=int(c["iat"]),
                expires_at=int(exp) if exp is not None else None,
                client_id=c.get("client_id"),
            )
        except (KeyError, TypeError, ValueError):
            raise InvalidAccessToken("Malformed access token claims") from None


def _b64decode(part: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
