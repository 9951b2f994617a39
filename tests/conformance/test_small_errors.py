"""Errors of the account data, receipt, presence, typing, membership and room directory
endpoints answered as Synapse answers them (status and errcode): found by a differential
sweep of the client API."""

from __future__ import annotations

from urllib.parse import quote

from twisted.trial import unittest

from tests.support.differential import server_pair

P = "/_matrix/client/v3"


class SmallErrorsConformanceTest(unittest.TestCase):
    timeout = 120

    async def test_errors_answer_like_synapse(self) -> None:
        pair = await server_pair(self)
        for side in pair:
            alice = await side.register("alice")
            bob = await side.register("bob")
            room_id = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
            await bob.post(f"/join/{quote(room_id)}")
            event_id = await alice.send_message(room_id, "hello")
            u, r, e = quote(alice.user_id), quote(room_id), quote(event_id)
            call = side.call
            await call(alice, "global m.fully_read", "PUT", P + f"/user/{u}/account_data/m.fully_read", {"event_id": event_id})
            await call(alice, "global m.push_rules", "PUT", P + f"/user/{u}/account_data/m.push_rules", {})
            await call(alice, "room m.fully_read", "PUT", P + f"/user/{u}/rooms/{r}/account_data/m.fully_read", {"event_id": event_id})
            await call(alice, "another user's account data", "PUT", P + f"/user/{quote(bob.user_id)}/account_data/x.y", {})
            await call(alice, "an unknown receipt type", "POST", P + f"/rooms/{r}/receipt/m.bad/{e}", {})
            await call(alice, "a thread id that is not a string", "POST", P + f"/rooms/{r}/receipt/m.read/{e}", {"thread_id": 5})
            await call(alice, "an empty thread id", "POST", P + f"/rooms/{r}/receipt/m.read/{e}", {"thread_id": ""})
            await call(alice, "a receipt in the main thread", "POST", P + f"/rooms/{r}/receipt/m.read/{e}", {"thread_id": "main"})
            await call(alice, "an unknown presence state", "PUT", P + f"/presence/{u}/status", {"presence": "nope"})
            await call(bob, "another user's presence", "PUT", P + f"/presence/{u}/status", {"presence": "online"})
            await call(alice, "another user's typing", "PUT", P + f"/rooms/{r}/typing/{quote(bob.user_id)}", {"typing": True})
            await call(alice, "unban someone not banned", "POST", P + f"/rooms/{r}/unban", {"user_id": bob.user_id})
            await call(alice, "ban bob", "POST", P + f"/rooms/{r}/ban", {"user_id": bob.user_id})
            await call(alice, "invite someone banned", "POST", P + f"/rooms/{r}/invite", {"user_id": bob.user_id})
            await call(alice, "kick someone banned", "POST", P + f"/rooms/{r}/kick", {"user_id": bob.user_id})
            await call(alice, "public rooms of a bad server name", "GET", P + "/publicRooms?server=" + quote("bad server"))
            await call(alice, "the same, POST", "POST", P + "/publicRooms?server=" + quote("bad server"), {})
        pair.assert_same()
        for side in pair:
            steps = {s.name: s for s in side.steps}
            self.assertEqual((steps["global m.fully_read"].code, steps["global m.fully_read"].body["errcode"]), (405, "M_BAD_JSON"))
            self.assertEqual(steps["another user's typing"].code, 400)
