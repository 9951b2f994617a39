"""Complement ``tests/federation_room_send_test.go``: the server under test sends events of a
room it joined on another server (TestOutboundFederationSend)."""

from __future__ import annotations

from twisted.trial import unittest

from tests.conformance.complement import CaseFn, Side, join, send
from tests.federation.conformance.harness import on_wspr_and_synapse
from tests.support.fake_homeserver import start_fake_homeserver


class OutboundFederationSendTest(unittest.TestCase):
    timeout = 120

    async def test_outbound_federation_send(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            srv = await start_fake_homeserver(self)
            charlie = srv.user_id("charlie")
            room = srv.make_room("5", charlie)
            alias = srv.alias_for("flibble", room)
            alice = await side.register("alice")
            with case("the local server sends a message of a room joined on the remote server"):
                await join(alice, alias)
                event_id = await send(alice, room.room_id, "m.room.message", {"msgtype": "m.text", "body": "Hello world!"})
                pdu = await srv.wait_for_pdu(lambda p: p.get("type") == "m.room.message", timeout=10)
                assert room.timeline[-1].event_id == event_id, (room.timeline[-1].event_id, event_id)
                assert pdu["content"]["body"] == "Hello world!"

        await on_wspr_and_synapse(self, scenario)
