"""Reporting content (events, rooms, users) answered as Synapse 1.163 answers it: status,
errcode and body of every step compared with a real Synapse."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from twisted.trial import unittest

from tests.support.differential import server_pair

V3 = "/_matrix/client/v3"


class ReportConformanceTest(unittest.TestCase):
    timeout = 180

    async def test_reports_answer_like_synapse(self) -> None:
        pair = await server_pair(self)
        for side in pair:
            alice = await side.register("alice")
            bob = await side.register("bob")
            carol = await side.register("carol")
            rid = (await alice.post("/createRoom", {"preset": "private_chat"}))["room_id"]
            other = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
            await alice.post(f"/rooms/{quote(rid)}/invite", {"user_id": bob.user_id})
            await bob.post(f"/join/{quote(rid)}")
            msg = await alice.send_message(rid, "something bad")
            gone = await alice.send_message(rid, "something worse")
            await alice.put(f"/rooms/{quote(rid)}/redact/{quote(gone)}/r1", {})

            def event_report(room: str, event: str) -> str:
                return f"{V3}/rooms/{quote(room)}/report/{quote(event)}"

            steps: list[tuple[str, Any, str, Any]] = [
                ("event", bob, event_report(rid, msg), {"reason": "spam", "score": -100}),
                ("event, empty body", bob, event_report(rid, msg), {}),
                ("event, score out of the old range", bob, event_report(rid, msg), {"score": 5}),
                ("event, extra fields", bob, event_report(rid, msg), {"reason": "x", "extra": {"a": 1}}),
                ("event, reason not a string", bob, event_report(rid, msg), {"reason": 7}),
                ("event, reason null", bob, event_report(rid, msg), {"reason": None}),
                ("event, score not an integer", bob, event_report(rid, msg), {"score": "-50"}),
                ("event, score a float", bob, event_report(rid, msg), {"score": -1.5}),
                ("event, score a boolean", bob, event_report(rid, msg), {"score": True}),
                ("event, redacted", bob, event_report(rid, gone), {"reason": "was bad"}),
                ("event, not in the room", carol, event_report(rid, msg), {"reason": "x"}),
                ("event, unknown", bob, event_report(rid, "$nope:example.org"), {"reason": "x"}),
                ("event, another room's id", bob, event_report(other, msg), {"reason": "x"}),
                ("room", carol, f"{V3}/rooms/{quote(rid)}/report", {"reason": "a bad room"}),
                ("room, empty reason", carol, f"{V3}/rooms/{quote(other)}/report", {"reason": ""}),
                ("room, no reason", carol, f"{V3}/rooms/{quote(rid)}/report", {}),
                ("room, reason not a string", carol, f"{V3}/rooms/{quote(rid)}/report", {"reason": 1}),
                ("room, unknown", carol, f"{V3}/rooms/{quote('!nope:example.org')}/report", {"reason": "x"}),
                ("user", carol, f"{V3}/users/{quote(alice.user_id)}/report", {"reason": "rude"}),
                ("user, unknown", carol, f"{V3}/users/{quote('@nobody:' + side.server_name)}/report", {"reason": "x"}),
                ("user, remote", carol, f"{V3}/users/{quote('@someone:example.org')}/report", {"reason": "x"}),
                ("user, reason too long", carol, f"{V3}/users/{quote(alice.user_id)}/report", {"reason": "x" * 1001}),
                ("user, no reason", carol, f"{V3}/users/{quote(alice.user_id)}/report", {}),
            ]
            for name, who, path, body in steps:
                await side.call(who, name, "POST", path, body)
            await side.call(bob, "event, not JSON", "POST", event_report(rid, msg), data=b"{nope")
            await side.call(side.anonymous(), "no token", "POST", event_report(rid, msg), {})
            await side.call(bob, "r0", "POST", event_report(rid, msg).replace("/v3/", "/r0/"), {"reason": "old client"})
        pair.assert_same()
        for w, s in zip(pair.wspr.steps, pair.synapse.steps, strict=True):
            self.assertEqual(w.body if w.code == 200 else w.code, s.body if s.code == 200 else s.code, w.name)
