"""Guards against super-linear blow-ups in state resolution on big rooms.

The bounds are deliberately loose (a quadratic algorithm would take minutes
here, the current one takes well under a second); the outcomes are checked
too, so the test is not just a timer.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.trial import unittest

from homeserver.protocol import state_resolution_v2 as sr

StateKey = tuple[str, str]
ALICE = "@alice:a.example"
BOB = "@bob:b.example"


def build_big_room(version: str, n_members: int, n_conflicts: int) -> tuple[dict[str, dict[str, Any]], dict[StateKey, str], dict[StateKey, str]]:
    """A room with `n_members` joined users, forked into a branch where Alice
    changes power levels and users change display names, and a branch where
    Bob (PL 50) kicks or bans the same users."""
    events: dict[str, dict[str, Any]] = {}
    room_id = "!CREATE" if version == "12" else "!room:a.example"
    ts = iter(range(1, 10**9))

    def add(event_id: str, etype: str, sender: str, state_key: str, content: dict[str, Any], auth: list[str], prev: list[str]) -> str:
        event = {
            "event_id": event_id, "type": etype, "sender": sender, "state_key": state_key,
            "content": content, "auth_events": auth, "prev_events": prev,
            "origin_server_ts": next(ts), "depth": 1,
        }
        if not (version == "12" and etype == "m.room.create"):
            event["room_id"] = room_id
        events[event_id] = event
        return event_id

    create_content: dict[str, Any] = {"room_version": version}
    if version == "10":
        create_content["creator"] = ALICE
    create = add("$CREATE", "m.room.create", ALICE, "", create_content, [], [])
    implicit = [] if version == "12" else [create]
    state: dict[StateKey, str] = {("m.room.create", ""): create}
    alice = add("$MA", "m.room.member", ALICE, ALICE, {"membership": "join"}, implicit, [create])
    state[("m.room.member", ALICE)] = alice
    users = {BOB: 50} if version == "12" else {ALICE: 100, BOB: 50}
    pl = add("$PL", "m.room.power_levels", ALICE, "", {"users": users}, implicit + [alice], [alice])
    state[("m.room.power_levels", "")] = pl
    jr = add("$JR", "m.room.join_rules", ALICE, "", {"join_rule": "public"}, implicit + [alice, pl], [pl])
    state[("m.room.join_rules", "")] = jr
    last = jr
    members = [BOB] + [f"@u{i}:s{i % 50}.example" for i in range(1, n_members)]
    for i, user in enumerate(members):
        last = add(f"$J{i}", "m.room.member", user, user, {"membership": "join"}, implicit + [pl, jr], [last])
        state[("m.room.member", user)] = last
    base = dict(state)
    side_a, side_b = dict(base), dict(base)
    prev_a = pl2 = add("$PL2", "m.room.power_levels", ALICE, "", {"users": dict(users, **{members[5]: 50})}, implicit + [pl, alice], [last])
    side_a[("m.room.power_levels", "")] = pl2
    prev_b = last
    for i in range(1, n_conflicts):
        user = members[i]
        prev_a = add(f"$A{i}", "m.room.member", user, user, {"membership": "join", "displayname": "a"},
                     implicit + [pl2, jr, base[("m.room.member", user)]], [prev_a])
        side_a[("m.room.member", user)] = prev_a
        prev_b = add(f"$B{i}", "m.room.member", BOB, user, {"membership": "ban" if i % 2 else "leave"},
                     implicit + [pl, base[("m.room.member", BOB)], base[("m.room.member", user)]], [prev_b])
        side_b[("m.room.member", user)] = prev_b
    return events, side_a, side_b


class BigRoomTests(unittest.TestCase):
    def _check(self, version: str, n_members: int, n_conflicts: int, budget: float) -> None:
        events, side_a, side_b = build_big_room(version, n_members, n_conflicts)
        start = time.perf_counter()
        resolved = sr.resolve_state(version, [side_a, side_b], events)
        elapsed = time.perf_counter() - start
        self.assertLess(elapsed, budget, f"v{version}: {elapsed:.2f}s")
        self.assertEqual(len(resolved), n_members + 4)
        self.assertEqual(resolved[("m.room.power_levels", "")], "$PL2")
        for i in range(1, n_conflicts):
            user = f"@u{i}:s{i % 50}.example"
            # Bans (power events, applied first) stick; kicked users' later
            # display-name joins are allowed again in the public room.  User 5
            # was promoted to Bob's level by PL2, so Bob's ban of them fails.
            expected = f"$B{i}" if i % 2 and i != 5 else f"$A{i}"
            self.assertEqual(resolved[("m.room.member", user)], expected, user)

    def test_10k_members_few_conflicts(self) -> None:
        for version in ("10", "11", "12"):
            self._check(version, 10_000, 10, budget=5.0)

    def test_10k_members_2k_conflicts(self) -> None:
        for version in ("11", "12"):
            self._check(version, 10_000, 2_000, budget=10.0)
