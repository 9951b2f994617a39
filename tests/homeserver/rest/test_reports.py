"""Reports of events, rooms and users end to end: what the reporter may report (history
visibility decides, as for reading), what is kept for the admins, and the rate limit.
On SQLite and PostgreSQL."""

from __future__ import annotations

from urllib.parse import quote

from twisted.trial import unittest

from tests.support.wspr import MatrixClient, start_homeserver

V3 = "/_matrix/client/v3"


class ReportsTest(unittest.TestCase):
    timeout = 120
    database = "sqlite"

    async def test_reports_are_kept_for_the_admins(self) -> None:
        server = await start_homeserver(self)
        store = server.hs.store
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        rid = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        await bob.post(f"/join/{quote(rid)}")
        msg = await alice.send_message(rid, "spam spam spam")
        await bob.post(f"/rooms/{quote(rid)}/report/{quote(msg)}", {"reason": "spam", "score": -100, "extra": [1]})
        await bob.post(f"/rooms/{quote(rid)}/report/{quote(msg)}", {})
        await bob.post(f"/rooms/{quote(rid)}/report", {"reason": "a spam room"})
        await bob.post(f"/users/{quote(alice.user_id)}/report", {"reason": "spammer"})
        # not kept: a user who does not exist here, or is not from here
        await bob.post(f"/users/{quote('@ghost:localhost')}/report", {"reason": "x"})
        await bob.post(f"/users/{quote('@someone:example.org')}/report", {"reason": "x"})

        reports, total = await store.get_event_reports()
        self.assertEqual(total, 2)
        newest, oldest = reports
        self.assertEqual((oldest.room_id, oldest.event_id, oldest.user_id, oldest.reason), (rid, msg, bob.user_id, "spam"))
        self.assertEqual(oldest.content, {"reason": "spam", "score": -100, "extra": [1]})
        self.assertEqual((newest.reason, newest.content), (None, {}))
        self.assertGreater(oldest.received_ts, 0)
        self.assertEqual([r.id for r in (await store.get_event_reports(newest_first=False))[0]], [oldest.id, newest.id])
        self.assertEqual(len((await store.get_event_reports(start=1, limit=5))[0]), 1)
        self.assertEqual((await store.get_event_reports(room_id="!other:localhost"))[1], 0)
        self.assertEqual((await store.get_event_reports(user_id=bob.user_id))[1], 2)
        self.assertEqual(await store.get_event_report(oldest.id), oldest)
        self.assertIsNone(await store.get_event_report(10_000))

        rooms, total = await store.get_room_reports()
        self.assertEqual((total, rooms[0].room_id, rooms[0].user_id, rooms[0].reason), (1, rid, bob.user_id, "a spam room"))
        users, total = await store.get_user_reports()
        self.assertEqual((total, users[0].target_user_id, users[0].user_id, users[0].reason), (1, alice.user_id, bob.user_id, "spammer"))

    async def test_what_a_user_may_report_is_what_they_may_see(self) -> None:
        """bob left a room with history shared with members: he can still report what
        he saw, not what was said after he left, nor anything of a room he never saw."""
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        rid = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        private = (await alice.post("/createRoom", {"preset": "private_chat"}))["room_id"]
        hidden = await alice.send_message(private, "private")
        await bob.post(f"/join/{quote(rid)}")
        seen = await alice.send_message(rid, "seen by bob")
        await bob.post(f"/rooms/{quote(rid)}/leave")
        after = await alice.send_message(rid, "after bob left")

        async def report(room: str, event: str) -> int:
            code, _ = await bob.raw("POST", f"{V3}/rooms/{quote(room)}/report/{quote(event)}", {"reason": "x"})
            return code

        self.assertEqual(await report(rid, seen), 200)
        self.assertEqual(await report(rid, after), 404)
        self.assertEqual(await report(private, hidden), 404)
        self.assertEqual(await report(rid, hidden), 404)  # the event is of another room
        self.assertEqual((await server.hs.store.get_event_reports())[1], 1)

    async def test_room_and_user_reports_are_rate_limited(self) -> None:
        """As Synapse's rc_reports (1/s, burst 5) per reporter; event reports are not."""
        server = await start_homeserver(self, rate_limits={"enabled": True})
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        rid = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        await bob.post(f"/join/{quote(rid)}")
        msg = await alice.send_message(rid, "x")
        codes = []
        for i in range(6):
            path = f"{V3}/rooms/{quote(rid)}/report" if i % 2 else f"{V3}/users/{quote(alice.user_id)}/report"
            code, body = await bob.raw("POST", path, {"reason": "x"})
            codes.append(code)
        self.assertEqual(codes, [200] * 5 + [429])
        self.assertEqual(body["errcode"], "M_LIMIT_EXCEEDED")
        self.assertIn("retry_after_ms", body)
        # another reporter has their own budget; event reports have none
        self.assertEqual((await alice.raw("POST", f"{V3}/rooms/{quote(rid)}/report", {"reason": "x"}))[0], 200)
        for _ in range(8):
            self.assertEqual((await bob.raw("POST", f"{V3}/rooms/{quote(rid)}/report/{quote(msg)}", {}))[0], 200)


class ReportsTestPostgres(ReportsTest):
    database = "postgresql"
