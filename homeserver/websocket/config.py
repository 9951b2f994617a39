"""The ``websocket:`` section of wspr.yaml (parsed here, as the SFU parses its own)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class WebSocketConfig:
    # Off: the endpoint answers 404 and /versions does not advertise it.
    enabled: bool = True
    # An idle frame (and a protocol-level ping) after this long without a frame.
    heartbeat_ms: int = 30_000
    # A client that has not answered a ping for this long is gone: its socket is dropped
    # (at least 2 s: the ping timers have a granularity of a second).
    ping_timeout_ms: int = 30_000
    # Frames sent and not yet acknowledged, in number and in bytes: beyond either the
    # stream holds (the next frame will carry everything meanwhile)...
    max_unacked_frames: int = 32
    max_unacked_bytes: int = 1024 * 1024
    # ...and a client held up (or whose TCP send buffer stays full) this long is dropped
    # with close code 4008; it reconnects from its last token.
    slow_client_timeout_ms: int = 30_000
    # A socket opened without a token must send its auth frame within this time.
    auth_timeout_ms: int = 10_000
    # Sockets open at once per device; a new one beyond it closes the oldest (4029).
    max_per_device: int = 10

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WebSocketConfig:
        """Raises ValueError("websocket.<key>: <problem>") on a bad value."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                raise ValueError(f"websocket.{key}: unknown key")
            if key == "enabled":
                if not isinstance(value, bool):
                    raise ValueError(f"websocket.{key}: must be true or false")
            elif not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"websocket.{key}: must be a positive integer")
            values[key] = value
        if values.get("ping_timeout_ms", cls.ping_timeout_ms) < 2000:
            # autobahn's ping timers fire on whole seconds: a shorter timeout can expire
            # before any answer could arrive.
            raise ValueError("websocket.ping_timeout_ms: must be at least 2000")
        return cls(**values)
