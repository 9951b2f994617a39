"""/createRoom makes a room completely or not at all (issue 9 finding 7).

Each bad request gets Synapse's status (and its errcode, or the spec's where Synapse
gives none) and leaves nothing behind: the creator's /joined_rooms, the rooms and events
in the database and the public directory are as before. Before the fix a 70 000-character
name answered 413 after the room, the creator's join and the earlier events were stored.
"""

from __future__ import annotations

from typing import Any

from twisted.trial import unittest

from tests.support.wspr import MatrixClient, RunningHomeServer, start_homeserver

BIG = 70_000  # characters: the event is over the 65 536-byte limit


def _bad_requests(me: str, bob: str) -> list[tuple[str, dict[str, Any], int, str]]:
    """(case, body, status, errcode); statuses as Synapse 1.163 answers the same body."""
    return [
        ("name too large", {"name": "n" * BIG}, 413, "M_TOO_LARGE"),
        ("topic too large", {"topic": "t" * BIG}, 413, "M_TOO_LARGE"),
        ("v12 name too large", {"room_version": "12", "name": "n" * BIG}, 413, "M_TOO_LARGE"),
        ("initial_state too large", {"initial_state": [{"type": "x.big", "content": {"a": "b" * BIG}}]}, 413, "M_TOO_LARGE"),
        ("power level 2^60", {"power_level_content_override": {"users_default": 2**60}}, 400, "M_BAD_JSON"),
        ("power level a string", {"power_level_content_override": {"ban": "50"}}, 400, "M_BAD_JSON"),
        ("power level a float", {"power_level_content_override": {"users": {me: 100, bob: 1.5}}}, 400, "M_BAD_JSON"),
        ("events not an object", {"power_level_content_override": {"events": "x"}}, 400, "M_BAD_JSON"),
        (
            "override users without the creator",
            {"room_version": "10", "power_level_content_override": {"users": {bob: 100}}},
            400,
            "M_INVALID_ROOM_STATE",
        ),
        ("creator locked out", {"room_version": "10", "power_level_content_override": {"users": {me: 0}}}, 403, "M_FORBIDDEN"),
        (
            "invite above the creator's level",
            {"invite": [bob], "power_level_content_override": {"invite": 101}},
            403,
            "M_FORBIDDEN",
        ),
        ("creator invites herself", {"invite": [me]}, 403, "M_FORBIDDEN"),
        ("initial_state integer out of range", {"initial_state": [{"type": "x.y", "content": {"a": 2**60}}]}, 400, "M_BAD_JSON"),
        ("initial_state float", {"initial_state": [{"type": "x.y", "content": {"a": 1.5}}]}, 400, "M_BAD_JSON"),
        (
            "initial_state power levels not integers",
            {"initial_state": [{"type": "m.room.power_levels", "content": {"ban": "x"}}]},
            400,
            "M_BAD_JSON",
        ),
        ("alias with a space", {"room_alias_name": "a b"}, 400, "M_INVALID_PARAM"),
        ("3pid invite without its keys", {"invite_3pid": [{"medium": "email"}]}, 400, "M_MISSING_PARAM"),
        # Nothing listens on port 1 (federation to loopback is allowed in this test).
        ("invitee's server unreachable", {"invite": ["@bob:127.0.0.1:1"]}, 502, "M_UNKNOWN"),
        ("invalid invitee", {"invite": ["notauser"]}, 400, "M_INVALID_PARAM"),
        ("room_version not a string", {"room_version": 10}, 400, "M_BAD_JSON"),
    ]


def _refused_before_too() -> list[tuple[str, dict[str, Any], int, str]]:
    return [
        ("unknown room version", {"room_version": "99"}, 400, "M_UNSUPPORTED_ROOM_VERSION"),
        ("unknown preset", {"preset": "bogus"}, 400, "M_BAD_JSON"),
        ("alias with a colon", {"room_alias_name": "a:b"}, 400, "M_INVALID_PARAM"),
        ("alias too long", {"room_alias_name": "a" * 300}, 400, "M_INVALID_PARAM"),
        ("alias taken", {"room_alias_name": "taken"}, 400, "M_ROOM_IN_USE"),
        ("creation_content too large", {"creation_content": {"x": "y" * BIG}}, 413, "M_TOO_LARGE"),
        ("creation_content not an object", {"creation_content": "x"}, 400, "M_BAD_JSON"),
        ("initial_state not a list", {"initial_state": {"type": "m.room.topic"}}, 400, "M_BAD_JSON"),
        ("initial_state entry without type", {"initial_state": [{"content": {}}]}, 400, "M_BAD_JSON"),
        ("initial_state state_key not a string", {"initial_state": [{"type": "x.y", "state_key": 5, "content": {}}]}, 400, "M_BAD_JSON"),
        ("invite not a list", {"invite": "@bob:localhost"}, 400, "M_BAD_JSON"),
    ]


class CreateRoomAtomicTest(unittest.TestCase):
    database = "sqlite"

    async def _footprint(self, server: RunningHomeServer, alice: MatrixClient) -> tuple[Any, ...]:
        def counts(txn: Any) -> tuple[int, ...]:
            return tuple(
                txn.select_value(f"SELECT COUNT(*) FROM {table}")
                for table in ("rooms", "events", "local_memberships", "room_aliases")
            )

        db_counts = await server.hs.store.db.read(counts)
        joined = sorted((await alice.get("/joined_rooms"))["joined_rooms"])
        public = sorted(r["room_id"] for r in (await alice.get("/publicRooms"))["chunk"])
        return (db_counts, joined, public)

    async def _check(self, server: RunningHomeServer, alice: MatrixClient, cases: list[tuple[str, dict[str, Any], int, str]]) -> None:
        for case, body, status, errcode in cases:
            for visibility in ("private", "public"):
                before = await self._footprint(server, alice)
                code, answer = await alice.raw("POST", "/_matrix/client/v3/createRoom", {**body, "visibility": visibility})
                self.assertEqual((code, answer.get("errcode") if isinstance(answer, dict) else answer), (status, errcode), case)
                self.assertEqual(await self._footprint(server, alice), before, f"{case}: something was left behind")

    async def _setup(self) -> tuple[RunningHomeServer, MatrixClient, MatrixClient]:
        server = await start_homeserver(self, federation={"ip_range_blocklist": [], "ip_range_allowlist": ["127.0.0.0/8"]})
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        await alice.post("/createRoom", {"room_alias_name": "taken", "visibility": "public"})
        return server, alice, bob

    async def test_bad_requests_leave_no_room(self) -> None:
        server, alice, bob = await self._setup()
        await self._check(server, alice, _bad_requests(alice.user_id, bob.user_id))

    async def test_shape_errors_leave_no_room(self) -> None:
        server, alice, _ = await self._setup()
        await self._check(server, alice, _refused_before_too())

    async def test_what_synapse_accepts_still_makes_a_room(self) -> None:
        server, alice, bob = await self._setup()
        # creation_content cannot choose the version (Synapse overrides it too).
        rid = (await alice.post("/createRoom", {"creation_content": {"room_version": "99"}}))["room_id"]
        self.assertEqual((await alice.get(f"/rooms/{rid}/state/m.room.create/"))["room_version"], "11")
        # Power levels in initial_state are the room's power levels (the override does not apply).
        pl = {"users": {alice.user_id: 100}, "users_default": 0, "events_default": 20, "state_default": 50}
        rid = (
            await alice.post(
                "/createRoom",
                {
                    "initial_state": [{"type": "m.room.power_levels", "content": pl}],
                    "power_level_content_override": {"events_default": 99},
                    "invite": [bob.user_id],
                    "is_direct": True,
                },
            )
        )["room_id"]
        self.assertEqual((await alice.get(f"/rooms/{rid}/state/m.room.power_levels/"))["events_default"], 20)
        # Local invites are part of the room's first batch, with the invitee's profile.
        member = await alice.get(f"/rooms/{rid}/state/m.room.member/{bob.user_id}")
        self.assertEqual((member["membership"], member["is_direct"]), ("invite", True))
        invites = (await bob.sync())["rooms"]["invite"]
        self.assertIn(rid, invites)


class CreateRoomAtomicPostgresTest(CreateRoomAtomicTest):
    database = "postgresql"
