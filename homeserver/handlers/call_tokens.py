"""The MatrixRTC call token service (lk-jwt-service compatible).

A client proves who it is with a Matrix OpenID token from its own homeserver; we check
that token with the homeserver that issued it (federation ``/openid/userinfo``, or
locally) and answer with the SFU's URL and a LiveKit access token. Identities and room
names are derived exactly as lk-jwt-service does, because Element Call matches LiveKit
participants to Matrix members by those strings.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any

from homeserver.http.errors import MatrixError
from homeserver.util.ids import is_valid_user_id, server_of
from media_sfu.tokens import mint_access_token

if TYPE_CHECKING:
    from homeserver.app import HomeServer

logger = logging.getLogger(__name__)

TOKEN_TTL_S = 3600
LEGACY_SLOT = "m.call#ROOM"


def _hash_b64(parts: list[str]) -> str:
    # Go's json.Marshal of a string array: compact, no spaces (lk-jwt-service helper.go).
    raw = json.dumps(parts, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")


def livekit_room_for(room_id: str, slot_id: str) -> str:
    return _hash_b64([room_id, slot_id])


def livekit_identity_for(user_id: str, device_id: str, member_id: str) -> str:
    return _hash_b64([user_id, device_id, member_id])


def unauthorised() -> MatrixError:
    return MatrixError(401, "M_UNAUTHORIZED", "The request could not be authorised.")


def bad_json(msg: str = "The request body was malformed") -> MatrixError:
    return MatrixError(400, "M_BAD_JSON", msg)


def _require(obj: Any, key: str) -> str:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, str) or not value:
        raise bad_json(f"Missing {key}")
    return value


class CallTokenHandler:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.sfu = hs.config.sfu

    @property
    def service_url(self) -> str:
        return self.hs.config.public_baseurl.rstrip("/") + "/_wspr/livekit/jwt"

    def transports(self) -> list[dict[str, Any]]:
        return [{"type": "livekit", "livekit_service_url": self.service_url}]

    async def _verify_openid(self, openid: Any) -> str:
        token = _require(openid, "access_token")
        server = _require(openid, "matrix_server_name")
        if server == self.hs.server_name:
            user_id = await self.hs.openid.user_for_token(token)
        else:
            try:
                answer = await self.hs.federation.openid_userinfo(server, token)
            except Exception as e:
                logger.info("openid check with %s failed: %s", server, e)
                raise unauthorised() from None
            user_id = answer.get("sub") if isinstance(answer, dict) else None
        if not isinstance(user_id, str) or not is_valid_user_id(user_id) or server_of(user_id) != server:
            raise unauthorised()
        return user_id

    def _may_create(self, user_id: str) -> bool:
        allowed = self.hs.config.rtc_full_access_homeservers
        return "*" in allowed or server_of(user_id) in allowed

    def _answer(self, user_id: str, identity: str, room_id: str, slot_id: str) -> dict[str, Any]:
        jwt = mint_access_token(
            self.sfu.api_key,
            self.sfu.api_secret,
            identity,
            livekit_room_for(room_id, slot_id),
            name=user_id,
            ttl=TOKEN_TTL_S,
            can_create_room=self._may_create(user_id),
        )
        return {"url": self.sfu.effective_public_url, "jwt": jwt}

    async def get_token(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /get_token (MSC4195)."""
        room_id = _require(body, "room_id")
        slot_id = _require(body, "slot_id")
        member = body.get("member")
        member_id = _require(member, "id")
        claimed_user = _require(member, "claimed_user_id")
        claimed_device = _require(member, "claimed_device_id")
        if ("delay_id" in body) != ("delay_timeout" in body):
            raise bad_json("delay_id and delay_timeout go together")
        user_id = await self._verify_openid(body.get("openid_token"))
        if user_id != claimed_user:
            raise unauthorised()
        return self._answer(user_id, livekit_identity_for(user_id, claimed_device, member_id), room_id, slot_id)

    async def legacy_get(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /sfu/get (the older Element Call flow)."""
        room_id = _require(body, "room")
        device_id = _require(body, "device_id")
        user_id = await self._verify_openid(body.get("openid_token"))
        return self._answer(user_id, f"{user_id}:{device_id}", room_id, LEGACY_SLOT)
