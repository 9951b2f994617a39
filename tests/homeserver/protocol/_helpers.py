"""Builds realistic rooms for auth-rule and state-resolution tests.

Events get real event ids (reference hashes attached under "event_id" as the
server's callers do; in room versions 1 and 2 ids "$n:<sender's server>" in
the PDU, and `prev_events` / `auth_events` as `[id, hashes]` pairs), real
room ids (v12: derived from the create event) and `auth_events` chosen by
the auth events selection algorithm.
"""

from __future__ import annotations

import itertools
from typing import Any

from homeserver.protocol import auth_rules
from homeserver.protocol.event_ids import (
    compute_event_id,
    event_reference,
    make_legacy_event_id,
)
from homeserver.protocol.identifiers import server_name_of
from homeserver.protocol.room_versions import RoomVersion, get_room_version

StateKey = tuple[str, str]

ALICE = "@alice:a.example"
BOB = "@bob:b.example"
CHARLIE = "@charlie:c.example"
DAVE = "@dave:d.example"
EVE = "@eve:e.example"
ZARA = "@zara:z.example"


class Room:
    def __init__(
        self,
        version: str | RoomVersion,
        creator: str = ALICE,
        create_content: dict[str, Any] | None = None,
        ts_start: int = 1000,
    ) -> None:
        self.rv = get_room_version(version)
        self.events: dict[str, dict[str, Any]] = {}
        self.state: dict[StateKey, str] = {}
        self._ts = itertools.count(ts_start)
        self._ids = itertools.count(1)
        content: dict[str, Any] = {"room_version": self.rv.identifier}
        if not self.rv.implicit_room_creator:
            content["creator"] = creator
        content.update(create_content or {})
        create: dict[str, Any] = {
            "type": "m.room.create",
            "state_key": "",
            "sender": creator,
            "content": content,
            "origin_server_ts": next(self._ts),
            "depth": 1,
            "prev_events": [],
            "auth_events": [],
            "hashes": {"sha256": "x"},
            "signatures": {},
        }
        if self.rv.room_id_from_create_event:
            create["event_id"] = compute_event_id(create, self.rv)
            self.room_id = "!" + create["event_id"][1:]
        else:
            self.room_id = "!room:" + creator.split(":", 1)[1]
            create["room_id"] = self.room_id
            if self.rv.event_id_in_pdu:
                create["event_id"] = self.legacy_event_id(creator)
            create["event_id"] = compute_event_id(create, self.rv)
        self.create = create
        self._add(create)
        self.state[("m.room.create", "")] = create["event_id"]
        self.last = create["event_id"]

    # -- building -------------------------------------------------------------

    def legacy_event_id(self, sender: str) -> str:
        """Room versions 1/2: a fresh id from the sender's server."""
        return make_legacy_event_id(str(next(self._ids)), server_name_of(sender))

    def _add(self, event: dict[str, Any]) -> None:
        self.events[event["event_id"]] = event

    def make(
        self,
        etype: str,
        sender: str,
        content: dict[str, Any],
        state_key: str | None = None,
        *,
        state: dict[StateKey, str] | None = None,
        prev: list[str] | None = None,
        ts: int | None = None,
        auth_events: list[str] | None = None,
    ) -> dict[str, Any]:
        """Build (but do not apply) an event whose auth_events come from
        `state` (default: the room's current state)."""
        state = self.state if state is None else state
        event: dict[str, Any] = {
            "type": etype,
            "sender": sender,
            "room_id": self.room_id,
            "content": content,
            "origin_server_ts": next(self._ts) if ts is None else ts,
            "depth": 2,
            "prev_events": [self.last] if prev is None else prev,
            "hashes": {"sha256": "x"},
            "signatures": {},
        }
        if state_key is not None:
            event["state_key"] = state_key
        if auth_events is None:
            auth_events = [
                state[k] for k in auth_rules.auth_types_for_event(event, self.rv) if k in state
            ]
        event["auth_events"] = auth_events
        if self.rv.event_id_in_pdu:
            for key in ("prev_events", "auth_events"):
                event[key] = [event_reference(self.events[e], self.rv) for e in event[key]]
            event["event_id"] = self.legacy_event_id(sender)
        event["event_id"] = compute_event_id(event, self.rv)
        self._add(event)
        return event

    def auth_map(
        self, event: dict[str, Any], state: dict[StateKey, str] | None = None
    ) -> dict[StateKey, dict[str, Any]]:
        """The state subset check_auth_rules needs (create included for v12)."""
        state = self.state if state is None else state
        result = {}
        for key in auth_rules.auth_state_keys_for_event(event, self.rv):
            if key in state:
                result[key] = self.events[state[key]]
        if auth_rules.CREATE_KEY not in result:
            result[auth_rules.CREATE_KEY] = self.create
        return result

    def check(self, event: dict[str, Any], state: dict[StateKey, str] | None = None) -> None:
        auth_rules.check_auth_rules(event, self.auth_map(event, state), self.rv)

    def send(self, etype: str, sender: str, content: dict[str, Any], state_key: str | None = None, **kw: Any) -> dict[str, Any]:
        """Build, auth-check (raising AuthError) and apply to current state."""
        event = self.make(etype, sender, content, state_key, **kw)
        self.check(event)
        self.apply(event)
        return event

    def apply(self, event: dict[str, Any]) -> None:
        if "state_key" in event:
            self.state[(event["type"], event["state_key"])] = event["event_id"]
        self.last = event["event_id"]

    # -- common events --------------------------------------------------------

    def start(
        self,
        creator: str = ALICE,
        join_rule: str = "public",
        power_levels: dict[str, Any] | None = None,
    ) -> None:
        """create has been applied already; add creator join, PLs, join rules."""
        self.send("m.room.member", creator, {"membership": "join"}, creator)
        if power_levels is None:
            power_levels = {} if self.rv.creators_have_infinite_power else {"users": {creator: 100}}
        self.send("m.room.power_levels", creator, power_levels, "")
        self.send("m.room.join_rules", creator, {"join_rule": join_rule}, "")

    def join(self, user: str, **kw: Any) -> dict[str, Any]:
        return self.send("m.room.member", user, {"membership": "join"}, user, **kw)
