"""Complement ``tests/federation_rooms_invite_test.go`` (TestFederationRoomsInvite, 7 cases) and
``tests/federation_room_invite_test.go`` (TestFederationRejectInvite): invites across servers,
their rejection (also of a room nobody is left in), room metadata in the invite, and the
invite's content in the join's ``prev_content``. Two WSPR servers (Complement's hs1, hs2),
and a fake third server watching the room."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.trial import unittest

from tests.conformance.complement import CaseFn, invited_to, joined_to, q, sync_until, timeline_has
from tests.federation.conformance.harness import run_cases
from tests.federation.helpers import start_federating, wait_for
from tests.support.fake_homeserver import start_fake_homeserver
from tests.support.wspr import MatrixClient

INCLUDE_LEAVE = {"room": {"include_leave": True}}


def left_from(user_id: str, room_id: str, self_id: str) -> Callable[[dict[str, Any]], bool]:
    """Complement's SyncLeftFrom: for the syncing user, the room is in ``rooms.leave``;
    for someone else, their leave is in the room's timeline."""

    def check(body: dict[str, Any]) -> bool:
        if user_id == self_id:
            return room_id in body.get("rooms", {}).get("leave", {})
        return timeline_has(
            room_id,
            lambda e: e.get("type") == "m.room.member" and e.get("state_key") == user_id
            and e.get("content", {}).get("membership") == "leave",
        )(body)

    return check


class FederationRoomsInviteTest(unittest.TestCase):
    timeout = 240

    async def test_federation_rooms_invite(self) -> None:
        hs1 = await start_federating(self)
        hs2 = await start_federating(self)

        async def cases(case: CaseFn) -> None:
            alice = await MatrixClient.register(hs1.base_url, "alice")
            bob = await MatrixClient.register(hs2.base_url, "bob")
            bob2 = await MatrixClient.register(hs2.base_url, "bob2")

            async def create(**body: Any) -> str:
                return str((await alice.post("/createRoom", {"preset": "private_chat", **body}))["room_id"])

            async def alice_sees_left(user: str, room_id: str) -> None:
                await sync_until(alice, left_from(user, room_id, alice.user_id), flt=INCLUDE_LEAVE)

            with case("Invited user can reject invite over federation"):
                room_id = await create(invite=[bob.user_id])
                await sync_until(bob, invited_to(room_id))
                await bob.post(f"/rooms/{q(room_id)}/leave", {})
                await alice_sees_left(bob.user_id, room_id)

            with case("Invited user can reject invite over federation several times"):
                room_id = await create()
                for _ in range(3):
                    await alice.post(f"/rooms/{q(room_id)}/invite", {"user_id": bob.user_id})
                    await sync_until(bob, invited_to(room_id))
                    await bob.post(f"/rooms/{q(room_id)}/leave", {})
                    await alice_sees_left(bob.user_id, room_id)

            with case("Invited user can reject invite over federation for empty room"):
                room_id = await create(invite=[bob.user_id])
                _, alice_since = await sync_until(alice, joined_to(alice.user_id, room_id))
                _, bob_since = await sync_until(bob, invited_to(room_id))
                await alice.post(f"/rooms/{q(room_id)}/leave", {})
                await sync_until(alice, left_from(alice.user_id, room_id, alice.user_id), since=alice_since, flt=INCLUDE_LEAVE)
                await bob.post(f"/rooms/{q(room_id)}/leave", {})
                await sync_until(bob, left_from(bob.user_id, room_id, bob.user_id), since=bob_since, flt=INCLUDE_LEAVE)

            with case("Remote invited user can see room metadata"):
                room_id = await create(name="Invites room", invite=[bob.user_id])
                await sync_until(bob, invited_to(room_id))
                body = await bob.get("/sync?timeout=0")
                events = body["rooms"]["invite"][room_id]["invite_state"]["events"]
                want = {"m.room.join_rules": ("join_rule", "invite"), "m.room.name": ("name", "Invites room")}
                seen = set()
                for ev in events:
                    if ev["type"] in want:
                        field, value = want[ev["type"]]
                        state = await alice.get(f"/rooms/{q(room_id)}/state/{q(ev['type'])}/{q(ev['state_key'])}")
                        assert state[field] == value, state
                        assert ev["content"][field] == value, ev
                        seen.add(ev["type"])
                assert seen == set(want), events

            with case("Remote invited user can join the room when homeserver is already participating in the room"):
                room_id = await create()
                await sync_until(alice, joined_to(alice.user_id, room_id))
                await alice.post(f"/rooms/{q(room_id)}/invite", {"user_id": bob.user_id})
                await sync_until(bob, invited_to(room_id))
                await bob.post(f"/join/{q(room_id)}?server_name={q(hs1.server_name)}", {})
                await sync_until(alice, joined_to(bob.user_id, room_id))
                await alice.post(f"/rooms/{q(room_id)}/invite", {"user_id": bob2.user_id})
                await sync_until(bob2, invited_to(room_id))
                await bob2.post(f"/join/{q(room_id)}?server_name={q(hs1.server_name)}", {})
                await sync_until(alice, joined_to(bob2.user_id, room_id))

            with case("Remote invited user can reject invite when homeserver is already participating in the room"):
                room_id = await create()
                await sync_until(alice, joined_to(alice.user_id, room_id))
                await alice.post(f"/rooms/{q(room_id)}/invite", {"user_id": bob.user_id})
                await sync_until(bob, invited_to(room_id))
                await bob.post(f"/join/{q(room_id)}?server_name={q(hs1.server_name)}", {})
                await sync_until(alice, joined_to(bob.user_id, room_id))
                await alice.post(f"/rooms/{q(room_id)}/invite", {"user_id": bob2.user_id})
                await sync_until(bob2, invited_to(room_id))
                await bob2.post(f"/rooms/{q(room_id)}/leave", {})
                await alice_sees_left(bob2.user_id, room_id)

            with case("Invited user has 'is_direct' flag in prev_content after joining"):
                room_id = await create(name="Invites room", invite=[bob.user_id], is_direct=True)
                await sync_until(bob, invited_to(room_id))
                await bob.post(f"/join/{q(room_id)}", {})
                await sync_until(bob, timeline_has(room_id, lambda e: (
                    e.get("type") == "m.room.member" and e.get("state_key") == bob.user_id
                    and e.get("unsigned", {}).get("prev_content", {}).get("membership") == "invite"
                    and e["unsigned"]["prev_content"].get("is_direct") is True
                    and e["unsigned"].get("prev_sender") == alice.user_id
                )))

        await run_cases("WSPR+WSPR", cases)

    async def test_federation_reject_invite(self) -> None:
        """A third server in the room (the fake one) sees the invite of a user of the second
        server, then its rejection."""
        hs1 = await start_federating(self)
        hs2 = await start_federating(self)
        srv = await start_fake_homeserver(self)

        async def cases(case: CaseFn) -> None:
            alice = await MatrixClient.register(hs1.base_url, "alice")
            charlie = await MatrixClient.register(hs2.base_url, "charlie")
            delia = srv.user_id("delia")
            room_id = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
            room = await srv.join_room(hs1.server_name, room_id, delia)
            with case("the other server sees the invite"):
                await alice.post(f"/rooms/{q(room_id)}/invite", {"user_id": charlie.user_id})
                await wait_for(lambda: room.membership_of(charlie.user_id) == "invite")
            with case("the other server sees the rejection"):
                await sync_until(charlie, invited_to(room_id))
                await charlie.post(f"/rooms/{q(room_id)}/leave", {})
                await wait_for(lambda: room.membership_of(charlie.user_id) == "leave")

        await run_cases("WSPR+WSPR+fake", cases)
