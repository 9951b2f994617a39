"""Cases Complement lists as still to port from sytest (the TODOs of its federation files),
written here and checked against Synapse as the reference:

* "Inbound federation can receive redacted events" (federation_room_send_test.go's TODO);
* "Events whose auth_events are in the wrong room do not mess up the room state";
* "outliers whose auth_events are in a different room are correctly rejected"
  (federation_room_get_missing_events_test.go's TODO);
* /backfill served to a server in the room (what a joining server asks first).
"""

from __future__ import annotations

from typing import Any

from twisted.trial import unittest

from homeserver.protocol.redaction import redact_event
from tests.conformance.complement import CaseFn, Side, get_state, has_event, q, send, sync_until, timeline_has
from tests.federation.conformance.harness import on_wspr_and_synapse
from tests.support.fake_homeserver import PDU, FedRequest, start_fake_homeserver


class InboundEventsTest(unittest.TestCase):
    timeout = 180

    async def test_inbound_federation_can_receive_redacted_events(self) -> None:
        """An event that arrives already redacted (its content no longer matches its hash)
        is taken in its redacted form."""

        async def scenario(side: Side, case: CaseFn) -> None:
            srv = await start_fake_homeserver(self)
            alice = await side.register("alice")
            charlie = srv.user_id("charlie")
            room_id = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
            room = await srv.join_room(side.server_name, room_id, charlie)
            ev = room.create_event(type="m.room.message", sender=charlie, content={"msgtype": "m.text", "body": "secret"})
            stripped = PDU(ev.event_id, redact_event(ev.pdu, room.version), room.version)
            room.add_event(stripped)
            with case("the redacted event is accepted and served with no content"):
                await srv.send_transaction(side.server_name, [stripped])
                body, _ = await sync_until(alice, timeline_has(room_id, has_event(ev.event_id)))
                got = await alice.get(f"/rooms/{q(room_id)}/event/{q(ev.event_id)}")
                assert got["content"] == {}, got

        await on_wspr_and_synapse(self, scenario)

    async def test_auth_events_in_the_wrong_room(self) -> None:
        """A state event whose auth events are another room's (where its sender holds
        power) is rejected, and the room's state stays as it was; so is an outlier pulled
        in whose auth events are another room's."""

        async def scenario(side: Side, case: CaseFn) -> None:
            srv = await start_fake_homeserver(self)
            alice = await side.register("alice")
            charlie = srv.user_id("charlie")
            room_id = (await alice.post("/createRoom", {"preset": "public_chat", "name": "Original"}))["room_id"]
            room = await srv.join_room(side.server_name, room_id, charlie)
            # charlie's own room, where he has all the power
            other = srv.make_room(room.version.identifier, charlie)
            other_auth = [e.event_id for e in (other.current("m.room.create"), other.current("m.room.power_levels"),
                                               other.current("m.room.member", charlie)) if e is not None]
            if room.version.room_id_from_create_event:
                other_auth = other_auth[1:]
            bad = room.create_event(type="m.room.name", sender=charlie, state_key="", content={"name": "Hijacked"},
                                    auth_events=other_auth)
            room.add_event(bad)

            async def event_auth(req: FedRequest) -> tuple[int, Any]:
                chain = other.auth_chain(other_auth) + [other.events[i] for i in other_auth]
                return 200, {"auth_chain": [e.json() for e in chain]}

            srv.handle("GET", r"/_matrix/federation/v1/event_auth/[^/]+/[^/]+", event_auth)
            sentinel = room.create_event(type="m.room.message", sender=charlie, content={"body": "sentinel"})
            room.add_event(sentinel)
            await srv.send_transaction(side.server_name, [bad, sentinel])
            await sync_until(alice, timeline_has(room_id, has_event(sentinel.event_id)), wait=15)
            with case("the room's name is unchanged"):
                state = await get_state(alice, room_id, "m.room.name")
                assert state["name"] == "Original", state
            with case("the event citing another room's auth events is rejected (404 to clients)"):
                code, body = await alice.raw("GET", f"/_matrix/client/v3/rooms/{q(room_id)}/event/{q(bad.event_id)}")
                assert code == 404, (code, body)
            with case("the other room's events are not served as this room's"):
                for eid in other_auth:
                    code, body = await alice.raw("GET", f"/_matrix/client/v3/rooms/{q(room_id)}/event/{q(eid)}")
                    assert code == 404, (eid, code, body)
            with case("later events still work"):
                eid = await send(alice, room_id, "m.room.message", {"msgtype": "m.text", "body": "still fine"})
                await srv.wait_for_pdu(lambda p: p.get("content", {}).get("body") == "still fine")
                assert eid

        await on_wspr_and_synapse(self, scenario)

    async def test_backfill_served(self) -> None:
        """/backfill to a server in the room: the events before the given ones, at most
        ``limit``, each of the room."""

        async def scenario(side: Side, case: CaseFn) -> None:
            srv = await start_fake_homeserver(self)
            alice = await side.register("alice")
            charlie = srv.user_id("charlie")
            room_id = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
            sent = [await send(alice, room_id, "m.room.message", {"msgtype": "m.text", "body": f"m{i}"}) for i in range(10)]
            room = await srv.join_room(side.server_name, room_id, charlie)
            path = f"/_matrix/federation/v1/backfill/{q(room_id)}"
            with case("backfill from the last message: it and the ones before, at most limit"):
                got = await srv.request(side.server_name, "GET", path, query={"v": [sent[-1]], "limit": "5"})
                ids = [PDU.parse(p, room.version).event_id for p in got["pdus"]]
                assert len(ids) == 5, ids
                assert set(ids) == set(sent[-5:]), (ids, sent[-5:])
                assert got["origin"] == side.server_name and isinstance(got["origin_server_ts"], int), got
            with case("backfill from the join reaches the room's start"):
                join = room.current("m.room.member", charlie)
                assert join is not None
                got = await srv.request(side.server_name, "GET", path, query={"v": [join.event_id], "limit": "100"})
                types = [p["type"] for p in got["pdus"]]
                assert "m.room.create" in types and types.count("m.room.message") == 10, types
                assert all(p["room_id"] == room_id for p in got["pdus"] if p["type"] != "m.room.create"), got

        await on_wspr_and_synapse(self, scenario)

    async def test_history_backfilled_from_the_remote(self) -> None:
        """/messages past the join of a room joined on another server fetches the earlier
        history from it (/backfill), in order."""

        async def scenario(side: Side, case: CaseFn) -> None:
            srv = await start_fake_homeserver(self)
            alice = await side.register("alice")
            charlie = srv.user_id("charlie")
            from tests.federation.conformance.harness import default_room_version

            room = srv.make_room(await default_room_version(alice), charlie)
            bodies = [f"before {i}" for i in range(30)]
            for b in bodies:
                room.add_event(room.create_event(type="m.room.message", sender=charlie,
                                                 content={"msgtype": "m.text", "body": b}))
            await alice.post(f"/join/{q(room.room_id)}?server_name={q(srv.server_name)}", {})
            with case("the history before the join comes back, newest first"):
                seen: list[str] = []
                token = None
                for _ in range(10):
                    page = await alice.get(f"/rooms/{q(room.room_id)}/messages?dir=b&limit=20"
                                           + (f"&from={q(token)}" if token else ""))
                    seen += [e["content"]["body"] for e in page["chunk"] if e["type"] == "m.room.message"]
                    token = page.get("end")
                    if not token or len(seen) >= 30:
                        break
                assert seen == list(reversed(bodies)), seen
                assert srv.requests_to("GET", r"/_matrix/federation/v1/backfill/[^/]+"), "no /backfill request"

        await on_wspr_and_synapse(self, scenario)

