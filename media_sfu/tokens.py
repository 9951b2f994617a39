"""LiveKit-format access tokens: HS256 JWTs with a ``video`` grant.

Claim names follow livekit/protocol ``auth/grants.go`` (camelCase). The identity is ``sub``
(LiveKit reads it from there) and is also copied to ``identity`` like lk-jwt-service does.
The key id travels in ``iss``: the verifier picks the secret by it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

ALGORITHM = "HS256"


class TokenError(Exception):
    """The token is missing, malformed, badly signed, expired or lacks a grant."""


@dataclass(frozen=True)
class VideoGrant:
    room: str = ""
    room_join: bool = False
    room_create: bool = False
    room_list: bool = False
    room_admin: bool = False
    can_publish: bool = True  # absent = allowed (grants.go)
    can_subscribe: bool = True
    can_publish_data: bool = True
    can_update_own_metadata: bool = False
    hidden: bool = False

    @classmethod
    def from_claim(cls, v: Mapping[str, Any]) -> VideoGrant:
        def b(k: str, default: bool) -> bool:
            x = v.get(k, default)
            return x if isinstance(x, bool) else default

        room = v.get("room", "")
        return cls(
            room=room if isinstance(room, str) else "",
            room_join=b("roomJoin", False), room_create=b("roomCreate", False),
            room_list=b("roomList", False), room_admin=b("roomAdmin", False),
            can_publish=b("canPublish", True), can_subscribe=b("canSubscribe", True),
            can_publish_data=b("canPublishData", True),
            can_update_own_metadata=b("canUpdateOwnMetadata", False), hidden=b("hidden", False),
        )


@dataclass(frozen=True)
class AccessClaims:
    api_key: str
    identity: str
    name: str
    metadata: str
    video: VideoGrant
    expires_at: int
    attributes: dict[str, str] = field(default_factory=dict)


def mint_access_token(
    api_key: str,
    api_secret: str,
    identity: str,
    room: str,
    *,
    name: str | None = None,
    ttl: int = 3600,
    can_create_room: bool = True,
    can_publish: bool = True,
    can_subscribe: bool = True,
    can_publish_data: bool = True,
    can_update_own_metadata: bool = True,
    hidden: bool = False,
    metadata: str | None = None,
    attributes: Mapping[str, str] | None = None,
    now: float | None = None,
) -> str:
    """Sign a LiveKit access token allowing ``identity`` to join ``room`` for ``ttl`` seconds."""
    if not identity:
        raise ValueError("identity must not be empty")
    if not room:
        raise ValueError("room must not be empty")
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    t = int(now if now is not None else time.time())
    video: dict[str, Any] = {
        "roomJoin": True,
        "room": room,
        "canPublish": can_publish,
        "canSubscribe": can_subscribe,
        "canPublishData": can_publish_data,
        "canUpdateOwnMetadata": can_update_own_metadata,
    }
    if can_create_room:
        video["roomCreate"] = True
    if hidden:
        video["hidden"] = True
    claims: dict[str, Any] = {
        "iss": api_key,
        "sub": identity,
        "identity": identity,
        "nbf": t,
        "iat": t,
        "exp": t + ttl,
        "video": video,
    }
    if name is not None:
        claims["name"] = name
    if metadata is not None:
        claims["metadata"] = metadata
    if attributes:
        claims["attributes"] = dict(attributes)
    return jwt.encode(claims, api_secret, algorithm=ALGORITHM)


def verify_access_token(
    token: str,
    secrets: Mapping[str, str] | Callable[[str], str | None],
    *,
    leeway: float = 10.0,
    now: float | None = None,
) -> AccessClaims:
    """Check signature, ``nbf``/``exp`` and shape; return the claims.

    ``secrets`` maps API key (the token's ``iss``) to secret, or is a lookup function.
    Raises :class:`TokenError` with a short reason on any failure.
    """
    if not token:
        raise TokenError("missing token")
    try:
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as e:
        raise TokenError(f"malformed token: {e}") from None
    api_key = unverified.get("iss")
    if not isinstance(api_key, str) or not api_key:
        raise TokenError("token has no issuer (API key)")
    secret = secrets(api_key) if callable(secrets) else secrets.get(api_key)
    if not secret:
        raise TokenError("unknown API key")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            leeway=leeway,
            options={"require": ["exp", "sub"], "verify_iat": False},
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("token expired") from None
    except jwt.ImmatureSignatureError:
        raise TokenError("token not yet valid") from None
    except jwt.PyJWTError as e:
        raise TokenError(f"invalid token: {e}") from None
    if now is not None:
        # explicit clock for tests; PyJWT already checked against the real one
        if claims["exp"] + leeway < now:
            raise TokenError("token expired")
        if "nbf" in claims and claims["nbf"] - leeway > now:
            raise TokenError("token not yet valid")
    identity = claims.get("sub")
    if not isinstance(identity, str) or not identity:
        raise TokenError("token has no identity (sub)")
    video = claims.get("video") or {}
    if not isinstance(video, dict):
        raise TokenError("video grant is not an object")
    attrs = claims.get("attributes") or {}
    return AccessClaims(
        api_key=api_key,
        identity=identity,
        name=claims.get("name", "") if isinstance(claims.get("name", ""), str) else "",
        metadata=claims.get("metadata", "") if isinstance(claims.get("metadata", ""), str) else "",
        video=VideoGrant.from_claim(video),
        expires_at=int(claims["exp"]),
        attributes={str(k): str(v) for k, v in attrs.items()} if isinstance(attrs, dict) else {},
    )
