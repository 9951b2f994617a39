"""The federation parts of Complement's ``tests/restricted_rooms_test.go``, ``tests/knocking_test.go``
and ``tests/knock_restricted_test.go`` (MSC3787, the ``knock_restricted`` rule of room version 10,
in the stable spec since v1.4), each in both its forms: ``restricted`` (room version 8) and
``knock_restricted`` (room version 10); ``knock`` (7) and ``knock_restricted`` (10) for knocking.

Ported: TestRestrictedRoomsRemoteJoin(+InMSC3787Room) (5 cases each),
TestRestrictedRoomsRemoteJoinLocalUser(+InMSC3787Room), TestRestrictedRoomsRemoteJoinFailOver(+InMSC3787Room),
TestRestrictedRoomsLocalJoinNoCreatorsUsesPowerLevels V11/V12 and TestKnockRestricted... V11/V12,
TestKnocking / TestKnockingInMSC3787Room (the remote-user half: 11 cases each; the local half is a
client-API test), TestCannotSendKnockViaSendKnockInMSC3787Room (with the v7 one, in test_room_join.py).
"""

from __future__ import annotations

from typing import Any

from twisted.trial import unittest

from tests.conformance.complement import (
    CaseFn,
    has_event,
    invited_to,
    joined_to,
    left_room,
    q,
    send_state,
    sync_until,
    timeline_has,
)
from tests.federation.conformance.harness import run_cases
from tests.federation.conformance.test_invites import left_from
from tests.federation.helpers import start_federating, wait_for
from tests.support.fake_homeserver import start_fake_homeserver
from tests.support.wspr import MatrixClient, RunningHomeServer

FORMS = (("8", "restricted"), ("10", "knock_restricted"))


async def join(client: MatrixClient, room_id: str, *via: RunningHomeServer) -> tuple[int, Any]:
    query = "&".join(f"server_name={q(s.server_name)}" for s in via)
    return await client.raw("POST", f"/_matrix/client/v3/join/{q(room_id)}" + (f"?{query}" if query else ""), {})


async def must_join(client: MatrixClient, room_id: str, *via: RunningHomeServer) -> None:
    code, body = await join(client, room_id, *via)
    assert code == 200, (code, body)


async def must_fail_join(client: MatrixClient, room_id: str, *via: RunningHomeServer) -> None:
    code, body = await join(client, room_id, *via)
    assert not 200 <= code < 300, (code, body)


async def send_state_synced(client: MatrixClient, room_id: str, event_type: str, content: dict[str, Any],
                            state_key: str = "") -> str:
    event_id = await send_state(client, room_id, event_type, content, state_key)
    await sync_until(client, timeline_has(room_id, has_event(event_id)))
    return event_id


async def setup_restricted_room(hs: RunningHomeServer, version: str, rule: str) -> tuple[MatrixClient, str, str]:
    alice = await MatrixClient.register(hs.base_url, "alice")
    allowed = (await alice.post("/createRoom", {"preset": "public_chat", "name": "Allowed Room"}))["room_id"]
    room = (await alice.post("/createRoom", {
        "preset": "public_chat", "name": "Room", "room_version": version,
        "initial_state": [{"type": "m.room.join_rules", "state_key": "", "content": {
            "join_rule": rule, "allow": [{"type": "m.room_membership", "room_id": allowed, "via": [hs.server_name]}],
        }}],
    }))["room_id"]
    return alice, allowed, room


def authorised_by(user_id: str, joiner: str, room_id: str) -> Any:
    def check(body: dict[str, Any]) -> bool:
        return timeline_has(room_id, lambda e: (
            e.get("type") == "m.room.member" and e.get("state_key") == joiner
            and e.get("content", {}).get("membership") == "join"
            and e["content"].get("join_authorised_via_users_server") == user_id
        ))(body)

    return check


class RestrictedRoomsFederationTest(unittest.TestCase):
    timeout = 300

    async def test_restricted_rooms_remote_join(self) -> None:
        for version, rule in FORMS:
            hs1 = await start_federating(self)
            hs2 = await start_federating(self)

            async def cases(case: CaseFn, version: str = version, rule: str = rule,
                            hs1: RunningHomeServer = hs1, hs2: RunningHomeServer = hs2) -> None:
                alice, allowed, room = await setup_restricted_room(hs1, version, rule)
                bob = await MatrixClient.register(hs2.base_url, "bob")
                with case("Join should fail initially"):
                    await must_fail_join(bob, room, hs1)
                with case("Join should succeed when joined to allowed room"):
                    await must_join(bob, allowed, hs1)
                    await send_state_synced(bob, allowed, "m.room.member", {"membership": "join", "displayname": "Bobby"},
                                            bob.user_id)
                    await must_join(bob, room, hs1)
                    # join -> join: the authorising user's field is ignored
                    await send_state_synced(bob, room, "m.room.member", {
                        "membership": "join", "displayname": "Bobby", "join_authorised_via_users_server": "unused",
                    }, bob.user_id)
                with case("Join should fail when left allowed room"):
                    await bob.post(f"/rooms/{q(room)}/leave", {})
                    await bob.post(f"/rooms/{q(allowed)}/leave", {})
                    await sync_until(alice, left_from(bob.user_id, allowed, alice.user_id))
                    await must_fail_join(bob, room, hs1)
                with case("Join should succeed when invited"):
                    await alice.post(f"/rooms/{q(room)}/invite", {"user_id": bob.user_id})
                    await must_join(bob, room, hs1)
                    await bob.post(f"/rooms/{q(room)}/leave", {})
                    await must_join(bob, allowed, hs1)
                with case("Join should fail with mangled join rules"):
                    await send_state_synced(alice, room, "m.room.join_rules", {"join_rule": rule, "allow": ["invalid"]})
                    await must_fail_join(bob, room, hs1)
                    await send_state_synced(alice, room, "m.room.join_rules", {"join_rule": rule, "allow": "invalid"})
                    await must_fail_join(bob, room, hs1)

            await run_cases(f"v{version} {rule}", cases)

    async def test_restricted_rooms_remote_join_local_user(self) -> None:
        """A server in the room whose users may not invite joins its user through a server
        whose users may (it asks the room's other servers, though the client named only it)."""
        for version, rule in FORMS:
            hs1 = await start_federating(self)
            hs2 = await start_federating(self)

            async def cases(case: CaseFn, version: str = version, rule: str = rule,
                            hs1: RunningHomeServer = hs1, hs2: RunningHomeServer = hs2) -> None:
                charlie = await MatrixClient.register(hs2.base_url, "charlie")
                allowed = (await charlie.post("/createRoom", {"preset": "public_chat", "name": "Space"}))["room_id"]
                room = (await charlie.post("/createRoom", {
                    "preset": "public_chat", "name": "Room", "room_version": version,
                    "initial_state": [{"type": "m.room.join_rules", "state_key": "", "content": {
                        "join_rule": rule,
                        "allow": [{"type": "m.room_membership", "room_id": allowed, "via": [hs2.server_name]}],
                    }}],
                }))["room_id"]
                alice = await MatrixClient.register(hs1.base_url, "alice")
                await charlie.post(f"/rooms/{q(room)}/invite", {"user_id": alice.user_id})
                await must_join(alice, room, hs2)
                bob = await MatrixClient.register(hs1.base_url, "bob")
                with case("alice may not invite (default power levels)"):
                    code, body = await alice.raw("POST", f"/_matrix/client/v3/rooms/{q(room)}/invite", {"user_id": bob.user_id})
                    assert code == 403, (code, body)
                with case("bob cannot join before he is in the allowed room"):
                    await must_fail_join(bob, room, hs1)
                with case("bob joins through hs1, which joins him remotely through hs2"):
                    await must_join(bob, allowed, hs2)
                    await must_join(bob, room, hs1)
                    await sync_until(charlie, joined_to(bob.user_id, room))
                with case("after hs2 left, bob leaves and joins again through hs1"):
                    await send_state_synced(charlie, room, "m.room.power_levels",
                                            {"invite": 0, "users": {charlie.user_id: 100}})
                    await charlie.post(f"/rooms/{q(room)}/leave", {})
                    await sync_until(alice, left_from(charlie.user_id, room, alice.user_id))
                    await bob.post(f"/rooms/{q(room)}/leave", {})
                    await must_join(bob, room, hs1)

            await run_cases(f"v{version} {rule}", cases)

    async def test_restricted_rooms_remote_join_fail_over(self) -> None:
        """A server that cannot authorise a restricted join answers make_join so that the
        joining server tries the next one."""
        for version, rule in FORMS:
            hs1 = await start_federating(self)
            hs2 = await start_federating(self)
            hs3 = await start_federating(self)

            async def cases(case: CaseFn, version: str = version, rule: str = rule, hs1: RunningHomeServer = hs1,
                            hs2: RunningHomeServer = hs2, hs3: RunningHomeServer = hs3) -> None:
                alice, allowed, room = await setup_restricted_room(hs1, version, rule)
                await send_state_synced(alice, room, "m.room.power_levels", {"invite": 100, "users": {alice.user_id: 100}})
                bob = await MatrixClient.register(hs2.base_url, "bob")
                await must_join(bob, allowed, hs1)
                await must_join(bob, room, hs1)
                charlie = await MatrixClient.register(hs3.base_url, "charlie")
                await must_join(charlie, allowed, hs1)
                with case("through hs2 alone the join fails (nobody there may invite)"):
                    await must_fail_join(charlie, room, hs2)
                with case("through {hs2, hs1} it succeeds, authorised on hs1"):
                    await must_join(charlie, room, hs2, hs1)
                    await sync_until(bob, authorised_by(alice.user_id, charlie.user_id, room))
                await send_state_synced(alice, room, "m.room.power_levels",
                                        {"invite": 100, "users": {alice.user_id: 100, bob.user_id: 100}})
                await charlie.post(f"/rooms/{q(room)}/leave", {})
                await sync_until(alice, left_from(charlie.user_id, room, alice.user_id))
                await sync_until(bob, left_from(charlie.user_id, room, bob.user_id))
                bob_since = (await bob.get("/sync?timeout=0"))["next_batch"]
                await bob.post(f"/rooms/{q(allowed)}/leave", {})
                await sync_until(bob, left_room(allowed), since=bob_since)
                with case("hs2 no longer knows whether charlie is in the allowed room: fails"):
                    await must_fail_join(charlie, room, hs2)
                with case("through {hs2, hs1} it succeeds again, authorised on hs1"):
                    await must_join(charlie, room, hs2, hs1)
                    await sync_until(bob, authorised_by(alice.user_id, charlie.user_id, room), since=bob_since)

            await run_cases(f"v{version} {rule}", cases)

    async def test_local_join_without_creators_uses_power_levels(self) -> None:
        """A server with no room creator among its users authorises a restricted join
        through a local user whom the power levels let invite (synapse#19120)."""
        for version in ("11", "12"):
            for rule in ("restricted", "knock_restricted"):
                hs1 = await start_federating(self)
                hs2 = await start_federating(self)

                async def cases(case: CaseFn, version: str = version, rule: str = rule,
                                hs1: RunningHomeServer = hs1, hs2: RunningHomeServer = hs2) -> None:
                    alice, allowed, room = await setup_restricted_room(hs1, version, rule)
                    bob = await MatrixClient.register(hs2.base_url, "bob")
                    charlie = await MatrixClient.register(hs2.base_url, "charlie")
                    await must_join(bob, allowed, hs1)
                    with case("bob's join goes to hs1 and is authorised by alice"):
                        await must_join(bob, room, hs1)
                        await sync_until(bob, authorised_by(alice.user_id, bob.user_id, room))
                    users = {bob.user_id: 50} if version == "12" else {alice.user_id: 100, bob.user_id: 50}
                    pl = await send_state_synced(alice, room, "m.room.power_levels", {"invite": 50, "users": users})
                    await sync_until(bob, timeline_has(room, has_event(pl)))
                    await must_join(charlie, allowed, hs1)
                    with case("charlie's join through hs2 is authorised by bob, locally"):
                        await must_join(charlie, room, hs2)
                        await sync_until(bob, authorised_by(bob.user_id, charlie.user_id, room))

                await run_cases(f"v{version} {rule}", cases)


class KnockingFederationTest(unittest.TestCase):
    """TestKnocking's remote half: alice on hs1 and a fake server's david in an invite-only
    room, charlie on hs2 knocking."""

    timeout = 300

    async def test_knocking(self) -> None:
        for version, rule in (("7", "knock"), ("10", "knock_restricted")):
            hs1 = await start_federating(self)
            hs2 = await start_federating(self)
            srv = await start_fake_homeserver(self)

            async def cases(case: CaseFn, version: str = version, rule: str = rule,
                            hs1: RunningHomeServer = hs1, hs2: RunningHomeServer = hs2, srv: Any = srv) -> None:
                alice = await MatrixClient.register(hs1.base_url, "alice")
                charlie = await MatrixClient.register(hs2.base_url, "charlie")
                david = srv.user_id("david")
                room_id = (await alice.post("/createRoom", {"preset": "private_chat", "room_version": version}))["room_id"]
                await alice.post(f"/rooms/{q(room_id)}/invite", {"user_id": david})
                await wait_for(lambda: bool(srv.received_invites))
                server_room = await srv.join_room(hs1.server_name, room_id, david)
                reason = "Let me in... LET ME IN!!!"

                async def knock(body_reason: str, status: int) -> None:
                    code, body = await charlie.raw("POST", f"/_matrix/client/v3/knock/{q(room_id)}?server_name={q(hs1.server_name)}",
                                                   {"reason": body_reason} if body_reason else {})
                    assert code == status, (code, body)

                async def knock_synced(body_reason: str) -> None:
                    await knock(body_reason, 200)
                    await sync_until(charlie, lambda b: isinstance(
                        b.get("rooms", {}).get("knock", {}).get(room_id, {}).get("knock_state", {}).get("events"), list))

                def member_in_timeline(membership: str) -> Any:
                    return timeline_has(room_id, lambda e: e.get("type") == "m.room.member"
                                        and e.get("state_key") == charlie.user_id
                                        and e.get("content", {}).get("membership") == membership)

                with case("Knocking on a room with a join rule other than 'knock' should fail"):
                    await knock("Can I knock anyways?", 403)
                with case(f"Change the join rule of a room from 'invite' to '{rule}'"):
                    await send_state_synced(alice, room_id, "m.room.join_rules", {"join_rule": rule})
                with case(f"Attempting to join a room with join rule '{rule}' without an invite should fail"):
                    code, body = await join(charlie, room_id, hs1)
                    assert code == 403, (code, body)
                with case(f"Knocking on a room with join rule '{rule}' should succeed"):
                    await knock_synced(reason)
                with case("A user that has already knocked is allowed to knock again on the same room"):
                    await knock_synced("I really like knock knock jokes")
                with case("Users in the room see a user's membership update when they knock"):
                    await wait_for(lambda: server_room.membership_of(charlie.user_id) is not None, timeout=5)
                    assert server_room.membership_of(charlie.user_id) == "knock"
                    await sync_until(alice, timeline_has(room_id, lambda e: (
                        e.get("type") == "m.room.member" and e.get("sender") == charlie.user_id
                        and e.get("content", {}).get("membership") == "knock"
                        and e["content"].get("reason") == reason)))
                with case("A user in the room can reject a knock"):
                    await alice.post(f"/rooms/{q(room_id)}/kick", {"user_id": charlie.user_id, "reason": "I don't think so"})
                    await sync_until(alice, member_in_timeline("leave"))
                    await knock_synced("Pleeease let me in?")
                with case("A user can knock on a room without a reason"):
                    await alice.post(f"/rooms/{q(room_id)}/kick", {"user_id": charlie.user_id, "reason": "Please try again"})
                    await sync_until(alice, member_in_timeline("leave"))
                    await knock_synced("")
                with case("A user in the room can accept a knock"):
                    await alice.post(f"/rooms/{q(room_id)}/invite", {"user_id": charlie.user_id})
                    await sync_until(alice, member_in_timeline("invite"))
                    await sync_until(charlie, invited_to(room_id))
                with case("A user cannot knock on a room they are already in"):
                    await knock("I'm sticking my hand out the window and knocking again!", 403)
                with case("A user that is banned from a room cannot knock on it"):
                    await alice.post(f"/rooms/{q(room_id)}/ban",
                                     {"user_id": charlie.user_id, "reason": "Turns out Bob wasn't that trustworthy after all!"})
                    await sync_until(alice, member_in_timeline("ban"))
                    await knock("I didn't mean it!", 403)

            await run_cases(f"v{version} {rule}", cases)

