"""/sync: what changed for a user since their last token, long-polling until something does.

A token is ``s<stream>_<typing>_<to_device>``: the global stream position (events,
receipts, account data, presence, device lists and memberships share it), the typing
serial, and how far the device has read its to-device queue (delivery is capped per
response, so that position can lag behind the stream).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from homeserver.events.event import Event
from homeserver.events.stripped_state import STRIPPED_STATE_TYPES
from homeserver.handlers.filtering import SyncFilter
from homeserver.handlers.messages import make_topo_token
from homeserver.http.errors import MatrixError
from homeserver.storage.rooms import LocalMembership

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester

logger = logging.getLogger(__name__)

MAX_TIMEOUT_MS = 5 * 60 * 1000
TO_DEVICE_LIMIT = 100


@dataclass(frozen=True)
class SyncToken:
    stream: int
    typing: int = 0
    to_device: int = 0

    @classmethod
    def parse(cls, token: str) -> "SyncToken":
        try:
            if not token.startswith("s"):
                raise ValueError
            parts = [int(p) for p in token[1:].split("_")]
            return cls(*parts[:3])
        except (ValueError, TypeError):
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid sync token") from None

    def __str__(self) -> str:
        return f"s{self.stream}_{self.typing}_{self.to_device}"


class SyncHandler:
    def __init__(self, hs: "HomeServer") -> None:
        self.hs = hs
        self.store = hs.store

    async def sync(
        self,
        requester: "Requester",
        since: str | None,
        timeout_ms: int,
        full_state: bool,
        sync_filter: SyncFilter,
        set_presence: str | None,
    ) -> dict[str, Any]:
        user_id = requester.user_id
        if set_presence != "offline":
            await self.hs.presence.set_state(user_id, set_presence or "online", from_sync=True)
        since_token = SyncToken.parse(since) if since else None
        if since_token is not None:
            # Everything up to the token was received: drop the delivered to-device messages.
            await self.store.delete_to_device_messages(user_id, requester.device_id, since_token.to_device)
        timeout_ms = max(0, min(timeout_ms, MAX_TIMEOUT_MS))
        deadline = self.hs.reactor.seconds() + timeout_ms / 1000
        while True:
            up_to = self.hs.streams.current
            typing_serial = self.hs.typing.serial
            result, empty = await self._generate(requester, since_token, full_state, sync_filter, up_to, typing_serial)
            if not empty or since_token is None or full_state:
                return result
            remaining = deadline - self.hs.reactor.seconds()
            if remaining <= 0:
                return result
            if self.hs.streams.current != up_to or self.hs.typing.serial != typing_serial:
                continue  # something arrived while generating
            await self.hs.notifier.wait_for_user(user_id, int(remaining * 1000))
            if self.hs.streams.current == up_to and self.hs.typing.serial == typing_serial:
                # Woken by something with no stream position yet; generate once more anyway.
                if self.hs.reactor.seconds() >= deadline:
                    return result

    async def _generate(
        self,
        requester: "Requester",
        since: SyncToken | None,
        full_state: bool,
        sync_filter: SyncFilter,
        up_to: int,
        typing_serial: int,
    ) -> tuple[dict[str, Any], bool]:
        user_id = requester.user_id
        since_stream = since.stream if since else 0
        joined: dict[str, Any] = {}
        invited: dict[str, Any] = {}
        left: dict[str, Any] = {}
        knocked: dict[str, Any] = {}
        if since is not None and not full_state and not self.store.membership_changes.changed_since(user_id, since_stream):
            # Nothing about this user's memberships changed: the joined rooms are known in
            # memory and there are no new invites or leaves to report.
            memberships = [LocalMembership(r, "join", "", 0, False) for r in self.hs.rooms.joined_rooms(user_id)]
        else:
            memberships = await self.store.get_local_memberships(user_id)
        for lm in memberships:
            if not sync_filter.allows_room(lm.room_id) or lm.stream_ordering > up_to:
                continue
            changed = since is None or lm.stream_ordering > since_stream
            if lm.membership == "join":
                room = await self._joined_room(requester, lm, since, full_state, sync_filter, up_to, typing_serial)
                if room is not None:
                    joined[lm.room_id] = room
            elif lm.membership == "invite" and (changed or full_state):
                invited[lm.room_id] = {"invite_state": {"events": await self._stripped_state(lm, requester)}}
            elif lm.membership == "knock" and (changed or full_state):
                knocked[lm.room_id] = {"knock_state": {"events": await self._stripped_state(lm, requester)}}
            elif lm.membership in ("leave", "ban"):
                if (since is not None and changed) or (sync_filter.include_leave and (changed or full_state)):
                    room = await self._left_room(requester, lm, since, sync_filter)
                    if room is not None:
                        left[lm.room_id] = room

        account_data = []
        room_account_data: dict[str, list[dict[str, Any]]] = {}
        changed_account_data = []
        if full_state or self.store.account_data_changes.changed_since(user_id, since_stream):
            changed_account_data = await self.store.get_account_data_since(
                user_id, since_stream if not full_state else 0, up_to
            )
        for room_id, data_type, content in changed_account_data:
            if room_id:
                if sync_filter.room_account_data.check(data_type, None):
                    room_account_data.setdefault(room_id, []).append({"type": data_type, "content": content})
            elif sync_filter.account_data.check(data_type, None):
                account_data.append({"type": data_type, "content": content})
        if (since is None or full_state) and self.hs.push is not None and sync_filter.account_data.check("m.push_rules", None):
            # Clients read their push rules from the initial sync, as Synapse sends them.
            if not any(e["type"] == "m.push_rules" for e in account_data):
                account_data.append({"type": "m.push_rules", "content": await self.hs.push.get_rules_for_client(user_id)})
        for room_id, items in room_account_data.items():
            if room_id in joined:
                joined[room_id].setdefault("account_data", {"events": []})["events"].extend(items)
            elif any(lm.room_id == room_id and lm.membership == "join" for lm in memberships):
                joined[room_id] = self._empty_joined_room()
                joined[room_id]["account_data"] = {"events": items}

        to_device: list[dict[str, Any]] = []
        to_device_pos = 0
        acked = since.to_device if since else 0
        if self.store.to_device_changes.changed_since((user_id, requester.device_id), acked):
            to_device, to_device_pos = await self.store.get_to_device_messages(
                user_id, requester.device_id, up_to, TO_DEVICE_LIMIT
            )
        if not to_device:
            to_device_pos = since.to_device if since and since.to_device > up_to else up_to
        presence = []
        if sync_filter.presence.limit != 0 and self.store.presence_changes.any_changed_since(since_stream):
            presence = [
                p
                for p in await self.hs.presence.updates_for(user_id, since_stream, up_to)
                if sync_filter.presence.check("m.presence", p["sender"])
            ]

        device_lists = await self._device_lists(user_id, since, up_to, memberships)

        result: dict[str, Any] = {
            "next_batch": str(SyncToken(up_to, typing_serial, to_device_pos)),
            "rooms": {"join": joined, "invite": invited, "leave": left, "knock": knocked},
            "account_data": {"events": account_data},
            "presence": {"events": presence},
            "to_device": {"events": to_device},
            "device_lists": device_lists,
        }
        e2e = getattr(self.hs, "e2e_keys", None)
        if e2e is not None:
            counts = await e2e.sync_counts(user_id, requester.device_id)
            result.update(counts)
        else:
            result["device_one_time_keys_count"] = {}
            result["device_unused_fallback_key_types"] = []
        empty = not (
            joined or invited or left or knocked or account_data or presence or to_device
            or device_lists["changed"] or device_lists["left"]
        )
        return result, empty

    @staticmethod
    def _empty_joined_room() -> dict[str, Any]:
        return {
            "timeline": {"events": [], "limited": False},
            "state": {"events": []},
            "ephemeral": {"events": []},
            "account_data": {"events": []},
            "unread_notifications": {},
            "summary": {},
        }

    async def _joined_room(
        self,
        requester: "Requester",
        lm: LocalMembership,
        since: SyncToken | None,
        full_state: bool,
        sync_filter: SyncFilter,
        up_to: int,
        typing_serial: int,
    ) -> dict[str, Any] | None:
        room_id = lm.room_id
        user_id = requester.user_id
        newly_joined = since is None or lm.stream_ordering > since.stream
        since_stream = 0 if newly_joined else since.stream  # type: ignore[union-attr]
        limit = sync_filter.timeline_limit
        tf = sync_filter.timeline
        events: list[Event] = []
        limited = False
        if sync_filter.timeline.allows_room(room_id) and (
            newly_joined or full_state or self.hs.rooms.room_changed_since(room_id, since_stream)
        ):
            fetched = await self.store.get_room_events(
                room_id,
                after=since_stream if not newly_joined else None,
                up_to=up_to,
                limit=limit + 1,
                **tf.sql_kwargs(),
            )
            limited = len(fetched) > limit or (newly_joined and len(fetched) == limit + 1)
            events = list(reversed(fetched[:limit]))
            if newly_joined and since is not None and not limited:
                # Joined since the last sync: the timeline starts at most at the join.
                pass
        ephemeral = []
        if since is None or typing_serial > since.typing and self.hs.typing.room_serial(room_id) > since.typing:
            typing = self.hs.typing.typing_event(room_id)
            if typing["content"]["user_ids"] or since is not None:
                ephemeral.append(typing)
        receipts = []
        if newly_joined or self.store.receipts_changes.changed_since(room_id, since_stream):
            receipts = await self.store.get_receipts_since([room_id], 0 if newly_joined else since_stream, up_to)
        if receipts:
            edu = self.hs.receipts.receipts_edu(receipts, user_id)
            if edu["content"]:
                ephemeral.append(edu)
        if not sync_filter.ephemeral.allows_room(room_id):
            ephemeral = []
        else:
            ephemeral = [e for e in ephemeral if sync_filter.ephemeral.check(e["type"], None)]

        if not newly_joined and not full_state and not events and not ephemeral:
            return None

        visible = await self.hs.visibility.filter_events_for_user(user_id, events, "join")
        # State: what the timeline does not already show, as of the timeline's start.
        state_events = await self._state_for_sync(
            room_id, events, since_stream, newly_joined or full_state, limited, sync_filter, user_id, up_to
        )
        room: dict[str, Any] = self._empty_joined_room()
        room["timeline"] = {
            "events": await self.hs.messages.serialize(requester, visible, include_room_id=False),
            "limited": limited,
        }
        if events:
            room["timeline"]["prev_batch"] = make_topo_token((events[0].depth, events[0].stream_ordering))
        else:
            room["timeline"]["prev_batch"] = str(SyncToken(up_to, typing_serial, 0))
        room["state"] = {"events": await self.hs.messages.serialize(requester, state_events, include_room_id=False, bundle=False)}
        room["ephemeral"] = {"events": ephemeral}
        if self.hs.push is not None:
            # Thread counts are split out only for clients that asked for them (MSC3773).
            room["unread_notifications"], threads = await self.hs.push.unread_counts(
                user_id, room_id, threaded=sync_filter.timeline.unread_thread_notifications
            )
            if threads:
                room["unread_thread_notifications"] = threads
        if newly_joined or full_state or any(e.type == "m.room.member" for e in events + state_events):
            room["summary"] = await self._summary(room_id, user_id)
        return room

    async def _state_for_sync(
        self,
        room_id: str,
        timeline: list[Event],
        since_stream: int,
        full: bool,
        limited: bool,
        sync_filter: SyncFilter,
        user_id: str,
        up_to: int,
    ) -> list[Event]:
        if not full and not limited:
            return []
        if timeline:
            first = timeline[0]
            state = dict(await self.store.get_state_group(first.state_group)) if first.state_group is not None else {}
        else:
            room = await self.hs.rooms.get_room(room_id)
            state = dict(room.state) if room else {}
        if not full:
            # Incremental but limited: only keys that changed in the gap.
            gap = await self.store.get_room_events(
                room_id, after=since_stream, up_to=timeline[0].stream_ordering - 1 if timeline else up_to, limit=1000
            )
            keys = {e.state_pair for e in gap if e.is_state}
            state = {k: v for k, v in state.items() if k in keys}
        if sync_filter.state.lazy_load_members:
            wanted = {e.sender for e in timeline} | {user_id}
            state = {k: v for k, v in state.items() if k[0] != "m.room.member" or k[1] in wanted}
        state = {k: v for k, v in state.items() if sync_filter.state.check(k[0], None)}
        timeline_ids = {e.event_id for e in timeline}
        fetched = await self.store.get_events([v for v in state.values() if v not in timeline_ids])
        return sorted(fetched.values(), key=lambda e: e.stream_ordering)

    async def _summary(self, room_id: str, user_id: str) -> dict[str, Any]:
        room = await self.hs.rooms.get_room(room_id)
        if room is None:
            return {}
        members = await self.hs.rooms.get_state_events(
            room_id, {k: v for k, v in room.state.items() if k[0] == "m.room.member"}
        )
        joined = sorted(k[1] for k, e in members.items() if e.membership == "join")
        invited = sorted(k[1] for k, e in members.items() if e.membership == "invite")
        summary: dict[str, Any] = {
            "m.joined_member_count": len(joined),
            "m.invited_member_count": len(invited),
        }
        if ("m.room.name", "") not in room.state and ("m.room.canonical_alias", "") not in room.state:
            summary["m.heroes"] = [u for u in joined + invited if u != user_id][:5]
        return summary

    async def _stripped_state(self, lm: LocalMembership, requester: "Requester") -> list[dict[str, Any]]:
        member = await self.store.get_event(lm.event_id)
        out = []
        if member is not None:
            stripped = member.pdu.get("unsigned", {}).get("invite_room_state") or member.pdu.get("unsigned", {}).get(
                "knock_room_state"
            )
            if stripped:
                out.extend(stripped)
            else:
                room = await self.hs.rooms.get_room(lm.room_id)
                if room is not None:
                    keys = {k: v for k, v in room.state.items() if k[0] in STRIPPED_STATE_TYPES and k[1] == ""}
                    sender_key = ("m.room.member", member.sender)
                    if sender_key in room.state:
                        keys[sender_key] = room.state[sender_key]
                    for ev in (await self.store.get_events(keys.values())).values():
                        out.append({"type": ev.type, "state_key": ev.state_key, "content": ev.content, "sender": ev.sender})
            out.append(
                {
                    "type": member.type,
                    "state_key": member.state_key,
                    "content": member.content,
                    "sender": member.sender,
                    "event_id": member.event_id,
                    "origin_server_ts": member.origin_server_ts,
                }
            )
        return out

    async def _left_room(
        self, requester: "Requester", lm: LocalMembership, since: SyncToken | None, sync_filter: SyncFilter
    ) -> dict[str, Any] | None:
        leave = await self.store.get_event(lm.event_id)
        if leave is None:
            return None
        since_stream = since.stream if since else 0
        limit = sync_filter.timeline_limit
        events = await self.store.get_room_events(
            lm.room_id, after=since_stream or None, up_to=lm.stream_ordering, limit=limit + 1, **sync_filter.timeline.sql_kwargs()
        )
        limited = len(events) > limit
        events = list(reversed(events[:limit]))
        if not events or events[-1].event_id != leave.event_id:
            if leave.stream_ordering > 0:
                events = [e for e in events if e.event_id != leave.event_id] + [leave]
        visible = await self.hs.visibility.filter_events_for_user(requester.user_id, events, "leave")
        state: list[Event] = []
        if leave.state_group is not None and (since is None or limited):
            state_map = await self.store.get_state_group(leave.state_group)
            fetched = await self.store.get_events(v for v in state_map.values())
            state = [e for e in fetched.values() if e.event_id not in {x.event_id for x in events}]
        room: dict[str, Any] = {
            "timeline": {
                "events": await self.hs.messages.serialize(requester, visible, include_room_id=False),
                "limited": limited,
                "prev_batch": make_topo_token((events[0].depth, events[0].stream_ordering)) if events else "t0-0",
            },
            "state": {"events": await self.hs.messages.serialize(requester, state, include_room_id=False, bundle=False)},
            "account_data": {"events": []},
        }
        return room

    async def _device_lists(
        self, user_id: str, since: SyncToken | None, up_to: int, memberships: list[LocalMembership]
    ) -> dict[str, list[str]]:
        if since is None:
            return {"changed": [], "left": []}
        joined_rooms = self.hs.rooms.joined_rooms(user_id)
        if (
            not self.store.device_list_changes.any_changed_since(since.stream)
            and not self.store.membership_changes.changed_since(user_id, since.stream)
            and not any(self.store.room_member_changes.changed_since(r, since.stream) for r in joined_rooms)
        ):
            return {"changed": [], "left": []}
        shared = await self.store.get_shared_room_users(user_id)
        changed = await self.store.get_device_list_changes(shared | {user_id}, since.stream, up_to)
        left: set[str] = set()
        # Users who newly share a room (someone joined, or we joined) need a fresh key query;
        # users we no longer share any room with go in `left`.
        for lm in memberships:
            if lm.stream_ordering <= since.stream:
                continue
            room = await self.hs.rooms.get_room(lm.room_id)
            if room is None:
                continue
            members = await self.hs.rooms.get_state_events(
                lm.room_id, {k: v for k, v in room.state.items() if k[0] == "m.room.member"}
            )
            for (_, member), ev in members.items():
                if lm.membership == "join" and ev.membership == "join":
                    changed.add(member)
                elif lm.membership in ("leave", "ban") and member not in shared:
                    left.add(member)
        for room_id in joined_rooms:
            if not self.store.room_member_changes.changed_since(room_id, since.stream):
                continue
            changes = await self.store.get_room_events(
                room_id, after=since.stream, up_to=up_to, limit=200, types=["m.room.member"]
            )
            for ev in changes:
                if ev.membership == "join":
                    changed.add(ev.state_key or "")
                elif ev.state_key not in shared:
                    left.add(ev.state_key or "")
        # A user's own device changes stay in `changed` (as Synapse does): their other
        # sessions learn about a new device this way, e.g. to verify it.
        left.discard(user_id)
        return {"changed": sorted(changed - left), "left": sorted(left - changed)}
