"""Complement ``tests/federation_redaction_test.go`` (TestFederationRedactSendsWithoutEvent) and
``tests/federation_room_ban_test.go`` (TestUnbanViaInvite, which Complement skips on Synapse:
synapse#1563)."""

from __future__ import annotations

import time

from twisted.trial import unittest

from tests.conformance.complement import CaseFn, Side, invited_to, left_room, q, sync_until
from tests.federation.conformance.harness import default_room_version, on_wspr_and_synapse, run_cases
from tests.federation.conformance.test_invites import left_from
from tests.federation.helpers import start_federating
from tests.support.fake_homeserver import initial_room_events, start_fake_homeserver
from tests.support.wspr import MatrixClient


class FederationRedactionTest(unittest.TestCase):
    timeout = 120

    async def test_federation_redact_sends_without_event(self) -> None:
        """A redaction of an event the server does not have still goes out to the room."""

        async def scenario(side: Side, case: CaseFn) -> None:
            srv = await start_fake_homeserver(self)
            alice = await side.register("alice")
            charlie = srv.user_id("charlie")
            ver = await default_room_version(alice)
            events = initial_room_events(ver, charlie)
            events[2]["content"]["redact"] = 0  # anyone may redact
            room = srv.make_room(ver, charlie, events)
            alias = srv.alias_for("flibble", room)
            await alice.post(f"/join/{q(alias)}?server_name={q(srv.server_name)}", {})
            bad = room.create_event(type="m.room.message", sender=charlie, content={"body": "666"})
            room.add_event(bad)  # never sent to the server under test
            target = f"{bad.event_id}:{srv.server_name}"  # as Complement builds it: an id nobody has
            with case("the redaction reaches the remote server"):
                res = await alice.put(
                    f"/rooms/{q(room.room_id)}/redact/{q(target)}/t{time.monotonic_ns()}", {"reason": "reasons..."}
                )
                await srv.wait_for_pdu(lambda p: p.get("type") == "m.room.redaction", timeout=10)
                last = room.timeline[-1]
                assert last.type == "m.room.redaction", last.type
                assert last.event_id == res["event_id"], (last.event_id, res)

        await on_wspr_and_synapse(self, scenario)


class UnbanViaInviteTest(unittest.TestCase):
    timeout = 120

    async def test_unban_via_invite(self) -> None:
        """Ban, unban, invite: the invite arrives and can be accepted (synapse#1563)."""
        hs1 = await start_federating(self)
        hs2 = await start_federating(self)

        async def cases(case: CaseFn) -> None:
            alice = await MatrixClient.register(hs1.base_url, "alice")
            bob = await MatrixClient.register(hs2.base_url, "bob")
            room_id = (await bob.post("/createRoom", {"preset": "public_chat"}))["room_id"]
            await alice.post(f"/join/{q(room_id)}?server_name={q(hs2.server_name)}", {})
            await bob.post(f"/rooms/{q(room_id)}/ban", {"user_id": alice.user_id})
            await sync_until(alice, left_room(room_id))
            await bob.post(f"/rooms/{q(room_id)}/unban", {"user_id": alice.user_id})
            await sync_until(bob, left_from(alice.user_id, room_id, bob.user_id))
            with case("the invite after the unban arrives"):
                await bob.post(f"/rooms/{q(room_id)}/invite", {"user_id": alice.user_id})
                await sync_until(alice, invited_to(room_id))
            with case("and can be accepted"):
                await alice.post(f"/join/{q(room_id)}?server_name={q(hs2.server_name)}", {})

        await run_cases("WSPR+WSPR", cases)
