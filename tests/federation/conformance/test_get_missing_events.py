"""Complement ``tests/federation_room_get_missing_events_test.go``: filling gaps in the room
DAG with ``/get_missing_events``, as the asking server and as the answering one.

Ported: TestGetMissingEventsGapFilling, TestOutboundFederationIgnoresMissingEventWithBadJSONForRoomVersion6,
TestInboundCanReturnMissingEvents (world_readable, shared, invited, joined),
TestOutboundFederationEventSizeGetMissingEvents.
"""

from __future__ import annotations

from typing import Any

from twisted.trial import unittest

from homeserver.protocol.redaction import redact_event
from tests.conformance.complement import (
    CaseFn,
    Side,
    has_event,
    joined_to,
    q,
    send,
    send_state,
    sync_until,
    timeline_has,
)
from tests.federation.conformance.harness import default_room_version, on_wspr_and_synapse
from tests.federation.helpers import wait_for
from tests.support.fake_homeserver import PDU, FakeHomeserver, FedRequest, start_fake_homeserver


def refuse(srv: FakeHomeserver, method: str, path: str, calls: list[str]) -> None:
    """Like an endpoint Complement's server has no handler for: recorded, answered 404."""

    async def handler(req: FedRequest) -> tuple[int, Any]:
        calls.append(f"{req.method} {req.path}")
        return 404, {"errcode": "M_UNRECOGNIZED", "error": "not handled"}

    srv.handle(method, path, handler)


class GetMissingEventsTest(unittest.TestCase):
    timeout = 240

    async def test_gap_filling(self) -> None:
        """A gap that /get_missing_events fills needs no /state or /state_ids, and the
        client sees every missed event in order."""

        async def scenario(side: Side, case: CaseFn) -> None:
            srv = await start_fake_homeserver(self)
            state_calls: list[str] = []
            refuse(srv, "GET", r"/_matrix/federation/v1/state/[^/]+", state_calls)
            refuse(srv, "GET", r"/_matrix/federation/v1/state_ids/[^/]+", state_calls)
            alice = await side.register("alice")
            bob = srv.user_id("bob")
            room_id = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
            room = await srv.join_room(side.server_name, room_id, bob)
            last_shared = room.timeline[-1]
            missing: list[PDU] = []
            for i in range(5):
                ev = room.create_event(type="m.room.message", sender=bob, content={"body": f"Missing event {i + 1}/5"})
                room.add_event(ev)
                missing.append(ev)
            recent = room.create_event(type="m.room.message", sender=bob, content={"body": "most recent event"})
            room.add_event(recent)
            asked: list[Any] = []
            default_gme = srv._on_get_missing_events

            async def gme(req: FedRequest) -> tuple[int, Any]:
                asked.append(req.body)
                return await default_gme(req)

            srv.handle("POST", r"/_matrix/federation/v1/get_missing_events/(?P<room_id>[^/]+)", gme)
            with case("/get_missing_events asks from the last shared event to the new one"):
                await srv.send_transaction(side.server_name, [recent])
                await sync_until(alice, timeline_has(room_id, has_event(recent.event_id)), wait=15)
                assert asked, "no /get_missing_events request"
                assert asked[0]["earliest_events"] == [last_shared.event_id], asked[0]
                assert asked[0]["latest_events"] == [recent.event_id], asked[0]
            with case("no /state or /state_ids request"):
                assert not state_calls, state_calls
            with case("the client sees every injected event, in order"):
                want = [last_shared.event_id] + [e.event_id for e in missing] + [recent.event_id]
                body = await alice.get(f"/rooms/{q(room_id)}/messages?dir=b&limit=20")
                ids = [e["event_id"] for e in reversed(body["chunk"])]
                start = ids.index(want[0])
                assert ids[start:start + len(want)] == want, ids

        await on_wspr_and_synapse(self, scenario)

    async def test_outbound_federation_ignores_missing_event_with_bad_json(self) -> None:
        """A missing event with a float in its content (invalid JSON from room version 6)
        is not accepted from /get_missing_events, and neither is the event resting on
        it: the next event that cites it makes the server ask for the gap again."""

        async def scenario(side: Side, case: CaseFn) -> None:
            srv = await start_fake_homeserver(self)
            calls: list[str] = []
            refuse(srv, "GET", r"/_matrix/federation/v1/state/[^/]+", calls)
            refuse(srv, "GET", r"/_matrix/federation/v1/state_ids/[^/]+", calls)
            refuse(srv, "GET", r"/_matrix/federation/v1/event/[^/]+", calls)
            refuse(srv, "GET", r"/_matrix/federation/v1/event_auth/[^/]+/[^/]+", calls)
            alice = await side.register("alice")
            ver = await default_room_version(alice)
            charlie = srv.user_id("charlie")
            room = srv.make_room(ver, charlie)
            alias = srv.alias_for("flibble", room)
            await alice.post(f"/join/{q(alias)}", {})
            latest = room.timeline[-1]
            # built by room version 5's rules, which allow floats
            bad = room.create_event(type="m.room.message", sender=charlie,
                                    content={"body": "Message 1", "bad_val": 1.1}, version="5")
            room.add_event(bad)
            sent = room.create_event(type="m.room.message", sender=charlie, content={"body": "Message 2"})
            room.add_event(sent)
            asked: list[Any] = []

            async def answer_bad(req: FedRequest) -> tuple[int, Any]:
                asked.append(req.body)
                return 200, {"events": [bad.json()]}

            srv.handle("POST", r"/_matrix/federation/v1/get_missing_events/[^/]+", answer_bad)
            with case("the transaction names the event (with or without an error)"):
                resp = await srv.send_transaction(side.server_name, [sent], txn_id="wut")
                assert list(resp["pdus"]) == [sent.event_id], resp
                await wait_for(lambda: any(a["latest_events"] == [sent.event_id] for a in asked))
                assert asked[0]["earliest_events"] == [latest.event_id], asked
            message3 = room.create_event(type="m.room.message", sender=charlie, content={"body": "Message 3"})
            room.add_event(message3)
            asked.clear()

            async def answer_empty(req: FedRequest) -> tuple[int, Any]:
                asked.append(req.body)
                return 200, {}

            srv.handle("POST", r"/_matrix/federation/v1/get_missing_events/[^/]+", answer_empty)
            with case("the event resting on the bad one was not accepted: its gap is asked for again"):
                await srv.send_transaction(side.server_name, [message3], txn_id="t2")
                await wait_for(lambda: any(a["latest_events"] == [message3.event_id] for a in asked))
                again = next(a for a in asked if a["latest_events"] == [message3.event_id])
                assert again["earliest_events"] == [latest.event_id], again

        await on_wspr_and_synapse(self, scenario)

    async def test_inbound_can_return_missing_events(self) -> None:
        """/get_missing_events served to a server that joined later: the history between
        the create event and its join, in order, redacted where the room's history
        visibility hides it from that server."""

        async def scenario(side: Side, case: CaseFn) -> None:
            srv = await start_fake_homeserver(self)
            alice = await side.register("alice")
            charlie = srv.user_id("charlie")
            ver = await default_room_version(alice)
            for visibility in ("world_readable", "shared", "invited", "joined"):
                with case(f"Inbound federation can return missing events for {visibility} visibility"):
                    room_id = (await alice.post("/createRoom", {"preset": "public_chat", "room_version": ver}))["room_id"]
                    await send_state(alice, room_id, "m.room.history_visibility", {"history_visibility": visibility})
                    await send(alice, room_id, "m.room.message", {"body": "1", "msgtype": "m.text"})
                    room = await srv.join_room(side.server_name, room_id, charlie)
                    await sync_until(alice, joined_to(charlie, room_id))
                    create = room.current("m.room.create")
                    join = room.current("m.room.member", charlie)
                    assert create and join
                    got = await srv.request(
                        side.server_name, "POST", f"/_matrix/federation/v1/get_missing_events/{q(room_id)}",
                        {"earliest_events": [create.event_id], "latest_events": [join.event_id], "limit": 10, "min_depth": 1},
                    )
                    events = [PDU.parse(e, ver) for e in got["events"]]
                    assert events, "no events returned"
                    types = [e.type for e in events]
                    want = ["m.room.member", "m.room.power_levels", "m.room.join_rules", "m.room.history_visibility"]
                    want += ["m.room.message"] if visibility == "shared" else ["m.room.history_visibility", "m.room.message"]
                    assert types == want, types
                    assert events[0].state_key == alice.user_id
                    assert all(e.room_id == room_id for e in events)
                    msg = events[-1]
                    if visibility in ("joined", "invited"):
                        assert msg.pdu == redact_event(msg.pdu, ver), f"not redacted: {msg.pdu}"
                    else:
                        assert "msgtype" in msg.content and "body" in msg.content, msg.pdu

        await on_wspr_and_synapse(self, scenario)

    async def test_event_size_get_missing_events(self) -> None:
        """A state event whose state_key has 70 code points but 280 bytes, fetched with
        /get_missing_events: the event built on it is accepted. Before room version 11
        the limits are in code points (Synapse persists such an event as rejected;
        Dendrite broke older rooms by counting bytes). Complement runs this in the
        default room version, which was 10 then; from 11 the limit is in bytes and
        Synapse drops the event (and the one resting on it), so the case is for 10."""

        async def scenario(side: Side, case: CaseFn) -> None:
            srv = await start_fake_homeserver(self)
            alice = await side.register("alice")
            charlie = srv.user_id("charlie")
            for ver in ("10",):
                with case(f"room version {ver}: the event after a 280-byte state key arrives"):
                    room = srv.make_room(ver, charlie)
                    alias = srv.alias_for(f"flibble{ver}", room)
                    await alice.post(f"/join/{q(alias)}", {})
                    latest = room.timeline[-1]
                    big = room.create_event(type="my.room.breaker", sender=charlie, state_key="💥" * 70, content={})
                    room.add_event(big)
                    sent = room.create_event(type="m.room.message", sender=charlie, content={"body": "Message 2"})
                    room.add_event(sent)
                    asked: list[Any] = []

                    async def answer(req: FedRequest, big: PDU = big) -> tuple[int, Any]:
                        asked.append(req.body)
                        return 200, {"events": [big.json()]}

                    srv.handle("POST", r"/_matrix/federation/v1/get_missing_events/[^/]+", answer)
                    resp = await srv.send_transaction(side.server_name, [sent])
                    assert list(resp["pdus"]) == [sent.event_id], resp
                    await wait_for(lambda asked=asked: bool(asked))
                    assert asked[0]["earliest_events"] == [latest.event_id], asked
                    await sync_until(alice, timeline_has(room.room_id, has_event(sent.event_id)), wait=15)

        await on_wspr_and_synapse(self, scenario)



