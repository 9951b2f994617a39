"""Complement ``tests/federation_event_auth_test.go`` (TestEventAuth),
``tests/federation_room_event_auth_test.go`` (TestInboundFederationRejectsEventsWithRejectedAuthEvents)
and ``tests/federation_unreject_rejected_test.go`` (TestUnrejectRejectedEvents)."""

from __future__ import annotations

from typing import Any

from twisted.trial import unittest

from tests.conformance.complement import CaseFn, Side, has_event, joined_to, q, send_state, sync_until, timeline_has
from tests.federation.conformance.harness import default_room_version, on_wspr_and_synapse
from tests.federation.conformance.test_get_missing_events import refuse
from tests.support.fake_homeserver import PDU, FedRequest, start_fake_homeserver


class EventAuthTest(unittest.TestCase):
    timeout = 180

    async def test_event_auth(self) -> None:
        """/event_auth of an event is its auth chain and nothing more (Dendrite once added
        the auth chain of the whole current state)."""

        async def scenario(side: Side, case: CaseFn) -> None:
            srv = await start_fake_homeserver(self)
            alice = await side.register("alice")
            charlie = srv.user_id("charlie")
            room_id = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
            room = await srv.join_room(side.server_name, room_id, charlie)
            await send_state(alice, room_id, "m.room.join_rules", {"join_rule": "invite"})
            raw = await srv.wait_for_pdu(
                lambda p: p.get("type") == "m.room.join_rules" and p.get("content", {}).get("join_rule") == "invite"
            )
            join_rules = PDU.parse(raw, room.version)
            with case("/event_auth returns exactly the auth events of the join rules event"):
                got = await srv.request(
                    side.server_name, "GET", f"/_matrix/federation/v1/event_auth/{q(room_id)}/{q(join_rules.event_id)}"
                )
                ids = sorted(PDU.parse(e, room.version).event_id for e in got["auth_chain"])
                assert ids, "no auth events"
                assert ids == sorted(join_rules.auth_event_ids), (ids, join_rules.auth_event_ids)

        await on_wspr_and_synapse(self, scenario)

    async def test_inbound_federation_rejects_events_with_rejected_auth_events(self) -> None:
        """An event citing a rejected event among its auth events is rejected, and so is
        every event citing that one: an outlier pulled in through /event_auth, and the
        two events citing it (one whose /event_auth is answered, one whose is a 404).
        Rejected events are 404 to clients."""

        async def scenario(side: Side, case: CaseFn) -> None:
            srv = await start_fake_homeserver(self)
            alice = await side.register("alice")
            charlie = srv.user_id("charlie")
            room_id = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
            room = await srv.join_room(side.server_name, room_id, charlie)
            charlie_join = room.current("m.room.member", charlie)
            create = room.current("m.room.create")
            join_rules = room.current("m.room.join_rules")
            power_levels = room.current("m.room.power_levels")
            assert charlie_join and create and join_rules and power_levels
            auth_map: dict[str, list[PDU]] = {}

            async def event_auth(req: FedRequest) -> tuple[int, Any]:
                events = auth_map.get(req.params["event_id"])
                if events is None:
                    return 404, {}
                return 200, {"auth_chain": [e.json() for e in events]}

            srv.handle("GET", r"/_matrix/federation/v1/event_auth/(?P<room_id>[^/]+)/(?P<event_id>[^/]+)", event_auth)

            # charlie (power 0) changes the power levels: rejected
            rejected = room.create_event(type="m.room.power_levels", sender=charlie, state_key="", content={"users": {}})
            await srv.send_transaction(side.server_name, [rejected])
            create_id = [] if room.version.room_id_from_create_event else [create.event_id]
            outlier = room.create_event(
                type="m.room.member", sender=charlie, state_key=charlie, content={"membership": "join", "test": 1},
                auth_events=create_id + [join_rules.event_id, rejected.event_id, charlie_join.event_id],
            )
            room.add_outlier(outlier)  # served by /event, not a forward extremity
            cited = [e for e in (create, join_rules, power_levels, charlie_join, outlier)
                     if not (room.version.room_id_from_create_event and e is create)]
            sent1 = room.create_event(type="m.room.message", sender=charlie, content={"body": "sentEvent1"},
                                      auth_events=[e.event_id for e in cited])
            room.add_event(sent1)
            auth_map[sent1.event_id] = cited
            sent2 = room.create_event(type="m.room.message", sender=charlie, content={"body": "sentEvent1"},
                                      auth_events=[e.event_id for e in cited])
            room.add_event(sent2)
            sentinel = room.create_event(type="m.room.message", sender=charlie, content={"body": "sentinelEvent"})
            await srv.send_transaction(side.server_name, [sent1, sent2, sentinel])
            await sync_until(alice, timeline_has(room_id, has_event(sentinel.event_id)), wait=15)
            for name, ev in (("Outlier", outlier), ("sent event 1", sent1), ("sent event 2", sent2)):
                with case(f"{name} should be rejected"):
                    code, body = await alice.raw("GET", f"/_matrix/client/v3/rooms/{q(room_id)}/event/{q(ev.event_id)}")
                    assert code == 404, (code, body)

        await on_wspr_and_synapse(self, scenario)

    async def test_unreject_rejected_events(self) -> None:
        """An event refused because its prev event was unknown (and unobtainable) is taken
        when it comes again after that prev event arrived, and /sync shows it then."""

        async def scenario(side: Side, case: CaseFn) -> None:
            srv = await start_fake_homeserver(self)
            calls: list[str] = []
            for method, path in (("POST", r"/_matrix/federation/v1/get_missing_events/[^/]+"),
                                 ("GET", r"/_matrix/federation/v1/state_ids/[^/]+"),
                                 ("GET", r"/_matrix/federation/v1/state/[^/]+"),
                                 ("GET", r"/_matrix/federation/v1/event/[^/]+"),
                                 ("GET", r"/_matrix/federation/v1/event_auth/[^/]+/[^/]+"),
                                 ("GET", r"/_matrix/federation/v1/backfill/[^/]+")):
                refuse(srv, method, path, calls)
            alice = await side.register("alice")
            bob = srv.user_id("bob")
            room = srv.make_room(await default_room_version(alice), bob)
            await alice.post(f"/join/{q(room.room_id)}?server_name={q(srv.server_name)}", {})
            await sync_until(alice, joined_to(alice.user_id, room.room_id))
            event_a = room.create_event(type="m.event.a", sender=bob, content={"event": "A"})
            event_b = room.create_event(type="m.event.b", sender=bob, content={"event": "B"},
                                        prev_events=[event_a.event_id])
            await srv.send_transaction(side.server_name, [event_b])
            await srv.send_transaction(side.server_name, [event_a])
            _, since = await sync_until(alice, timeline_has(room.room_id, has_event(event_a.event_id)), wait=15)
            with case("event B, sent again after A, comes down /sync"):
                await srv.send_transaction(side.server_name, [event_b])
                await sync_until(alice, timeline_has(room.room_id, has_event(event_b.event_id)), since=since, wait=15)

        await on_wspr_and_synapse(self, scenario)
