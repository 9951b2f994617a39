"""Complement's spaces cases, ported (tests/conformance/complement.py runs each on Synapse and
WSPR): tests/room_hierarchy_test.go, TestClientSpacesSummary and
TestClientSpacesSummaryJoinRules (GET /_matrix/client/v1/rooms/{roomId}/hierarchy).
TestFederatedClientSpaces is in tests/federation/test_hierarchy.py's client part."""

from __future__ import annotations

from typing import Any

from twisted.trial import unittest

from tests.conformance.complement import (
    V1,
    CaseFn,
    Side,
    create_room,
    expect,
    invite,
    join,
    new_user,
    on_both,
    q,
    send_state,
)

SPACE = {"type": "m.space"}
WORLD_READABLE = [{"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "world_readable"}}]


def rooms_of(body: dict[str, Any]) -> list[str]:
    return sorted(r["room_id"] for r in body["rooms"])


def links_of(body: dict[str, Any]) -> list[str]:
    return sorted(f"{r['room_id']}|{ev['state_key']}|{ev['type']}" for r in body["rooms"] for ev in r["children_state"])


def link(src: str, dst: str) -> str:
    return f"{src}|{dst}|m.space.child"


class SpacesTest(unittest.TestCase):
    timeout = 240

    async def test_client_spaces_summary(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice, bob = await new_user(side, "alice"), await new_user(side, "bob")
            hs = side.server_name
            names: dict[str, str] = {}

            async def room(who: Any, name: str, **body: Any) -> str:
                room_id = await create_room(who, preset="public_chat", name=name, **body)
                names[room_id] = name
                return room_id

            root = await room(alice, "Root", creation_content=SPACE)
            r1 = await room(alice, "R1")
            ss1 = await room(alice, "Sub-Space 1", topic="Some topic for sub-space 1", creation_content=SPACE)
            r2 = await room(alice, "R2")
            ss2 = await room(alice, "SS2", creation_content=SPACE)
            r3 = await room(alice, "R3")
            r4 = await room(bob, "R4", initial_state=WORLD_READABLE)
            r5 = await room(bob, "R5")

            async def child(parent: str, child_id: str, **extra: Any) -> None:
                await send_state(alice, parent, "m.space.child", {"via": [hs], **extra}, child_id)

            await child(root, r1, suggested=True)
            await child(root, ss1)
            await child(root, r2, suggested=True)
            await child(r2, r5)  # ignored: R2 is not a space
            await send_state(alice, r2, "m.space.parent", {"via": [hs]}, root)
            await child(ss1, ss2)
            await child(ss2, r3)
            await child(ss2, r4)

            async def hierarchy(query: str = "") -> dict[str, Any]:
                return dict(await expect(alice, "GET", f"{V1}/rooms/{q(root)}/hierarchy{query}"))

            with case("query whole graph"):
                body = await hierarchy()
                assert rooms_of(body) == sorted([root, r1, r2, r3, r4, ss1, ss2]), body
                for entry in body["rooms"]:
                    assert entry.get("name") == names[entry["room_id"]], entry
                assert next(r for r in body["rooms"] if r["room_id"] == ss1)["room_type"] == "m.space"
                assert links_of(body) == sorted([link(root, r1), link(root, r2), link(root, ss1), link(ss1, ss2),
                                                 link(ss2, r3), link(ss2, r4)]), links_of(body)
            with case("max_depth"):
                body = await hierarchy("?max_depth=1")
                assert rooms_of(body) == sorted([root, r1, r2, ss1]), body
                assert links_of(body) == sorted([link(root, r1), link(root, r2), link(root, ss1), link(ss1, ss2)]), links_of(body)
            with case("suggested_only"):
                body = await hierarchy("?suggested_only=true")
                assert rooms_of(body) == sorted([root, r1, r2]), body
                assert links_of(body) == sorted([link(root, r1), link(root, r2)]), links_of(body)
            with case("pagination"):
                body = await hierarchy("?limit=4")
                assert rooms_of(body) == sorted([root, r1, ss1, ss2]), body
                body = await hierarchy(f"?from={q(body['next_batch'])}")
                assert rooms_of(body) == sorted([r3, r4, r2]), body
            with case("an unknown pagination token is refused"):
                await expect(alice, "GET", f"{V1}/rooms/{q(root)}/hierarchy?from=nope", status=400, errcode="M_INVALID_PARAM")
            with case("redact link"):
                await send_state(alice, root, "m.space.child", {}, ss1)
                body = await hierarchy()
                assert rooms_of(body) == sorted([root, r1, r2]), body
                assert links_of(body) == sorted([link(root, r1), link(root, r2)]), links_of(body)

        await on_both(self, scenario)

    async def test_client_spaces_summary_join_rules(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice, bob = await new_user(side, "alice"), await new_user(side, "bob")
            hs = side.server_name
            root = await create_room(alice, preset="public_chat", name="Root", creation_content=SPACE)
            r1 = await create_room(alice, preset="private_chat", name="R1")
            ss1 = await create_room(alice, preset="private_chat", name="Sub-Space 1", creation_content=SPACE)
            r2 = await create_room(alice, preset="public_chat", name="R2", initial_state=WORLD_READABLE)
            r3 = await create_room(alice, preset="private_chat", name="R3")
            for parent, child in ((root, r1), (root, ss1), (ss1, r2), (ss1, r3)):
                await send_state(alice, parent, "m.space.child", {"via": [hs]}, child)
            await join(bob, root)

            async def hierarchy() -> dict[str, Any]:
                return dict(await expect(bob, "GET", f"{V1}/rooms/{q(root)}/hierarchy"))

            with case("rooms the user may not see are left out"):
                body = await hierarchy()
                assert rooms_of(body) == [root], body
                assert links_of(body) == sorted([link(root, r1), link(root, ss1)]), links_of(body)
            with case("an invite makes a room visible"):
                await invite(alice, r1, bob.user_id)
                await invite(alice, r3, bob.user_id)
                body = await hierarchy()
                assert rooms_of(body) == sorted([root, r1]), body
                assert links_of(body) == sorted([link(root, r1), link(root, ss1)]), links_of(body)
            with case("an invite to the sub-space shows it and the rooms below"):
                await invite(alice, ss1, bob.user_id)
                body = await hierarchy()
                assert rooms_of(body) == sorted([root, r1, ss1, r2, r3]), body
                assert links_of(body) == sorted([link(root, r1), link(root, ss1), link(ss1, r2), link(ss1, r3)]), links_of(body)
            with case("a room the user may not see is a 403"):
                private = await create_room(alice, preset="private_chat", creation_content=SPACE)
                await expect(bob, "GET", f"{V1}/rooms/{q(private)}/hierarchy", status=403, errcode="M_FORBIDDEN")

        await on_both(self, scenario)

    async def test_hierarchy_answers_like_synapse(self) -> None:
        """The shape of every room entry, compared with Synapse's."""

        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await new_user(side, "alice")
            root = await create_room(alice, preset="public_chat", name="Root", topic="t", creation_content=SPACE,
                                     room_alias_name="root" + side.localpart(""))
            allowed = await create_room(alice, preset="public_chat", name="Allowed")
            restricted = await create_room(alice, preset="public_chat", room_version="10", name="Restricted", initial_state=[{
                "type": "m.room.join_rules", "state_key": "",
                "content": {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": allowed}]}}])
            encrypted = await create_room(alice, preset="private_chat", name="E", initial_state=[{
                "type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
            for child_id in (allowed, restricted, encrypted):
                await send_state(alice, root, "m.space.child", {"via": [side.server_name], "order": "a"}, child_id)
            with case("room entries"):
                side.record("hierarchy", *await alice.raw("GET", f"{V1}/rooms/{q(root)}/hierarchy"))

        pair = await on_both(self, scenario)
        pair.assert_same()
        bodies = {side.label: side.steps[0].body for side in pair}
        for label, body in bodies.items():
            restricted_entry = next(r for r in body["rooms"] if r.get("name") == "Restricted")
            self.assertEqual(len(restricted_entry.get("allowed_room_ids", [])), 1, label)


class FederatedSpacesTest(unittest.TestCase):
    """TestFederatedClientSpaces with a real Synapse as the second server, both ways round:
    WSPR's client API walking into Synapse's rooms (GET /_matrix/federation/v1/hierarchy
    to Synapse), and Synapse's walking into WSPR's (WSPR's federation endpoint)."""

    timeout = 300

    async def test_federated_client_spaces(self) -> None:
        try:
            import synapse  # noqa: F401
        except ImportError as e:
            raise unittest.SkipTest("matrix-synapse is not installed") from e
        from tests.federation.helpers import start_federating
        from tests.support.synapse import start_synapse_peer, synapse_client
        from tests.support.wspr import MatrixClient

        wspr = await start_federating(self)
        syn = await start_synapse_peer(self, "wspr-spaces-synapse-")
        failures = []
        for label, (hs1_url, hs1_name, hs2_url, hs2_name, on_synapse) in {
            "WSPR asks, Synapse answers": (wspr.base_url, wspr.server_name, syn.client_url, syn.server_name, False),
            "Synapse asks, WSPR answers": (syn.client_url, syn.server_name, wspr.base_url, wspr.server_name, True),
        }.items():
            if on_synapse:
                alice = await synapse_client(syn, f"alice{len(failures)}x")
                bob = await MatrixClient.register(hs2_url, f"bob{len(failures)}x")
            else:
                alice = await MatrixClient.register(hs1_url, "alice")
                bob = await synapse_client(syn, "bob")
            readable = {"preset": "public_chat", "initial_state": WORLD_READABLE}
            space = {**readable, "creation_content": SPACE}
            root = await create_room(alice, **space)
            r1 = await create_room(alice, **readable)
            ss1 = await create_room(alice, **space)
            r4 = await create_room(alice, **readable)
            r2 = await create_room(bob, **readable)
            ss2 = await create_room(bob, **space)
            r3 = await create_room(bob, **readable)
            for who, parent, child, via in ((alice, root, r1, hs1_name), (alice, root, ss1, hs1_name), (alice, root, r2, hs2_name),
                                            (alice, ss1, ss2, hs2_name), (alice, ss1, r3, hs2_name), (bob, ss2, r4, hs1_name)):
                await send_state(who, parent, "m.space.child", {"via": [via]}, child)
            body = await alice.request("GET", f"{V1}/rooms/{q(root)}/hierarchy")
            got = rooms_of(body)
            if got != sorted([root, r1, r2, r3, r4, ss1, ss2]):
                failures.append(f"{label}: {body}")
        self.assertEqual(failures, [])
