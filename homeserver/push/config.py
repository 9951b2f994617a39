"""The ``push:`` section of wspr.yaml (parsed here, as the SFU and WebSocket sections are).

``include_content`` and ``group_unread_count_by_room`` are Synapse's keys of the same
names and defaults. The retry intervals are WSPR's: Synapse hard-codes them in its
``HttpPusher`` (1 s doubling to 1 h, giving up on a notification after a day of failures),
and those are the defaults here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PushConfig:
    # Send the event's content to push gateways (not for format: event_id_only pushers).
    include_content: bool = True
    # The badge (counts.unread) counts rooms with unread notifications, not notifications.
    group_unread_count_by_room: bool = True
    # A gateway that fails is retried after min_retry_interval, doubling up to
    # max_retry_interval; a notification that has failed for give_up_after is dropped.
    min_retry_interval_s: float = 1.0
    max_retry_interval_s: float = 3600.0
    give_up_after_s: float = 24 * 3600.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PushConfig:
        """Raises ValueError("push.<key>: <problem>") on a bad value."""
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key in ("include_content", "group_unread_count_by_room"):
                if not isinstance(value, bool):
                    raise ValueError(f"push.{key}: must be true or false")
                values[key] = value
            elif key in ("min_retry_interval", "max_retry_interval", "give_up_after"):
                if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                    raise ValueError(f"push.{key}: must be a positive number of seconds")
                values[f"{key}_s"] = float(value)
            else:
                raise ValueError(f"push.{key}: unknown key")
        config = cls(**values)
        if config.max_retry_interval_s < config.min_retry_interval_s:
            raise ValueError("push.max_retry_interval: must be at least min_retry_interval")
        return config
