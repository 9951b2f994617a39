"""State resolution v2 / v2.1.

The DAG scenarios are the community's standard state-resolution cases (ban vs
power levels, join-rule evasion, topic reset, mainline ordering...) as also
used by Synapse's and other homeservers' test suites; each is run for every
room version that resolves state with v2 (2 to 11) or v2.1 (12), in the
room version's event format.  The harness builds every event's `auth_events`
from the resolved state before it, exactly as a server would.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.trial import unittest

from homeserver.protocol import state_resolution
from homeserver.protocol import state_resolution_v2 as sr
from homeserver.protocol.auth_rules import (
    AuthError,
    auth_types_for_event,
    check_auth_rules,
)
from homeserver.protocol.event_ids import event_reference
from homeserver.protocol.room_versions import get_room_version

from ._helpers import ALICE as H_ALICE
from ._helpers import Room

ALICE = "@alice:example.com"
BOB = "@bob:example.com"
CHARLIE = "@charlie:example.com"
EVELYN = "@evelyn:example.com"
ZARA = "@zara:example.com"

StateKey = tuple[str, str]
# Room versions resolving state with v2 (2-11) or v2.1 (12).
V2_VERSIONS = tuple(str(n) for n in range(2, 13))


def pl_users(version: str, users: Mapping[str, int]) -> dict[str, int]:
    """v12 forbids the creator (Alice) in `users`; she is all-powerful anyway."""
    if version == "12":
        return {u: level for u, level in users.items() if u != ALICE}
    return dict(users)


class Node:
    def __init__(self, node_id: str, sender: str, etype: str, state_key: str | None, content: dict[str, Any]) -> None:
        self.node_id = node_id
        self.sender = sender
        self.type = etype
        self.state_key = state_key
        self.content = content


def initial_nodes(version: str) -> list[Node]:
    create_content: dict[str, Any] = {"room_version": version}
    if not get_room_version(version).implicit_room_creator:
        create_content["creator"] = ALICE
    join = {"membership": "join"}
    return [
        Node("CREATE", ALICE, "m.room.create", "", create_content),
        Node("IMA", ALICE, "m.room.member", ALICE, join),
        Node("IPOWER", ALICE, "m.room.power_levels", "", {"users": pl_users(version, {ALICE: 100})}),
        Node("IJR", ALICE, "m.room.join_rules", "", {"join_rule": "public"}),
        Node("IMB", BOB, "m.room.member", BOB, join),
        Node("IMC", CHARLIE, "m.room.member", CHARLIE, join),
        Node("IMZ", ZARA, "m.room.member", ZARA, join),
        Node("START", ZARA, "m.room.message", None, {}),
        Node("END", ZARA, "m.room.message", None, {}),
    ]


INITIAL_EDGES = ["START", "IMZ", "IMC", "IMB", "IJR", "IPOWER", "IMA", "CREATE"]


def eid(node_id: str) -> str:
    return "$" + node_id


class Graph:
    """Builds a DAG from node chains and computes the state after each node."""

    def __init__(
        self,
        version: str,
        nodes: Sequence[Node],
        edges: Sequence[Sequence[str]],
        create_extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.version = version
        self.rv = get_room_version(version)
        # v12: the room id is the create event's id with a "!" sigil.
        self.room_id = "!CREATE" if self.rv.room_id_from_create_event else "!room:example.com"
        initial = initial_nodes(version)
        initial[0].content.update(create_extra or {})
        all_nodes = {n.node_id: n for n in itertools.chain(initial, nodes)}
        prevs: dict[str, set[str]] = {n: set() for n in all_nodes}
        for chain in [INITIAL_EDGES, *edges]:
            for a, b in itertools.pairwise(chain):
                prevs[a].add(b)
        self.event_map: dict[str, dict[str, Any]] = {}
        self.state_after: dict[str, dict[StateKey, str]] = {}
        ts = itertools.count()
        for node_id in sr.lexicographical_topological_sort({k: set(v) for k, v in prevs.items()}, key=lambda n: n):
            node = all_nodes[node_id]
            prev_states = [self.state_after[p] for p in sorted(prevs[node_id])]
            if not prev_states:
                state_before: dict[StateKey, str] = {}
            elif len(prev_states) == 1:
                state_before = dict(prev_states[0])
            else:
                state_before = state_resolution.resolve_state(version, prev_states, self.event_map)
            prev_ids = [eid(p) for p in sorted(prevs[node_id])]
            event: dict[str, Any] = {
                "event_id": eid(node_id),
                "type": node.type,
                "sender": node.sender,
                "content": node.content,
                "origin_server_ts": next(ts),
                "prev_events": prev_ids,
                # v2 ignores depth; v1 orders by it.
                "depth": 1 + max((self.event_map[p]["depth"] for p in prev_ids), default=0),
            }
            if not (self.rv.room_id_from_create_event and node.type == "m.room.create"):
                event["room_id"] = self.room_id
            if node.state_key is not None:
                event["state_key"] = node.state_key
            event["auth_events"] = [
                state_before[k] for k in auth_types_for_event(event, self.rv) if k in state_before
            ]
            if self.rv.event_id_in_pdu:
                for key in ("prev_events", "auth_events"):
                    event[key] = [event_reference(self.event_map[e], self.rv) for e in event[key]]
            self.event_map[event["event_id"]] = event
            state_after = dict(state_before)
            if node.state_key is not None:
                state_after[(node.type, node.state_key)] = event["event_id"]
            self.state_after[node_id] = state_after

    def key_of(self, node_id: str) -> StateKey:
        event = self.event_map[eid(node_id)]
        return (event["type"], event["state_key"])


class ScenarioTests(unittest.TestCase):
    def do_check(self, nodes: Sequence[Node], edges: Sequence[Sequence[str]], expected: Sequence[str], versions: Sequence[str] = V2_VERSIONS) -> None:
        for version in versions:
            graph = Graph(version, nodes, edges)
            expected_state = {graph.key_of(n): eid(n) for n in expected}
            start, end = graph.state_after["START"], graph.state_after["END"]
            changed = {k: v for k, v in end.items() if k in expected_state or start.get(k) != v}
            self.assertEqual(changed, expected_state, f"room version {version}")

    def test_ban_vs_pl(self) -> None:
        # Alice bans Bob while Bob concurrently re-sends power levels: the ban
        # (by the more powerful user, ordered first) wins.
        def nodes(v: str) -> list[Node]:
            return [
                Node("PA", ALICE, "m.room.power_levels", "", {"users": pl_users(v, {ALICE: 100, BOB: 50})}),
                Node("MA", ALICE, "m.room.member", ALICE, {"membership": "join"}),
                Node("MB", ALICE, "m.room.member", BOB, {"membership": "ban"}),
                Node("PB", BOB, "m.room.power_levels", "", {"users": pl_users(v, {ALICE: 100, BOB: 50})}),
            ]
        edges = [["END", "MB", "MA", "PA", "START"], ["END", "PB", "PA"]]
        for v in V2_VERSIONS:
            self.do_check(nodes(v), edges, ["PA", "MA", "MB"], versions=[v])

    def test_join_rule_evasion(self) -> None:
        # Evelyn joins concurrently with the room going invite-only: the join
        # rules (a power event) are applied first and her join fails.
        nodes = [
            Node("JR", ALICE, "m.room.join_rules", "", {"join_rule": "invite"}),
            Node("ME", EVELYN, "m.room.member", EVELYN, {"membership": "join"}),
        ]
        self.do_check(nodes, [["END", "JR", "START"], ["END", "ME", "START"]], ["JR"])

    def test_offtopic_pl(self) -> None:
        def nodes(v: str) -> list[Node]:
            return [
                Node("PA", ALICE, "m.room.power_levels", "", {"users": pl_users(v, {ALICE: 100, BOB: 50})}),
                Node("PB", BOB, "m.room.power_levels", "", {"users": pl_users(v, {ALICE: 100, BOB: 50, CHARLIE: 50})}),
                Node("PC", CHARLIE, "m.room.power_levels", "", {"users": pl_users(v, {ALICE: 100, BOB: 50, CHARLIE: 0})}),
            ]
        for v in V2_VERSIONS:
            self.do_check(nodes(v), [["END", "PC", "PB", "PA", "START"], ["END", "PA"]], ["PC"], versions=[v])

    def _topic_nodes(self, v: str, with_mz1: bool = False, mainline: bool = False) -> list[Node]:
        pa2_content: dict[str, Any] = {"users": pl_users(v, {ALICE: 100, BOB: 0})}
        if mainline:
            pa2_content = {"users": pl_users(v, {ALICE: 100, BOB: 50}), "events": {"m.room.power_levels": 100}}
        nodes = [
            Node("T1", ALICE, "m.room.topic", "", {}),
            Node("PA1", ALICE, "m.room.power_levels", "", {"users": pl_users(v, {ALICE: 100, BOB: 50})}),
            Node("T2", ALICE, "m.room.topic", "", {}),
            Node("PA2", ALICE, "m.room.power_levels", "", pa2_content),
            Node("PB", BOB, "m.room.power_levels", "", {"users": pl_users(v, {ALICE: 100, BOB: 50})}),
            Node("T3", BOB, "m.room.topic", "", {}),
        ]
        if with_mz1:
            nodes.append(Node("MZ1", ZARA, "m.room.message", None, {}))
        if with_mz1 or mainline:
            nodes.append(Node("T4", ALICE, "m.room.topic", "", {}))
        return nodes

    def test_topic_basic(self) -> None:
        for v in V2_VERSIONS:
            self.do_check(
                self._topic_nodes(v),
                [["END", "PA2", "T2", "PA1", "T1", "START"], ["END", "T3", "PB", "PA1"]],
                ["PA2", "T2"],
                versions=[v],
            )

    def test_topic_reset(self) -> None:
        # Bob, banned on one branch, must not keep his topic: the other
        # branch's older topic T1 comes back instead.
        def nodes(v: str) -> list[Node]:
            return [
                Node("T1", ALICE, "m.room.topic", "", {}),
                Node("PA", ALICE, "m.room.power_levels", "", {"users": pl_users(v, {ALICE: 100, BOB: 50})}),
                Node("T2", BOB, "m.room.topic", "", {}),
                Node("MB", ALICE, "m.room.member", BOB, {"membership": "ban"}),
            ]
        for v in V2_VERSIONS:
            self.do_check(nodes(v), [["END", "MB", "T2", "PA", "T1", "START"], ["END", "T1"]], ["T1", "MB", "PA"], versions=[v])

    def test_topic(self) -> None:
        for v in V2_VERSIONS:
            self.do_check(
                self._topic_nodes(v, with_mz1=True),
                [["END", "T4", "MZ1", "PA2", "T2", "PA1", "T1", "START"], ["END", "MZ1", "T3", "PB", "PA1"]],
                ["T4", "PA2"],
                versions=[v],
            )

    def test_mainline_sort(self) -> None:
        # T3 wins although T4 is newer: T4 hangs off an older power levels
        # event in the mainline.
        for v in V2_VERSIONS:
            self.do_check(
                self._topic_nodes(v, mainline=True),
                [["END", "T3", "PA2", "T2", "PA1", "T1", "START"], ["END", "T4", "PB", "PA1"]],
                ["T3", "PA2"],
                versions=[v],
            )

    def test_banned_users_old_events_do_not_come_back(self) -> None:
        # State-reset attack: after Alice bans Bob, Bob forks from before the
        # ban and re-sends his join and a topic.  The ban must survive and his
        # forked events must not enter the state.
        def nodes(v: str) -> list[Node]:
            return [
                Node("PA", ALICE, "m.room.power_levels", "", {"users": pl_users(v, {ALICE: 100, BOB: 50}), "state_default": 0}),
                Node("MB", ALICE, "m.room.member", BOB, {"membership": "ban"}),
                Node("MB2", BOB, "m.room.member", BOB, {"membership": "join", "displayname": "back"}),
                Node("TB", BOB, "m.room.topic", "", {"topic": "pwned"}),
            ]
        for v in V2_VERSIONS:
            self.do_check(
                nodes(v),
                [["END", "MB", "PA", "START"], ["END", "TB", "MB2", "PA"]],
                ["PA", "MB"],
                versions=[v],
            )

    def test_kick_vs_power_demotion_race(self) -> None:
        # Bob (50) kicks Charlie (0) while Alice concurrently demotes Bob to 0.
        # The demotion is from the more powerful sender so it is applied
        # first; Bob's kick then fails auth.
        def nodes(v: str) -> list[Node]:
            return [
                Node("PA", ALICE, "m.room.power_levels", "", {"users": pl_users(v, {ALICE: 100, BOB: 50})}),
                Node("PD", ALICE, "m.room.power_levels", "", {"users": pl_users(v, {ALICE: 100, BOB: 0})}),
                Node("KC", BOB, "m.room.member", CHARLIE, {"membership": "leave"}),
            ]
        for v in V2_VERSIONS:
            self.do_check(nodes(v), [["END", "PD", "PA", "START"], ["END", "KC", "PA"]], ["PD"], versions=[v])


class V12CreatorScenarioTests(unittest.TestCase):
    def test_additional_creator_beats_pl100_in_race(self) -> None:
        # Bob is an additional creator; Charlie has PL 100.  Charlie bans Bob
        # while Bob concurrently bans Charlie.  In v12 Bob outranks everyone
        # (ordered first, and Charlie's ban of a creator can never pass auth).
        nodes = [
            Node("PA", ALICE, "m.room.power_levels", "", {"users": {CHARLIE: 100}}),
            Node("BAN_BOB", CHARLIE, "m.room.member", BOB, {"membership": "ban"}),
            Node("BAN_CHARLIE", BOB, "m.room.member", CHARLIE, {"membership": "ban"}),
        ]
        graph = Graph(
            "12", nodes, [["END", "BAN_BOB", "PA", "START"], ["END", "BAN_CHARLIE", "PA"]],
            create_extra={"additional_creators": [BOB]},
        )
        end = graph.state_after["END"]
        self.assertEqual(end[("m.room.member", CHARLIE)], eid("BAN_CHARLIE"))
        self.assertEqual(end[("m.room.member", BOB)], eid("IMB"))
        # Directly: Charlie's ban of Bob does not pass auth against any state.
        ban_bob = graph.event_map[eid("BAN_BOB")]
        auth = {(e["type"], e["state_key"]): e for e in (graph.event_map[a] for a in ban_bob["auth_events"])}
        auth[("m.room.create", "")] = graph.event_map[eid("CREATE")]
        with self.assertRaises(AuthError):
            check_auth_rules(ban_bob, auth, "12")

    def test_creator_power_ordering(self) -> None:
        resolver = sr._Resolver(get_room_version("12"), Graph("12", [], []).event_map, None, frozenset())
        self.assertEqual(resolver.sender_power_level(eid("IJR")), sr.CREATOR_POWER_LEVEL)
        self.assertEqual(resolver.sender_power_level(eid("IMB")), 0)
        resolver11 = sr._Resolver(get_room_version("11"), Graph("11", [], []).event_map, None, frozenset())
        self.assertEqual(resolver11.sender_power_level(eid("IJR")), 100)
        # The PL event itself is authed by the creator's implicit power (no PL yet).
        self.assertEqual(resolver11.sender_power_level(eid("IPOWER")), 100)


class BuildingBlockTests(unittest.TestCase):
    def test_lexicographical_topological_sort(self) -> None:
        graph = {"l": {"o"}, "m": {"n", "o"}, "n": {"o"}, "o": set(), "p": {"o"}}
        self.assertEqual(sr.lexicographical_topological_sort(graph, key=lambda x: x), ["o", "l", "n", "m", "p"])
        self.assertEqual(graph["m"], {"n", "o"}, "input graph must not be consumed")

    def test_separate(self) -> None:
        a = {("t", "1"): "$a", ("t", "2"): "$b", ("t", "3"): "$c"}
        b = {("t", "1"): "$a", ("t", "2"): "$x"}
        unconflicted, conflicted = sr.separate_state_sets([a, b])
        self.assertEqual(unconflicted, {("t", "1"): "$a"})
        self.assertEqual(conflicted, {("t", "2"): {"$b", "$x"}, ("t", "3"): {"$c"}})

    def test_is_power_event(self) -> None:
        self.assertTrue(sr.is_power_event({"type": "m.room.power_levels", "state_key": ""}))
        self.assertTrue(sr.is_power_event({"type": "m.room.join_rules", "state_key": ""}))
        self.assertTrue(sr.is_power_event({"type": "m.room.create", "state_key": ""}))
        self.assertTrue(sr.is_power_event({"type": "m.room.member", "state_key": BOB, "sender": ALICE, "content": {"membership": "ban"}}))
        self.assertTrue(sr.is_power_event({"type": "m.room.member", "state_key": BOB, "sender": ALICE, "content": {"membership": "leave"}}))
        self.assertFalse(sr.is_power_event({"type": "m.room.member", "state_key": BOB, "sender": BOB, "content": {"membership": "leave"}}))
        self.assertFalse(sr.is_power_event({"type": "m.room.member", "state_key": BOB, "sender": ALICE, "content": {"membership": "invite"}}))
        self.assertFalse(sr.is_power_event({"type": "m.room.topic", "state_key": ""}))

    def _chain_graph(self) -> dict[str, dict[str, Any]]:
        # A <- B <- C <- D <- E (each cites the previous) as bare events.
        events = {}
        prev: list[str] = []
        for name in "ABCDE":
            events["$" + name] = {"event_id": "$" + name, "type": "t", "state_key": name, "auth_events": prev}
            prev = ["$" + name]
        return events

    def test_conflicted_subgraph(self) -> None:
        resolver = sr._Resolver(get_room_version("12"), self._chain_graph(), None, frozenset())
        self.assertEqual(resolver.conflicted_subgraph({"$B", "$D"}), {"$B", "$C", "$D"})
        self.assertEqual(resolver.conflicted_subgraph({"$E"}), {"$E"})
        self.assertEqual(resolver.conflicted_subgraph({"$A", "$E"}), {"$A", "$B", "$C", "$D", "$E"})

    def test_auth_difference_includes_state_events(self) -> None:
        events = self._chain_graph()
        resolver = sr._Resolver(get_room_version("11"), events, None, frozenset())
        s1 = {("t", "x"): "$B"}
        s2 = {("t", "x"): "$D"}
        u, c = sr.separate_state_sets([s1, s2])
        self.assertEqual(resolver.auth_difference([s1, s2], u, c), {"$C", "$D"})
        # With a custom auth_chain callable the answer is the same.
        def chain(event_id: str) -> set[str]:
            order = "ABCDE"
            return {"$" + n for n in order[: order.index(event_id[1])]}
        resolver2 = sr._Resolver(get_room_version("11"), events, chain, frozenset())
        self.assertEqual(resolver2.auth_difference([s1, s2], u, c), {"$C", "$D"})

    def test_no_conflict_is_identity(self) -> None:
        s = {("m.room.create", ""): "$c", ("m.room.topic", ""): "$t"}
        self.assertEqual(sr.resolve_state("11", [s, dict(s)], {}), s)
        self.assertEqual(sr.resolve_state("11", [s], {}), s)
        self.assertEqual(sr.resolve_state("11", [], {}), {})


class RejectedEventTests(unittest.TestCase):
    def test_rejected_events_never_enter_state(self) -> None:
        def nodes(v: str) -> list[Node]:
            return [
                Node("PA", ALICE, "m.room.power_levels", "", {"users": pl_users(v, {ALICE: 100, BOB: 50})}),
                Node("T1", ALICE, "m.room.topic", "", {"topic": "a"}),
                Node("T2", BOB, "m.room.topic", "", {"topic": "b"}),
            ]
        for v in V2_VERSIONS:
            graph = Graph(v, nodes(v), [["END", "T1", "PA", "START"], ["END", "T2", "PA"]])
            sets = [graph.state_after["T1"], graph.state_after["T2"]]
            # T2 is later so normally wins...
            self.assertEqual(sr.resolve_state(v, sets, graph.event_map)[("m.room.topic", "")], eid("T2"))
            # ...unless it was rejected, via either mechanism.
            self.assertEqual(
                sr.resolve_state(v, sets, graph.event_map, rejected_event_ids={eid("T2")})[("m.room.topic", "")],
                eid("T1"),
            )
            marked = dict(graph.event_map)
            marked[eid("T2")] = dict(marked[eid("T2")], rejected_reason="auth")
            self.assertEqual(sr.resolve_state(v, sets, marked)[("m.room.topic", "")], eid("T1"))

    def test_auth_chain_callable_matches_walk(self) -> None:
        nodes = [
            Node("PA", ALICE, "m.room.power_levels", "", {"users": {ALICE: 100, BOB: 50}}),
            Node("MB", ALICE, "m.room.member", BOB, {"membership": "ban"}),
            Node("PB", BOB, "m.room.power_levels", "", {"users": {ALICE: 100, BOB: 50}}),
        ]
        graph = Graph("11", nodes, [["END", "MB", "PA", "START"], ["END", "PB", "PA"]])
        calls: list[str] = []

        def chain(event_id: str) -> set[str]:
            calls.append(event_id)
            seen: set[str] = set()
            stack = list(graph.event_map[event_id]["auth_events"])
            while stack:
                e = stack.pop()
                if e not in seen:
                    seen.add(e)
                    stack.extend(graph.event_map[e]["auth_events"])
            return seen

        sets = [graph.state_after["MB"], graph.state_after["PB"]]
        self.assertEqual(
            sr.resolve_state("11", sets, graph.event_map, chain),
            sr.resolve_state("11", sets, graph.event_map),
        )
        self.assertTrue(calls)


class StateResetTests(unittest.TestCase):
    """Unconflicted state that post-dates the conflicted events.

    Alice makes the room invite-only on one branch and leaves on another.
    Both state sets agree she has left; they disagree on the join rules.
    v2 authorises the conflicted join rules against the *unconflicted* state
    (Alice not joined), rejects both and the join rules vanish from the room
    state.  v2.1 (room version 12) starts from empty state, so each join rules
    event is checked against its own auth events and the later one survives.
    (Synapse agrees; see test_vs_synapse.StateResetVsSynapseTests.)
    """

    @staticmethod
    def build(version: str) -> tuple[Room, list[dict[StateKey, str]], dict[str, str]]:
        room = Room(version)
        room.send("m.room.member", H_ALICE, {"membership": "join"}, H_ALICE)
        room.send("m.room.power_levels", H_ALICE, {} if version == "12" else {"users": {H_ALICE: 100}}, "")
        base = dict(room.state)
        pl_id = room.last
        jr_public = room.send("m.room.join_rules", H_ALICE, {"join_rule": "public"}, "")
        leave = room.send("m.room.member", H_ALICE, {"membership": "leave"}, H_ALICE)
        jr_invite = room.make("m.room.join_rules", H_ALICE, {"join_rule": "invite"}, "", state=base, prev=[pl_id])
        room.check(jr_invite, base)
        s1 = dict(room.state)  # public join rules, Alice left
        s2 = dict(s1)
        s2[("m.room.join_rules", "")] = jr_invite["event_id"]
        return room, [s1, s2], {"public": jr_public["event_id"], "invite": jr_invite["event_id"], "leave": leave["event_id"]}

    def test_v2_resets_join_rules(self) -> None:
        for version in ("10", "11"):
            room, sets, ids = self.build(version)
            resolved = sr.resolve_state(version, sets, room.events)
            self.assertNotIn(("m.room.join_rules", ""), resolved, version)
            self.assertEqual(resolved[("m.room.member", H_ALICE)], ids["leave"])

    def test_v2_1_keeps_join_rules(self) -> None:
        room, sets, ids = self.build("12")
        resolved = sr.resolve_state("12", sets, room.events)
        self.assertEqual(resolved[("m.room.join_rules", "")], ids["invite"])
        self.assertEqual(resolved[("m.room.member", H_ALICE)], ids["leave"])


class AuthChainTests(unittest.TestCase):
    def test_get_auth_chain(self) -> None:
        for version in ("11", "12"):
            graph = Graph(version, [], [])
            chain = sr.get_auth_chain([eid("IMB")], graph.event_map, version)
            # Bob's join is authed by create, power levels and join rules;
            # those by Alice's join.
            self.assertEqual(chain, {eid("CREATE"), eid("IPOWER"), eid("IJR"), eid("IMA")}, version)
            self.assertEqual(sr.get_auth_chain([eid("CREATE")], graph.event_map, version), set())


class RobustnessTests(unittest.TestCase):
    def test_corrupt_events_do_not_crash_resolution(self) -> None:
        """A malformed event that slipped into the event map must not wedge
        state resolution for the whole room."""
        import copy
        import random

        junk: list[Any] = [None, 1, "x", [], {}, True, [1, "a"], {"@x:y": "z"}, ["$missing"], {"membership": []}]
        rng = random.Random(7)
        for version in ("2", "5", "10", "11", "12"):
            def nodes(v: str) -> list[Node]:
                return [
                    Node("PA", ALICE, "m.room.power_levels", "", {"users": pl_users(v, {ALICE: 100, BOB: 50})}),
                    Node("MB", ALICE, "m.room.member", BOB, {"membership": "ban"}),
                    Node("PB", BOB, "m.room.power_levels", "", {"users": pl_users(v, {ALICE: 100, BOB: 50})}),
                    Node("T1", BOB, "m.room.topic", "", {}),
                ]
            graph = Graph(version, nodes(version), [["END", "MB", "PA", "START"], ["END", "T1", "PB", "PA"]])
            sets = [graph.state_after["MB"], graph.state_after["T1"]]
            ids = sorted(graph.event_map)
            for _ in range(200):
                event_map = {k: copy.deepcopy(v) for k, v in graph.event_map.items()}
                for _ in range(2):
                    event = event_map[rng.choice(ids)]
                    event[rng.choice(["content", "auth_events", "sender", "origin_server_ts", "state_key", "type"])] = rng.choice(junk)
                resolved = sr.resolve_state(version, sets, event_map)
                for key, value in resolved.items():
                    self.assertIsInstance(key[0], str)
                    self.assertIsInstance(key[1], str)
                    self.assertIsInstance(value, str)
