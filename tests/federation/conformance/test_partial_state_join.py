"""Complement ``TestSendJoinPartialStateResponse`` (``tests/federation_room_join_test.go``): the
server as the resident server of a partial-state ("faster", MSC3706) join, asked with
``omit_members=true``. The rest of ``federation_room_join_partial_state_test.go`` has the
server under test *make* partial-state joins, which WSPR does not do (its joins are full):
not ported."""

from __future__ import annotations

from twisted.trial import unittest

from homeserver.protocol.room_versions import get_room_version
from tests.conformance.complement import CaseFn, Side, q
from tests.federation.conformance.harness import on_wspr_and_synapse
from tests.support.fake_homeserver import PDU, start_fake_homeserver


class SendJoinPartialStateTest(unittest.TestCase):
    timeout = 120

    async def test_send_join_partial_state_response(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            srv = await start_fake_homeserver(self)
            alice = await side.register("alice")
            bob = await side.register("bob")
            room_id = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
            await bob.post(f"/join/{q(room_id)}", {})
            charlie = srv.user_id("charlie")
            made = await srv.request(side.server_name, "GET", f"/_matrix/federation/v1/make_join/{q(room_id)}/{q(charlie)}",
                                     query={"ver": [str(v) for v in range(1, 13)]})
            version = get_room_version(made["room_version"])
            join = srv.sign_template(made["event"], version)
            resp = await srv.request(side.server_name, "PUT",
                                     f"/_matrix/federation/v2/send_join/{q(room_id)}/{q(join.event_id)}", join.json(),
                                     {"omit_members": "true"})
            with case("the server answers with a partial state"):
                assert resp.get("members_omitted") is True, resp.get("members_omitted")
            with case("the state: non-member events and the heroes' memberships"):
                keys = sorted(f"{e.type}|{e.state_key}" for e in (PDU.parse(r, version) for r in resp["state"]))
                want = sorted(["m.room.create|", "m.room.power_levels|", "m.room.join_rules|",
                               "m.room.history_visibility|", f"m.room.member|{alice.user_id}", f"m.room.member|{bob.user_id}"])
                assert keys == want, keys
            with case("no auth events beyond the state"):
                assert resp["auth_chain"] == [], [PDU.parse(r, version).type for r in resp["auth_chain"]]
            with case("the servers in the room"):
                assert resp["servers_in_room"] == [side.server_name], resp["servers_in_room"]

        await on_wspr_and_synapse(self, scenario)
