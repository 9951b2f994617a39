"""State resolution v1 (room version 1), worked through by hand from the
algorithm on the v1 page; test_vs_synapse checks the same scenarios and
random rooms against Synapse's `synapse/state/v1.py`.

The spec gives no worked examples for v1.  The scenarios are the standard
v2 ones (test_state_resolution_v2), which show where v1 differs: it is the
algorithm that lets a ban be undone by a concurrent fork ("state reset").
"""

from __future__ import annotations

import copy
import random
from typing import Any

from twisted.trial import unittest

from homeserver.protocol import (
    state_resolution,
    state_resolution_v1,
    state_resolution_v2,
)
from homeserver.protocol.state_resolution_v1 import resolve_state, separate_state_sets

from .test_state_resolution_v2 import ALICE, BOB, CHARLIE, EVELYN, Graph, Node, eid

StateKey = tuple[str, str]


def changed(graph: Graph, resolved: dict[StateKey, str]) -> dict[StateKey, str]:
    """The resolved entries that differ from the state at START, as node ids."""
    start = graph.state_after["START"]
    return {k: v[1:] for k, v in resolved.items() if start.get(k) != v}


class SeparateTests(unittest.TestCase):
    def test_only_disagreement_conflicts(self) -> None:
        a, b = ("t", ""), ("u", "")
        unconflicted, conflicted = separate_state_sets([{a: "$1", b: "$2"}, {a: "$1"}, {a: "$3"}])
        # `b` is missing from two sets: unconflicted in v1 (conflicted in v2).
        self.assertEqual(unconflicted, {b: "$2"})
        self.assertEqual(conflicted, {a: {"$1", "$3"}})
        _, conflicted_v2 = state_resolution_v2.separate_state_sets([{a: "$1", b: "$2"}, {a: "$1"}, {a: "$3"}])
        self.assertIn(b, conflicted_v2)

    def test_trivial(self) -> None:
        s = {("t", ""): "$1"}
        self.assertEqual(resolve_state("1", [], {}), {})
        self.assertEqual(resolve_state("1", [s], {}), s)
        self.assertEqual(resolve_state("1", [s, dict(s)], {}), s)


class ScenarioTests(unittest.TestCase):
    def test_ban_is_undone_by_a_concurrent_fork(self) -> None:
        # Alice (re)joins and bans Bob on one branch; Bob re-sends the power
        # levels on the other.  The power levels resolve to the older PA
        # (PB fails: Bob's membership is conflicted, so he is not "in the
        # room" for the check).  Bob's membership: the older join IMB is
        # taken first, then the ban MB is checked -- against a state in which
        # Alice's membership (conflicted too, settled in the same pass) is
        # absent, so the ban fails and Bob stays joined.
        nodes = [
            Node("PA", ALICE, "m.room.power_levels", "", {"users": {ALICE: 100, BOB: 50}}),
            Node("MA", ALICE, "m.room.member", ALICE, {"membership": "join"}),
            Node("MB", ALICE, "m.room.member", BOB, {"membership": "ban"}),
            Node("PB", BOB, "m.room.power_levels", "", {"users": {ALICE: 100, BOB: 50}}),
        ]
        graph = Graph("1", nodes, [["END", "MB", "MA", "PA", "START"], ["END", "PB", "PA"]])
        resolved = resolve_state("1", [graph.state_after["MB"], graph.state_after["PB"]], graph.event_map)
        self.assertEqual(
            changed(graph, resolved),
            {("m.room.power_levels", ""): "PA", ("m.room.member", ALICE): "MA"},
        )
        self.assertEqual(resolved[("m.room.member", BOB)], eid("IMB"))
        # v2 keeps the ban.
        graph2 = Graph("2", nodes, [["END", "MB", "MA", "PA", "START"], ["END", "PB", "PA"]])
        self.assertEqual(graph2.state_after["END"][("m.room.member", BOB)], eid("MB"))

    def test_join_rule_evasion(self) -> None:
        # Evelyn's join is only in one state set, so it is not conflicted:
        # she stays in although the other branch made the room invite-only.
        nodes = [
            Node("JR", ALICE, "m.room.join_rules", "", {"join_rule": "invite"}),
            Node("ME", EVELYN, "m.room.member", EVELYN, {"membership": "join"}),
        ]
        graph = Graph("1", nodes, [["END", "JR", "START"], ["END", "ME", "START"]])
        self.assertEqual(
            changed(graph, graph.state_after["END"]),
            {("m.room.join_rules", ""): "JR", ("m.room.member", EVELYN): "ME"},
        )

    def test_power_levels_chain_stops_at_first_failure(self) -> None:
        # Three sets, three power levels.  Oldest first: PA, then PB (Bob,
        # allowed by PA), then PC (Charlie: level 0 under PB) fails -- PB
        # wins though PC is newer.
        nodes = [
            Node("PA", ALICE, "m.room.power_levels", "", {"users": {ALICE: 100, BOB: 50}}),
            Node("PB", BOB, "m.room.power_levels", "", {"users": {ALICE: 100, BOB: 50, CHARLIE: 0}}),
            Node("PC", CHARLIE, "m.room.power_levels", "", {"users": {ALICE: 100, BOB: 50, CHARLIE: 0}, "ban": 0}),
        ]
        graph = Graph("1", nodes, [["END", "PC", "PB", "PA", "START"]])
        sets = [graph.state_after["PA"], graph.state_after["PB"], graph.state_after["PC"]]
        self.assertEqual(resolve_state("1", sets, graph.event_map)[("m.room.power_levels", "")], eid("PB"))
        # Only the candidates count: against START's power levels PC fails
        # and the older one stays.
        sets = [graph.state_after["PC"], graph.state_after["START"]]
        self.assertEqual(resolve_state("1", sets, graph.event_map)[("m.room.power_levels", "")], eid("IPOWER"))

    def test_other_state_newest_allowed(self) -> None:
        # The deepest topic its sender may set wins.
        nodes = [
            Node("PA", ALICE, "m.room.power_levels", "", {"users": {ALICE: 100}, "state_default": 50}),
            Node("T1", ALICE, "m.room.topic", "", {"topic": "a"}),
            Node("TC", CHARLIE, "m.room.topic", "", {"topic": "charlie"}),
            Node("TB", BOB, "m.room.topic", "", {"topic": "bob"}),
        ]
        graph = Graph("1", nodes, [["END", "TB", "TC", "T1", "PA", "START"], ["END", "PA"]])
        topic = ("m.room.topic", "")
        self.assertLess(graph.event_map[eid("T1")]["depth"], graph.event_map[eid("TC")]["depth"])
        # Bob's (deepest) and Charlie's fail the auth rules, Alice's passes.
        sets = [graph.state_after["T1"], graph.state_after["TC"], graph.state_after["TB"]]
        self.assertEqual(resolve_state("1", sets, graph.event_map)[topic], eid("T1"))
        # If none passes, the last tried -- the shallowest -- is taken anyway.
        sets = [graph.state_after["TC"], graph.state_after["TB"]]
        self.assertEqual(resolve_state("1", sets, graph.event_map)[topic], eid("TC"))

    def test_depth_ties_by_sha1(self) -> None:
        resolver = state_resolution_v1._Resolver(
            state_resolution_v1.get_room_version("1"),
            {"$a": {"depth": 5}, "$b": {"depth": 5}, "$c": {"depth": 6}},
            frozenset(),
        )
        # sha1("$a") = c1cb..., sha1("$b") = 773e...: highest depth, then the smaller sha1.
        self.assertEqual(resolver.ordered(["$a", "$b", "$c"]), ["$c", "$b", "$a"])


class RejectedAndUnknownTests(unittest.TestCase):
    def _graph(self) -> Graph:
        nodes = [
            Node("T1", ALICE, "m.room.topic", "", {"topic": "a"}),
            Node("T2", ALICE, "m.room.topic", "", {"topic": "b"}),
        ]
        return Graph("1", nodes, [["END", "T1", "START"], ["END", "T2", "START"]])

    def test_rejected_or_unknown_take_no_part(self) -> None:
        graph = self._graph()
        topic = ("m.room.topic", "")
        sets = [graph.state_after["T1"], graph.state_after["T2"]]
        both = resolve_state("1", sets, graph.event_map)[topic]
        other = eid("T1") if both == eid("T2") else eid("T2")
        # One candidate left: it is taken without a check.
        self.assertEqual(resolve_state("1", sets, graph.event_map, rejected_event_ids={both})[topic], other)
        marked = dict(graph.event_map)
        marked[both] = dict(marked[both], rejected_reason="auth")
        self.assertEqual(resolve_state("1", sets, marked)[topic], other)
        # None left: the key is dropped (as Synapse does).
        unknown = {k: v for k, v in graph.event_map.items() if k not in (eid("T1"), eid("T2"))}
        self.assertNotIn(topic, resolve_state("1", sets, unknown))

    def test_corrupt_events_do_not_crash_resolution(self) -> None:
        junk: list[Any] = [None, 1, "x", [], {}, True, [1, "a"], {"@x:y": "z"}, ["$missing"], {"membership": []}]
        rng = random.Random(11)
        nodes = [
            Node("PA", ALICE, "m.room.power_levels", "", {"users": {ALICE: 100, BOB: 50}}),
            Node("MB", ALICE, "m.room.member", BOB, {"membership": "ban"}),
            Node("PB", BOB, "m.room.power_levels", "", {"users": {ALICE: 100, BOB: 50}}),
            Node("T1", BOB, "m.room.topic", "", {}),
        ]
        graph = Graph("1", nodes, [["END", "MB", "PA", "START"], ["END", "T1", "PB", "PA"]])
        sets = [graph.state_after["MB"], graph.state_after["T1"]]
        ids = sorted(graph.event_map)
        for _ in range(200):
            event_map = {k: copy.deepcopy(v) for k, v in graph.event_map.items()}
            for _ in range(2):
                event = event_map[rng.choice(ids)]
                event[rng.choice(["content", "auth_events", "sender", "depth", "state_key", "type"])] = rng.choice(junk)
            for key, value in resolve_state("1", sets, event_map).items():
                self.assertIsInstance(key[0], str)
                self.assertIsInstance(value, str)


class DispatchTests(unittest.TestCase):
    def test_each_version_gets_its_algorithm(self) -> None:
        nodes = [
            Node("PA", ALICE, "m.room.power_levels", "", {"users": {ALICE: 100, BOB: 50}}),
            Node("MA", ALICE, "m.room.member", ALICE, {"membership": "join"}),
            Node("MB", ALICE, "m.room.member", BOB, {"membership": "ban"}),
            Node("PB", BOB, "m.room.power_levels", "", {"users": {ALICE: 100, BOB: 50}}),
        ]
        edges = [["END", "MB", "MA", "PA", "START"], ["END", "PB", "PA"]]
        for version, bob in (("1", "IMB"), ("2", "MB"), ("9", "MB"), ("11", "MB")):
            graph = Graph(version, nodes, edges)
            sets = [graph.state_after["MB"], graph.state_after["PB"]]
            self.assertEqual(state_resolution.resolve_state(version, sets, graph.event_map)[("m.room.member", BOB)], eid(bob))
        with self.assertRaises(ValueError):
            state_resolution_v2.resolve_state("1", sets, graph.event_map)
