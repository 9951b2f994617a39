"""The pure parts of sliding sync: folding required_state pairs into a map, combining
room configs, state filters, and what to send when required_state changes between two
requests of a connection (Synapse's rules, which the MSC leaves open)."""

from __future__ import annotations

from twisted.trial import unittest

from homeserver.events.event import Event
from homeserver.handlers.sliding_sync.config import (
    RoomConfig,
    SlidingSyncToken,
    required_state_map,
)
from homeserver.handlers.sliding_sync.connection import (
    ConnectionState,
    ConnectionStateBuilder,
    ConnectionStore,
    RoomStatuses,
)
from homeserver.handlers.sliding_sync.required_state import (
    StateFilter,
    requested_state,
    required_state_changes,
)
from homeserver.http.errors import MatrixError

ME = "@me:hs"
MEMBER = "m.room.member"


def fs(*keys: str) -> frozenset[str]:
    return frozenset(keys)


def event(sender: str, etype: str = "m.room.message", state_key: str | None = None) -> Event:
    pdu = {"type": etype, "sender": sender, "content": {}, "room_id": "!r:hs"}
    if state_key is not None:
        pdu["state_key"] = state_key
    return Event("$" + sender + etype, pdu, "11")


class RequiredStateMapTest(unittest.TestCase):
    def test_wildcards_absorb_what_they_cover(self) -> None:
        self.assertEqual(
            required_state_map([("m.room.name", ""), ("m.room.member", "$LAZY"), ("m.room.member", "@a:hs")]),
            {"m.room.name": fs(""), MEMBER: fs("$LAZY", "@a:hs")},
        )
        self.assertEqual(required_state_map([("m.room.name", ""), ("*", "*"), ("m.room.topic", "")]), {"*": fs("*")})
        self.assertEqual(
            required_state_map([(MEMBER, "@a:hs"), (MEMBER, "*"), (MEMBER, "@b:hs")]), {MEMBER: fs("*")}
        )
        # ["*", key] covers that key under every type.
        self.assertEqual(
            required_state_map([("m.room.name", ""), ("m.room.topic", "x"), ("*", "")]),
            {"m.room.topic": fs("x"), "*": fs("")},
        )

    def test_combine_takes_the_superset(self) -> None:
        a = RoomConfig(5, {"m.room.name": fs("")})
        b = RoomConfig(10, {MEMBER: fs("$LAZY")})
        self.assertEqual(a.combine(b), RoomConfig(10, {"m.room.name": fs(""), MEMBER: fs("$LAZY")}))
        self.assertEqual(a.combine(RoomConfig(1, {"*": fs("*")})), RoomConfig(5, {"*": fs("*")}))
        self.assertIs(a.combine(a), a)

    def test_pos_token(self) -> None:
        token = SlidingSyncToken(3, 120, 4)
        self.assertEqual(str(token), "3/s120_4_0")
        self.assertEqual(SlidingSyncToken.parse(str(token)), token)
        for bad in ("", "3", "x/s1_0_0", "3/t1-2", "3/"):
            with self.assertRaises(MatrixError) as cm:
                SlidingSyncToken.parse(bad)
            self.assertEqual(cm.exception.errcode, "M_UNKNOWN")


class StateFilterTest(unittest.TestCase):
    def test_filters(self) -> None:
        state = {("m.room.name", ""): "$n", (MEMBER, "@a:hs"): "$a", (MEMBER, "@b:hs"): "$b"}
        self.assertEqual(StateFilter.all().filter_state(state), state)
        self.assertEqual(StateFilter.none().filter_state(state), {})
        only_a = StateFilter.from_types([(MEMBER, "@a:hs")])
        self.assertEqual(only_a.filter_state(state), {(MEMBER, "@a:hs"): "$a"})
        members = StateFilter.from_types([(MEMBER, "@a:hs"), (MEMBER, None)])
        self.assertEqual(set(members.filter_state(state)), {(MEMBER, "@a:hs"), (MEMBER, "@b:hs")})
        self.assertEqual(set(only_a.with_types([("m.room.name", "")]).filter_state(state)), {(MEMBER, "@a:hs"), ("m.room.name", "")})


class RequestedStateTest(unittest.TestCase):
    def test_lazy_members_of_the_timeline(self) -> None:
        timeline = [event("@a:hs"), event("@b:hs", MEMBER, "@c:hs")]
        required = {MEMBER: fs("$LAZY", "$ME"), "m.room.name": fs("")}
        req = requested_state(required, ME, timeline, limited=True, initial=False, state_deltas=[])
        self.assertTrue(req.lazy_members)
        self.assertEqual(req.lazy_user_ids, {"@a:hs", "@b:hs", "@c:hs"})
        self.assertEqual(req.explicit_user_ids, {ME})
        self.assertTrue(req.filter.matches((MEMBER, "@a:hs")))
        self.assertTrue(req.filter.matches((MEMBER, ME)))
        self.assertFalse(req.filter.matches((MEMBER, "@z:hs")))
        # A gapless incremental timeline takes every membership change.
        req = requested_state(required, ME, timeline, limited=False, initial=False, state_deltas=[(MEMBER, "@z:hs")])
        self.assertTrue(req.filter.matches((MEMBER, "@z:hs")))
        self.assertIn("@z:hs", req.lazy_user_ids)

    def test_wildcard_type_returns_everything(self) -> None:
        req = requested_state({"*": fs("")}, ME, [], limited=False, initial=True, state_deltas=[])
        self.assertTrue(req.filter.is_all)


class RequiredStateChangesTest(unittest.TestCase):
    def changes(self, previous, request, deltas=(), previously_lazy=(), request_lazy=()):  # type: ignore[no-untyped-def]
        return required_state_changes(
            ME,
            previous=previous,
            request=request,
            previously_lazy=set(previously_lazy),
            request_lazy=set(request_lazy),
            state_deltas=set(deltas),
        )

    def test_unchanged_config(self) -> None:
        out = self.changes({"m.room.name": fs("")}, {"m.room.name": fs("")})
        self.assertIsNone(out.new_map)
        self.assertTrue(out.added.is_none)
        # New lazy members are fetched; members sent before are not.
        out = self.changes({MEMBER: fs("$LAZY")}, {MEMBER: fs("$LAZY")}, previously_lazy={"@a:hs"}, request_lazy={"@a:hs", "@b:hs"})
        self.assertEqual(out.added.to_types(), [(MEMBER, "@b:hs")])

    def test_added_key_is_fetched(self) -> None:
        out = self.changes({"m.room.name": fs("")}, {"m.room.name": fs(""), "m.room.topic": fs("")})
        self.assertEqual(out.new_map, {"m.room.name": fs(""), "m.room.topic": fs("")})
        self.assertEqual(out.added.to_types(), [("m.room.topic", "")])
        out = self.changes({}, {MEMBER: fs("$ME")})
        self.assertEqual(out.added.to_types(), [(MEMBER, ME)])

    def test_dropped_key_is_remembered_until_it_changes(self) -> None:
        both = {"m.room.name": fs(""), "m.room.topic": fs("")}
        name = {"m.room.name": fs("")}
        # Dropped, unchanged: still counted as sent, so asking again fetches nothing.
        out = self.changes(both, name)
        self.assertIsNone(out.new_map)
        self.assertTrue(self.changes(both, both).added.is_none)
        # Dropped and changed: forgotten, so asking again fetches it.
        out = self.changes(both, name, deltas=[("m.room.topic", "")])
        self.assertEqual(out.new_map, name)
        self.assertEqual(self.changes(out.new_map, both).added.to_types(), [("m.room.topic", "")])

    def test_wildcards(self) -> None:
        everything = {"*": fs("*")}
        name = {"m.room.name": fs("")}
        # Narrowing from everything needs nothing; widening to everything fetches all.
        self.assertTrue(self.changes(everything, name).added.is_none)
        self.assertEqual(self.changes(everything, name).new_map, name)
        self.assertTrue(self.changes(name, everything).added.is_all)
        # A state key wildcard for one type.
        out = self.changes(name, {"m.room.name": fs(""), MEMBER: fs("*")})
        self.assertEqual(out.added.to_types(), [(MEMBER, None)])

    def test_lazy_members_invalidated_and_explicit_to_lazy(self) -> None:
        lazy = {MEMBER: fs("$LAZY")}
        out = self.changes(lazy, lazy, deltas=[(MEMBER, "@a:hs")], previously_lazy={"@a:hs"}, request_lazy=set())
        self.assertEqual(out.invalidated_lazy_user_ids, {"@a:hs"})
        # Members asked for by name, now lazily: already sent, counted as lazily sent.
        out = self.changes({MEMBER: fs("@a:hs")}, lazy, request_lazy={"@a:hs"})
        self.assertEqual(out.extra_lazy_user_ids, {"@a:hs"})
        self.assertTrue(out.added.is_none)


class ConnectionStoreTest(unittest.TestCase):
    def test_positions(self) -> None:
        store = ConnectionStore()
        key = ("@me:hs", "DEV", "")
        empty = ConnectionState()
        self.assertEqual(store.get(key, 0, 0), empty)
        with self.assertRaises(MatrixError) as cm:
            store.get(key, 5, 0)
        self.assertEqual(cm.exception.errcode, "M_UNKNOWN_POS")
        # Nothing changed: the position stays.
        self.assertEqual(store.record(key, ConnectionStateBuilder(empty), None, 0), 0)
        builder = ConnectionStateBuilder(empty)
        builder.rooms = builder.rooms.with_sent(["!a:hs"])
        p1 = store.record(key, builder, None, 0)
        state1 = store.get(key, p1, 1)
        self.assertTrue(state1.rooms.is_live("!a:hs"))
        # Two answers from p1 (a retry): both positions valid until one is used.
        b2 = ConnectionStateBuilder(state1)
        b2.rooms = b2.rooms.with_sent(["!b:hs"])
        p2 = store.record(key, b2, p1, 2)
        b3 = ConnectionStateBuilder(state1)
        b3.rooms = b3.rooms.with_sent(["!c:hs"])
        p3 = store.record(key, b3, p1, 3)
        state3 = store.get(key, p3, 4)
        self.assertTrue(state3.rooms.is_live("!c:hs") and state3.rooms.is_never("!b:hs"))
        for gone in (p1, p2):
            with self.assertRaises(MatrixError):
                store.get(key, gone, 5)

    def test_room_statuses(self) -> None:
        statuses = RoomStatuses().with_sent(["!a:hs", "!b:hs"]).with_unsent(["!a:hs", "!never:hs"], 42)
        self.assertEqual(statuses.status("!a:hs"), ("previously", 42))
        self.assertEqual(statuses.status("!b:hs"), ("live", None))
        self.assertEqual(statuses.status("!never:hs"), ("never", None))
        self.assertEqual(statuses.with_sent(["!a:hs"]).status("!a:hs"), ("live", None))
