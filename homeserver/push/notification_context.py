"""The human-readable parts of a push: the sender's display name and the room's name.

As Synapse's ``push_tools.get_context_for_event`` with its ``presentable_names``: the room
name is ``m.room.name``, else the canonical alias, else (no fallback to a single member)
one made of the other members' names; all from the state after the event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from homeserver.events.event import Event

if TYPE_CHECKING:
    from homeserver.storage import DataStore

# Looser than what may be registered: other servers may allow aliases we would not.
_ALIAS_RE = re.compile(r"^#.*:.+$")
ALL_ALONE = "Empty Room"


@dataclass(frozen=True)
class NotificationContext:
    sender_display_name: str | None
    room_name: str | None


def name_from_member_event(member: Event) -> str:
    name = member.content.get("displayname")
    return name if isinstance(name, str) and name else member.state_key or ""


async def context_for_event(store: DataStore, event: Event, user_id: str) -> NotificationContext:
    if event.outlier:
        return _out_of_band_context(event)
    if event.state_group is None:
        return NotificationContext(None, None)
    state = dict(await store.get_state_group(event.state_group))
    if event.is_state and event.state_key is not None:
        state[(event.type, event.state_key)] = event.event_id
    sender_member = None
    sender_id = state.get(("m.room.member", event.sender))
    if sender_id is not None:
        sender_member = event if sender_id == event.event_id else await store.get_event(sender_id)
    sender_name = name_from_member_event(sender_member) if sender_member is not None else None
    return NotificationContext(sender_name, await _room_name(store, state, user_id, event))


def _out_of_band_context(event: Event) -> NotificationContext:
    """An invite or knock of a room this server is not in has no state here, only the
    stripped state that came with it: names from that, as Synapse's
    ``get_context_for_event`` does for out-of-band memberships (no computed name)."""
    if event.type != "m.room.member":
        return NotificationContext(None, None)
    sender_name: str | None = None
    own_name = event.content.get("displayname")
    if isinstance(own_name, str) and own_name and event.state_key == event.sender:
        sender_name = own_name
    room_name: str | None = None
    unsigned = event.pdu.get("unsigned")
    key = {"invite": "invite_room_state", "knock": "knock_room_state"}.get(event.membership or "")
    stripped = unsigned.get(key) if key and isinstance(unsigned, dict) else None
    for item in stripped if isinstance(stripped, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("content"), dict):
            continue
        where = (item.get("type"), item.get("state_key"))
        if where == ("m.room.member", event.sender) and isinstance(item["content"].get("displayname"), str):
            sender_name = item["content"]["displayname"] or sender_name
        elif where == ("m.room.name", "") and isinstance(item["content"].get("name"), str):
            room_name = item["content"]["name"] or room_name
    return NotificationContext(sender_name, room_name)


async def _room_name(
    store: DataStore, state: dict[tuple[str, str], str], user_id: str, event: Event
) -> str | None:
    async def state_event(key: tuple[str, str]) -> Event | None:
        event_id = state.get(key)
        if event_id is None:
            return None
        return event if event_id == event.event_id else await store.get_event(event_id)

    name_event = await state_event(("m.room.name", ""))
    if name_event is not None and isinstance(name_event.content.get("name"), str) and name_event.content["name"]:
        return name_event.content["name"]
    alias_event = await state_event(("m.room.canonical_alias", ""))
    alias = alias_event.content.get("alias") if alias_event is not None else None
    if isinstance(alias, str) and _ALIAS_RE.match(alias):
        return alias
    mine = await state_event(("m.room.member", user_id))
    if mine is not None and mine.membership == "invite":
        # An invite is named after its inviter by Synapse only when it falls back to a
        # single member, which it does not for pushes.
        return None if ("m.room.member", mine.sender) in state else "Room Invite"
    member_ids = [eid for (t, _), eid in state.items() if t == "m.room.member"]
    events = await store.get_events(member_ids)
    members = sorted(
        (e for e in events.values() if e.membership in ("join", "invite")), key=lambda e: e.origin_server_ts
    )
    others = [m for m in members if m.state_key != user_id]
    if not others:
        if len(members) == 1:
            if members[0].sender == user_id:
                has_3pid_invites = any(t == "m.room.third_party_invite" for t, _ in state)
                return "Inviting email address" if has_3pid_invites else ALL_ALONE
            return name_from_member_event(members[0])
        return ALL_ALONE
    if len(others) == 1:
        return None
    if len(others) == 2:
        return f"{name_from_member_event(others[0])} and {name_from_member_event(others[1])}"
    return f"{name_from_member_event(others[0])} and {len(others) - 1} others"
