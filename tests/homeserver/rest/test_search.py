"""``POST /search`` end to end over HTTP, on SQLite (FTS5) and PostgreSQL (tsvector).

The first tests say in their own words what Complement's csapi search tests ask of a
server (a result by body, context around it, paging back through results, a room and its
predecessor, redacted events); the others cover what a server must not show (history
visibility, redactions leaving the index, encrypted events), the query syntax and the
optional parts of the request.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from twisted.trial import unittest

from tests.federation.helpers import start_federating, wait_for
from tests.support.synapse import start_synapse_peer, synapse_client
from tests.support.wspr import MatrixClient, RunningHomeServer, start_homeserver

SEARCH = "/_matrix/client/v3/search"


def query(search_term: str, **room_events: Any) -> dict[str, Any]:
    return {"search_categories": {"room_events": {"search_term": search_term, **room_events}}}


def category(answer: dict[str, Any]) -> dict[str, Any]:
    return answer["search_categories"]["room_events"]


def bodies(answer: dict[str, Any]) -> list[str]:
    return [r["result"]["content"].get("body") for r in category(answer)["results"]]


def ids(answer: dict[str, Any]) -> list[str]:
    return [r["result"]["event_id"] for r in category(answer)["results"]]


async def search(client: MatrixClient, body: dict[str, Any], next_batch: str | None = None) -> dict[str, Any]:
    path = SEARCH + (f"?next_batch={quote(next_batch)}" if next_batch else "")
    return await client.request("POST", path, body)


def index_rows(server: RunningHomeServer, event_ids: list[str]) -> list[str]:
    """The events among ``event_ids`` that the full-text index holds."""
    db = server.hs.store.db
    return db.run_sync(
        lambda txn: [
            r[0]
            for r in txn.select_all(
                f"SELECT event_id FROM event_search WHERE event_id IN ({txn.in_list(event_ids)})", event_ids
            )
        ]
    )


class SearchTest(unittest.TestCase):
    timeout = 180
    database = "sqlite"

    async def _alice(self) -> tuple[RunningHomeServer, MatrixClient]:
        server = await start_homeserver(self)
        return server, await MatrixClient.register(server.base_url, "alice")

    # -- what Complement asks ------------------------------------------------------------

    async def test_a_message_is_found_by_a_word_of_its_body(self) -> None:
        _, alice = await self._alice()
        rid = (await alice.post("/createRoom", {"preset": "private_chat"}))["room_id"]
        eid = await alice.send_message(rid, "hello, world")
        answer = await search(alice, query("hello", keys=["content.body"], filter={"rooms": [rid]}))
        cat = category(answer)
        self.assertEqual(cat["count"], 1)
        self.assertEqual(len(cat["results"]), 1)
        result = cat["results"][0]["result"]
        self.assertEqual((result["event_id"], result["room_id"], result["type"]), (eid, rid, "m.room.message"))
        self.assertEqual(result["content"]["body"], "hello, world")
        self.assertIsInstance(cat["results"][0]["rank"], float)
        self.assertEqual(cat["results"][0]["context"], {})
        self.assertNotIn("next_batch", cat)

    async def test_results_come_with_the_events_around_them(self) -> None:
        _, alice = await self._alice()
        rid = (await alice.post("/createRoom", {"preset": "private_chat"}))["room_id"]
        for i in range(1, 8):
            await alice.send_message(rid, f"Message number {i}")
        answer = await search(
            alice,
            query(
                "Message 4",
                keys=["content.body"],
                order_by="recent",
                filter={"limit": 1, "rooms": [rid]},
                event_context={"before_limit": 2, "after_limit": 2},
            ),
        )
        cat = category(answer)
        self.assertEqual(cat["count"], 1)
        self.assertEqual(bodies(answer), ["Message number 4"])
        context = cat["results"][0]["context"]
        # before: nearest first; after: in order
        self.assertEqual([e["content"]["body"] for e in context["events_before"]], ["Message number 3", "Message number 2"])
        self.assertEqual([e["content"]["body"] for e in context["events_after"]], ["Message number 5", "Message number 6"])
        self.assertNotIn("profile_info", context)
        # the tokens page on from the context with /messages
        older = await alice.get(f"/rooms/{quote(rid)}/messages?dir=b&limit=1&from={quote(context['start'])}")
        self.assertEqual([e["content"]["body"] for e in older["chunk"]], ["Message number 1"])
        newer = await alice.get(f"/rooms/{quote(rid)}/messages?dir=f&limit=1&from={quote(context['end'])}")
        self.assertEqual([e["content"]["body"] for e in newer["chunk"]], ["Message number 7"])

    async def test_paging_back_through_results(self) -> None:
        _, alice = await self._alice()
        rid = (await alice.post("/createRoom", {"preset": "private_chat"}))["room_id"]
        sent = [await alice.send_message(rid, f"Message number {i}") for i in range(20)]
        body = query("Message", keys=["content.body"], order_by="recent", filter={"limit": 10, "rooms": [rid]})
        first = await search(alice, body)
        self.assertEqual(category(first)["count"], 20)
        self.assertEqual(ids(first), sent[19:9:-1])
        second = await search(alice, body, category(first)["next_batch"])
        self.assertEqual(category(second)["count"], 20)
        self.assertEqual(ids(second), sent[9::-1])
        # a full page always offers a next one (Synapse's rule), which is then empty
        third = await search(alice, body, category(second)["next_batch"])
        self.assertEqual(ids(third), [])
        self.assertEqual(category(third)["count"], 20)
        self.assertNotIn("next_batch", category(third))

    async def test_an_upgraded_room_is_searched_with_its_predecessor(self) -> None:
        _, alice = await self._alice()
        old = (await alice.post("/createRoom", {"preset": "private_chat", "room_version": "8"}))["room_id"]
        before = await alice.send_message(old, "Message before upgrade")
        new = (await alice.post(f"/rooms/{quote(old)}/upgrade", {"new_version": "9"}))["replacement_room"]
        after = await alice.send_message(new, "Message after upgrade")
        for rooms in ([old, new], [new]):
            answer = await search(alice, query("upgrade", keys=["content.body"], filter={"rooms": rooms}))
            self.assertEqual(category(answer)["count"], 2, rooms)
            self.assertEqual(ids(answer), [before, after], rooms)

    async def test_redacted_events_are_not_found_and_leave_the_index(self) -> None:
        server, alice = await self._alice()
        rid = (await alice.post("/createRoom", {"preset": "private_chat"}))["room_id"]
        redacted = await alice.send_message(rid, "This message is going to be redacted")
        kept = await alice.send_message(rid, "This message is not going to be redacted")
        self.assertEqual(sorted(index_rows(server, [redacted, kept])), sorted([redacted, kept]))
        await alice.put(f"/rooms/{quote(rid)}/redact/{quote(redacted)}/t1", {"reason": "testing"})
        self.assertEqual(index_rows(server, [redacted, kept]), [kept])
        for order in ("rank", "recent"):
            answer = await search(alice, query("redacted", keys=["content.body"], order_by=order, filter={"rooms": [rid]}))
            self.assertEqual(ids(answer), [kept], order)
            self.assertEqual(category(answer)["count"], 1, order)

    # -- what must not be found ------------------------------------------------------------

    async def test_history_visibility_is_enforced_per_event(self) -> None:
        """bob sees what history visibility lets him see, per event: not what was said
        before he joined a "joined" room, nor while he was away; neither as results, nor
        in the count, nor as context; and nothing of a room he left."""
        server, alice = await self._alice()
        bob = await MatrixClient.register(server.base_url, "bob")
        rid = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        await alice.put(f"/rooms/{quote(rid)}/state/m.room.history_visibility/", {"history_visibility": "joined"})
        await alice.send_message(rid, "rocket before bob")
        await bob.post(f"/join/{quote(rid)}")
        seen = await alice.send_message(rid, "rocket with bob")
        await bob.post(f"/rooms/{quote(rid)}/leave")
        await alice.send_message(rid, "rocket without bob")
        left = await search(bob, query("rocket"))
        self.assertEqual((ids(left), category(left)["count"]), ([], 0))
        await bob.post(f"/join/{quote(rid)}")
        back = await alice.send_message(rid, "rocket bob is back")
        for order in ("rank", "recent"):
            answer = await search(bob, query("rocket", order_by=order, event_context={"before_limit": 10, "after_limit": 10}))
            self.assertEqual(sorted(ids(answer)), sorted([seen, back]), order)
            self.assertEqual(category(answer)["count"], 2, order)
            for result in category(answer)["results"]:
                context = result["context"]["events_before"] + result["context"]["events_after"]
                self.assertFalse([e for e in context if "before bob" in str(e) or "without bob" in str(e)], order)
        everything = await search(alice, query("rocket"))
        self.assertEqual(category(everything)["count"], 4)

    async def test_a_page_of_hidden_events_does_not_end_the_search(self) -> None:
        """Newer matches bob may not see come first in recent order: the search looks
        further, and where it stops looking, it still offers a next page."""
        server, alice = await self._alice()
        bob = await MatrixClient.register(server.base_url, "bob")
        rid = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        await alice.put(f"/rooms/{quote(rid)}/state/m.room.history_visibility/", {"history_visibility": "joined"})
        await bob.post(f"/join/{quote(rid)}")
        visible = [await alice.send_message(rid, f"comet {i}") for i in range(3)]
        await bob.post(f"/rooms/{quote(rid)}/leave")
        for i in range(60):
            await alice.send_message(rid, f"comet hidden {i}")
        await bob.post(f"/join/{quote(rid)}")
        body = query("comet", order_by="recent", filter={"limit": 3})
        answer = await search(bob, body)
        self.assertEqual(category(answer)["count"], 3)
        found: list[str] = ids(answer)
        pages = 1
        while "next_batch" in category(answer) and pages < 10:
            answer = await search(bob, body, category(answer)["next_batch"])
            found += ids(answer)
            pages += 1
        self.assertEqual(found, visible[::-1])
        self.assertGreater(pages, 1)

    async def test_encrypted_events_are_not_indexed(self) -> None:
        server, alice = await self._alice()
        rid = (await alice.post("/createRoom", {"preset": "private_chat"}))["room_id"]
        await alice.put(f"/rooms/{quote(rid)}/state/m.room.encryption/", {"algorithm": "m.megolm.v1.aes-sha2"})
        content = {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "secret", "sender_key": "k", "session_id": "s", "device_id": "D"}
        eid = (await alice.put(f"/rooms/{quote(rid)}/send/m.room.encrypted/t1", content))["event_id"]
        self.assertEqual(index_rows(server, [eid]), [])
        self.assertEqual(ids(await search(alice, query("secret"))), [])

    # -- the query -------------------------------------------------------------------------

    async def test_query_syntax(self) -> None:
        """Words stem as in English ("bananas" is found by "banana"), case does not matter, "quoted words" are a phrase, `or` gives alternatives, `-word` excludes."""
        _, alice = await self._alice()
        rid = (await alice.post("/createRoom", {"preset": "private_chat"}))["room_id"]
        e = {
            "apple pie": await alice.send_message(rid, "I baked an apple pie"),
            "pie apple": await alice.send_message(rid, "pie made of apple"),
            "banana": await alice.send_message(rid, "Bananas are yellow"),
            "odd": await alice.send_message(rid, 'quotes " and -dashes- and (parens) * AND OR NOT'),
        }

        async def found(term: str) -> set[str]:
            answer = await search(alice, query(term, filter={"rooms": [rid]}))
            return {k for k, v in e.items() if v in ids(answer)}

        self.assertEqual(await found("apple"), {"apple pie", "pie apple"})
        self.assertEqual(await found("banana"), {"banana"})
        self.assertEqual(await found('"apple pie"'), {"apple pie"})
        self.assertEqual(await found("apple pie"), {"apple pie", "pie apple"})
        self.assertEqual(await found("banana or pie"), {"apple pie", "pie apple", "banana"})
        self.assertEqual(await found("apple -baked"), {"pie apple"})
        self.assertEqual(await found("the"), set())
        self.assertEqual(await found(""), set())
        # what FTS5 or tsquery would read as syntax is only text here
        for term in ['"', "(parens", "NOT", "* AND", 'apple"', "-", "a:b", "NEAR(apple pie)", "'", "\\", "\u0000x"]:
            code, body = await alice.raw("POST", SEARCH, query(term, filter={"rooms": [rid]}))
            self.assertEqual(code, 200, f"{term!r}: {body}")
        self.assertEqual(await found("parens"), {"odd"})

    async def test_keys_filter_groups_state_and_highlights(self) -> None:
        server, alice = await self._alice()
        bob = await MatrixClient.register(server.base_url, "bob")
        rid = (await alice.post("/createRoom", {"preset": "public_chat", "name": "Space club"}))["room_id"]
        other = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        await alice.put(f"/rooms/{quote(rid)}/state/m.room.topic/", {"topic": "weekly schedule"})
        await bob.post(f"/join/{quote(rid)}")
        a1 = await alice.send_message(rid, "Rocket engines")
        b1 = await bob.send_message(rid, "two rockets today")
        o1 = await alice.send_message(other, "a rocket elsewhere")
        url = (await alice.put(f"/rooms/{quote(rid)}/send/m.room.message/img", {"msgtype": "m.image", "body": "rocket photo", "url": "mxc://x/y"}))["event_id"]

        async def found(**room_events: Any) -> set[str]:
            return set(ids(await search(alice, query("rocket", **room_events))))

        self.assertEqual(await found(), {a1, b1, o1, url})
        self.assertEqual(await found(keys=["content.name", "content.topic"]), set())
        self.assertEqual(await found(keys=["content.nonsense"]), set())
        name_hit = await search(alice, query("space", keys=["content.name"]))
        self.assertEqual([r["result"]["type"] for r in category(name_hit)["results"]], ["m.room.name"])
        topic_hit = await search(alice, query("schedule", keys=["content.topic"]))
        self.assertEqual([r["result"]["type"] for r in category(topic_hit)["results"]], ["m.room.topic"])
        self.assertEqual(ids(await search(alice, query("schedule", keys=["content.body"]))), [])
        self.assertEqual(await found(filter={"senders": [bob.user_id]}), {b1})
        self.assertEqual(await found(filter={"not_senders": [bob.user_id]}), {a1, o1, url})
        self.assertEqual(await found(filter={"not_rooms": [other]}), {a1, b1, url})
        self.assertEqual(await found(filter={"rooms": [other]}), {o1})
        self.assertEqual(await found(filter={"contains_url": True}), {url})
        self.assertEqual(await found(filter={"types": ["m.room.topic"]}), set())
        self.assertEqual(await found(filter={"not_types": ["m.room.*"]}), set())
        limited = await search(alice, query("rocket", filter={"limit": 2}))
        self.assertEqual(len(ids(limited)), 2)
        self.assertEqual(category(limited)["count"], 4)
        nothing = await search(alice, query("rocket", filter={"limit": 0}))
        self.assertEqual((ids(nothing), category(nothing)["count"]), ([], 4))
        by_sender = await search(alice, query("rocket", filter={"senders": [bob.user_id]}))
        self.assertEqual(category(by_sender)["count"], 1)

        grouped = category(
            await search(
                alice,
                query("rocket", include_state=True, groupings={"group_by": [{"key": "room_id"}, {"key": "sender"}]}),
            )
        )
        self.assertEqual(set(grouped["groups"]["room_id"]), {rid, other})
        self.assertEqual(sorted(grouped["groups"]["room_id"][rid]["results"]), sorted([a1, b1, url]))
        self.assertIsInstance(grouped["groups"]["room_id"][rid]["order"], float)
        self.assertEqual(set(grouped["groups"]["sender"]), {alice.user_id, bob.user_id})
        self.assertEqual(grouped["groups"]["sender"][bob.user_id]["results"], [b1])
        self.assertEqual(set(grouped["state"]), {rid, other})
        self.assertIn(("m.room.name", ""), {(e["type"], e["state_key"]) for e in grouped["state"][rid]})
        # the words that matched, lower-cased, and the word searched for
        self.assertEqual(sorted(grouped["highlights"]), ["rocket", "rockets"])
        recent = category(await search(alice, query("rocket", order_by="recent", groupings={"group_by": [{"key": "room_id"}, {"key": "sender"}]})))
        self.assertEqual(set(recent["groups"]), {"room_id"})  # Synapse groups by sender in rank order only
        self.assertNotIn("order", recent["groups"]["room_id"][rid])

    async def test_profiles_in_context_and_bundled_aggregations(self) -> None:
        server, alice = await self._alice()
        rid = (await alice.post("/createRoom", {"preset": "private_chat"}))["room_id"]
        await alice.put(f"/profile/{quote(alice.user_id)}/displayname", {"displayname": "Alice A."})
        root = await alice.send_message(rid, "draft of the launch plan")
        edit = {
            "m.new_content": {"msgtype": "m.text", "body": "final launch plan"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": root},
        }
        await alice.send_message(rid, "* final launch plan", **edit)
        answer = await search(alice, query("draft", event_context={"before_limit": 0, "after_limit": 1, "include_profile": True}))
        result = category(answer)["results"][0]
        self.assertEqual(result["result"]["event_id"], root)
        self.assertEqual(result["result"]["unsigned"]["m.relations"]["m.replace"]["content"]["body"], "* final launch plan")
        self.assertEqual(result["context"]["events_before"], [])
        self.assertEqual(len(result["context"]["events_after"]), 1)
        self.assertEqual(result["context"]["profile_info"], {alice.user_id: {"displayname": "Alice A.", "avatar_url": None}})

    async def test_bad_requests(self) -> None:
        _, alice = await self._alice()
        cases: list[tuple[str, Any, str]] = [
            ("", query("x", order_by="sideways"), "M_BAD_JSON"),
            ("", {"search_categories": {"room_events": {}}}, "M_BAD_JSON"),
            ("", {"search_categories": {}}, "M_BAD_JSON"),
            ("", {}, "M_BAD_JSON"),
            ("", query(7), "M_BAD_JSON"),
            ("", query("x", keys="content.body"), "M_BAD_JSON"),
            ("", query("x", filter={"limit": "ten"}), "M_BAD_JSON"),
            ("", query("x", filter={"senders": "@a:b"}), "M_BAD_JSON"),
            ("", query("x", include_state="yes"), "M_BAD_JSON"),
            ("", query("x", event_context={"before_limit": "many"}), "M_BAD_JSON"),
            ("", query("x", event_context=[]), "M_BAD_JSON"),
            ("", query("x", groupings={"group_by": [{"key": "type"}]}), "M_BAD_JSON"),
            ("", query("x", groupings={"group_by": "room_id"}), "M_BAD_JSON"),
            ("?next_batch=%25%25", query("x", order_by="recent"), "M_INVALID_PARAM"),
            ("?next_batch=YWxsCng", query("x", order_by="recent"), "M_INVALID_PARAM"),
            ("?next_batch=YWxsCgp4LHk", query("x", order_by="recent"), "M_INVALID_PARAM"),
        ]
        for suffix, body, errcode in cases:
            code, answer = await alice.raw("POST", SEARCH + suffix, body)
            self.assertEqual((code, answer.get("errcode")), (400, errcode), f"{suffix} {body}: {answer}")
        code, answer = await alice.raw("POST", SEARCH, query("x", filter={"rooms": ["!unknown:localhost"]}))
        self.assertEqual((code, answer["errcode"]), (404, "M_NOT_FOUND"))
        code, _ = await MatrixClient(alice.base_url).raw("POST", SEARCH, query("x"))
        self.assertEqual(code, 401)
        # r0, as clients still call it
        self.assertEqual((await alice.raw("POST", "/_matrix/client/r0/search", query("x")))[0], 200)


class SearchTestPostgres(SearchTest):
    database = "postgresql"


class FederatedSearchTest(unittest.TestCase):
    """Events from another server are indexed as they arrive, and leave the index when
    that server redacts them: a WSPR user searches a room that lives on a Synapse."""

    timeout = 240
    database = "sqlite"

    async def test_remote_events_are_searchable(self) -> None:
        try:
            import synapse  # noqa: F401
        except ImportError as e:
            raise unittest.SkipTest("matrix-synapse is not installed") from e
        syn = await start_synapse_peer(self, "wspr-search-synapse-")
        wspr = await start_federating(self, database=self.database)
        sam = await synapse_client(syn, "sam")
        rid = (await sam.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        alice = await MatrixClient.register(wspr.base_url, "alice")
        await alice.post(f"/join/{quote(rid)}?server_name={quote(syn.server_name)}")
        kept = await sam.send_message(rid, "telescope for alice")
        gone = await sam.send_message(rid, "telescope soon redacted")

        async def found() -> set[str]:
            return set(ids(await search(alice, query("telescope", order_by="recent"))))

        await wait_for(lambda: _contains(found(), {kept, gone}), timeout=30)
        await sam.put(f"/rooms/{quote(rid)}/redact/{quote(gone)}/r1", {})
        await wait_for(lambda: _lacks(found(), gone), timeout=30)
        self.assertEqual(await found(), {kept})
        self.assertEqual(index_rows(wspr, [kept, gone]), [kept])


class FederatedSearchTestPostgres(FederatedSearchTest):
    database = "postgresql"


async def _contains(results: Any, want: set[str]) -> bool:
    return want <= await results


async def _lacks(results: Any, event_id: str) -> bool:
    return event_id not in await results
