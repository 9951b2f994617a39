"""Simplified sliding sync (MSC4186) answered as Synapse answers it: the same scenario on
WSPR and on a real Synapse, step by step, compared by shape (keys and JSON types of every
field, the error codes), with room, user and event IDs replaced by names that are the
same on both servers.

Values are not compared (positions, bump stamps, tokens and timestamps differ between
servers), nor list order where Synapse leaves it open (it does not sort a list whose
range covers every room; a room's state comes in no particular order).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from twisted.trial import unittest

from tests.support.differential import Side, server_pair
from tests.support.wspr import MatrixClient

SS = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"

IGNORED = (
    # Synapse adds MSC4115's unsigned.membership to every event; WSPR does not.
    "*unsigned.membership",
    # What room creation and push rules put in content is not sliding sync's business
    # (default power levels, the order of the default push rules).
    "rooms.!enc.required_state*.content.*",
    "extensions.account_data.global*.content.*",
)

ROOM_STATE = [
    ["m.room.name", ""],
    ["m.room.member", "$LAZY"],
    ["m.room.member", "$ME"],
    ["m.room.encryption", ""],
    ["m.room.create", ""],
]
EXTENSIONS = {
    "to_device": {"enabled": True},
    "e2ee": {"enabled": True},
    "account_data": {"enabled": True},
    "receipts": {"enabled": True},
    "typing": {"enabled": True},
}


def normalised(value: Any, names: dict[str, str]) -> Any:
    """IDs replaced by shared names, as keys or values; lists whose order is the server's
    business (state, account data) sorted."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            key = names.get(k, "$event" if k.startswith("$") else k)
            out[key] = normalised(v, names)
        for field in ("required_state", "invite_state", "global"):
            if isinstance(out.get(field), list):
                out[field] = sorted(out[field], key=lambda e: (e.get("type", ""), str(e.get("state_key", ""))))
        return out
    if isinstance(value, list):
        return [normalised(v, names) for v in value]
    if isinstance(value, str):
        return names.get(value, value)
    return value


async def call(side: Side, who: MatrixClient, name: str, names: dict[str, str], body: Any, pos: str | None = None,
               timeout: int = 0) -> Any:
    path = SS + f"?timeout={timeout}" + (f"&pos={quote(pos)}" if pos is not None else "")
    code, answer = await who.raw("POST", path, body)
    side.record(name, code, normalised(answer, names))
    return answer


class SlidingSyncConformanceTest(unittest.TestCase):
    timeout = 240

    async def test_sliding_sync_answers_like_synapse(self) -> None:
        pair = await server_pair(self)
        for side in pair:
            alice = await side.register("alice")
            bob = await side.register("bob")
            named = (await alice.post("/createRoom", {"name": "Named", "room_version": "11", "invite": [bob.user_id]}))["room_id"]
            enc = (await alice.post("/createRoom", {"room_version": "11", "initial_state": [
                {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}]}))["room_id"]
            await bob.post(f"/join/{quote(named)}")
            dm = (await alice.post("/createRoom", {"is_direct": True, "room_version": "11", "invite": [bob.user_id]}))["room_id"]
            await alice.put(f"/user/{quote(alice.user_id)}/account_data/m.direct", {bob.user_id: [dm]})
            await alice.put(f"/user/{quote(alice.user_id)}/rooms/{quote(named)}/account_data/org.example", {"a": 1})
            first_event = await alice.send_message(named, "hello")
            await bob.post(f"/rooms/{quote(named)}/receipt/m.read/{quote(first_event)}", {})
            names = {named: "!named", enc: "!enc", dm: "!dm", alice.user_id: "@alice", bob.user_id: "@bob"}

            body = {
                "lists": {"all": {"ranges": [[0, 10]], "timeline_limit": 3, "required_state": ROOM_STATE}},
                "room_subscriptions": {enc: {"timeline_limit": 1, "required_state": [["*", "*"]]}},
                "extensions": EXTENSIONS,
            }
            first = await call(side, alice, "initial", names, body)
            await call(side, bob, "an invite and a joined room", names, body)
            await bob.send_message(named, "from bob")
            await bob.put(f"/rooms/{quote(named)}/typing/{quote(bob.user_id)}", {"typing": True, "timeout": 10000})
            second_event = await alice.send_message(named, "read this")
            await bob.post(f"/rooms/{quote(named)}/receipt/m.read/{quote(second_event)}", {})
            second = await call(side, alice, "incremental", names, body, first["pos"])
            await alice.put(f"/rooms/{quote(named)}/state/m.room.name/", {"name": "Renamed"})
            third = await call(side, alice, "a name change", names, body, second["pos"])
            await call(side, alice, "nothing new", names, body, third["pos"])
            more_state = {**body, "lists": {"all": {"ranges": [[0, 10]], "timeline_limit": 3,
                                                    "required_state": ROOM_STATE + [["m.room.join_rules", ""]]}}}
            await call(side, alice, "required_state asks for more", names, more_state, third["pos"])
            await call(side, alice, "a filtered list", names, {"lists": {
                "dms": {"ranges": [[0, 5]], "timeline_limit": 0, "required_state": [], "filters": {"is_dm": True}},
                "encrypted": {"ranges": [[0, 5]], "timeline_limit": 1, "required_state": [],
                              "filters": {"is_encrypted": True, "not_room_types": ["m.space"]}},
            }})
            await call(side, alice, "a list without ranges", names, {"lists": {
                "count": {"timeline_limit": 1, "required_state": []}}})
            await call(side, alice, "extensions only", names, {"conn_id": "e2ee", "extensions": EXTENSIONS})
            await call(side, alice, "an unknown position", names, body, "7777/" + first["pos"].split("/", 1)[1])
            await call(side, alice, "an unreadable position", names, body, "garbage")
            await call(side, alice, "a missing field", names, {"lists": {"a": {"ranges": [[0, 1]], "timeline_limit": 1}}})
            await call(side, alice, "two missing fields", names, {"lists": {"a": {"ranges": [[0, 1]]}}})
            await call(side, alice, "a wrong type", names, {"lists": {"a": {"timeline_limit": "1", "required_state": []}}})
            await call(side, alice, "a bad to-device token", names, {"extensions": {"to_device": {"enabled": True, "since": "x"}}})
        pair.assert_same(*IGNORED)
