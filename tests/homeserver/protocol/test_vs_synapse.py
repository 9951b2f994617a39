"""Differential tests against Synapse (the `test` extra installs it).

Random rooms of every room version (1 to 12) are grown as forking DAGs by
several users doing random things (joins, invites, knocks, kicks, bans,
power level and join rule changes, restricted joins, topics, redactions,
aliases, string and float power levels where the version allows them).
Every proposed event is auth-checked by both us and Synapse's
`check_state_dependent_auth_rules`; every merge of forks is resolved by both
us and Synapse's `resolve_events_with_store` (`synapse.state.v1` for room
version 1, `synapse.state.v2` otherwise); event ids are compared with the ids
Synapse computes.  Any disagreement fails the test with the seed to
reproduce it.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from homeserver.protocol import auth_rules, signing, state_resolution
from homeserver.protocol.event_format import prev_event_ids
from homeserver.protocol.event_ids import (
    compute_event_id,
    event_reference,
    make_legacy_event_id,
)
from homeserver.protocol.identifiers import server_name_of
from homeserver.protocol.room_versions import get_room_version

try:
    from synapse.api.errors import AuthError as SynapseAuthError
    from synapse.api.errors import SynapseError
    from synapse.api.room_versions import KNOWN_ROOM_VERSIONS as SYN_VERSIONS
    from synapse.event_auth import check_state_dependent_auth_rules
    from synapse.events import EventBase, make_event_from_dict
    from synapse.state.v1 import (
        resolve_events_with_store as resolve_events_with_store_v1,
    )
    from synapse.state.v2 import resolve_events_with_store
    from synapse.storage.databases.main.event_federation import StateDifference
except ImportError:  # pragma: no cover - depends on the test extra
    SYNAPSE_SKIP: str | None = "matrix-synapse is not installed"
else:
    SYNAPSE_SKIP = None

StateKey = tuple[str, str]
USERS = ["@alice:a.example", "@bob:b.example", "@carol:c.example", "@dan:a.example", "@erin:e.example"]


class _Clock:
    async def sleep(self, duration: object) -> None:
        return None


class _Store:
    def __init__(self, events: Mapping[str, EventBase]) -> None:
        self.events = events

    async def get_events(self, event_ids: Collection[str], allow_rejected: bool = False) -> dict[str, EventBase]:
        # As Synapse's store: rejected events only when asked for (state
        # resolution v1 never asks, v2 always does).
        return {
            e: self.events[e]
            for e in event_ids
            if e in self.events and (allow_rejected or not self.events[e].rejected_reason)
        }

    def _chain(self, event_ids: Collection[str]) -> set[str]:
        result: set[str] = set()
        stack = list(event_ids)
        while stack:
            event_id = stack.pop()
            if event_id in result or event_id not in self.events:
                continue
            result.add(event_id)
            stack.extend(self.events[event_id].auth_event_ids())
        return result

    async def get_auth_chain_difference(
        self,
        room_id: str,
        state_sets: list[set[str]],
        conflicted_state: set[str] | None,
        additional_backwards_reachable_conflicted_events: set[str] | None,
    ) -> StateDifference:
        # Synapse's database computes this with its chain cover index; here it
        # is done naively (and independently of our implementation): the
        # auth chains include the events themselves, and the conflicted
        # subgraph is (ancestors of conflicted) & (descendants of conflicted).
        chains = [self._chain(s) for s in state_sets]
        difference = set().union(*chains) - set(chains[0]).intersection(*chains[1:])
        subgraph = None
        if conflicted_state is not None:
            ancestors: set[str] = set()
            for c in conflicted_state:
                ancestors |= self._chain(self.events[c].auth_event_ids()) if c in self.events else set()
            descendants: set[str] = set()
            for event_id, event in self.events.items():
                chain = self._chain(event.auth_event_ids())
                if chain & conflicted_state:
                    descendants.add(event_id)
            subgraph = ancestors & descendants
        return StateDifference(auth_difference=difference, conflicted_subgraph=subgraph)


def _result_of(d: defer.Deferred) -> Any:
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "Synapse did not complete synchronously"
    if isinstance(results[0], Exception) or hasattr(results[0], "raiseException"):
        results[0].raiseException()
    return results[0]


class RandomRoom:
    def __init__(self, version: str, seed: int) -> None:
        self.version = version
        self.rv = get_room_version(version)
        self.syn_rv = SYN_VERSIONS[version]
        self.rng = random.Random(seed)
        self.ts = 1_000_000
        self.events: dict[str, dict[str, Any]] = {}
        self.syn_events: dict[str, EventBase] = {}
        self.state_after: dict[str, dict[StateKey, str]] = {}
        self.children: dict[str, int] = {}
        self.auth_comparisons = 0
        self.allowed = 0
        self.resolutions = 0
        self.rejected: set[str] = set()
        self.forged_resolutions = 0
        self.synapse_failures = 0
        self._id_counter = 0
        self.id_server_key = signing.decode_signing_key_base64("ed25519", "0", "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1")
        self.id_server_public = signing.encode_verify_key_base64(signing.get_verify_key(self.id_server_key))
        self.other_public = signing.encode_verify_key_base64(
            signing.get_verify_key(signing.decode_signing_key_base64("ed25519", "0", "A" * 43))
        )
        creator = USERS[0]
        content: dict[str, Any] = {"room_version": version}
        if not self.rv.implicit_room_creator:
            content["creator"] = creator
        if self.rv.creators_have_infinite_power and self.rng.random() < 0.5:
            content["additional_creators"] = [USERS[1]]
        if self.rng.random() < 0.15:
            content["m.federate"] = False
        create: dict[str, Any] = {
            "type": "m.room.create", "state_key": "", "sender": creator, "content": content,
            "origin_server_ts": self._next_ts(), "depth": 1, "prev_events": [], "auth_events": [],
            "hashes": {"sha256": "x"}, "signatures": {},
        }
        if self.rv.room_id_from_create_event:
            self.room_id = "!" + compute_event_id(create, self.rv)[1:]
        else:
            self.room_id = "!room:a.example"
            create["room_id"] = self.room_id
        if self.rv.event_id_in_pdu:
            create["event_id"] = self._new_event_id(creator)
        self.creators = auth_rules.get_room_creators(create, self.rv)
        self._add(create, {})

    def _new_event_id(self, sender: str) -> str:
        """Room versions 1/2: an id from the sender's server, now and then
        from another one (as for joins built by a resident server)."""
        self._id_counter += 1
        server = server_name_of(sender) if self.rng.random() < 0.85 else server_name_of(self.rng.choice(USERS))
        return make_legacy_event_id(f"{self._id_counter}{self.rng.randrange(10**6)}", server)

    def _next_ts(self) -> int:
        # Occasional equal timestamps exercise the event-id tie-break.
        self.ts += self.rng.choice((0, 1, 1, 2))
        return self.ts

    def _add(self, event: dict[str, Any], state_before: dict[StateKey, str], rejected: bool = False) -> str:
        event_id = compute_event_id(event, self.rv)
        syn_event = make_event_from_dict(
            copy.deepcopy(event), self.syn_rv, rejected_reason="auth" if rejected else None
        )
        assert syn_event.event_id == event_id, (syn_event.event_id, event_id)
        event = dict(event, event_id=event_id)
        self.events[event_id] = event
        self.syn_events[event_id] = syn_event
        state_after = dict(state_before)
        if rejected:
            self.rejected.add(event_id)
        elif "state_key" in event:
            state_after[(event["type"], event["state_key"])] = event_id
        self.state_after[event_id] = state_after
        self.children[event_id] = 0
        for p in prev_event_ids(event, self.rv):
            self.children[p] += 1
        return event_id

    # -- comparing ----------------------------------------------------------

    def resolve_both(self, state_sets: Sequence[dict[StateKey, str]]) -> dict[StateKey, str]:
        ours = state_resolution.resolve_state(self.version, state_sets, self.events, rejected_event_ids=self.rejected)
        store = _Store(self.syn_events)
        if self.rv.state_res_v1:
            call = resolve_events_with_store_v1(self.room_id, self.syn_rv, state_sets, None, store.get_events)
        else:
            call = resolve_events_with_store(
                _Clock(), self.room_id, self.syn_rv, state_sets, event_map=None, state_res_store=store,
            )
        try:
            theirs = _result_of(defer.ensureDeferred(call))
        except (KeyError, TypeError, ValueError, AttributeError, SynapseError):
            # Before room version 10 an accepted power levels event can hold
            # what Synapse's own lookups crash on ("events": [] when nothing
            # was there to compare it with); its auth checks then reject
            # everything that needs it (as ours do), but its state resolution
            # raises instead of answering: nothing to compare.
            if self.rv.enforce_int_power_levels:
                raise
            self.synapse_failures += 1
            return ours
        self.resolutions += 1
        assert dict(theirs) == ours, f"state resolution differs:\nsynapse={dict(theirs)}\nours={ours}"
        return ours

    def auth_both(self, event: dict[str, Any], state_before: dict[StateKey, str]) -> bool:
        auth_map = {
            k: self.events[state_before[k]]
            for k in auth_rules.auth_state_keys_for_event(event, self.rv)
            if k in state_before
        }
        try:
            auth_rules.check_auth_rules(event, auth_map, self.rv)
            ours = True
        except auth_rules.AuthError:
            ours = False
        pdu = {k: v for k, v in event.items() if k != "event_id" or self.rv.event_id_in_pdu}
        syn_event = make_event_from_dict(copy.deepcopy(pdu), self.syn_rv)
        try:
            check_state_dependent_auth_rules(syn_event, [self.syn_events[e["event_id"]] for e in auth_map.values()])
            theirs = True
        except (SynapseAuthError, SynapseError):
            theirs = False
        except (KeyError, TypeError, ValueError, AttributeError):
            # Malformed content Synapse trips over (e.g. a member event with
            # no membership): the event never gets accepted there either.
            theirs = False
        self.auth_comparisons += 1
        assert ours == theirs, f"auth differs (synapse={theirs}, ours={ours}) for {event} against {auth_map}"
        return ours

    # -- growing the room -------------------------------------------------------

    def _random_action(self, state: dict[StateKey, str]) -> tuple[str, str, dict[str, Any], str]:
        rng = self.rng
        sender = rng.choice(USERS)
        target = rng.choice(USERS)
        kinds = ["join", "leave", "invite", "ban", "kick", "knock", "pl", "jr", "topic", "restricted_join",
                 "message", "redaction", "custom_state", "tpi", "bad_pl", "bad_member", "odd_state_key", "tpi_invite"]
        weights = [5, 2, 3, 2, 2, 1, 3, 2, 3, 2, 2, 1, 1, 1, 1, 1, 1, 2]
        if not self.rv.enforce_int_power_levels:
            # What only older room versions treat specially.
            kinds += ["aliases", "loose_pl", "notifications_pl", "odd_redaction"]
            weights += [2, 3, 2, 1]
        kind = rng.choices(kinds, weights=weights)[0]
        if kind == "aliases":
            state_key = rng.choice([server_name_of(sender), server_name_of(sender), server_name_of(target), "", None])
            return sender, "m.room.aliases", {"aliases": ["#x:" + server_name_of(sender)]}, state_key  # type: ignore[return-value]
        if kind == "odd_redaction":
            return sender, "m.room.redaction", {"redacts": rng.choice([5, "$no_domain", None])}, None  # type: ignore[return-value]
        if kind in ("loose_pl", "notifications_pl"):
            current = state.get(("m.room.power_levels", ""))
            content = copy.deepcopy(self.events[current]["content"]) if current else {}
            if kind == "notifications_pl":
                content.setdefault("notifications", {})["room"] = rng.choice([0, 50, 100, "75"])
                return sender, "m.room.power_levels", content, ""
            # Strings and (where JSON need not be canonical) floats: int() reads them.
            values: list[Any] = [" 50 ", "+75", "0100", "-1", "1_0", "abc", "", "50.5"]
            if not self.rv.strict_canonical_json:
                values += [50.9, 99.99, -0.5]
            key = rng.choice(["users", "users", "events", "ban", "kick", "invite", "redact", "state_default", "events_default", "users_default"])
            if key == "users":
                content.setdefault("users", {})[rng.choice(USERS)] = rng.choice(values)
            elif key == "events":
                content.setdefault("events", {})[rng.choice(["m.room.topic", "m.room.power_levels", "m.room.message"])] = rng.choice(values)
            else:
                content[key] = rng.choice(values)
            return sender, "m.room.power_levels", content, ""
        if kind == "odd_state_key":
            # Power levels / join rules under a non-empty state key are plain
            # state as far as the rules go (Synapse compares them with their
            # own key's previous value).
            etype = rng.choice(["m.room.power_levels", "m.room.join_rules"])
            content = {"users": {target: 100}, "ban": 100} if etype == "m.room.power_levels" else {"join_rule": "public"}
            return sender, etype, content, "x"
        if kind == "message":
            return sender, "m.room.message", {"body": "hi"}, None  # type: ignore[return-value]
        if kind == "redaction":
            return sender, "m.room.redaction", {"redacts": rng.choice(sorted(self.events))}, None  # type: ignore[return-value]
        if kind == "custom_state":
            return sender, "m.custom", {}, rng.choice([target, sender, "", "x"])
        if kind == "tpi":
            # A malformed key (not 32 bytes) would crash Synapse's state
            # resolution outright (nacl.ValueError escapes its verifier), so
            # the "wrong key" case uses a well-formed key of another server.
            public = self.id_server_public if rng.random() < 0.8 else self.other_public
            if rng.random() < 0.5:
                return sender, "m.room.third_party_invite", {"display_name": "x", "public_key": public}, "tok"
            return sender, "m.room.third_party_invite", {"display_name": "x", "public_keys": [{"public_key": public}]}, "tok"
        if kind == "tpi_invite":
            signed = {"mxid": target if rng.random() < 0.8 else sender, "token": rng.choice(["tok", "tok", "other"])}
            key = self.id_server_key if rng.random() < 0.8 else signing.generate_signing_key("0")
            signed = signing.sign_json(signed, "id.example", key)
            return sender, "m.room.member", {"membership": "invite", "third_party_invite": {"display_name": "x", "signed": signed}}, target
        if kind == "bad_member":
            return sender, "m.room.member", rng.choice([{}, {"membership": "nope"}, {"membership": 5}]), target
        if kind == "bad_pl":
            current = state.get(("m.room.power_levels", ""))
            content = copy.deepcopy(self.events[current]["content"]) if current else {}
            key = rng.choice(["ban", "users_default", "events", "users", "notifications"])
            content[key] = rng.choice(["50", True, None, [], {"x": "1"}, {"@x:y": True}, {"not_a_user": 1}])
            return sender, "m.room.power_levels", content, ""
        if kind == "join":
            return sender, "m.room.member", {"membership": "join"}, sender
        if kind == "restricted_join":
            return sender, "m.room.member", {"membership": "join", "join_authorised_via_users_server": target}, sender
        if kind == "leave":
            return sender, "m.room.member", {"membership": "leave"}, sender
        if kind == "kick":
            return sender, "m.room.member", {"membership": "leave"}, target
        if kind in ("invite", "ban"):
            return sender, "m.room.member", {"membership": kind}, target
        if kind == "knock":
            return sender, "m.room.member", {"membership": "knock"}, sender
        if kind == "jr":
            rule = rng.choice(["public", "invite", "knock", "restricted", "knock_restricted"])
            return sender, "m.room.join_rules", {"join_rule": rule}, ""
        if kind == "topic":
            return sender, "m.room.topic", {"topic": str(rng.random())}, ""
        # power levels: tweak the current ones
        current = state.get(("m.room.power_levels", ""))
        content = copy.deepcopy(self.events[current]["content"]) if current else {}
        users = content.setdefault("users", {})
        for _ in range(rng.randint(1, 3)):
            what = rng.random()
            if what < 0.5:
                user = rng.choice(USERS)
                users[user] = rng.choice([0, 10, 50, 75, 100])
            elif what < 0.6 and users:
                users.pop(rng.choice(sorted(users)))
            else:
                key = rng.choice(["ban", "kick", "invite", "state_default", "events_default", "redact"])
                content[key] = rng.choice([0, 25, 50, 75, 100])
        if self.rv.creators_have_infinite_power:
            # Mostly respect the creator rule, sometimes test it.
            if rng.random() < 0.9:
                for creator in self.creators:
                    users.pop(creator, None)
        return sender, "m.room.power_levels", content, ""

    def grow(self, steps: int) -> None:
        rng = self.rng
        creator = USERS[0]
        create_id = next(iter(self.events))
        # Bootstrap so there is something to fight over.
        last = create_id
        setup: list[tuple[str, str, dict[str, Any], str]] = [
            (creator, "m.room.member", {"membership": "join"}, creator),
            (creator, "m.room.power_levels", {"users": {} if self.rv.creators_have_infinite_power else {creator: 100}, "users_default": 0}, ""),
            (creator, "m.room.join_rules", {"join_rule": "public"}, ""),
        ]
        for sender, etype, content, state_key in setup:
            event = self._build([last], self.state_after[last], sender, etype, content, state_key)
            assert self.auth_both(event, self.state_after[last])
            last = self._add(event, self.state_after[last])
        for _ in range(steps):
            ids = list(self.events)
            tips = [e for e in ids if self.children[e] == 0]
            n_prev = rng.choice((1, 1, 1, 2, 2, 3))
            pool = tips if rng.random() < 0.7 else ids[-15:]
            prev = sorted(set(rng.sample(pool, min(n_prev, len(pool)))))
            if len(prev) == 1:
                state_before = dict(self.state_after[prev[0]])
            else:
                state_before = self.resolve_both([self.state_after[p] for p in prev])
            sender, etype, content, state_key = self._random_action(state_before)
            event = self._build(prev, state_before, sender, etype, content, state_key)
            if self.auth_both(event, state_before):
                self.allowed += 1
                self._add(event, state_before)
            elif (
                "state_key" in event
                and (event["type"] != "m.room.member" or isinstance(event["content"].get("membership"), str))
                and rng.random() < 0.3
            ):
                # Keep some rejected events in the DAG, as a server must.
                self._add(event, state_before, rejected=True)
        # Finally resolve the room's extremities and a random bunch of states.
        tips = [e for e in self.events if self.children[e] == 0]
        if len(tips) > 1:
            self.resolve_both([self.state_after[t] for t in tips])
        sample = rng.sample(list(self.events), min(4, len(self.events)))
        self.resolve_both([self.state_after[s] for s in sample])
        # A lying server's state set containing rejected events: they must be
        # ignored identically.
        rejected_state = [e for e in sorted(self.rejected) if "state_key" in self.events[e]]
        for rejected_id in rng.sample(rejected_state, min(3, len(rejected_state))):
            event = self.events[rejected_id]
            forged = dict(self.state_after[rng.choice(list(self.events))])
            forged[(event["type"], event["state_key"])] = rejected_id
            self.resolve_both([forged, self.state_after[rng.choice(list(self.events))]])
            self.forged_resolutions += 1

    def _build(self, prev: list[str], state_before: dict[StateKey, str], sender: str, etype: str, content: dict[str, Any], state_key: str | None) -> dict[str, Any]:
        event: dict[str, Any] = {
            "type": etype, "sender": sender, "room_id": self.room_id,
            "content": content, "origin_server_ts": self._next_ts(),
            "depth": 1 + max(self.events[p]["depth"] for p in prev),
            "prev_events": prev, "hashes": {"sha256": "x"}, "signatures": {},
        }
        if state_key is not None:
            event["state_key"] = state_key
        if etype == "m.room.redaction" and not self.rv.updated_redaction_rules:
            event["redacts"] = content.pop("redacts")
        event["auth_events"] = [
            state_before[k] for k in auth_rules.auth_types_for_event(event, self.rv) if k in state_before
        ]
        if self.rv.event_id_in_pdu:
            for key in ("prev_events", "auth_events"):
                event[key] = [event_reference(self.events[e], self.rv) for e in event[key]]
            event["event_id"] = self._new_event_id(sender)
        return event


class DifferentialTests(unittest.TestCase):
    skip = SYNAPSE_SKIP

    def _fuzz(self, version: str, seeds: range, steps: int) -> None:
        totals = [0, 0, 0]
        for seed in seeds:
            room = RandomRoom(version, seed)
            try:
                room.grow(steps)
            except AssertionError as e:
                self.fail(f"room version {version}, seed {seed}: {e}")
            totals[0] += room.auth_comparisons
            totals[1] += room.allowed
            totals[2] += room.resolutions
        # Make sure the fuzzer actually exercised things.
        self.assertGreater(totals[1], len(seeds) * steps // 10)
        self.assertGreater(totals[2], len(seeds) * 3)

    def test_v1(self) -> None:
        self._fuzz("1", range(1000, 1012), 60)

    def test_v2(self) -> None:
        self._fuzz("2", range(2000, 2012), 60)

    def test_v3(self) -> None:
        self._fuzz("3", range(3000, 3012), 60)

    def test_v4(self) -> None:
        self._fuzz("4", range(4000, 4012), 60)

    def test_v5(self) -> None:
        self._fuzz("5", range(5000, 5012), 60)

    def test_v6(self) -> None:
        self._fuzz("6", range(6000, 6012), 60)

    def test_v7(self) -> None:
        self._fuzz("7", range(7000, 7012), 60)

    def test_v8(self) -> None:
        self._fuzz("8", range(8000, 8012), 60)

    def test_v9(self) -> None:
        self._fuzz("9", range(9000, 9012), 60)

    def test_v10(self) -> None:
        self._fuzz("10", range(0, 12), 60)

    def test_v11(self) -> None:
        self._fuzz("11", range(100, 112), 60)

    def test_v12(self) -> None:
        self._fuzz("12", range(200, 212), 60)


class StateResetVsSynapseTests(unittest.TestCase):
    """The hand-built state-reset scenario gives Synapse's answers too."""

    skip = SYNAPSE_SKIP

    def test_state_reset(self) -> None:
        from .test_state_resolution_v2 import StateResetTests

        for version in (str(n) for n in range(1, 13)):
            rv = get_room_version(version)
            room, sets, _ = StateResetTests.build(version)
            syn_events = {}
            for event_id, event in room.events.items():
                syn_event = make_event_from_dict(
                    {k: copy.deepcopy(v) for k, v in event.items() if k != "event_id" or rv.event_id_in_pdu},
                    SYN_VERSIONS[version],
                )
                self.assertEqual(syn_event.event_id, event_id)
                syn_events[event_id] = syn_event
            if rv.state_res_v1:
                call = resolve_events_with_store_v1(room.room_id, SYN_VERSIONS[version], sets, None, _Store(syn_events).get_events)
            else:
                call = resolve_events_with_store(
                    _Clock(), room.room_id, SYN_VERSIONS[version], sets, event_map=None,
                    state_res_store=_Store(syn_events),
                )
            theirs = _result_of(defer.ensureDeferred(call))
            self.assertEqual(dict(theirs), state_resolution.resolve_state(version, sets, room.events), version)


class SigningAndRedactionVsSynapseTests(unittest.TestCase):
    """Hashes, signatures and redactions of fuzzed events match Synapse's."""

    skip = SYNAPSE_SKIP

    def test_sign_and_redact(self) -> None:
        from synapse.crypto.event_signing import (
            add_hashes_and_signatures,
            compute_event_reference_hash,
        )
        from synapse.events.utils import prune_event

        from homeserver.protocol import redaction
        from homeserver.protocol.event_hashing import check_content_hash
        from homeserver.protocol.event_ids import compute_reference_hash

        key = signing.decode_signing_key_base64("ed25519", "1", "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1")
        checked = 0
        for version in (str(n) for n in range(1, 13)):
            legacy_ids = get_room_version(version).event_id_in_pdu
            for seed in range(4 if int(version) >= 10 else 2):
                room = RandomRoom(version, 1000 + seed)
                room.grow(60)
                for event_id, event in room.events.items():
                    pdu = {
                        k: copy.deepcopy(v)
                        for k, v in event.items()
                        if k not in ("hashes", "signatures") and (k != "event_id" or legacy_ids)
                    }
                    pdu["content"] = dict(pdu["content"], body_extra="redact me")
                    pdu["unsigned"] = {"age": 10}
                    theirs = copy.deepcopy(pdu)
                    add_hashes_and_signatures(SYN_VERSIONS[version], theirs, "a.example", key)
                    ours = signing.sign_event(pdu, version, "a.example", key)
                    self.assertEqual(ours, theirs, f"v{version} {event_id}")
                    self.assertTrue(check_content_hash(ours))
                    syn_event = make_event_from_dict(copy.deepcopy(ours), SYN_VERSIONS[version])
                    # Through JSON: Synapse hands v1/v2 citation pairs back as tuples.
                    pruned = json.loads(json.dumps(prune_event(syn_event).get_pdu_json()))
                    pruned.pop("unsigned", None)
                    self.assertEqual(redaction.redact_event(ours, version), pruned, f"v{version} {event_id}")
                    self.assertEqual(
                        compute_reference_hash(ours, version), compute_event_reference_hash(syn_event)[1], f"v{version} {event_id}"
                    )
                    signing.verify_event_signature(ours, version, "a.example", signing.get_verify_key(key))
                    checked += 1
        self.assertGreater(checked, 800)


class StateResolutionV1ScenariosVsSynapseTests(unittest.TestCase):
    """The hand-built scenarios of test_state_resolution_v1 (and the standard
    v2 ones) in room version 1: every pair of states in each DAG resolves as
    Synapse's `synapse/state/v1.py` resolves it."""

    skip = SYNAPSE_SKIP

    def test_scenarios(self) -> None:
        from .test_state_resolution_v2 import ALICE as A
        from .test_state_resolution_v2 import BOB as B
        from .test_state_resolution_v2 import CHARLIE as C
        from .test_state_resolution_v2 import EVELYN as E
        from .test_state_resolution_v2 import Graph, Node

        scenarios = [
            (
                [
                    Node("PA", A, "m.room.power_levels", "", {"users": {A: 100, B: 50}}),
                    Node("MA", A, "m.room.member", A, {"membership": "join"}),
                    Node("MB", A, "m.room.member", B, {"membership": "ban"}),
                    Node("PB", B, "m.room.power_levels", "", {"users": {A: 100, B: 50}}),
                ],
                [["END", "MB", "MA", "PA", "START"], ["END", "PB", "PA"]],
            ),
            (
                [
                    Node("JR", A, "m.room.join_rules", "", {"join_rule": "invite"}),
                    Node("ME", E, "m.room.member", E, {"membership": "join"}),
                ],
                [["END", "JR", "START"], ["END", "ME", "START"]],
            ),
            (
                [
                    Node("PA", A, "m.room.power_levels", "", {"users": {A: 100, B: 50}}),
                    Node("PB", B, "m.room.power_levels", "", {"users": {A: 100, B: 50, C: 0}}),
                    Node("PC", C, "m.room.power_levels", "", {"users": {A: 100, B: 50, C: 0}, "ban": 0}),
                    Node("KC", B, "m.room.member", C, {"membership": "leave"}),
                    Node("PD", A, "m.room.power_levels", "", {"users": {A: 100, B: 0}}),
                ],
                [["END", "PC", "PB", "PA", "START"], ["END", "KC", "PA"], ["END", "PD", "PA"]],
            ),
            (
                [
                    Node("PA", A, "m.room.power_levels", "", {"users": {A: 100}, "state_default": 50}),
                    Node("T1", A, "m.room.topic", "", {"topic": "a"}),
                    Node("TC", C, "m.room.topic", "", {"topic": "c"}),
                    Node("TB", B, "m.room.topic", "", {"topic": "b"}),
                    Node("T2", A, "m.room.topic", "", {"topic": "a2"}),
                    Node("JB", B, "m.room.join_rules", "", {"join_rule": "invite"}),
                ],
                [["END", "TB", "TC", "T1", "PA", "START"], ["END", "T2", "JB", "PA"]],
            ),
        ]
        compared = 0
        for nodes, edges in scenarios:
            graph = Graph("1", nodes, edges)
            syn_events = {
                event_id: make_event_from_dict(
                    dict(copy.deepcopy(event), hashes={"sha256": "x"}, signatures={}), SYN_VERSIONS["1"]
                )
                for event_id, event in graph.event_map.items()
            }
            states = list(graph.state_after.values())
            for i, first in enumerate(states):
                for second in states[i + 1 :]:
                    for sets in ([first, second], [second, first], [first, second, states[0]]):
                        ours = state_resolution.resolve_state("1", sets, graph.event_map)
                        theirs = _result_of(
                            defer.ensureDeferred(
                                resolve_events_with_store_v1(
                                    graph.room_id, SYN_VERSIONS["1"], sets, None, _Store(syn_events).get_events
                                )
                            )
                        )
                        self.assertEqual(dict(theirs), ours)
                        compared += 1
        self.assertGreater(compared, 300)


class RoomVersionFlagsVsSynapseTests(unittest.TestCase):
    """Each room version's flags are Synapse's, under our names."""

    skip = SYNAPSE_SKIP

    def test_flags(self) -> None:
        from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS

        same_name = (
            "implicit_room_creator", "updated_redaction_rules", "restricted_join_rule", "restricted_join_rule_fix",
            "knock_join_rule", "knock_restricted_join_rule", "enforce_int_power_levels",
            "limit_notifications_power_levels", "enforce_key_validity", "special_case_aliases_auth",
        )
        for identifier, rv in KNOWN_ROOM_VERSIONS.items():
            theirs = SYN_VERSIONS[identifier]
            for flag in same_name:
                self.assertEqual(getattr(rv, flag), getattr(theirs, flag), f"v{identifier} {flag}")
            self.assertEqual(rv.strict_canonical_json, theirs.strict_canonicaljson, identifier)
            self.assertEqual(rv.strict_event_byte_limits, theirs.strict_event_byte_limits_room_versions, identifier)
            self.assertEqual(rv.room_id_from_create_event, theirs.msc4291_room_ids_as_hashes, identifier)
            self.assertEqual(rv.creators_have_infinite_power, theirs.msc4289_creator_power_enabled, identifier)
            self.assertEqual(rv.state_res_v1, theirs.state_res == 1, identifier)
            self.assertEqual(rv.state_res_v2_1, theirs.state_res == 3, identifier)
            self.assertEqual(rv.event_id_in_pdu, theirs.event_format == 1, identifier)
            self.assertEqual(rv.url_safe_event_ids, theirs.event_format >= 3, identifier)
        self.assertEqual(set(KNOWN_ROOM_VERSIONS), {v for v, r in SYN_VERSIONS.items() if r.disposition == "stable"})
