"""The frames of the WebSocket stream (docs/websocket.md): what clients may send, parsed
and validated; what the server sends; the close codes. Pure functions, no I/O.

Every frame is a JSON object in a text frame, with a ``type``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

# The unstable feature flag in /versions, and the path (under the client API).
FEATURE = "org.wspr.websocket"
PATH = "/_matrix/client/unstable/org.wspr.websocket"
PROTOCOL_VERSION = 1

MODES = ("sync", "sliding_sync")
PRESENCE_STATES = ("online", "offline", "unavailable")


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    INTERNAL_ERROR = 1011
    # A frame the server cannot read (not JSON, unknown type, missing field...).
    BAD_FRAME = 4000
    # No token, a bad one, or one revoked or expired meanwhile.
    UNAUTHORIZED = 4001
    FORBIDDEN = 4003
    # Sliding sync only: the position is unknown (server restarted): start again without it.
    UNKNOWN_POS = 4004
    # The client did not keep up: it reconnects from its last token.
    SLOW_CLIENT = 4008
    # Too many sockets for the device: the oldest was closed.
    TOO_MANY = 4029


# The close code each Matrix error ends a socket with.
_ERRCODE_CLOSE = {
    "M_MISSING_TOKEN": CloseCode.UNAUTHORIZED,
    "M_UNKNOWN_TOKEN": CloseCode.UNAUTHORIZED,
    "M_FORBIDDEN": CloseCode.FORBIDDEN,
    "M_GUEST_ACCESS_FORBIDDEN": CloseCode.FORBIDDEN,
    "M_UNKNOWN_POS": CloseCode.UNKNOWN_POS,
    "M_LIMIT_EXCEEDED": CloseCode.TOO_MANY,
}


def close_code_for(errcode: str, status: int) -> CloseCode:
    if errcode in _ERRCODE_CLOSE:
        return _ERRCODE_CLOSE[errcode]
    return CloseCode.BAD_FRAME if 400 <= status < 500 else CloseCode.INTERNAL_ERROR


class FrameError(Exception):
    """A client frame the server refuses; the socket ends with it."""

    def __init__(self, errcode: str, message: str) -> None:
        super().__init__(message)
        self.errcode = errcode
        self.message = message


@dataclass(frozen=True)
class AuthFrame:
    access_token: str


@dataclass(frozen=True)
class SubscribeFrame:
    mode: str
    # sync mode: /sync's since, filter (an id, or the filter itself as JSON text),
    # full_state and set_presence
    since: str | None = None
    filter: str | None = None
    full_state: bool = False
    set_presence: str | None = None
    # sliding_sync mode: the request body and the position to continue from
    pos: str | None = None
    body: dict[str, Any] | None = None


@dataclass(frozen=True)
class AckFrame:
    token: str


@dataclass(frozen=True)
class PingFrame:
    id: str | int | None = None


ClientFrame = AuthFrame | SubscribeFrame | AckFrame | PingFrame


def _string(obj: dict[str, Any], key: str, required: bool = False) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise FrameError("M_MISSING_PARAM", f"'{key}' is required")
        return None
    if not isinstance(value, str):
        raise FrameError("M_INVALID_PARAM", f"'{key}' must be a string")
    return value


def parse_client_frame(payload: bytes, is_binary: bool) -> ClientFrame:
    if is_binary:
        raise FrameError("M_BAD_JSON", "Frames are JSON text frames")
    try:
        obj = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise FrameError("M_NOT_JSON", "Frame is not JSON") from None
    if not isinstance(obj, dict):
        raise FrameError("M_BAD_JSON", "Frame must be a JSON object")
    kind = obj.get("type")
    if kind == "auth":
        token = _string(obj, "access_token", required=True)
        assert token is not None
        return AuthFrame(token)
    if kind == "ack":
        token = _string(obj, "token", required=True)
        assert token is not None
        return AckFrame(token)
    if kind == "ping":
        ping_id = obj.get("id")
        if ping_id is not None and (not isinstance(ping_id, (str, int)) or isinstance(ping_id, bool)):
            raise FrameError("M_INVALID_PARAM", "'id' must be a string or an integer")
        return PingFrame(ping_id)
    if kind == "subscribe":
        return _parse_subscribe(obj)
    raise FrameError("M_UNRECOGNIZED", f"Unknown frame type {kind!r}")


def _parse_subscribe(obj: dict[str, Any]) -> SubscribeFrame:
    mode = obj.get("mode", "sync")
    if mode not in MODES:
        raise FrameError("M_INVALID_PARAM", f"'mode' must be one of {', '.join(MODES)}")
    if mode == "sliding_sync":
        body = obj.get("body", {})
        if not isinstance(body, dict):
            raise FrameError("M_BAD_JSON", "'body' must be a sliding sync request body")
        return SubscribeFrame(mode, pos=_string(obj, "pos"), body=body)
    filter_value = obj.get("filter")
    if isinstance(filter_value, dict):
        # The same two forms as /sync's filter parameter: an id or the filter itself.
        filter_text: str | None = json.dumps(filter_value)
    elif filter_value is None or isinstance(filter_value, str):
        filter_text = filter_value
    else:
        raise FrameError("M_INVALID_PARAM", "'filter' must be a filter id or a filter object")
    full_state = obj.get("full_state", False)
    if not isinstance(full_state, bool):
        raise FrameError("M_INVALID_PARAM", "'full_state' must be a boolean")
    presence = _string(obj, "set_presence")
    if presence is not None and presence not in PRESENCE_STATES:
        raise FrameError("M_INVALID_PARAM", f"'set_presence' must be one of {', '.join(PRESENCE_STATES)}")
    return SubscribeFrame(
        mode, since=_string(obj, "since"), filter=filter_text, full_state=full_state, set_presence=presence
    )


def encode(frame: dict[str, Any]) -> bytes:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def hello_frame(user_id: str, device_id: str, heartbeat_ms: int, max_unacked_frames: int, max_unacked_bytes: int) -> bytes:
    return encode(
        {
            "type": "hello",
            "version": PROTOCOL_VERSION,
            "user_id": user_id,
            "device_id": device_id,
            "heartbeat_ms": heartbeat_ms,
            "max_unacked_frames": max_unacked_frames,
            "max_unacked_bytes": max_unacked_bytes,
        }
    )


def data_frame(mode: str, token: str, data: dict[str, Any]) -> bytes:
    return encode({"type": mode, "token": token, "data": data})


def idle_frame(token: str | None) -> bytes:
    return encode({"type": "idle", "token": token})


def pong_frame(ping_id: str | int | None) -> bytes:
    return encode({"type": "pong", "id": ping_id})


def error_frame(errcode: str, message: str, **extra: Any) -> bytes:
    return encode({"type": "error", "errcode": errcode, "error": message, **extra})
