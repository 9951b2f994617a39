"""Sliding sync extensions, as Synapse serves them: ``to_device`` (MSC3885), ``e2ee``
(MSC3884), ``account_data`` (MSC3959), ``receipts`` (MSC3960), ``typing`` (MSC3961).

Account data, receipts and typing cover the rooms of the response (``lists``/``rooms``
pick which); account data and receipts remember per room what the connection was sent,
like the rooms themselves. Unknown extensions are ignored; Synapse's thread
subscriptions (MSC4308), sticky events (MSC4354) and profiles (MSC4262) are off by
default there and not offered here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from homeserver.handlers.sliding_sync.config import (
    ExtensionConfig,
    ExtensionsConfig,
    SlidingSyncToken,
)
from homeserver.handlers.sliding_sync.connection import (
    ConnectionState,
    ConnectionStateBuilder,
)
from homeserver.handlers.sliding_sync.room_lists import InterestedRooms, RoomLists
from homeserver.handlers.sliding_sync.rooms import RoomResult
from homeserver.handlers.sync import SyncToken
from homeserver.storage.receipts import Receipt

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester

TO_DEVICE_MAX = 100


@dataclass
class ExtensionsResult:
    body: dict[str, Any] = field(default_factory=dict)
    # something a waiting request must be woken for (to-device messages, device list
    # changes, account data, receipts, typing)
    has_updates: bool = False


@dataclass
class SyncContext:
    """What every extension of one response looks at."""

    requester: Requester
    interested: InterestedRooms
    rooms: dict[str, RoomResult]
    previous: ConnectionState
    state: ConnectionStateBuilder
    from_token: SlidingSyncToken | None
    up_to: int

    def rooms_for(self, config: ExtensionConfig) -> set[str]:
        """The response's rooms the extension covers: those of the named lists' ranges,
        and the named subscriptions ("*" in ``rooms`` takes every room of the response,
        as in Synapse)."""
        relevant = self.interested.relevant
        out = self.interested.list_room_ids(config.lists)
        if config.rooms is not None:
            if "*" in config.rooms:
                out |= set(relevant)
            else:
                out |= {r for r in config.rooms if r in relevant}
        return out & set(relevant)


class ExtensionsHandler:
    def __init__(self, hs: HomeServer, room_lists: RoomLists) -> None:
        self.hs = hs
        self.store = hs.store
        self.room_lists = room_lists

    async def response(self, request: ExtensionsConfig, ctx: SyncContext) -> ExtensionsResult:
        result = ExtensionsResult()
        for name, config, fn in (
            ("to_device", request.to_device, self._to_device),
            ("e2ee", request.e2ee, self._e2ee),
            ("account_data", request.account_data, self._account_data),
            ("receipts", request.receipts, self._receipts),
            ("typing", request.typing, self._typing),
        ):
            if config is None or not config.enabled:
                continue
            body, updates = await fn(config, ctx)
            result.body[name] = body
            result.has_updates = result.has_updates or updates
        return result

    # -- to_device ------------------------------------------------------------------

    async def _to_device(self, config: ExtensionConfig, ctx: SyncContext) -> tuple[dict[str, Any], bool]:
        user_id, device_id = ctx.requester.user_id, ctx.requester.device_id
        since = int(config.since) if config.since else 0
        if since > ctx.up_to:
            # From the future: nothing, and the same token back (Synapse).
            return {"next_batch": config.since, "events": []}, False
        if since:
            # The client had every message up to its token: delivered, they go.
            await self.store.delete_to_device_messages(user_id, device_id, since)
        limit = min(max(config.limit, 1), TO_DEVICE_MAX)
        events: list[dict[str, Any]] = []
        last = 0
        if self.store.to_device_changes.changed_since((user_id, device_id), since):
            events, last = await self.store.get_to_device_messages(user_id, device_id, ctx.up_to, limit)
        # A full page stops at its last message; otherwise the client has all up to here.
        next_batch = last if len(events) >= limit else ctx.up_to
        return {"next_batch": str(next_batch), "events": events}, bool(events)

    # -- e2ee -----------------------------------------------------------------------

    async def _e2ee(self, config: ExtensionConfig, ctx: SyncContext) -> tuple[dict[str, Any], bool]:
        user_id = ctx.requester.user_id
        counts = await self.hs.e2e_keys.one_time_keys.sync_counts(user_id, ctx.requester.device_id)
        # Always present (Synapse: clients cannot tell "no keys" from "unchanged").
        body: dict[str, Any] = {
            "device_one_time_keys_count": counts["device_one_time_keys_count"],
            "device_unused_fallback_key_types": counts["device_unused_fallback_key_types"],
        }
        if ctx.from_token is None:
            return body, False
        # All of them: a connection for encryption only (Element X has one) lists no room.
        memberships = await self.room_lists.local_memberships(user_id, ctx.up_to)
        lists = await self.hs.sync.device_lists(user_id, SyncToken(ctx.from_token.stream), ctx.up_to, memberships)
        body["device_lists"] = {"changed": lists["changed"], "left": lists["left"]}
        return body, bool(lists["changed"] or lists["left"])

    # -- account_data ---------------------------------------------------------------

    async def _account_data(self, config: ExtensionConfig, ctx: SyncContext) -> tuple[dict[str, Any], bool]:
        user_id = ctx.requester.user_id
        since = ctx.from_token.stream if ctx.from_token is not None else None
        global_data: dict[str, dict[str, Any]] = {}
        if since is None:
            global_data = (await self.store.get_room_account_data(user_id, [""], 0, ctx.up_to)).get("", {})
            # Clients read their push rules here on a first sync, as from Synapse.
            global_data["m.push_rules"] = await self.hs.push_rules.get_rules_for_client(user_id)
        elif self.store.account_data_changes.changed_since(user_id, since):
            global_data = (await self.store.get_room_account_data(user_id, [""], since, ctx.up_to)).get("", {})

        rooms = ctx.rooms_for(config)
        by_room: dict[str, dict[str, dict[str, Any]]] = {}
        statuses = ctx.previous.account_data
        initial = [r for r in rooms if since is None or statuses.is_never(r)]
        live = [r for r in rooms if since is not None and statuses.is_live(r)]
        previously = {r: statuses.status(r)[1] for r in rooms if since is not None and statuses.status(r)[0] == "previously"}
        # Rooms sent for the first time get all their account data, even none (Synapse
        # sends them as empty lists).
        by_room.update({r: {} for r in initial})
        by_room.update(await self.store.get_room_account_data(user_id, initial, 0, ctx.up_to))
        changed_rooms: set[str] = set()
        if since is not None and self.store.account_data_changes.changed_since(user_id, since):
            changed = await self.store.get_account_data_since(user_id, since, ctx.up_to)
            changed_rooms = {room_id for room_id, _, _ in changed if room_id}
            for room_id, data_type, content in changed:
                if room_id in live:
                    by_room.setdefault(room_id, {})[data_type] = content
        for room_id, last in previously.items():
            updates = (await self.store.get_room_account_data(user_id, [room_id], last or 0, ctx.up_to)).get(room_id)
            if updates:
                by_room[room_id] = updates
        ctx.state.account_data = ctx.state.account_data.with_sent(list(previously) + initial)
        if since is not None:
            ctx.state.account_data = ctx.state.account_data.with_unsent(changed_rooms - rooms, since)
        body = {
            "global": [{"type": t, "content": c} for t, c in global_data.items()],
            "rooms": {r: [{"type": t, "content": c} for t, c in items.items()] for r, items in by_room.items()},
        }
        return body, bool(body["global"] or any(by_room.values()))

    # -- receipts -------------------------------------------------------------------

    async def _receipts(self, config: ExtensionConfig, ctx: SyncContext) -> tuple[dict[str, Any], bool]:
        user_id = ctx.requester.user_id
        since = ctx.from_token.stream if ctx.from_token is not None else None
        rooms = ctx.rooms_for(config)
        statuses = ctx.previous.receipts
        initial: list[str] = []
        live: list[str] = []
        previously: dict[str, int] = {}
        for room_id in rooms:
            room = ctx.rooms.get(room_id)
            if since is None or statuses.is_never(room_id) or (room is not None and (room.initial or room.expanded_timeline)):
                # A room sent from scratch gets the receipts of its timeline, and the
                # user's own (MSC3960), not every receipt of the room.
                initial.append(room_id)
            elif statuses.is_live(room_id):
                live.append(room_id)
            else:
                previously[room_id] = statuses.status(room_id)[1] or 0
        fetched: list[Receipt] = []
        if live and since is not None:
            changed = [r for r in live if self.store.receipts_changes.changed_since(r, since)]
            fetched += await self.store.get_receipts_since(changed, since, ctx.up_to)
        for room_id, last in previously.items():
            fetched += await self.store.get_receipts_since([room_id], last, ctx.up_to)
        if initial:
            events = {r: ctx.rooms[r].timeline_event_ids for r in initial if r in ctx.rooms}
            fetched += await self.store.get_receipts_for_events(events)
            fetched += await self.store.get_user_receipts_in_rooms(user_id, initial)
        by_room: dict[str, list[Receipt]] = {}
        for receipt in fetched:
            by_room.setdefault(receipt.room_id, []).append(receipt)
        body_rooms: dict[str, Any] = {}
        for room_id, receipts in by_room.items():
            edu = self.hs.receipts.receipts_edu(receipts, user_id)
            if edu["content"]:
                body_rooms[room_id] = edu
        ctx.state.receipts = ctx.state.receipts.with_sent(list(previously) + initial)
        if since is not None:
            # Live rooms out of the response with new receipts: sent when they come back.
            unseen = [r for r in ctx.previous.receipts.live_rooms() if r not in rooms]
            missed = {r for r in unseen if self.store.receipts_changes.changed_since(r, since)}
            if missed:
                with_receipts = {r.room_id for r in await self.store.get_receipts_since(sorted(missed), since, ctx.up_to)}
                ctx.state.receipts = ctx.state.receipts.with_unsent(with_receipts, since)
        return {"rooms": body_rooms}, bool(body_rooms)

    # -- typing ---------------------------------------------------------------------

    async def _typing(self, config: ExtensionConfig, ctx: SyncContext) -> tuple[dict[str, Any], bool]:
        # Typing is not tracked per connection: a room coming back into range gets what
        # is typing now (older notifications have timed out meanwhile), as in Synapse.
        body_rooms: dict[str, Any] = {}
        typing = self.hs.typing
        for room_id in ctx.rooms_for(config):
            event = typing.typing_event(room_id)
            if ctx.from_token is None:
                if event["content"]["user_ids"]:
                    body_rooms[room_id] = event
            elif typing.room_serial(room_id) > ctx.from_token.typing:
                body_rooms[room_id] = event
        return {"rooms": body_rooms}, bool(body_rooms)
