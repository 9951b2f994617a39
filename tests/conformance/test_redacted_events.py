"""Redacted events on the wire, compared with Synapse: the pruned event and its
``redacted_because`` (and where each endpoint puts it) on /sync, /messages, /event and
/context, for a message and a state event, in rooms of version 10 (``redacts`` at the top
level) and 11 (``redacts`` in the content)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from twisted.trial import unittest

from tests.support.differential import Side, server_pair


def _find(events: list[dict[str, Any]], event_id: str) -> dict[str, Any]:
    return next(e for e in events if e.get("event_id") == event_id)


class RedactedEventsTest(unittest.TestCase):
    timeout = 120

    async def _steps(self, side: Side, room_version: str) -> None:
        alice = await side.register("alice")
        room = (await alice.post("/createRoom", {"room_version": room_version, "topic": "before"}))["room_id"]
        r = quote(room)
        message = await alice.send_message(room, "secret", format="org.matrix.custom.html", formatted_body="<b>secret</b>")
        topic = (await alice.put(f"/rooms/{r}/state/m.room.topic/", {"topic": "a topic to redact"}))["event_id"]
        kept = await alice.send_message(room, "after")
        before = await alice.sync(filter={"room": {"timeline": {"limit": 10}}})
        redactions = {}
        for name, target, body in (("message", message, {"reason": "spam"}), ("topic", topic, {})):
            redactions[name] = (await alice.put(f"/rooms/{r}/redact/{quote(target)}/t-{name}", body))["event_id"]

        # The redactions as the next /sync brings them (the redacted events were sent before).
        incremental = await alice.sync(since=before["next_batch"])
        timeline = incremental["rooms"]["join"][room]["timeline"]["events"]
        for name, event_id in redactions.items():
            side.record(f"incremental sync: the {name} redaction", 200, _find(timeline, event_id))

        # A fresh /sync, /messages, /event and /context see the pruned events.
        full = await alice.sync(filter={"room": {"timeline": {"limit": 20}}})
        timeline = full["rooms"]["join"][room]["timeline"]["events"]
        state = full["rooms"]["join"][room]["state"]["events"]
        for name, event_id in (("message", message), ("topic", topic)):
            side.record(f"sync: the redacted {name}", 200, _find(timeline, event_id))
        side.record("sync: the redacted message's redaction", 200, _find(timeline, redactions["message"]))
        self.assertNotIn(topic, [e["event_id"] for e in state])  # the topic's state is the pruned event, in the timeline

        code, chunk = await side.call(alice, "messages", "GET", f"/_matrix/client/v3/rooms/{r}/messages?dir=b&limit=20")
        for name, event_id in (("message", message), ("topic", topic)):
            side.record(f"messages: the redacted {name}", 200, _find(chunk["chunk"], event_id))
        side.record("messages: the redaction", 200, _find(chunk["chunk"], redactions["message"]))
        for name, event_id in (("message", message), ("topic", topic)):
            await side.call(alice, f"event: the redacted {name}", "GET", f"/_matrix/client/v3/rooms/{r}/event/{quote(event_id)}")
        await side.call(alice, "event: the redaction", "GET", f"/_matrix/client/v3/rooms/{r}/event/{quote(redactions['message'])}")
        code, context = await side.call(
            alice, "context", "GET", f"/_matrix/client/v3/rooms/{r}/context/{quote(message)}?limit=0"
        )
        side.record("context: the redacted message", code, context["event"])
        code, context = await side.call(
            alice, "context of the next", "GET", f"/_matrix/client/v3/rooms/{r}/context/{quote(kept)}?limit=10"
        )
        side.record("context: the redacted message before", code, _find(context["events_before"], message))
        side.record("context: the topic in the state", code, _find(context["state"], topic))

        # A room's current state through /state shows the pruned topic too.
        await side.call(alice, "state: the redacted topic", "GET", f"/_matrix/client/v3/rooms/{r}/state/m.room.topic/?format=event")
        code, state_list = await side.call(alice, "state", "GET", f"/_matrix/client/v3/rooms/{r}/state")
        side.record("state: the redacted topic in the list", code, _find(state_list, topic))

    async def _compare(self, room_version: str) -> None:
        pair = await server_pair(self)
        for side in pair:
            await self._steps(side, room_version)
        # Whole answers differ where the rooms differ (their creation events); the
        # events of interest are compared as steps of their own.
        for side in pair:
            side.steps = [s for s in side.steps if s.name not in ("messages", "context", "context of the next", "state")]
        try:
            pair.assert_same()
        except AssertionError:
            for w, s in zip(pair.wspr.steps, pair.synapse.steps, strict=False):
                print(f"--- {w.name}\nWSPR    {json.dumps(w.body, sort_keys=True)}\nSynapse {json.dumps(s.body, sort_keys=True)}")
            raise

    async def test_room_version_10(self) -> None:
        await self._compare("10")

    async def test_room_version_11(self) -> None:
        await self._compare("11")


