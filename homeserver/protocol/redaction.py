"""The redaction algorithm (room versions' "Redactions" sections: v1 rules,
v6 drops `m.room.aliases`, v8 keeps join rules' `allow`, v9 keeps
`join_authorised_via_users_server`, v11 rules for 11 and 12).

Redaction produces the "essential" form of an event that signatures and
reference hashes cover.  `unsigned` is dropped entirely: which unsigned keys
survive a redaction served to clients (e.g. `age_ts`, `redacted_because`) is
the caller's decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeserver.protocol.room_versions import RoomVersion, get_room_version

_TOP_LEVEL_KEYS_V11 = frozenset(
    {
        "event_id",
        "type",
        "room_id",
        "sender",
        "state_key",
        "content",
        "hashes",
        "signatures",
        "depth",
        "prev_events",
        "auth_events",
        "origin_server_ts",
    }
)
# Room versions before 11 additionally protected these.
_TOP_LEVEL_KEYS_PRE_V11 = _TOP_LEVEL_KEYS_V11 | {"prev_state", "origin", "membership"}

_POWER_LEVEL_KEYS_PRE_V11 = (
    "ban",
    "events",
    "events_default",
    "kick",
    "redact",
    "state_default",
    "users",
    "users_default",
)


def _pick(content: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: content[k] for k in keys if k in content}


def _redact_content(
    event_type: Any, content: Mapping[str, Any], room_version: RoomVersion
) -> dict[str, Any]:
    v11 = room_version.updated_redaction_rules
    if event_type == "m.room.member":
        kept = _pick(content, "membership")
        if room_version.restricted_join_rule_fix:
            kept.update(_pick(content, "join_authorised_via_users_server"))
        if v11:
            # Only `signed` is needed to re-check a third-party invite.  Like
            # Synapse, keep an (empty) `third_party_invite` object even if it
            # had no `signed`, so the redacted form is byte-identical to theirs.
            tpi = content.get("third_party_invite")
            if isinstance(tpi, Mapping):
                kept["third_party_invite"] = _pick(tpi, "signed")
        return kept
    if event_type == "m.room.create":
        if v11:
            return dict(content)
        return _pick(content, "creator")
    if event_type == "m.room.join_rules":
        if room_version.restricted_join_rule:
            return _pick(content, "join_rule", "allow")
        return _pick(content, "join_rule")
    if event_type == "m.room.power_levels":
        if v11:
            return _pick(content, *_POWER_LEVEL_KEYS_PRE_V11, "invite")
        return _pick(content, *_POWER_LEVEL_KEYS_PRE_V11)
    if event_type == "m.room.aliases" and room_version.special_case_aliases_auth:
        return _pick(content, "aliases")
    if event_type == "m.room.history_visibility":
        return _pick(content, "history_visibility")
    if event_type == "m.room.redaction" and v11:
        return _pick(content, "redacts")
    return {}


def redact_event(event: Mapping[str, Any], room_version: RoomVersion | str) -> dict[str, Any]:
    """Return the redacted copy of `event` (the input is not modified)."""
    rv = get_room_version(room_version)
    allowed = _TOP_LEVEL_KEYS_V11 if rv.updated_redaction_rules else _TOP_LEVEL_KEYS_PRE_V11
    redacted = {k: v for k, v in event.items() if k in allowed}
    content = event.get("content")
    if not isinstance(content, Mapping):
        content = {}
    # `content` is always present afterwards, even if the original lacked it,
    # matching Synapse's prune_event_dict (this affects reference hashes).
    redacted["content"] = _redact_content(event.get("type"), content, rv)
    return redacted
