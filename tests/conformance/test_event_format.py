"""The form events come in on each endpoint, compared with a real Synapse: the "client v1"
form (``user_id``, ``age``, ``redacted_because``, ``prev_content`` and ``replaces_state``
at the top level too) on /messages, /context, /event, /state, /members, /search,
/relations and /threads, and in what they bundle (a thread's latest event, an edit, a
redaction); the plain client form for a state event's ``?format=event``.

Synapse adds ``prev_content``/``prev_sender`` to a state event only once something read
it through a path that asks for them (its event cache then keeps them): WSPR always adds
them, so they are left out of the comparison for /state and /members."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from twisted.trial import unittest

from tests.support.differential import server_pair

V1 = "/_matrix/client/v1"
V3 = "/_matrix/client/v3"
PREV = ("*prev_content*", "*prev_sender*")


def by_state_key(events: list[Any]) -> list[Any]:
    return sorted(events, key=lambda e: (e["type"], e.get("state_key", "")))


class EventFormatConformanceTest(unittest.TestCase):
    timeout = 180

    async def test_each_endpoint_serves_synapse_form(self) -> None:
        pair = await server_pair(self)
        for side in pair:
            alice = await side.register("alice")
            bob = await side.register("bob")
            room = (await alice.post("/createRoom", {"preset": "public_chat", "name": "first", "room_version": "12"}))["room_id"]
            await bob.post(f"/rooms/{room}/join")
            await alice.put(f"/rooms/{room}/state/m.room.name", {"name": "second"})
            root = await alice.send_message(room, "findme root")
            await bob.put(
                f"/rooms/{room}/send/m.room.message/r1",
                {"msgtype": "m.text", "body": "in the thread", "m.relates_to": {"rel_type": "m.thread", "event_id": root}},
            )
            await alice.put(
                f"/rooms/{room}/send/m.room.message/e1",
                {"msgtype": "m.text", "body": "* findme edited", "m.new_content": {"msgtype": "m.text", "body": "findme edited"},
                 "m.relates_to": {"rel_type": "m.replace", "event_id": root}},
            )
            gone = await alice.send_message(room, "to be redacted")
            await alice.put(f"/rooms/{room}/redact/{quote(gone)}/x1", {"reason": "oops"})
            await side.call(alice, "messages", "GET", f"{V3}/rooms/{room}/messages?dir=b&limit=20")
            code, context = await alice.raw("GET", f"{V3}/rooms/{room}/context/{quote(root)}?limit=4")
            side.record("context", code, {**context, "state": by_state_key(context["state"])})
            await side.call(alice, "event", "GET", f"{V3}/rooms/{room}/event/{quote(root)}")
            await side.call(alice, "a redacted event", "GET", f"{V3}/rooms/{room}/event/{quote(gone)}")
            await side.call(bob, "a redacted event, seen by another user", "GET", f"{V3}/rooms/{room}/event/{quote(gone)}")
            await side.call(alice, "relations", "GET", f"{V1}/rooms/{room}/relations/{quote(root)}")
            await side.call(alice, "threads", "GET", f"{V1}/rooms/{room}/threads")
            await side.call(alice, "a state event as an event", "GET", f"{V3}/rooms/{room}/state/m.room.name/?format=event")
            code, state = await alice.raw("GET", f"{V3}/rooms/{room}/state")
            side.record("state", code, by_state_key(state))
            code, members = await alice.raw("GET", f"{V3}/rooms/{room}/members")
            side.record("members", code, {"chunk": by_state_key(members["chunk"])})
            code, found = await alice.raw(
                "POST", V3 + "/search",
                {"search_categories": {"room_events": {"search_term": "findme", "include_state": True,
                                                       "event_context": {"before_limit": 1, "after_limit": 1}}}},
            )
            events = found["search_categories"]["room_events"]
            side.record("search results", code, [r["result"] for r in events["results"]])
            side.record("search context", code, [r["context"] for r in events["results"]])
            side.record("search state", code, by_state_key(events["state"][room]))
        # (Synapse's /threads serves the requester's own events without their
        # transaction_id; WSPR's with it, as everywhere else.)
        pair.assert_same(*PREV, "chunk*transaction_id")
        for step in pair.wspr.steps:
            if step.name in ("messages", "context", "event", "relations", "threads"):
                text = repr(step.body)
                self.assertIn("'user_id'", text, step.name)
        steps = {s.name: s.body for s in pair.wspr.steps}
        self.assertNotIn("user_id", steps["a state event as an event"])
        messages = steps["messages"]["chunk"]
        rooted = next(e for e in messages if e["content"].get("body") == "findme root")
        bundled = rooted["unsigned"]["m.relations"]
        self.assertEqual(bundled["m.thread"]["latest_event"]["user_id"], bundled["m.thread"]["latest_event"]["sender"])
        self.assertIn("age", bundled["m.replace"])
        redacted = next(e for e in messages if e["event_id"] == steps["a redacted event"]["event_id"])
        self.assertEqual(redacted["redacted_because"], redacted["unsigned"]["redacted_because"])
        self.assertEqual(redacted["unsigned"]["redacted_by"], redacted["redacted_because"]["event_id"])
        renamed = next(e for e in messages if e["type"] == "m.room.name" and e["content"]["name"] == "second")
        self.assertEqual(renamed["prev_content"], {"name": "first"})
        self.assertEqual(renamed["replaces_state"], renamed["unsigned"]["replaces_state"])
