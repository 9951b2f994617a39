"""Complement's knocking and restricted-room cases with every user on one server, ported
(tests/conformance/complement.py runs each on Synapse and WSPR): tests/knocking_test.go
(TestKnocking between local users and, against a real Synapse, between servers;
TestKnockRoomsInPublicRoomsDirectory) and
tests/restricted_rooms_test.go (TestRestrictedRoomsLocalJoin). The remote variants need a
second homeserver and Complement's fake one (see the report of this port)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.trial import unittest

from tests.conformance.complement import (
    V3,
    CaseFn,
    MatrixClient,
    Side,
    create_room,
    expect,
    invite,
    leave,
    new_user,
    on_both,
    q,
    send_state,
    sync_path,
    sync_until,
    timeline_has,
)

REASON = "Let me in... LET ME IN!!!"


def knocked_on(client: MatrixClient, user_id: str, room_id: str) -> Callable[[dict[str, Any]], bool]:
    """Complement's syncKnockedOn: the knocker sees the room under rooms.knock, a member sees
    the knock in the timeline."""
    if client.user_id == user_id:
        return lambda body: isinstance(body.get("rooms", {}).get("knock", {}).get(room_id, {}).get("knock_state", {}).get("events"), list)
    return timeline_has(room_id, lambda ev: ev["type"] == "m.room.member" and ev.get("state_key") == user_id
                        and ev["content"].get("membership") == "knock")


def member_event(user_id: str, membership: str) -> Callable[[dict[str, Any]], bool]:
    return lambda ev: ev["type"] == "m.room.member" and ev.get("state_key") == user_id and ev["content"].get("membership") == membership


async def knocking_cases(case: CaseFn, alice: MatrixClient, bob: MatrixClient, alice_server: str, federated: bool) -> None:
    """Complement's knockingBetweenTwoUsersTest: Bob knocks on Alice's room (v7), Bob on
    Alice's server or (``federated``) on another."""
    room = await create_room(alice, preset="private_chat", room_version="7")

    async def knock_on(reason: str, status: int) -> None:
        body = {"reason": reason} if reason else {}
        await expect(bob, "POST", f"{V3}/knock/{q(room)}?server_name={q(alice_server)}", body, status=status)

    async def knock_synced(reason: str) -> None:
        await knock_on(reason, 200)
        await sync_until(bob, knocked_on(bob, bob.user_id, room), wait=20)

    with case("Knocking on a room with a join rule other than 'knock' should fail"):
        await knock_on("Can I knock anyways?", 403)
    with case("Change the join rule of a room from 'invite' to 'knock'"):
        event_id = await send_state(alice, room, "m.room.join_rules", {"join_rule": "knock"})
        await sync_until(alice, timeline_has(room, lambda ev: ev["event_id"] == event_id))
    with case("Attempting to join a room with join rule 'knock' without an invite should fail"):
        await expect(bob, "POST", f"{V3}/join/{q(room)}?server_name={q(alice_server)}", {}, status=403)
    with case("Knocking on a room with join rule 'knock' should succeed"):
        await knock_synced(REASON)
    with case("A user that has already knocked is allowed to knock again on the same room"):
        await knock_synced("I really like knock knock jokes")
    with case("Users in the room see a user's membership update when they knock"):
        def knock_seen(ev: dict[str, Any]) -> bool:
            if ev["type"] != "m.room.member" or ev["sender"] != bob.user_id:
                return False
            return ev["content"].get("membership") == "knock" and ev["content"].get("reason") == REASON
        await sync_until(alice, timeline_has(room, knock_seen), wait=20)
    if not federated:
        # Rescinding a knock over federation is not specced (Complement skips it too).
        with case("A user that has knocked on a local room can rescind their knock and then knock again"):
            since = (await bob.request("GET", sync_path()))["next_batch"]
            await leave(bob, room)

            def rescinded(body: dict[str, Any]) -> bool:
                events = body.get("rooms", {}).get("leave", {}).get(room, {}).get("timeline", {}).get("events", [])
                mine = [e for e in events if e["type"] == "m.room.member" and e["sender"] == bob.user_id]
                return bool(mine) and mine[-1]["content"]["membership"] == "leave"

            await sync_until(bob, rescinded, since)
            await knock_synced("Let me in... again?")
    with case("A user in the room can reject a knock"):
        await alice.post(f"/rooms/{q(room)}/kick", {"user_id": bob.user_id, "reason": "I don't think so"})
        await sync_until(alice, timeline_has(room, member_event(bob.user_id, "leave")))
        await knock_synced("Pleeease let me in?")
    with case("A user can knock on a room without a reason"):
        await alice.post(f"/rooms/{q(room)}/kick", {"user_id": bob.user_id, "reason": "Please try again"})
        await knock_synced("")
    with case("A user in the room can accept a knock"):
        await alice.post(f"/rooms/{q(room)}/invite", {"user_id": bob.user_id})
        await sync_until(alice, timeline_has(room, member_event(bob.user_id, "invite")))
    with case("A user cannot knock on a room they are already invited to"):
        await knock_on("I'm sticking my hand out the window and knocking again!", 403)
    with case("A user cannot knock on a room they are already in"):
        await expect(bob, "POST", f"{V3}/join/{q(room)}?server_name={q(alice_server)}", {})
        await knock_on("I'm sticking my hand out the window and knocking again!", 403)
    with case("A user that is banned from a room cannot knock on it"):
        await alice.post(f"/rooms/{q(room)}/ban", {"user_id": bob.user_id, "reason": "Turns out Bob wasn't that trustworthy after all!"})
        await sync_until(alice, timeline_has(room, member_event(bob.user_id, "ban")))
        await knock_on("I didn't mean it!", 403)


class KnockingTest(unittest.TestCase):
    timeout = 300

    async def test_knocking_local(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice, bob = await new_user(side, "alice"), await new_user(side, "bob")
            await knocking_cases(case, alice, bob, side.server_name, federated=False)

        await on_both(self, scenario)

    async def test_knock_rooms_in_public_rooms_directory(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await new_user(side, "alice")

            async def publish_and_check(room: str, join_rule: str) -> None:
                await alice.put(f"/directory/list/room/{q(room)}", {"visibility": "public"})
                listed = [r for r in (await alice.get("/publicRooms?limit=1000"))["chunk"] if r["room_id"] == room]
                assert len(listed) == 1 and listed[0].get("join_rule") == join_rule, listed

            with case("a knock room is listed with join_rule knock"):
                room = await create_room(alice, preset="private_chat", room_version="7")
                await send_state(alice, room, "m.room.join_rules", {"join_rule": "knock"})
                await publish_and_check(room, "knock")
            with case("a public room is listed with join_rule public"):
                room = await create_room(alice, preset="public_chat", room_version="7")
                await publish_and_check(room, "public")

        await on_both(self, scenario)


class RestrictedRoomsTest(unittest.TestCase):
    timeout = 300

    async def test_restricted_rooms_local_join(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice, bob = await new_user(side, "alice"), await new_user(side, "bob")
            await restricted_cases(case, alice, bob, side.server_name)

        await on_both(self, scenario)


async def restricted_cases(case: CaseFn, alice: MatrixClient, bob: MatrixClient, hs: str) -> None:
    """Complement's setupRestrictedRoom and checkRestrictedRoom: Alice's v8 room is
    restricted to members of another of her rooms; Bob (on her server or another) joins."""
    allowed = await create_room(alice, preset="public_chat", name="Allowed Room")
    room = await create_room(alice, preset="public_chat", name="Room", room_version="8", initial_state=[{
        "type": "m.room.join_rules", "state_key": "",
        "content": {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": allowed, "via": [hs]}]}}])

    async def join_fails() -> None:
        code, body = await bob.raw("POST", f"{V3}/join/{q(room)}?server_name={q(hs)}", {})
        assert code >= 400, (code, body)

    async def join_ok(room_id: str) -> None:
        await expect(bob, "POST", f"{V3}/join/{q(room_id)}?server_name={q(hs)}", {})

    with case("Join should fail initially"):
        await join_fails()
    with case("Join should succeed when joined to allowed room"):
        await join_ok(allowed)
        event_id = await send_state(bob, allowed, "m.room.member", {"membership": "join", "displayname": "Bobby"}, bob.user_id)
        await sync_until(bob, timeline_has(allowed, lambda ev: ev["event_id"] == event_id), wait=20)
        await join_ok(room)
        # A join -> join update ignores join_authorised_via_users_server.
        event_id = await send_state(bob, room, "m.room.member", {
            "membership": "join", "displayname": "Bobby", "join_authorised_via_users_server": "unused"}, bob.user_id)
        await sync_until(bob, timeline_has(room, lambda ev: ev["event_id"] == event_id), wait=20)
    with case("Join should fail when left allowed room"):
        await leave(bob, room)
        await leave(bob, allowed)
        await sync_until(alice, timeline_has(allowed, member_event(bob.user_id, "leave")), wait=20)
        # Complement waits for the allowed room's leave only; Synapse sends a server its
        # events in order, WSPR may send the second leave first. Should the restricted
        # room's leave arrive after the rejoin, Synapse still counts Bob as joined there
        # and lets him back in (join -> join needs no allowed room).
        await sync_until(alice, timeline_has(room, member_event(bob.user_id, "leave")), wait=20)
        await join_fails()
    with case("Join should succeed when invited"):
        await invite(alice, room, bob.user_id)
        await join_ok(room)
        await leave(bob, room)
        await join_ok(allowed)
    with case("Join should fail with mangled join rules"):
        await send_state(alice, room, "m.room.join_rules", {"join_rule": "restricted", "allow": ["invalid"]})
        await join_fails()
        await send_state(alice, room, "m.room.join_rules", {"join_rule": "restricted", "allow": "invalid"})
        await join_fails()


class FederatedRestrictedRoomsTest(unittest.TestCase):
    """TestRestrictedRoomsRemoteJoin with a real Synapse as the other server, both ways
    round, and TestRestrictedRoomsRemoteJoinLocalUser with WSPR as the server that must
    join through Synapse for its own user."""

    timeout = 400

    async def test_restricted_rooms_remote_join(self) -> None:
        try:
            import synapse  # noqa: F401
        except ImportError as e:
            raise unittest.SkipTest("matrix-synapse is not installed") from e
        from tests.conformance.complement import _Cases
        from tests.federation.helpers import start_federating
        from tests.support.synapse import start_synapse_peer, synapse_client

        wspr = await start_federating(self)
        syn = await start_synapse_peer(self, "wspr-restricted-synapse-")
        failures = []
        for label, (alice, bob, hs) in {
            "WSPR joins Synapse's room": (await synapse_client(syn, "alice1"), await MatrixClient.register(wspr.base_url, "bob1"), syn.server_name),
            "Synapse joins WSPR's room": (await MatrixClient.register(wspr.base_url, "alice2"), await synapse_client(syn, "bob2"), wspr.server_name),
        }.items():
            cases = _Cases(label)
            await restricted_cases(cases.case, alice, bob, hs)
            failures += cases.failures
        cases = _Cases("TestRestrictedRoomsRemoteJoinLocalUser")
        with cases.case("a local join WSPR cannot authorise goes through Synapse"):
            await remote_join_local_user(wspr, syn)
        failures += cases.failures
        self.assertEqual(failures, [])


async def remote_join_local_user(wspr: Any, syn: Any) -> None:
    """Charlie (Synapse) holds a restricted room; Alice (WSPR) is in it but may not invite,
    so WSPR cannot authorise Bob's (WSPR) join itself and must join through Synapse; once
    Charlie lets WSPR's users invite and leaves, WSPR authorises the rejoin alone."""
    from tests.support.synapse import synapse_client

    charlie = await synapse_client(syn, "charlie3")
    allowed = await create_room(charlie, preset="public_chat", name="Space")
    room = await create_room(charlie, preset="public_chat", name="Room", room_version="8", initial_state=[{
        "type": "m.room.join_rules", "state_key": "",
        "content": {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": allowed, "via": [syn.server_name]}]}}])
    alice = await MatrixClient.register(wspr.base_url, "alice3")
    await invite(charlie, room, alice.user_id)
    await expect(alice, "POST", f"{V3}/join/{q(room)}?server_name={q(syn.server_name)}", {})
    bob = await MatrixClient.register(wspr.base_url, "bob3")
    await expect(alice, "POST", f"{V3}/rooms/{q(room)}/invite", {"user_id": bob.user_id}, status=403)
    code, body = await bob.raw("POST", f"{V3}/join/{q(room)}?server_name={q(wspr.server_name)}", {})
    assert code >= 400, (code, body)
    await expect(bob, "POST", f"{V3}/join/{q(allowed)}?server_name={q(syn.server_name)}", {})
    await expect(bob, "POST", f"{V3}/join/{q(room)}?server_name={q(wspr.server_name)}", {})

    def bob_joined(ev: dict[str, Any]) -> bool:
        if ev["type"] != "m.room.member" or ev.get("state_key") != bob.user_id:
            return False
        assert ev["sender"] == bob.user_id and ev["content"]["membership"] == "join", ev
        return True

    await sync_until(charlie, timeline_has(room, bob_joined), wait=20)
    await send_state(charlie, room, "m.room.power_levels", {"invite": 0, "users": {charlie.user_id: 100}})
    await leave(charlie, room)
    await sync_until(alice, timeline_has(room, member_event(charlie.user_id, "leave")), wait=20)
    await leave(bob, room)
    await expect(bob, "POST", f"{V3}/join/{q(room)}?server_name={q(wspr.server_name)}", {})


class FederatedKnockingTest(unittest.TestCase):
    """TestKnocking between users of two servers, a real Synapse and WSPR, both ways round
    (Complement's observing fake server is left out: it only watches the room)."""

    timeout = 400

    async def test_knocking_remote(self) -> None:
        try:
            import synapse  # noqa: F401
        except ImportError as e:
            raise unittest.SkipTest("matrix-synapse is not installed") from e
        from tests.conformance.complement import _Cases
        from tests.federation.helpers import start_federating
        from tests.support.synapse import start_synapse_peer, synapse_client

        wspr = await start_federating(self)
        syn = await start_synapse_peer(self, "wspr-knock-synapse-")
        failures = []
        # WSPR's user knocks on a Synapse room, then Synapse's user on a WSPR room.
        for label, (holder, knocker, server) in {
            "WSPR knocks": (await synapse_client(syn, "alice1"), await MatrixClient.register(wspr.base_url, "bob1"), syn.server_name),
            "Synapse knocks": (await MatrixClient.register(wspr.base_url, "alice2"), await synapse_client(syn, "bob2"), wspr.server_name),
        }.items():
            cases = _Cases(label)
            await knocking_cases(cases.case, holder, knocker, server, federated=True)
            failures += cases.failures
        self.assertEqual(failures, [])
