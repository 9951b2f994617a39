"""EDUs: inbound dispatch (typing, receipts, presence, device lists, to-device) and the
outbound hooks that turn local typing / receipts / presence into EDUs for the servers
sharing the room (or, for presence, any room) with the user."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from federation.destinations import RoomServers
from federation.server_acl import check_server_acl
from homeserver.util.ids import server_of

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.storage.receipts import Receipt

logger = logging.getLogger(__name__)

# Synapse's FEDERATION_TIMEOUT for remote typing without an explicit timeout.
REMOTE_TYPING_TIMEOUT_MS = 60_000


class EduRejected(Exception):
    pass


def _sender_ok(origin: str, user_id: Any) -> bool:
    return isinstance(user_id, str) and ":" in user_id and server_of(user_id) == origin


async def _joined(hs: "HomeServer", room_id: str, user_id: str) -> bool:
    ev = await hs.rooms.get_current_state_event(room_id, "m.room.member", user_id)
    return ev is not None and ev.membership == "join" and not ev.rejected_reason


async def receive_edu(hs: "HomeServer", origin: str, edu_type: str, content: dict[str, Any]) -> None:
    if edu_type == "m.typing":
        await _recv_typing(hs, origin, content)
    elif edu_type == "m.receipt":
        await _recv_receipts(hs, origin, content)
    elif edu_type == "m.presence":
        await _recv_presence(hs, origin, content)
    elif edu_type == "m.device_list_update":
        if hs.e2e_keys is not None:
            await hs.e2e_keys.on_remote_device_list_update(origin, content)
    elif edu_type == "m.signing_key_update":
        if hs.e2e_keys is not None:
            await defer.ensureDeferred(_maybe_await(hs.e2e_keys.on_remote_signing_key_update(origin, content)))
    elif edu_type == "m.direct_to_device":
        to_device = getattr(hs, "to_device", None)
        if to_device is not None and hasattr(to_device, "on_remote_to_device"):
            await _maybe_await(to_device.on_remote_to_device(origin, content))
    else:
        logger.debug("ignoring EDU %s from %s", edu_type, origin)


async def _maybe_await(value: Any) -> Any:
    if hasattr(value, "__await__"):
        return await value
    if isinstance(value, defer.Deferred):
        return await value
    return value


async def _recv_typing(hs: "HomeServer", origin: str, content: dict[str, Any]) -> None:
    room_id, user_id, typing = content.get("room_id"), content.get("user_id"), content.get("typing")
    if not isinstance(room_id, str) or not isinstance(typing, bool) or not _sender_ok(origin, user_id):
        raise EduRejected("bad m.typing")
    await check_server_acl(hs, room_id, origin)
    if not await _joined(hs, room_id, user_id):
        raise EduRejected(f"{user_id} is not in {room_id}")
    timeout = content.get("timeout")
    if not isinstance(timeout, int) or timeout < 0:
        timeout = REMOTE_TYPING_TIMEOUT_MS
    await hs.typing.set_typing(user_id, room_id, typing, timeout, local=False)


async def _recv_receipts(hs: "HomeServer", origin: str, content: dict[str, Any]) -> None:
    for room_id, by_type in content.items():
        if not isinstance(room_id, str) or not isinstance(by_type, dict):
            continue
        try:
            await check_server_acl(hs, room_id, origin)
        except Exception:
            continue
        for receipt_type, by_user in by_type.items():
            # Private receipts never travel over federation.
            if receipt_type != "m.read" or not isinstance(by_user, dict):
                continue
            for user_id, value in by_user.items():
                if not _sender_ok(origin, user_id) or not isinstance(value, dict):
                    continue
                event_ids = value.get("event_ids")
                data = value.get("data") if isinstance(value.get("data"), dict) else {}
                if not isinstance(event_ids, list) or not event_ids or not isinstance(event_ids[0], str):
                    continue
                if not await _joined(hs, room_id, user_id):
                    continue
                ts = data.get("ts") if isinstance(data.get("ts"), int) else 0
                thread_id = data.get("thread_id") if isinstance(data.get("thread_id"), str) else ""
                await hs.receipts.store_receipt(room_id, receipt_type, user_id, thread_id, event_ids[-1], ts)


async def _recv_presence(hs: "HomeServer", origin: str, content: dict[str, Any]) -> None:
    push = content.get("push")
    if not isinstance(push, list):
        return
    for update in push[:100]:
        if not isinstance(update, dict) or not _sender_ok(origin, update.get("user_id")):
            continue
        state = update.get("presence")
        if state not in ("online", "unavailable", "offline"):
            continue
        msg = update.get("status_msg") if isinstance(update.get("status_msg"), str) else None
        ago = update.get("last_active_ago") if isinstance(update.get("last_active_ago"), int) else 0
        await hs.presence.on_remote_presence(update["user_id"], state, msg, ago)


def register_edu_hooks(hs: "HomeServer") -> None:
    """Outbound: local typing, public receipts, presence, and new local PDUs."""
    servers = RoomServers(hs)
    hs.federation_room_servers = servers  # type: ignore[attr-defined]
    sender = hs.federation_sender  # type: ignore[attr-defined]
    pending: list[Any] = []
    state = {"running": False}

    def run(work: Any) -> None:
        # One worker keeps outbound work in the order it happened.
        pending.append(work)
        if not state["running"]:
            state["running"] = True
            defer.ensureDeferred(drain())

    async def drain() -> None:
        try:
            while pending:
                work = pending.pop(0)
                try:
                    await work()
                except Exception:
                    logger.exception("outbound federation work failed")
        finally:
            state["running"] = False

    def on_persist(events: list[Any], room: Any) -> None:
        if not hs.config.federation.enabled:
            return
        local = [e for e in events if hs.is_mine(e.sender) and not e.outlier and not e.rejected_reason]
        if not local:
            return

        async def work() -> None:
            dests = await servers.destinations(room.room_id)
            for ev in local:
                extra = set()
                if ev.type == "m.room.member" and ev.state_key and ":" in ev.state_key:
                    extra.add(server_of(ev.state_key))
                targets = (dests | extra) - {hs.server_name}
                if targets:
                    sender.send_pdu(sorted(targets), ev)

        run(work)

    def on_typing(room_id: str, user_id: str, typing: bool) -> None:
        if not hs.is_mine(user_id):
            return

        async def work() -> None:
            for dest in sorted(await servers.destinations(room_id)):
                sender.send_edu(dest, "m.typing", {"room_id": room_id, "user_id": user_id, "typing": typing})

        run(work)

    def on_receipt(receipt: "Receipt") -> None:
        if receipt.receipt_type != "m.read" or not hs.is_mine(receipt.user_id):
            return

        async def work() -> None:
            data: dict[str, Any] = {"ts": receipt.ts}
            if receipt.thread_id:
                data["thread_id"] = receipt.thread_id
            content = {receipt.room_id: {"m.read": {receipt.user_id: {"event_ids": [receipt.event_id], "data": data}}}}
            for dest in sorted(await servers.destinations(receipt.room_id)):
                sender.send_edu(dest, "m.receipt", content)

        run(work)

    def on_presence(user_id: str, presence: str, status_msg: str | None) -> None:
        if not hs.is_mine(user_id):
            return

        async def work() -> None:
            users = await hs.store.get_shared_room_users(user_id)
            dests = {server_of(u) for u in users if ":" in u} - {hs.server_name}
            update: dict[str, Any] = {
                "user_id": user_id,
                "presence": presence,
                "last_active_ago": 0,
                "currently_active": presence == "online",
            }
            if status_msg:
                update["status_msg"] = status_msg
            for dest in sorted(dests):
                sender.send_edu(dest, "m.presence", {"push": [update]})

        run(work)

    hs.rooms.persist_hooks.append(on_persist)
    hs.typing.hooks.append(on_typing)
    hs.receipts.hooks.append(on_receipt)
    hs.presence.hooks.append(on_presence)
