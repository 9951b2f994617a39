"""Inbound EDUs (from ``PUT /send`` transactions): typing, receipts, presence, device
lists, cross-signing keys, to-device messages. Each is checked against its origin (a
server speaks only for its own users, in rooms they are in, allowed by the room's ACL)
and handed to the homeserver's handler."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, TypeGuard

from federation.server_acl import check_server_acl
from homeserver.util.ids import server_of

if TYPE_CHECKING:
    from homeserver.app import HomeServer

logger = logging.getLogger(__name__)

# Synapse's FEDERATION_TIMEOUT for remote typing without an explicit timeout.
REMOTE_TYPING_TIMEOUT_MS = 60_000


class EduRejected(Exception):
    pass


def _sender_ok(origin: str, user_id: Any) -> TypeGuard[str]:
    return isinstance(user_id, str) and ":" in user_id and server_of(user_id) == origin


async def _joined(hs: HomeServer, room_id: str, user_id: str) -> bool:
    ev = await hs.rooms.get_current_state_event(room_id, "m.room.member", user_id)
    return ev is not None and ev.membership == "join" and not ev.rejected_reason


async def receive_edu(hs: HomeServer, origin: str, edu_type: str, content: dict[str, Any]) -> None:
    if edu_type == "m.typing":
        await _recv_typing(hs, origin, content)
    elif edu_type == "m.receipt":
        await _recv_receipts(hs, origin, content)
    elif edu_type == "m.presence":
        await _recv_presence(hs, origin, content)
    elif edu_type == "m.device_list_update":
        await hs.e2e_keys.remote_device_lists.on_remote_device_list_update(origin, content)
    elif edu_type == "m.signing_key_update":
        await hs.e2e_keys.remote_device_lists.on_remote_signing_key_update(origin, content)
    elif edu_type == "m.direct_to_device":
        await hs.to_device.on_remote_to_device(origin, content)
    else:
        logger.debug("ignoring EDU %s from %s", edu_type, origin)


async def _recv_typing(hs: HomeServer, origin: str, content: dict[str, Any]) -> None:
    room_id, user_id, typing = content.get("room_id"), content.get("user_id"), content.get("typing")
    if not isinstance(room_id, str) or not isinstance(typing, bool) or not isinstance(user_id, str):
        raise EduRejected("bad m.typing")
    if not _sender_ok(origin, user_id):
        raise EduRejected("bad m.typing")
    await check_server_acl(hs, room_id, origin)
    if not await _joined(hs, room_id, user_id):
        raise EduRejected(f"{user_id} is not in {room_id}")
    timeout = content.get("timeout")
    if not isinstance(timeout, int) or timeout < 0:
        timeout = REMOTE_TYPING_TIMEOUT_MS
    await hs.typing.set_typing(user_id, room_id, typing, timeout, local=False)


async def _recv_receipts(hs: HomeServer, origin: str, content: dict[str, Any]) -> None:
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
                data: dict[str, Any] = value["data"] if isinstance(value.get("data"), dict) else {}
                if not isinstance(event_ids, list) or not event_ids or not isinstance(event_ids[0], str):
                    continue
                if not await _joined(hs, room_id, user_id):
                    continue
                ts = data["ts"] if isinstance(data.get("ts"), int) else 0
                thread_id = data["thread_id"] if isinstance(data.get("thread_id"), str) else ""
                await hs.receipts.store_receipt(room_id, receipt_type, user_id, thread_id, event_ids[-1], ts)


async def _recv_presence(hs: HomeServer, origin: str, content: dict[str, Any]) -> None:
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
        ago = update["last_active_ago"] if isinstance(update.get("last_active_ago"), int) else 0
        await hs.presence.on_remote_presence(update["user_id"], state, msg, ago)
