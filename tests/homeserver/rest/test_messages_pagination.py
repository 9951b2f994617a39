"""/messages paging as Synapse does it: tokens are positions between events, so paging in
either direction from any token, and switching direction, neither loses nor repeats an
event; ``end`` is there while there may be more; ``to`` bounds a page; ``from`` omitted
starts at the end going backwards and at the start going forwards. The reference suite's
pagination stress tests in our words, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from urllib.parse import quote

from twisted.trial import unittest

from tests.support.wspr import MatrixClient, start_homeserver


class PaginationTest(unittest.TestCase):
    async def _room(self):  # type: ignore[no-untyped-def]
        """A room with messy history: messages between joins, leaves, a kick, state
        changes and reactions. Returns the message ids oldest first."""
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        carol = await MatrixClient.register(server.base_url, "carol")
        rid = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        ids = []
        for i in range(6):
            ids.append(await alice.send_message(rid, f"a{i}"))
        await alice.put(f"/rooms/{rid}/state/m.room.topic/", {"topic": "one"})
        await bob.post(f"/join/{rid}")
        for i in range(4):
            ids.append(await bob.send_message(rid, f"b{i}"))
        await carol.post(f"/join/{rid}")
        ids.append(await carol.send_message(rid, "c0"))
        await bob.post(f"/rooms/{rid}/leave")
        for i in range(3):
            ids.append(await alice.send_message(rid, f"a{6 + i}"))
        await alice.post(f"/rooms/{rid}/kick", {"user_id": carol.user_id})
        for target in ids[:3]:
            rel = {"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": "+1"}}
            await alice.put(f"/rooms/{rid}/send/m.reaction/r{target[1:9]}", rel)
        await alice.put(f"/rooms/{rid}/state/m.room.name/", {"name": "Stress"})
        for i in range(5):
            ids.append(await alice.send_message(rid, f"a{9 + i}"))
        return server, alice, rid, ids

    async def _walk(self, client: MatrixClient, rid: str, direction: str, limit: int, token: str | None) -> tuple[list[str], str | None]:
        seen: list[str] = []
        last_start = None
        for _ in range(200):
            q = f"/rooms/{rid}/messages?dir={direction}&limit={limit}"
            if token is not None:
                q += f"&from={quote(token)}"
            page = await client.get(q)
            last_start = page["start"]
            seen += [e["event_id"] for e in page["chunk"]]
            if "end" not in page:
                self.assertEqual(page["chunk"], [])
                return seen, last_start
            token = page["end"]
        self.fail("pagination did not end")

    async def test_no_duplicates_or_gaps_either_way(self) -> None:
        server, alice, rid, ids = await self._room()
        everything, _ = await self._walk(alice, rid, "b", 100, None)
        self.assertEqual(len(everything), len(set(everything)))
        for limit in (1, 3, 7):
            backwards, start_of_room = await self._walk(alice, rid, "b", limit, None)
            self.assertEqual(backwards, everything, f"backwards, limit {limit}")
            # Forwards from the oldest position comes back the same way, reversed.
            forwards, _ = await self._walk(alice, rid, "f", limit, start_of_room)
            self.assertEqual(forwards, list(reversed(everything)), f"forwards, limit {limit}")
        self.assertEqual([e for e in everything if e in ids], list(reversed(ids)))

    async def test_switching_direction_at_a_token(self) -> None:
        server, alice, rid, ids = await self._room()
        page1 = await alice.get(f"/rooms/{rid}/messages?dir=b&limit=4")
        page2 = await alice.get(f"/rooms/{rid}/messages?dir=b&limit=4&from={quote(page1['end'])}")
        # Forwards from the end of a backward page starts with that page's oldest event...
        fwd = await alice.get(f"/rooms/{rid}/messages?dir=f&limit=8&from={quote(page2['end'])}")
        expected = [e["event_id"] for e in reversed(page1["chunk"] + page2["chunk"])]
        self.assertEqual([e["event_id"] for e in fwd["chunk"]], expected)
        # ...and backwards from a forward page's end starts with that page's newest.
        back = await alice.get(f"/rooms/{rid}/messages?dir=b&limit=3&from={quote(fwd['end'])}")
        self.assertEqual([e["event_id"] for e in back["chunk"]], list(reversed(expected))[:3])
        # A page's start token pages back over the same page.
        again = await alice.get(f"/rooms/{rid}/messages?dir=b&limit=4&from={quote(page2['start'])}")
        self.assertEqual([e["event_id"] for e in again["chunk"]], [e["event_id"] for e in page2["chunk"]])

    async def test_to_bounds_the_page_and_from_defaults(self) -> None:
        server, alice, rid, ids = await self._room()
        token = (await alice.sync())["next_batch"]
        new = [await alice.send_message(rid, f"new {i}") for i in range(3)]
        after = (await alice.sync(since=token))["next_batch"]
        # Forwards from one sync token to the next: exactly what came in between.
        page = await alice.get(f"/rooms/{rid}/messages?dir=f&from={quote(token)}&to={quote(after)}&limit=10")
        self.assertEqual([e["event_id"] for e in page["chunk"]], new)
        # Backwards from the later token down to the earlier one.
        page = await alice.get(f"/rooms/{rid}/messages?dir=b&from={quote(after)}&to={quote(token)}&limit=10")
        self.assertEqual([e["event_id"] for e in page["chunk"]], list(reversed(new)))
        # No `from` and dir=b starts at the newest event; dir defaults to forwards from
        # the room's start (Synapse's default).
        newest = await alice.get(f"/rooms/{rid}/messages?dir=b&limit=1")
        self.assertEqual([e["event_id"] for e in newest["chunk"]], [new[-1]])
        oldest = await alice.get(f"/rooms/{rid}/messages?limit=1")
        self.assertEqual(oldest["chunk"][0]["type"], "m.room.create")
        self.assertIn("end", oldest)
        # limit=0 answers an empty page at the same position; a negative limit is refused.
        empty = await alice.get(f"/rooms/{rid}/messages?dir=b&limit=0")
        self.assertEqual((empty["chunk"], empty["end"]), ([], empty["start"]))
        code, body = await alice.raw("GET", f"/_matrix/client/v3/rooms/{rid}/messages?dir=b&limit=-1")
        self.assertEqual((code, body["errcode"]), (400, "M_INVALID_PARAM"))
        # Past the newest event going forwards: no events and no `end`.
        done = await alice.get(f"/rooms/{rid}/messages?dir=f&limit=5&from={quote(after)}")
        self.assertEqual(done["chunk"], [])
        self.assertNotIn("end", done)

    async def test_filtered_pages_keep_their_place(self) -> None:
        server, alice, rid, ids = await self._room()
        flt = quote(json.dumps({"types": ["m.room.message"]}))
        seen: list[str] = []
        token = None
        while True:
            q = f"/rooms/{rid}/messages?dir=b&limit=4&filter={flt}" + (f"&from={quote(token)}" if token else "")
            page = await alice.get(q)
            self.assertEqual({e["type"] for e in page["chunk"]} - {"m.room.message"}, set())
            seen += [e["event_id"] for e in page["chunk"]]
            if "end" not in page:
                break
            token = page["end"]
        self.assertEqual(seen, list(reversed(ids)))


# The same behaviour on PostgreSQL, the production store.


class PaginationTestPostgres(PaginationTest):
    database = "postgresql"
