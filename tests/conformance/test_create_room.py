"""What ``/createRoom`` writes, compared with a real Synapse field by field: for each preset
(and the preset implied by ``visibility``), in room versions 11 and 12, the room's events
in the order they were created and every state event's content (user ids mapped to
names). Synapse writes no ``m.room.guest_access`` for a public chat, its power levels
(``historical``, no ``notifications``, each preset's changes), and a topic with the
spec's ``m.topic`` object (Complement's apidoc_room_create_rich_topic_test.go)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from twisted.trial import unittest

from tests.support.differential import server_pair
from tests.support.wspr import MatrixClient

V3 = "/_matrix/client/v3"

CASES: list[tuple[str, dict[str, Any]]] = [
    ("private_chat", {"preset": "private_chat"}),
    ("trusted_private_chat with an invitee", {"preset": "trusted_private_chat", "invite": ["{bob}"]}),
    ("public_chat", {"preset": "public_chat"}),
    ("visibility public", {"visibility": "public"}),
    ("visibility private", {"visibility": "private"}),
    ("name, topic, alias", {"preset": "public_chat", "name": "Room", "topic": "Test Room", "room_alias_name": "{alias}"}),
    ("topic and a topic in initial_state", {
        "topic": "Test Room",
        "initial_state": [{"type": "m.room.topic", "state_key": "", "content": {"topic": "Shenanigans"}}],
    }),
    ("initial_state replaces preset state", {
        "preset": "private_chat",
        "initial_state": [
            {"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "forbidden"}},
            {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "public"}},
            {"type": "org.example", "state_key": "", "content": {"first": True}},
            {"type": "org.example", "state_key": "", "content": {"second": True}},
        ],
    }),
    ("power_level_content_override", {"preset": "public_chat", "power_level_content_override": {"events": {"m.room.name": 0}, "ban": 99}}),
]


def fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        for k, v in names.items():
            value = value.replace("{" + k + "}", v)
        return value
    if isinstance(value, list):
        return [fill(v, names) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, names) for k, v in value.items()}
    return value


def anonymise(value: Any, ids: dict[str, str]) -> Any:
    """User ids (and the alias) as names, in keys and values."""
    if isinstance(value, str):
        return ids.get(value, value)
    if isinstance(value, list):
        return [anonymise(v, ids) for v in value]
    if isinstance(value, dict):
        return {ids.get(k, k): anonymise(v, ids) for k, v in value.items()}
    return value


class CreateRoomConformanceTest(unittest.TestCase):
    timeout = 240

    async def test_every_preset_writes_what_synapse_writes(self) -> None:
        pair = await server_pair(self)
        written: dict[str, dict[str, Any]] = {}
        for side in pair:
            alice = await side.register("alice")
            bob = await side.register("bob")
            for version in ("11", "12"):
                for name, body in CASES:
                    alias = side.localpart(f"room{version}{len(written.get(side.label, {}))}")
                    request = fill({**body, "room_version": version}, {"bob": bob.user_id, "alias": alias})
                    code, created = await alice.raw("POST", V3 + "/createRoom", request)
                    self.assertEqual(code, 200, (side.label, name, created))
                    room_id = created["room_id"]
                    ids = {
                        alice.user_id: "@alice",
                        bob.user_id: "@bob",
                        f"#{alias}:{side.server_name}": "#alias",
                        room_id: "!room",
                        side.localpart("alice"): "alice",  # display names
                        side.localpart("bob"): "bob",
                    }
                    written.setdefault(side.label, {})[f"v{version} {name}"] = await self._room(alice, room_id, ids)
        for case, synapse in written["Synapse"].items():
            self.maxDiff = None
            self.assertEqual(written["WSPR"][case], synapse, case)

    async def _room(self, user: MatrixClient, room_id: str, ids: dict[str, str]) -> dict[str, Any]:
        page = await user.request("GET", f"{V3}/rooms/{quote(room_id)}/messages?dir=f&limit=50")
        order = [(e["type"], anonymise(e.get("state_key"), ids)) for e in page["chunk"]]
        state = await user.request("GET", f"{V3}/rooms/{quote(room_id)}/state")
        contents = {
            f"{e['type']}|{anonymise(e['state_key'], ids)}": anonymise(e["content"], ids)
            for e in state
            if e["type"] != "m.room.create"
        }
        create = next(e["content"] for e in state if e["type"] == "m.room.create")
        create = {k: anonymise(v, ids) for k, v in create.items() if k != "predecessor"}
        return {"order": order, "state": contents, "create": create}
