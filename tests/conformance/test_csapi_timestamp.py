"""Complement's jump-to-date cases, ported (tests/conformance/complement.py runs each on
Synapse and WSPR): tests/room_timestamp_to_event_test.go
(GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event). Its federation cases run
against a real Synapse, both ways round. The cases that send messages with an
application service's ``?ts`` are not ported: WSPR has no application services."""

from __future__ import annotations

import time
from typing import Any

from twisted.trial import unittest

from tests.conformance.complement import (
    V1,
    V3,
    CaseFn,
    MatrixClient,
    Side,
    create_room,
    expect,
    messages,
    new_user,
    on_both,
    q,
    send,
    sleep,
    sync_until,
    timeline_has,
)


def now_ms() -> int:
    return int(time.time() * 1000)


async def make_test_room(client: MatrixClient) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Complement's createTestRoom: a public room with messages A and B and the times
    around them."""
    room = await create_room(client, preset="public_chat")
    await sleep(0.01)
    before_a = now_ms()
    await sleep(0.01)
    a = await send(client, room, "m.room.message", {"msgtype": "m.text", "body": "Message A"})
    await sync_until(client, timeline_has(room, lambda ev: ev["event_id"] == a))
    await sleep(0.01)
    after_a = now_ms()
    await sleep(0.01)
    b = await send(client, room, "m.room.message", {"msgtype": "m.text", "body": "Message B"})
    await sync_until(client, timeline_has(room, lambda ev: ev["event_id"] == b))
    await sleep(0.01)
    after_b = now_ms()
    return room, {"event_id": a, "before": before_a, "after": after_a}, {"event_id": b, "before": after_a, "after": after_b}


async def check_event_for_time(client: MatrixClient, room: str, ts: int, direction: str, want: str) -> None:
    code, body = await client.raw("GET", f"{V1}/rooms/{q(room)}/timestamp_to_event?ts={ts}&dir={direction}")
    got = body["event_id"] if code == 200 else ""
    assert code == 200 or (code == 404 and not want), (code, body)
    assert got == want, f"wanted {want!r} at {ts} {direction}, got {got!r} ({body})"
    if code == 200:
        assert isinstance(body["origin_server_ts"], int), body


class TimestampToEventTest(unittest.TestCase):
    timeout = 240

    async def test_jump_to_date(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice, bob = await new_user(side, "alice"), await new_user(side, "bob")
            with case("should find event after given timestamp"):
                room, a, _ = await make_test_room(alice)
                await check_event_for_time(alice, room, a["before"], "f", a["event_id"])
            with case("should find event before given timestamp"):
                room, _, b = await make_test_room(alice)
                await check_event_for_time(alice, room, b["after"], "b", b["event_id"])
            with case("should find nothing before the earliest timestamp"):
                before = now_ms()
                await sleep(0.01)
                room, _, _ = await make_test_room(alice)
                await check_event_for_time(alice, room, before, "b", "")
            with case("should find nothing after the latest timestamp"):
                room, _, b = await make_test_room(alice)
                await check_event_for_time(alice, room, b["after"], "f", "")
            for preset in ("private_chat", "public_chat"):
                with case(f"should not be able to query a {preset.split('_')[0]} room you are not a member of"):
                    before = now_ms()
                    room = await create_room(alice, preset=preset)
                    await expect(bob, "GET", f"{V1}/rooms/{q(room)}/timestamp_to_event?ts={before}&dir=f", status=403)

        await on_both(self, scenario)


class FederatedTimestampToEventTest(unittest.TestCase):
    """The "federation" cases: a user of the second server joins a room of the first and
    looks for events from before the join, which its server must fetch over federation."""

    timeout = 300

    async def test_federated_jump_to_date(self) -> None:
        try:
            import synapse  # noqa: F401
        except ImportError as e:
            raise unittest.SkipTest("matrix-synapse is not installed") from e
        from tests.federation.helpers import start_federating
        from tests.support.synapse import start_synapse_peer, synapse_client

        wspr = await start_federating(self)
        syn = await start_synapse_peer(self, "wspr-jump-synapse-")
        failures: list[str] = []
        n = 0
        for label, wspr_asks in (("WSPR asks, Synapse holds the room", True), ("Synapse asks, WSPR holds the room", False)):
            async def users() -> tuple[MatrixClient, MatrixClient]:
                nonlocal n
                n += 1
                if wspr_asks:
                    return await synapse_client(syn, f"alice{n}"), await MatrixClient.register(wspr.base_url, f"charlie{n}")
                return await MatrixClient.register(wspr.base_url, f"alice{n}"), await synapse_client(syn, f"charlie{n}")

            holder = syn.server_name if wspr_asks else wspr.server_name

            async def joined(charlie: MatrixClient, room: str) -> None:
                await expect(charlie, "POST", f"{V3}/join/{q(room)}?server_name={q(holder)}", {})

            cases = {
                "looking forwards, should be able to find event that was sent before we joined": "f",
                "looking backwards, should be able to find event that was sent before we joined": "b",
                "can paginate after getting remote event from timestamp to event endpoint": "paginate",
            }
            for name, mode in cases.items():
                try:
                    alice, charlie = await users()
                    room, a, b = await make_test_room(alice)
                    await joined(charlie, room)
                    if mode == "f":
                        await check_event_for_time(charlie, room, a["before"], "f", a["event_id"])
                    else:
                        await check_event_for_time(charlie, room, b["after"], "b", b["event_id"])
                    if mode == "paginate":
                        end = (await charlie.get(f"/rooms/{q(room)}/context/{q(b['event_id'])}?limit=0"))["end"]
                        deadline = time.monotonic() + 15
                        while a["event_id"] not in [e["event_id"] for e in (await messages(charlie, room, limit="100"))["chunk"]]:
                            assert time.monotonic() < deadline, "event A never backfilled"
                            await sleep(0.5)
                        chunk = (await messages(charlie, room, limit="100", **{"from": end}))["chunk"]
                        ids = [e["event_id"] for e in chunk]
                        assert a["event_id"] in ids and b["event_id"] in ids, ids
                except Exception as e:  # noqa: BLE001 - each case reported, the next runs
                    failures.append(f"{label}: {name}: {e!r}")
        self.assertEqual(failures, [])
