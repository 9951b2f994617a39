"""Authorisation rules for room versions 1 to 12 (the room version pages'
"Authorisation rules"; the rules of v1, v3, v6, v7, v8, v10, v11 and v12,
selected by the room version's flags).

Events are plain PDU dicts.  "State" arguments are mappings from
`(event_type, state_key)` to event dicts: either the event's own auth events
or the room state at some point -- the rules do not care which.

Layout, following Synapse's split (which the spec's numbering mirrors):

* :func:`check_auth_events_list` -- the rules about an event's *listed*
  `auth_events` (duplicates, unexpected entries, wrong room, missing create).
  Only meaningful when checking against the event's own auth events.
* :func:`check_auth_rules` -- everything else: the create-event rules, the v12
  room-id rule, `m.federate`, membership, power levels and send levels.  This
  is what state resolution's iterative auth checks run.

Not here: signature verification (see :func:`signing.required_signing_servers`,
which also covers rule "join_authorised_via_users_server must be signed by
that user's server") and whether auth events were themselves rejected (the
caller knows; pass only accepted events).

Where the spec and Synapse disagree, Synapse's behaviour wins (it decides
what the federation at large accepts); each such place says so.

Power levels before room version 10 may be strings ("50", " +050 ") or, up
to room version 5, floats: they are read with Python's `int()`, as Synapse
reads them.  Inside the rules, a level `int()` cannot read (and a
`users`/`events` that is not an object) fails the event, as it makes
Synapse's check raise; the public lookups are lenient instead (the client
API calls them on whatever state it has) and fall back to the default.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from signedjson.key import decode_verify_key_bytes
from signedjson.sign import SignatureVerifyException, verify_signed_json
from unpaddedbase64 import decode_base64

from homeserver.protocol.event_format import prev_event_ids
from homeserver.protocol.event_ids import compute_event_id
from homeserver.protocol.identifiers import (
    is_valid_server_name,
    is_valid_user_id,
    looks_like_user_id,
    server_name_of,
)
from homeserver.protocol.room_versions import (
    SPEC_ROOM_VERSION_IDENTIFIERS,
    RoomVersion,
    get_room_version,
)

StateKey = tuple[str, str]
StateMap = Mapping[StateKey, Mapping[str, Any]]

CREATE_KEY: StateKey = ("m.room.create", "")
POWER_LEVELS_KEY: StateKey = ("m.room.power_levels", "")
JOIN_RULES_KEY: StateKey = ("m.room.join_rules", "")

# Room version 12 gives creators "infinite" power.  Synapse represents that as
# 2**53, one above the largest legal canonical-JSON integer, so it beats any
# level that can appear in an event while staying an int (JSON-serialisable,
# usable in `%d` messages).  We do the same.
CREATOR_POWER_LEVEL = 2**53

# Defaults when the power levels event omits a key (or there is none).
_NAMED_LEVEL_DEFAULTS = {
    "ban": 50,
    "kick": 50,
    "redact": 50,
    "invite": 0,
    "events_default": 0,
    # The client-server spec says state_default is 0 when there is no power
    # levels event at all; Synapse's get_send_level uses 50 regardless, and
    # that is what decides which events federate, so we match Synapse.
    "state_default": 50,
    "users_default": 0,
}

_INT_POWER_LEVEL_KEYS = (
    "users_default",
    "events_default",
    "state_default",
    "ban",
    "redact",
    "kick",
    "invite",
)


class AuthError(Exception):
    """The event is not allowed by the auth rules.  `str(e)` is the reason."""

    def __init__(self, reason: str, code: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


# --- small accessors ---------------------------------------------------------


def _content(event: Mapping[str, Any]) -> Mapping[str, Any]:
    content = event.get("content")
    return content if isinstance(content, Mapping) else {}


def _membership(event: Mapping[str, Any] | None) -> str | None:
    if event is None:
        return None
    membership = _content(event).get("membership")
    return membership if isinstance(membership, str) else None


def _event_id(event: Mapping[str, Any], room_version: RoomVersion) -> str:
    """Event id of an event; callers normally attach it, else compute it."""
    event_id = event.get("event_id")
    if isinstance(event_id, str):
        return event_id
    if room_version.event_id_in_pdu:
        # Nothing to compute it from: a v1/v2 event without its id is malformed.
        raise AuthError("Event has no event_id")
    return compute_event_id(event, room_version)


def _level(value: Any, default: int, strict: bool) -> int:
    """A power level as Synapse reads it: `int(value)`, so that before room
    version 10 "50", " +50 ", 50.9 and `true` are levels too.  What `int()`
    cannot read is `default`, or with `strict` (inside the auth rules) fails
    the event."""
    if type(value) is int:
        return value
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        if strict:
            raise AuthError(f"Not a valid power level: {value!r}") from None
        return default


def _section(content: Mapping[str, Any], key: str, strict: bool) -> Mapping[str, Any]:
    """`users` / `events` of power levels content; absent is empty.  Synapse
    calls `.get` on it, so anything but an object (null included) fails the
    event there."""
    section = content.get(key, {})
    if isinstance(section, Mapping):
        return section
    if strict:
        raise AuthError(f"Power levels {key!r} is not an object")
    return {}


def get_room_creators(create_event: Mapping[str, Any] | None, room_version: RoomVersion | str) -> set[str]:
    """The room creators: v12 sender + `additional_creators`; before that the
    sender (v11) or `content.creator` (v10)."""
    rv = get_room_version(room_version)
    if create_event is None:
        return set()
    creators: set[str] = set()
    if rv.implicit_room_creator:
        sender = create_event.get("sender")
        if isinstance(sender, str):
            creators.add(sender)
    else:
        creator = _content(create_event).get("creator")
        if isinstance(creator, str):
            creators.add(creator)
    if rv.creators_have_infinite_power:
        additional = _content(create_event).get("additional_creators")
        if isinstance(additional, list):
            creators.update(u for u in additional if isinstance(u, str))
    return creators


def get_user_power_level(
    user_id: str, state: StateMap, room_version: RoomVersion | str, *, strict: bool = False
) -> int:
    """`user_id`'s power level given the state (or auth events, or -- state
    resolution's ordering -- an event's own create and power levels events).

    v12 creators get CREATOR_POWER_LEVEL (greater than any legal level).
    Without a power levels event the creator has 100 and everyone else 0.
    `strict`: see the module docstring.
    """
    rv = get_room_version(room_version)
    create_event = state.get(CREATE_KEY)
    if rv.creators_have_infinite_power and user_id in get_room_creators(create_event, rv):
        return CREATOR_POWER_LEVEL
    pl_event = state.get(POWER_LEVELS_KEY)
    if pl_event is not None:
        content = _content(pl_event)
        level = _section(content, "users", strict).get(user_id)
        if level is None:
            level = content.get("users_default", 0)
        if level is None:
            return 0
        return _level(level, 0, strict)
    if user_id in get_room_creators(create_event, rv):
        return 100
    return 0


def get_named_power_level(
    name: str, state: StateMap, default: int | None = None, *, strict: bool = False
) -> int:
    """A top-level level from the power levels event (`ban`, `kick`, `redact`,
    `invite`, `events_default`, `state_default`, `users_default`)."""
    if default is None:
        default = _NAMED_LEVEL_DEFAULTS.get(name, 0)
    pl_event = state.get(POWER_LEVELS_KEY)
    if pl_event is None:
        return default
    level = _content(pl_event).get(name)
    if level is None:
        return default
    return _level(level, default, strict)


def get_send_level(event_type: str, state_key: str | None, state: StateMap, *, strict: bool = False) -> int:
    """The "required power level" to send an event of this type (state if
    `state_key` is not None)."""
    pl_event = state.get(POWER_LEVELS_KEY)
    content = _content(pl_event) if pl_event is not None else {}
    level = _section(content, "events", strict).get(event_type)
    if level is None:
        default_key = "state_default" if state_key is not None else "events_default"
        if strict:
            # Synapse: `content.get(default_key, default)`, so an explicit null
            # is not the default but an unreadable level.
            return _level(content.get(default_key, _NAMED_LEVEL_DEFAULTS[default_key]), 0, True)
        return get_named_power_level(default_key, state)
    return _level(level, 0, strict)


def user_can_send(
    user_id: str,
    event_type: str,
    state_key: str | None,
    state: StateMap,
    room_version: RoomVersion | str,
) -> bool:
    """Whether `user_id`'s power level reaches the send level for this event
    type (the power check of the auth rules; membership is not considered)."""
    return get_user_power_level(user_id, state, room_version) >= get_send_level(event_type, state_key, state)


def get_notification_power_level(key: str, state: StateMap) -> int:
    """Level needed for e.g. `@room` notifications (`notifications.room`, default 50)."""
    pl_event = state.get(POWER_LEVELS_KEY)
    content = _content(pl_event) if pl_event is not None else {}
    notifications = content.get("notifications")
    level = notifications.get(key) if isinstance(notifications, Mapping) else None
    return 50 if level is None else _level(level, 50, False)


def get_join_rule(state: StateMap) -> str:
    join_rules = state.get(JOIN_RULES_KEY)
    if join_rules is None:
        return "invite"
    rule = _content(join_rules).get("join_rule", "invite")
    return rule if isinstance(rule, str) else "invite"


# --- auth events selection ---------------------------------------------------


def auth_types_for_event(event: Mapping[str, Any], room_version: RoomVersion | str) -> list[StateKey]:
    """The (type, state_key) pairs whose current events belong in the event's
    `auth_events` (server-server API, "Auth events selection").

    In room version 12 the create event is *not* listed (the room id implies
    it); use :func:`auth_state_keys_for_event` for the keys needed to *check*
    an event.
    """
    rv = get_room_version(room_version)
    # Synapse keys every create-event special case on the type alone.
    if event.get("type") == "m.room.create":
        return []
    keys: list[StateKey] = []
    if rv.create_event_in_auth_events:
        keys.append(CREATE_KEY)
    keys.append(POWER_LEVELS_KEY)
    sender = event.get("sender")
    if isinstance(sender, str):
        keys.append(("m.room.member", sender))
    if event.get("type") == "m.room.member":
        content = _content(event)
        membership = content.get("membership")
        state_key = event.get("state_key")
        if isinstance(state_key, str):
            keys.append(("m.room.member", state_key))
        if membership in ("join", "invite", "knock"):
            keys.append(JOIN_RULES_KEY)
        if membership == "invite":
            tpi = content.get("third_party_invite")
            if isinstance(tpi, Mapping):
                signed = tpi.get("signed")
                if isinstance(signed, Mapping) and isinstance(signed.get("token"), str):
                    keys.append(("m.room.third_party_invite", signed["token"]))
        if membership == "join" and rv.restricted_join_rule:
            authoriser = content.get("join_authorised_via_users_server")
            if isinstance(authoriser, str):
                keys.append(("m.room.member", authoriser))
    # De-duplicate (e.g. sender == state_key) preserving order.
    return list(dict.fromkeys(keys))


def auth_state_keys_for_event(event: Mapping[str, Any], room_version: RoomVersion | str) -> list[StateKey]:
    """State keys :func:`check_auth_rules` may consult for `event`: the auth
    events selection plus, in room version 12, the create event."""
    keys = auth_types_for_event(event, room_version)
    if event.get("type") == "m.room.create":
        return keys
    if CREATE_KEY not in keys:
        keys.insert(0, CREATE_KEY)
    return keys


def select_auth_event_ids(
    event: Mapping[str, Any], state: Mapping[StateKey, str], room_version: RoomVersion | str
) -> list[str]:
    """The `auth_events` for a new event, given the room state (key -> event
    id) it is being sent into."""
    return [state[k] for k in auth_types_for_event(event, room_version) if k in state]


def check_auth_events_list(
    event: Mapping[str, Any],
    auth_events: Iterable[Mapping[str, Any]],
    room_version: RoomVersion | str,
) -> None:
    """Rules about the event's listed `auth_events` (v10/v11 rule 2, v12 rule 3).

    `auth_events` are the events the PDU's `auth_events` ids resolve to.  The
    caller must already have rejected the event if any of them is unknown or
    was itself rejected.
    """
    rv = get_room_version(room_version)
    if event.get("type") == "m.room.create":
        # Synapse does not police a create event's auth_events; neither do we.
        return
    expected = set(auth_types_for_event(event, rv))
    seen: dict[StateKey, Mapping[str, Any]] = {}
    room_id = event.get("room_id")
    for auth_event in auth_events:
        key = (auth_event.get("type"), auth_event.get("state_key"))
        if auth_event.get("room_id") != room_id:
            if not (rv.room_id_from_create_event and key == CREATE_KEY):
                raise AuthError(f"Auth event for {key} belongs to a different room")
        if key in seen:
            raise AuthError(f"Duplicate auth_events entry for {key}")
        if key not in expected:
            # In v12 this is also what rejects a listed create event.
            raise AuthError(f"Unexpected auth_events entry for {key}")
        seen[key] = auth_event
    if rv.create_event_in_auth_events and CREATE_KEY not in seen:
        raise AuthError("No create event in auth events")


# --- the rules ---------------------------------------------------------------


def check_auth_rules(
    event: Mapping[str, Any],
    auth_events: StateMap,
    room_version: RoomVersion | str,
    *,
    state_dependent_only: bool = False,
) -> None:
    """Raise AuthError unless `event` is allowed given `auth_events`.

    `auth_events` maps (type, state_key) to events and must contain the
    create event -- in room version 12 too, even though v12 PDUs do not list
    it (look it up from the room id).  Events need an `event_id` key only
    where it cannot be derived: it is computed from the PDU otherwise.

    `state_dependent_only` skips the rules that do not depend on room state
    (the create event's own rules and the v12 room-id rule), which were
    already applied when the event was received.  State resolution uses it,
    as Synapse's does: a create event is always accepted there.
    """
    rv = get_room_version(room_version)
    event_type = event.get("type")
    if not isinstance(event_type, str):
        raise AuthError("Event has no type")
    sender = event.get("sender")
    if not isinstance(sender, str):
        raise AuthError("Event has no sender")
    content = event.get("content")
    if not isinstance(content, Mapping):
        raise AuthError("Event content is not an object")

    if event_type == "m.room.create":
        if not state_dependent_only:
            _check_create(event, rv)
        return

    create_event = auth_events.get(CREATE_KEY)
    if create_event is None:
        raise AuthError("No create event in auth events")

    if rv.room_id_from_create_event and not state_dependent_only:
        # v12 rule 2: the room id is the create event's id.  (Whether that
        # create event was rejected is the caller's knowledge.)
        room_id = event.get("room_id")
        create_id = _event_id(create_event, rv)
        if not isinstance(room_id, str) or room_id != "!" + create_id[1:]:
            raise AuthError("Room id does not match the create event")

    # m.federate: Synapse refuses anything but literal `true` (the spec says
    # "set to false"), so e.g. `"m.federate": "no"` also blocks federation.
    create_sender = create_event.get("sender")
    creating_domain = server_name_of(create_sender) if isinstance(create_sender, str) else ""
    if creating_domain != server_name_of(sender) and _content(create_event).get("m.federate", True) is not True:
        raise AuthError("This room has been marked as unfederatable.")

    if event_type == "m.room.aliases" and rv.special_case_aliases_auth:
        # v1-v5 rule 4: a server's aliases, under its name; nothing else is
        # checked (not even that the sender is in the room).
        state_key = event.get("state_key")
        if not isinstance(state_key, str) or not state_key:
            raise AuthError("Alias event must have a non-empty state_key")
        if state_key != server_name_of(sender):
            raise AuthError("Alias event's state_key does not match sender's domain")
        return

    if event_type == "m.room.member":
        _check_membership(event, auth_events, rv)
        return

    _check_joined(sender, auth_events)

    if event_type == "m.room.third_party_invite":
        if get_user_power_level(sender, auth_events, rv, strict=True) < get_named_power_level(
            "invite", auth_events, strict=True
        ):
            raise AuthError("You don't have permission to invite users")
        return

    state_key = event.get("state_key")
    if state_key is not None and not isinstance(state_key, str):
        raise AuthError("state_key is not a string")
    send_level = get_send_level(event_type, state_key, auth_events, strict=True)
    user_level = get_user_power_level(sender, auth_events, rv, strict=True)
    if user_level < send_level:
        raise AuthError(
            f"You don't have permission to post that to the room. "
            f"user_level ({user_level}) < send_level ({send_level})"
        )
    if state_key is not None and state_key.startswith("@") and state_key != sender:
        raise AuthError("You are not allowed to set others state")

    if event_type == "m.room.power_levels":
        _check_power_levels(event, auth_events, rv)
    if event_type == "m.room.redaction" and rv.event_id_in_pdu:
        _check_legacy_redaction(event, auth_events, rv)
    # From room version 3 a redaction is allowed like any other event;
    # whether it is *applied* is decided by redaction_allowed() ("Handling
    # redactions").


def _check_legacy_redaction(event: Mapping[str, Any], state: StateMap, rv: RoomVersion) -> None:
    """Room versions 1 and 2, rule 11: the redact level, or the redaction's
    event id is from the redacted event's server."""
    sender = event["sender"]
    if get_user_power_level(sender, state, rv, strict=True) >= get_named_power_level("redact", state, strict=True):
        return
    redacts = redacts_target(event, rv)
    if redacts is None:
        # Synapse lets a redaction without a usable target through: it
        # redacts nothing.
        return
    redacter_domain = server_name_of(_event_id(event, rv))
    if redacter_domain and redacter_domain == server_name_of(redacts):
        return
    raise AuthError("You don't have permission to redact events")


def _check_create(event: Mapping[str, Any], rv: RoomVersion) -> None:
    if event.get("prev_events"):
        raise AuthError("Create event has prev events")
    content = _content(event)
    sender = event["sender"]
    if rv.room_id_from_create_event:
        if "room_id" in event:
            raise AuthError("Create event has a room_id")
    else:
        room_id = event.get("room_id")
        if not isinstance(room_id, str) or server_name_of(room_id) != server_name_of(sender):
            raise AuthError("Creation event's room_id domain does not match sender's")
    # Absent means room version "1" (Synapse), which is recognised.
    claimed_version = content.get("room_version", "1")
    if not isinstance(claimed_version, str) or claimed_version not in SPEC_ROOM_VERSION_IDENTIFIERS:
        raise AuthError(f"Create event has unsupported room version {content.get('room_version')!r}")
    if not rv.implicit_room_creator and "creator" not in content:
        raise AuthError("Create event lacks a 'creator' property")
    if rv.creators_have_infinite_power and "additional_creators" in content:
        additional = content["additional_creators"]
        if type(additional) is not list:
            raise AuthError("additional_creators must be an array")
        for entry in additional:
            if not isinstance(entry, str) or not is_valid_user_id(entry):
                raise AuthError(f"Invalid user id in additional_creators: {entry!r}")


def _check_joined(user_id: str, state: StateMap) -> None:
    if _membership(state.get(("m.room.member", user_id))) != "join":
        raise AuthError(f"User {user_id} not in room")


def _check_membership(event: Mapping[str, Any], state: StateMap, rv: RoomVersion) -> None:
    content = _content(event)
    target = event.get("state_key")
    if not isinstance(target, str):
        raise AuthError("Member event has no state_key")
    if "membership" not in content:
        raise AuthError("Member event has no membership")
    membership = content["membership"]
    sender = event["sender"]
    create_event = state[CREATE_KEY]

    # The creator's own first join, straight after the create event.
    prev_events = prev_event_ids(event, rv)
    if membership == "join" and len(prev_events) == 1:
        if prev_events[0] == _event_id(create_event, rv):
            if rv.implicit_room_creator:
                creator = create_event.get("sender")
            else:
                creator = _content(create_event).get("creator")
            if creator == target:
                return

    # Synapse additionally applies m.federate to the *target*'s server (so a
    # local admin cannot invite a remote user into a non-federating room).
    create_sender = create_event.get("sender")
    creating_domain = server_name_of(create_sender) if isinstance(create_sender, str) else ""
    if creating_domain != server_name_of(target) and _content(create_event).get("m.federate", True) is not True:
        raise AuthError("This room has been marked as unfederatable.")

    caller_membership = _membership(state.get(("m.room.member", sender)))
    caller_in_room = caller_membership == "join"
    caller_invited = caller_membership == "invite"
    caller_knocked = rv.knock_join_rule and caller_membership == "knock"
    target_membership = _membership(state.get(("m.room.member", target)))
    target_in_room = target_membership == "join"
    target_banned = target_membership == "ban"
    join_rule = get_join_rule(state)

    user_level = get_user_power_level(sender, state, rv, strict=True)
    target_level = get_user_power_level(target, state, rv, strict=True)
    invite_level = get_named_power_level("invite", state, strict=True)
    ban_level = get_named_power_level("ban", state, strict=True)

    if membership == "invite" and "third_party_invite" in content:
        # Synapse verifies the invite before looking at bans; both reject.
        if not _verify_third_party_invite(event, state):
            raise AuthError("You are not invited to this room.")
        if target_banned:
            raise AuthError(f"{target} is banned from the room")
        return

    if membership not in ("join", "knock"):
        if (caller_invited or caller_knocked) and membership == "leave" and target == sender:
            return
        if not caller_in_room:
            raise AuthError(f"{sender} not in room")

    if membership == "invite":
        if target_banned:
            raise AuthError(f"{target} is banned from the room")
        if target_in_room:
            raise AuthError(f"{target} is already in the room.")
        if user_level < invite_level:
            raise AuthError("You don't have permission to invite users")
    elif membership == "join":
        if sender != target:
            raise AuthError("Cannot force another user to join.")
        if target_banned:
            raise AuthError("You are banned from this room")
        if join_rule == "public":
            return
        if (rv.restricted_join_rule and join_rule == "restricted") or (
            rv.knock_restricted_join_rule and join_rule == "knock_restricted"
        ):
            if caller_in_room or caller_invited:
                return
            authoriser = content.get("join_authorised_via_users_server")
            if authoriser is None:
                raise AuthError("Join event is missing authorising user.")
            if not isinstance(authoriser, str):
                raise AuthError("join_authorised_via_users_server is not a user id")
            _check_joined(authoriser, state)
            if get_user_power_level(authoriser, state, rv, strict=True) < invite_level:
                raise AuthError("Join event authorised by invalid server.")
            return
        if join_rule == "invite" or (rv.knock_join_rule and join_rule == "knock") or (
            rv.knock_restricted_join_rule and join_rule == "knock_restricted"
        ):
            if not (caller_in_room or caller_invited):
                raise AuthError("You are not invited to this room.")
            return
        raise AuthError("You are not allowed to join this room")
    elif membership == "leave":
        if target_banned and user_level < ban_level:
            raise AuthError(f"You cannot unban user {target}.")
        if target != sender:
            kick_level = get_named_power_level("kick", state, strict=True)
            if user_level < kick_level or user_level <= target_level:
                raise AuthError(f"You cannot kick user {target}.")
    elif membership == "ban":
        if user_level < ban_level:
            raise AuthError("You don't have permission to ban")
        if user_level <= target_level:
            raise AuthError("You don't have permission to ban this user")
    elif rv.knock_join_rule and membership == "knock":
        if join_rule != "knock" and not (rv.knock_restricted_join_rule and join_rule == "knock_restricted"):
            raise AuthError("You don't have permission to knock")
        if target != sender:
            raise AuthError("You cannot knock for other users")
        if target_in_room:
            raise AuthError("You cannot knock on a room you are already in")
        if caller_invited:
            raise AuthError("You are already invited to this room")
        if target_banned:
            raise AuthError("You are banned from this room")
    else:
        raise AuthError(f"Unknown membership {membership!r}")


def get_third_party_invite_public_keys(invite_event: Mapping[str, Any]) -> list[str]:
    """Base64 public keys of an m.room.third_party_invite (`public_key` and
    each `public_keys[].public_key`)."""
    content = _content(invite_event)
    keys: list[str] = []
    if isinstance(content.get("public_key"), str):
        keys.append(content["public_key"])
    public_keys = content.get("public_keys")
    if isinstance(public_keys, list):
        for entry in public_keys:
            if isinstance(entry, Mapping) and isinstance(entry.get("public_key"), str):
                keys.append(entry["public_key"])
    return keys


def _verify_third_party_invite(event: Mapping[str, Any], state: StateMap) -> bool:
    tpi = _content(event).get("third_party_invite")
    if not isinstance(tpi, Mapping):
        return False
    signed = tpi.get("signed")
    if not isinstance(signed, Mapping):
        return False
    if not all(k in signed for k in ("mxid", "token", "signatures")):
        return False
    token = signed["token"]
    if not isinstance(token, str):
        return False
    invite_event = state.get(("m.room.third_party_invite", token))
    if invite_event is None:
        return False
    if invite_event.get("sender") != event.get("sender"):
        return False
    if signed["mxid"] != event.get("state_key"):
        return False
    signatures = signed["signatures"]
    if not isinstance(signatures, Mapping):
        return False
    for public_key in get_third_party_invite_public_keys(invite_event):
        try:
            key_bytes = decode_base64(public_key)
        except Exception:
            continue
        for server, signature_block in signatures.items():
            if not isinstance(signature_block, Mapping):
                continue
            for key_name in signature_block:
                if not isinstance(key_name, str) or not key_name.startswith("ed25519:"):
                    continue
                try:
                    verify_key = decode_verify_key_bytes(key_name, key_bytes)
                    verify_signed_json(dict(signed), server, verify_key)
                except (SignatureVerifyException, ValueError, KeyError, TypeError):
                    continue
                # Revocation of the key (key_validity_url) is the caller's job.
                return True
    return False


def _check_power_levels(event: Mapping[str, Any], state: StateMap, rv: RoomVersion) -> None:
    content = _content(event)
    sender = event["sender"]

    if rv.enforce_int_power_levels:
        for key in _INT_POWER_LEVEL_KEYS:
            # `type(...) is int` rather than isinstance: JSON `true` must not
            # pass as the integer 1 (Synapse does the same).
            if key in content and type(content[key]) is not int:
                raise AuthError(f"{key} must be an integer")
        for key in ("events", "notifications", "users"):
            if key in content:
                value = content[key]
                if not isinstance(value, Mapping) or not all(type(v) is int for v in value.values()):
                    raise AuthError(f"{key} must be an object whose values are integers")
    users = content.get("users", {})
    if not isinstance(users, Mapping):
        raise AuthError("users must be an object")
    for user_id, level in users.items():
        if not looks_like_user_id(user_id):
            raise AuthError(f"Not a valid user_id: {user_id!r}")
        # v1 rule 10.1: "integers (or a string that is an integer)" -- in
        # Synapse's reading, whatever int() takes.
        _level(level, 0, strict=True)

    if rv.creators_have_infinite_power:
        creators = get_room_creators(state.get(CREATE_KEY), rv)
        listed = creators.intersection(users)
        if listed:
            raise AuthError(f"Room creators must not appear in content.users: {sorted(listed)}")

    # Compared with the state entry for the event's own key, as Synapse does:
    # a power levels event with a non-empty state_key has no predecessor.
    current = state.get((event.get("type"), event.get("state_key")))  # type: ignore[arg-type]  # a missing part is None: no such key
    if current is None:
        return
    old_content = _content(current)
    user_level = get_user_power_level(sender, state, rv, strict=True)

    sections = ["users", "events"]
    if rv.limit_notifications_power_levels:
        sections.append("notifications")
    try:
        # Written as Synapse's check is: before room version 10 the sections
        # of an accepted event need not be objects ("events": [] passes when
        # there is nothing to compare it with), and what Synapse's Python
        # makes of them decides the outcome -- an exception rejects.
        to_check: list[tuple[Any, str | None]] = [(key, None) for key in _INT_POWER_LEVEL_KEYS]
        for name in sections:
            keys = set(list(old_content.get(name, {})) + list(content.get(name, {})))
            to_check.extend((key, name) for key in keys)
        for key, section in to_check:
            old_loc = old_content if section is None else old_content.get(section, {})
            new_loc = content if section is None else content.get(section, {})
            old_level = _level(old_loc[key], 0, strict=True) if key in old_loc else None
            new_level = _level(new_loc[key], 0, strict=True) if key in new_loc else None
            if old_level is not None and new_level is not None and old_level == new_level:
                continue
            if section == "users" and key != sender and old_level == user_level:
                raise AuthError("You don't have permission to remove ops level equal to your own")
            if (old_level is not None and old_level > user_level) or (new_level is not None and new_level > user_level):
                raise AuthError("You don't have permission to add ops level greater than your own")
    except (TypeError, ValueError, AttributeError, KeyError) as e:
        raise AuthError(f"Malformed power levels: {e!r}") from None


# --- handling redactions -----------------------------------------------------


def redaction_allowed(
    redaction_event: Mapping[str, Any],
    redacted_event: Mapping[str, Any],
    state: StateMap,
    room_version: RoomVersion | str,
) -> bool:
    """Whether a redaction (which passed auth) should actually be applied to
    `redacted_event` ("Handling redactions", room versions 3+): the redacter
    has the redact level, or is on the same server as the original sender.
    In room versions 1 and 2 passing the auth rules is enough."""
    rv = get_room_version(room_version)
    sender = redaction_event.get("sender")
    if not isinstance(sender, str):
        return False
    if rv.event_id_in_pdu:
        # Room versions 1 and 2 decide in the auth rules (rule 11); Synapse
        # applies every redaction that passed them.
        return True
    if get_user_power_level(sender, state, rv) >= get_named_power_level("redact", state):
        return True
    original_sender = redacted_event.get("sender")
    return isinstance(original_sender, str) and server_name_of(original_sender) == server_name_of(sender)


def redacts_target(event: Mapping[str, Any], room_version: RoomVersion | str) -> str | None:
    """The event id an m.room.redaction targets (top-level in v10,
    `content.redacts` from v11)."""
    rv = get_room_version(room_version)
    redacts = _content(event).get("redacts") if rv.updated_redaction_rules else event.get("redacts")
    return redacts if isinstance(redacts, str) else None


def check_auth_rules_with_state(
    event: Mapping[str, Any],
    state: StateMap,
    room_version: RoomVersion | str,
) -> None:
    """check_auth_rules against a full room state, using only the keys the
    auth rules may look at (convenience for "auth against current state")."""
    keys = auth_state_keys_for_event(event, room_version)
    check_auth_rules(event, {k: state[k] for k in keys if k in state}, room_version)


__all__ = [
    "CREATE_KEY",
    "CREATOR_POWER_LEVEL",
    "JOIN_RULES_KEY",
    "POWER_LEVELS_KEY",
    "AuthError",
    "StateKey",
    "StateMap",
    "auth_state_keys_for_event",
    "auth_types_for_event",
    "check_auth_events_list",
    "check_auth_rules",
    "check_auth_rules_with_state",
    "get_join_rule",
    "get_named_power_level",
    "get_notification_power_level",
    "get_room_creators",
    "get_send_level",
    "get_third_party_invite_public_keys",
    "get_user_power_level",
    "is_valid_server_name",
    "is_valid_user_id",
    "redaction_allowed",
    "redacts_target",
    "select_auth_event_ids",
    "user_can_send",
]
