"""Complement ``tests/federation_acl_test.go`` (TestACLs): events of a server denied by the
room's ``m.room.server_acl`` reach neither the room's host nor a server that joined after the
ACL was set (Dendrite once let them through there)."""

from __future__ import annotations

from twisted.trial import unittest

from tests.conformance.complement import (
    CaseFn,
    get_state,
    has_event,
    joined_to,
    q,
    send,
    send_state,
    sync_until,
    timeline,
    timeline_has,
)
from tests.federation.conformance.harness import run_cases, start_federating_on
from tests.support.wspr import MatrixClient


class AclTest(unittest.TestCase):
    timeout = 180

    async def test_acls(self) -> None:
        hs1 = await start_federating_on(self, "127.0.0.1")
        hs2 = await start_federating_on(self, "127.0.0.2")  # the denied one
        hs3 = await start_federating_on(self, "127.0.0.1")

        async def cases(case: CaseFn) -> None:
            alice = await MatrixClient.register(hs1.base_url, "alice")
            bob = await MatrixClient.register(hs2.base_url, "bob")
            charlie = await MatrixClient.register(hs3.base_url, "charlie")
            room_id = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
            await bob.post(f"/join/{q(room_id)}?server_name={q(hs1.server_name)}", {})
            await sync_until(alice, joined_to(bob.user_id, room_id))
            _, bob_since = await sync_until(bob, joined_to(bob.user_id, room_id))
            sentinel_room = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
            for user in (bob, charlie):
                await user.post(f"/join/{q(sentinel_room)}?server_name={q(hs1.server_name)}", {})
            await sync_until(alice, joined_to(bob.user_id, sentinel_room))
            await sync_until(alice, joined_to(charlie.user_id, sentinel_room))
            acl = {"allow": ["*"], "allow_ip_literals": True, "deny": ["127.0.0.2"]}
            acl_id = await send_state(alice, room_id, "m.room.server_acl", acl)
            await sync_until(bob, timeline_has(room_id, has_event(acl_id)), since=bob_since)
            await charlie.post(f"/join/{q(room_id)}?server_name={q(hs1.server_name)}", {})
            await sync_until(alice, joined_to(charlie.user_id, room_id))
            await sync_until(charlie, joined_to(charlie.user_id, room_id))
            blocked = await send(bob, room_id, "m.room.message", {"msgtype": "m.text", "body": "I should be blocked"})
            await sync_until(bob, timeline_has(room_id, has_event(blocked)))
            sentinel = await send(bob, sentinel_room, "m.room.message", {"msgtype": "m.text", "body": "I should be visible"})
            await sync_until(bob, timeline_has(sentinel_room, has_event(sentinel)))
            for user in (alice, charlie):
                await sync_until(user, timeline_has(sentinel_room, has_event(sentinel)))
            for name, user in (("the room's host", alice), ("a server that joined after the ACL", charlie)):
                with case(f"{name} never gets the denied server's event"):
                    body = await user.get("/sync?timeout=0")
                    assert blocked not in [e["event_id"] for e in timeline(body, room_id)]
                    code, _ = await user.raw("GET", f"/_matrix/client/v3/rooms/{q(room_id)}/event/{q(blocked)}")
                    assert code == 404, code
                with case(f"{name} has the ACL in the room state"):
                    state = await get_state(user, room_id, "m.room.server_acl")
                    assert state == acl, state

        await run_cases("3 WSPR", cases)
