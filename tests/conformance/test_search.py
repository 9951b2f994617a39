"""``POST /search`` answered as Synapse answers it: the same requests to WSPR and to a
real Synapse, compared field by field (shapes) and, where both servers must agree, by
value (which events, in which order, the counts, the context, the groups).

Synapse's test peer runs on SQLite, where its ``rank`` is its own function of FTS4's
matchinfo and WSPR's is FTS5's bm25: ranks are compared as numbers, not values.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from twisted.trial import unittest

from tests.support.differential import Side, server_pair
from tests.support.wspr import MatrixClient

SEARCH = "/_matrix/client/v3/search"


def room_events(search_term: str, **extra: Any) -> dict[str, Any]:
    return {"search_categories": {"room_events": {"search_term": search_term, **extra}}}


# Fields WSPR's events never carry, on every endpoint (it serves the v2 client format):
# Synapse's /search serves the legacy v1 format (top-level age, user_id, prev_content,
# replaces_state) and MSC4115's unsigned.membership.
V1_FORMAT = ("*.age", "*.user_id", "*.prev_content", "*.replaces_state", "*unsigned.membership")


def normalised(value: Any, names: dict[str, str]) -> Any:
    """``value`` with the IDs of this server's users and rooms, as keys or values, replaced
    by names that are the same on both servers (groups and profiles are keyed by them)."""
    if isinstance(value, dict):
        return {names.get(k, k): normalised(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [normalised(v, names) for v in value]
    return names.get(value, value) if isinstance(value, str) else value


async def call(side: Side, who: MatrixClient, name: str, names: dict[str, str], path: str, body: Any) -> Any:
    code, answer = await who.raw("POST", path, body)
    recorded = normalised(answer, names)
    # Synapse lists a room's state in no particular order; its public_chat preset writes no
    # m.room.guest_access (forbidden by default), WSPR's writes "forbidden".
    for events in recorded.get("search_categories", {}).get("room_events", {}).get("state", {}).values():
        events[:] = sorted((e for e in events if e["type"] != "m.room.guest_access"), key=lambda e: (e["type"], e.get("state_key")))
    side.record(name, code, recorded)
    return answer


def bodies(answer: dict[str, Any]) -> list[str]:
    return [r["result"]["content"].get("body", "") for r in answer["search_categories"]["room_events"]["results"]]


class SearchConformanceTest(unittest.TestCase):
    timeout = 240

    async def _room_with_messages(self, side: Side) -> tuple[MatrixClient, MatrixClient, str, dict[str, str]]:
        alice = await side.register("alice")
        bob = await side.register("bob")
        rid = (await alice.post("/createRoom", {"preset": "public_chat", "name": "Planning"}))["room_id"]
        await alice.put(f"/rooms/{quote(rid)}/state/m.room.topic/", {"topic": "plans"})
        await bob.post(f"/join/{quote(rid)}")
        for i in range(1, 8):
            await (alice if i % 2 else bob).send_message(rid, f"launch plan number {i}")
        return alice, bob, rid, {rid: "!room", alice.user_id: "@alice", bob.user_id: "@bob"}

    async def test_search_answers_like_synapse(self) -> None:
        pair = await server_pair(self)
        answers: dict[str, dict[str, Any]] = {}
        for side in pair:
            alice, bob, rid, names = await self._room_with_messages(side)
            filt = {"rooms": [rid]}
            recent = room_events("plan", order_by="recent", filter={**filt, "limit": 2})
            await call(side, alice, "by rank", names, SEARCH, room_events("launch", filter=filt))
            await call(side, alice, "one key, no match", names, SEARCH, room_events("launch", keys=["content.name"], filter=filt))
            await call(side, alice, "by name", names, SEARCH, room_events("Planning", keys=["content.name"], filter=filt))
            await call(side, alice, "by topic", names, SEARCH, room_events("plans", keys=["content.topic"], filter=filt))
            full = await call(
                side, alice, "recent, context, profiles, state, groups", names, SEARCH,
                room_events(
                    "plan",
                    order_by="recent",
                    filter={**filt, "limit": 2},
                    event_context={"before_limit": 2, "after_limit": 1, "include_profile": True},
                    include_state=True,
                    groupings={"group_by": [{"key": "room_id"}]},
                ),
            )
            cat = full["search_categories"]["room_events"]
            await call(side, alice, "next page", names, SEARCH + "?next_batch=" + quote(cat["next_batch"]), recent)
            group_batch = cat["groups"]["room_id"][rid]["next_batch"]
            await call(side, alice, "next page of the group", names, SEARCH + "?next_batch=" + quote(group_batch), recent)
            await call(
                side, alice, "rank grouped by sender", names, SEARCH,
                room_events("launch", filter={**filt, "limit": 3}, groupings={"group_by": [{"key": "room_id"}, {"key": "sender"}]}),
            )
            await call(side, alice, "filter by sender", names, SEARCH, room_events("launch", filter={**filt, "senders": [bob.user_id]}))
            await call(side, alice, "filter by type", names, SEARCH, room_events("plans", filter={**filt, "types": ["m.room.topic"]}))
            await call(side, alice, "a room not joined", names, SEARCH, room_events("launch", filter={"rooms": [rid], "not_rooms": [rid]}))
            await call(side, alice, "a room unknown", names, SEARCH, room_events("launch", filter={"rooms": ["!nowhere:example.org"]}))
            answers[side.label] = {s.name: s.body for s in side.steps}
        # The rooms' state is what /createRoom made of them (Synapse's default room version
        # is 12, whose creators are not in the power levels): the search compares its list.
        pair.assert_same(*V1_FORMAT, "search_categories.room_events.state.*.content.*")
        wspr, syn = answers["WSPR"], answers["Synapse"]
        for name, w_answer in wspr.items():
            if "search_categories" not in w_answer:
                continue
            self.assertEqual(bodies(w_answer), bodies(syn[name]), name)
            w, s = w_answer["search_categories"]["room_events"], syn[name]["search_categories"]["room_events"]
            if name.startswith("filter by"):
                # Synapse's count leaves the filter's senders and types out; WSPR's applies
                # the whole filter.
                self.assertEqual(w["count"], len(w["results"]), name)
            else:
                self.assertEqual(w["count"], s["count"], name)
            # WSPR highlights the words searched for, as Synapse on SQLite does, and the
            # words of the results that matched them, as Synapse on PostgreSQL does.
            self.assertLessEqual({h.lower() for h in s["highlights"]}, set(w["highlights"]), name)
            for kind, groups in w.get("groups", {}).items():
                self.assertEqual(
                    {k: g["results"] and len(g["results"]) for k, g in groups.items()},
                    {k: g["results"] and len(g["results"]) for k, g in s["groups"][kind].items()},
                    name,
                )
        full_w = wspr["recent, context, profiles, state, groups"]["search_categories"]["room_events"]
        full_s = syn["recent, context, profiles, state, groups"]["search_categories"]["room_events"]
        for rw, rs in zip(full_w["results"], full_s["results"], strict=True):
            for part in ("events_before", "events_after"):
                self.assertEqual(
                    [e["content"].get("body") for e in rw["context"][part]],
                    [e["content"].get("body") for e in rs["context"][part]],
                    part,
                )
            # display names carry each side's random suffix
            self.assertEqual(
                {u: (p["displayname"][:3], p["avatar_url"]) for u, p in rw["context"]["profile_info"].items()},
                {u: (p["displayname"][:3], p["avatar_url"]) for u, p in rs["context"]["profile_info"].items()},
            )
        self.assertEqual(
            sorted(e["type"] for e in full_w["state"]["!room"] if e["type"] != "m.room.guest_access"),
            sorted(e["type"] for e in full_s["state"]["!room"]),
        )

    async def test_redacted_and_encrypted_events_are_not_found(self) -> None:
        pair = await server_pair(self)
        for side in pair:
            alice = await side.register("alice")
            rid = (await alice.post("/createRoom", {"preset": "private_chat"}))["room_id"]
            names = {rid: "!room", alice.user_id: "@alice"}
            gone = await alice.send_message(rid, "secret launch code")
            await alice.send_message(rid, "public launch date")
            await alice.put(f"/rooms/{quote(rid)}/redact/{quote(gone)}/r1", {"reason": "oops"})
            await alice.put(
                f"/rooms/{quote(rid)}/send/m.room.encrypted/e1",
                {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "launch", "sender_key": "k", "session_id": "s", "device_id": "D"},
            )
            for order in ("rank", "recent"):
                await call(side, alice, f"{order} after redaction", names, SEARCH, room_events("launch", order_by=order, filter={"rooms": [rid]}))
        pair.assert_same(*V1_FORMAT)
        for step in pair.wspr.steps + pair.synapse.steps:
            self.assertEqual(bodies(step.body), ["public launch date"], step.name)

    async def test_history_visibility(self) -> None:
        """bob joins a room whose history is visible to members only from their join:
        what was said before is not found, neither as a result nor in a context."""
        pair = await server_pair(self)
        for side in pair:
            alice = await side.register("alice")
            bob = await side.register("bob")
            rid = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
            names = {rid: "!room", alice.user_id: "@alice", bob.user_id: "@bob"}
            await alice.put(f"/rooms/{quote(rid)}/state/m.room.history_visibility/", {"history_visibility": "joined"})
            await alice.send_message(rid, "before bob: launch is at dawn")
            await bob.post(f"/join/{quote(rid)}")
            await alice.send_message(rid, "after bob: launch is at noon")
            for order in ("rank", "recent"):
                await call(
                    side, bob, f"bob, {order}", names, SEARCH,
                    room_events("launch", order_by=order, filter={"rooms": [rid]}, event_context={"before_limit": 2, "after_limit": 2}),
                )
            await call(side, alice, "alice", names, SEARCH, room_events("launch", filter={"rooms": [rid]}))
        pair.assert_same(*V1_FORMAT)
        for step in pair.wspr.steps + pair.synapse.steps:
            if step.name.startswith("bob"):
                results = step.body["search_categories"]["room_events"]["results"]
                self.assertEqual(bodies(step.body), ["after bob: launch is at noon"], step.name)
                self.assertNotIn("dawn", repr(results[0]["context"]), step.name)
            else:
                self.assertEqual(len(bodies(step.body)), 2, step.name)

    async def test_errors(self) -> None:
        """Synapse refuses these with 400 M_UNKNOWN; WSPR with 400 and the spec's codes
        (M_BAD_JSON for the body, M_INVALID_PARAM for next_batch)."""
        pair = await server_pair(self)
        codes: dict[str, dict[str, tuple[int, Any]]] = {}
        cases: list[tuple[str, str, Any]] = [
            ("unknown order_by", SEARCH, room_events("x", order_by="sideways")),
            ("bad next_batch", SEARCH + "?next_batch=%25%25", room_events("x", order_by="recent")),
            ("next_batch of two parts", SEARCH + "?next_batch=YWxsCng", room_events("x", order_by="recent")),
            ("next_batch with a bad position", SEARCH + "?next_batch=YWxsCgp4LHk", room_events("x", order_by="recent")),
            ("no search_term", SEARCH, {"search_categories": {"room_events": {}}}),
            ("no room_events", SEARCH, {"search_categories": {}}),
            ("unknown group key", SEARCH, room_events("x", groupings={"group_by": [{"key": "type"}]})),
            ("group without key", SEARCH, room_events("x", groupings={"group_by": [{}]})),
        ]
        for side in pair:
            alice = await side.register("alice")
            # the room makes the search reach the position in the batch token
            await alice.post("/createRoom", {})
            codes[side.label] = {}
            for name, path, body in cases:
                codes[side.label][name] = await alice.raw("POST", path, body)
            side.record("no token", *await side.anonymous().raw("POST", SEARCH, room_events("x")))
        pair.assert_same()
        for name, _, _ in cases:
            w_code, w_body = codes["WSPR"][name]
            s_code, s_body = codes["Synapse"][name]
            self.assertEqual((w_code, s_code), (400, 400), f"{name}: {w_body} / {s_body}")
            want = "M_INVALID_PARAM" if "next_batch" in name else "M_BAD_JSON"
            self.assertEqual(w_body["errcode"], want, name)
