"""Complement's basic room cases, ported (tests/conformance/complement.py runs each on
Synapse and WSPR): apidoc_room_alias_test.go, apidoc_room_create_test.go (the preset and
topic details are in test_room_creation), apidoc_room_event_test.go,
apidoc_room_forget_test.go, apidoc_room_levels_test.go, power_levels_test.go, apidoc_room_members_test.go,
apidoc_room_receipts_test.go, apidoc_room_state_test.go, and tests/client_power_levels_test.go."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from tests.conformance.complement import (
    V3,
    CaseFn,
    Side,
    create_room,
    eventually,
    expect,
    get_state,
    invite,
    invited_to,
    join,
    joined_to,
    leave,
    messages,
    on_both,
    q,
    send,
    send_state,
    sync_path,
    sync_until,
    timeline_has,
)

MESSAGE = {"msgtype": "m.text", "body": "Hello world!"}
INCLUDE_LEAVE = {"room": {"include_leave": True}}


def left_from(user_id: str, room_id: str) -> Any:
    """Complement's SyncLeftFrom: the user's leave is in the room's timeline (or the room is left)."""

    def check(body: dict[str, Any]) -> bool:
        rooms = body.get("rooms", {})
        for section in ("join", "leave"):
            room = rooms.get(section, {}).get(room_id, {})
            for ev in room.get("timeline", {}).get("events", []) + room.get("state", {}).get("events", []):
                if ev.get("type") == "m.room.member" and ev.get("state_key") == user_id and ev["content"].get("membership") in ("leave", "ban"):
                    return True
        return False

    return check


def member_is(user_id: str, membership: str) -> Any:
    return lambda ev: ev.get("type") == "m.room.member" and ev.get("state_key") == user_id and ev["content"].get("membership") == membership


class RoomAliasTest(unittest.TestCase):
    timeout = 300

    async def test_room_alias(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await side.register("alice")
            bob = await side.register("bob")
            hs = side.server_name
            tag = side.localpart("")

            def alias(name: str) -> str:
                return f"#{name}{tag}:{hs}"

            async def put_alias(who: Any, room_id: str, name: str, status: int = 200) -> Any:
                return await expect(who, "PUT", f"{V3}/directory/room/{q(name)}", {"room_id": room_id}, status=status)

            with case("PUT /directory/room/:room_alias creates alias"):
                room = await create_room(alice)
                await put_alias(alice, room, alias("creates_alias"))
                got = await expect(alice, "GET", f"{V3}/directory/room/{q(alias('creates_alias'))}")
                assert got["room_id"] == room, got
            with case("GET /rooms/:room_id/aliases lists aliases"):
                room = await create_room(alice)
                got = await alice.get(f"/rooms/{q(room)}/aliases")
                assert got == {"aliases": []}, got
                await put_alias(alice, room, alias("lists_aliases"))
                got = await alice.get(f"/rooms/{q(room)}/aliases")
                assert got == {"aliases": [alias("lists_aliases")]}, got
            with case("Only room members can list aliases of a room"):
                room = await create_room(alice)
                await put_alias(alice, room, alias("room_members_list"))
                await expect(bob, "GET", f"{V3}/rooms/{q(room)}/aliases", status=403)
            with case("Room aliases can contain Unicode"):
                room = await create_room(alice)
                name = f"#老虎Â£я{tag}:{hs}"
                await put_alias(alice, room, name)
                got = await expect(alice, "GET", f"{V3}/directory/room/{q(name)}")
                assert got["room_id"] == room, got

        await on_both(self, scenario)

    async def test_room_delete_alias(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await side.register("alice")
            bob = await side.register("bob")
            hs = side.server_name
            tag = side.localpart("")

            def alias(name: str) -> str:
                return f"{q('#' + name + tag + ':' + hs)}"

            async def joined_bob(room: str, invited: bool = False) -> None:
                if invited:
                    await invite(alice, room, bob.user_id)
                await join(bob, room)
                await sync_until(bob, joined_to(bob.user_id, room))

            with case("Alias creators can delete alias with no ops"):
                room = await create_room(alice, preset="public_chat")
                await joined_bob(room)
                await expect(bob, "PUT", f"{V3}/directory/room/{alias('no_ops_delete')}", {"room_id": room})
                await expect(bob, "GET", f"{V3}/directory/room/{alias('no_ops_delete')}")
                await expect(bob, "DELETE", f"{V3}/directory/room/{alias('no_ops_delete')}")
            with case("Alias creators can delete canonical alias with no ops"):
                room = await create_room(alice, preset="public_chat")
                await joined_bob(room)
                name = "#no_ops_delete_canonical" + tag + ":" + hs
                await expect(bob, "PUT", f"{V3}/directory/room/{q(name)}", {"room_id": room})
                await send_state(alice, room, "m.room.canonical_alias", {"alias": name})
                await expect(bob, "DELETE", f"{V3}/directory/room/{q(name)}")
            with case("Deleting a non-existent alias should return a 404"):
                await expect(bob, "DELETE", f"{V3}/directory/room/{alias('scatman_portal')}", status=404, errcode="M_NOT_FOUND")
            with case("Can delete canonical alias"):
                room = await create_room(alice)
                name = "#random_alias" + tag + ":" + hs
                await expect(alice, "PUT", f"{V3}/directory/room/{q(name)}", {"room_id": room})
                await send_state(alice, room, "m.room.canonical_alias", {"alias": name})
                since = (await alice.request("GET", sync_path()))["next_batch"]
                await expect(alice, "DELETE", f"{V3}/directory/room/{q(name)}")
                await sync_until(alice, timeline_has(room, lambda ev: ev["type"] == "m.room.canonical_alias" and ev["content"] == {}), since)
            with case("Regular users can add and delete aliases in the default room configuration"):
                room = await create_room(alice)
                await joined_bob(room, invited=True)
                await expect(bob, "PUT", f"{V3}/directory/room/{alias('random_alias_2')}", {"room_id": room})
                got = await expect(alice, "GET", f"{V3}/directory/room/{alias('random_alias_2')}")
                assert got["room_id"] == room, got
                await expect(bob, "DELETE", f"{V3}/directory/room/{alias('random_alias_2')}")
            with case("Regular users can add and delete aliases when m.room.aliases is restricted"):
                room = await create_room(alice)
                await joined_bob(room, invited=True)
                await send_state(alice, room, "m.room.power_levels", {"users": {alice.user_id: 100}, "events": {"m.room.aliases": 50}})
                await expect(bob, "PUT", f"{V3}/directory/room/{alias('random_alias_3')}", {"room_id": room})
                got = await expect(alice, "GET", f"{V3}/directory/room/{alias('random_alias_3')}")
                assert got["room_id"] == room, got
                await expect(bob, "DELETE", f"{V3}/directory/room/{alias('random_alias_3')}")
            with case("Users can't delete other's aliases"):
                room = await create_room(alice)
                await joined_bob(room, invited=True)
                await expect(alice, "PUT", f"{V3}/directory/room/{alias('random_alias_4')}", {"room_id": room})
                await expect(bob, "GET", f"{V3}/directory/room/{alias('random_alias_4')}")
                await expect(bob, "DELETE", f"{V3}/directory/room/{alias('random_alias_4')}", status=403, errcode="M_FORBIDDEN")
            with case("Users with sufficient power-level can delete other's aliases"):
                room = await create_room(alice)
                await joined_bob(room, invited=True)
                await send_state(alice, room, "m.room.power_levels", {"users": {alice.user_id: 100, bob.user_id: 100}})
                await expect(alice, "PUT", f"{V3}/directory/room/{alias('random_alias_5')}", {"room_id": room})
                await expect(bob, "GET", f"{V3}/directory/room/{alias('random_alias_5')}")
                await expect(bob, "DELETE", f"{V3}/directory/room/{alias('random_alias_5')}")

        await on_both(self, scenario)

    async def test_room_canonical_alias(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await side.register("alice")
            hs = side.server_name
            tag = side.localpart("")

            def alias(name: str) -> str:
                return f"#{name}{tag}:{hs}"

            async def put_alias(room: str, name: str) -> None:
                await expect(alice, "PUT", f"{V3}/directory/room/{q(name)}", {"room_id": room})

            async def canonical(room: str, content: dict[str, Any], status: int = 200, errcode: str | None = None) -> Any:
                return await expect(alice, "PUT", f"{V3}/rooms/{q(room)}/state/m.room.canonical_alias", content,
                                    status=status, errcode=errcode)

            with case("m.room.canonical_alias accepts present aliases"):
                room = await create_room(alice)
                await put_alias(room, alias("accepts_present"))
                assert "event_id" in await canonical(room, {"alias": alias("accepts_present")})
            with case("m.room.canonical_alias rejects missing aliases"):
                room = await create_room(alice)
                await canonical(room, {"alias": alias("rejects_missing")}, 400, "M_BAD_ALIAS")
            with case("m.room.canonical_alias rejects invalid aliases"):
                room = await create_room(alice)
                await canonical(room, {"alias": f"%invalid_aliases{tag}:{hs}"}, 400, "M_INVALID_PARAM")
            with case("m.room.canonical_alias setting rejects deleted aliases"):
                room = await create_room(alice)
                await put_alias(room, alias("deleted"))
                await expect(alice, "DELETE", f"{V3}/directory/room/{q(alias('deleted'))}")
                await expect(alice, "GET", f"{V3}/directory/room/{q(alias('deleted'))}", status=404)
                await canonical(room, {"alias": alias("deleted")}, 400, "M_BAD_ALIAS")
            with case("m.room.canonical_alias rejects alias pointing to different local room"):
                room1 = await create_room(alice)
                room2 = await create_room(alice)
                await put_alias(room1, alias("diffroom1"))
                await canonical(room2, {"alias": alias("diffroom1")}, 400, "M_BAD_ALIAS")
            with case("m.room.canonical_alias accepts present alt_aliases"):
                room = await create_room(alice)
                await put_alias(room, alias("alt_present"))
                assert "event_id" in await canonical(room, {"alias": alias("alt_present"), "alt_aliases": [alias("alt_present")]})
            with case("m.room.canonical_alias rejects missing alt_aliases"):
                room = await create_room(alice)
                await put_alias(room, alias("alt_missing"))
                await canonical(room, {"alias": alias("alt_missing"), "alt_aliases": [alias("alt_missing_wrong")]}, 400, "M_BAD_ALIAS")
            with case("m.room.canonical_alias rejects invalid alt_aliases"):
                room = await create_room(alice)
                await put_alias(room, alias("alt_invalid"))
                await canonical(room, {"alias": alias("alt_invalid"), "alt_aliases": [f"%alt_invalid_wrong{tag}:{hs}"]}, 400, "M_INVALID_PARAM")
            with case("m.room.canonical_alias rejects alt_alias pointing to different local room"):
                room1 = await create_room(alice)
                room2 = await create_room(alice)
                await put_alias(room1, alias("alt_room1"))
                await put_alias(room2, alias("alt_room2"))
                await canonical(room2, {"alias": alias("alt_room2"), "alt_aliases": [alias("alt_room1")]}, 400, "M_BAD_ALIAS")

        await on_both(self, scenario)


class RoomCreateTest(unittest.TestCase):
    timeout = 300

    async def test_room_create(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await side.register("alice")
            bob = await side.register("bob")
            tag = side.localpart("")
            with case("POST /createRoom makes a public room"):
                body = await expect(alice, "POST", V3 + "/createRoom", {"visibility": "public", "room_alias_name": "30-room-create-alias-" + tag})
                assert isinstance(body["room_id"], str)
            with case("POST /createRoom makes a private room"):
                body = await expect(alice, "POST", V3 + "/createRoom", {"visibility": "private"})
                assert isinstance(body["room_id"], str)
            with case("POST /createRoom makes a room with a name"):
                room = await create_room(alice, name="Test Room", preset="public_chat")
                assert (await get_state(alice, room, "m.room.name"))["name"] == "Test Room"
            with case("POST /createRoom creates a room with the given version"):
                room = await create_room(alice, room_version="2", preset="public_chat")
                assert (await get_state(alice, room, "m.room.create"))["room_version"] == "2"
            with case("POST /createRoom makes a private room with invites"):
                body = await expect(alice, "POST", V3 + "/createRoom", {"visibility": "private", "invite": [bob.user_id]})
                assert isinstance(body["room_id"], str)
            with case("POST /createRoom rejects attempts to create rooms with numeric versions"):
                await expect(alice, "POST", V3 + "/createRoom", {"visibility": "private", "room_version": 1, "preset": "public_chat"},
                             status=400, errcode="M_BAD_JSON")
            with case("POST /createRoom rejects attempts to create rooms with unknown versions"):
                await expect(alice, "POST", V3 + "/createRoom",
                             {"visibility": "private", "room_version": "ahfgwjyerhgiuveisbruvybseyrugvi", "preset": "public_chat"},
                             status=400, errcode="M_UNSUPPORTED_ROOM_VERSION")
            with case("Rooms can be created with an initial invite list (SYN-205)"):
                room = await create_room(alice, invite=[bob.user_id])
                await sync_until(bob, invited_to(room))
            with case("Can /sync newly created room"):
                room = await create_room(alice)
                event_id = await send(alice, room, "m.room.test", {})
                await sync_until(alice, timeline_has(room, lambda ev: ev["event_id"] == event_id))
            with case("POST /createRoom ignores attempts to set the room version via creation_content"):
                room = await create_room(alice, creation_content={"test": "azerty", "room_version": "test"})
                await sync_until(alice, joined_to(alice.user_id, room))
                body = await alice.request("GET", sync_path())
                first = body["rooms"]["join"][room]["timeline"]["events"][0]
                assert first["type"] == "m.room.create", first
                assert first["content"].get("room_version") not in (None, "test"), first
                assert first["content"]["test"] == "azerty", first

        await on_both(self, scenario)

    async def test_events_in_correct_room(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await side.register("alice")
            with case("Events come down the correct room"):
                rooms = list(await defer.gatherResults([
                    defer.ensureDeferred(create_room(alice, preset="public_chat")) for _ in range(10)
                ]))
                since = (await alice.request("GET", sync_path()))["next_batch"]
                await defer.gatherResults([
                    defer.ensureDeferred(send(alice, room, "m.room.message", {"msgtype": "m.text", "body": room})) for room in rooms
                ])
                seen: set[str] = set()

                def check(body: dict[str, Any]) -> bool:
                    for room_id, room in body.get("rooms", {}).get("join", {}).items():
                        assert room_id in rooms, f"sync for an unrelated room {room_id}"
                        events = room.get("timeline", {}).get("events", [])
                        assert len(events) <= 1, events
                        for ev in events:
                            assert room_id not in seen, f"a second event for {room_id}: {ev}"
                            assert ev["type"] == "m.room.message" and ev["content"] == {"msgtype": "m.text", "body": room_id}, ev
                            seen.add(room_id)
                    return len(seen) == len(rooms)

                await sync_until(alice, check, since)

        await on_both(self, scenario)


class RoomForgetTest(unittest.TestCase):
    timeout = 300

    async def test_room_forget(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await side.register("alice")
            bob = await side.register("bob")

            async def forget(who: Any, room: str) -> None:
                await expect(who, "POST", f"{V3}/rooms/{q(room)}/forget", {})

            async def room_with_bob() -> str:
                room = await create_room(alice, preset="public_chat")
                await join(bob, room)
                event_id = await send(alice, room, "m.room.message", MESSAGE)
                await sync_until(alice, timeline_has(room, lambda ev: ev["event_id"] == event_id))
                return room

            with case("Can't forget room you're still in"):
                room = await create_room(alice, preset="private_chat")
                await expect(alice, "POST", f"{V3}/rooms/{q(room)}/forget", {}, status=400, errcode="M_UNKNOWN")
            with case("Forgotten room messages cannot be paginated"):
                room = await room_with_bob()
                await leave(alice, room)
                await forget(alice, room)
                await expect(alice, "GET", f"{V3}/rooms/{q(room)}/messages", status=403, errcode="M_FORBIDDEN")
            with case("Forgetting room does not show up in v2 initial /sync"):
                room = await room_with_bob()
                await leave(alice, room)
                await sync_until(bob, left_from(alice.user_id, room))
                await forget(alice, room)
                await send(bob, room, "m.room.message", MESSAGE)
                body = await alice.request("GET", sync_path(flt=INCLUDE_LEAVE))
                for section in ("join", "invite", "leave"):
                    assert room not in body.get("rooms", {}).get(section, {}), (section, body["rooms"])
            with case("Leave for forgotten room shows up in v2 incremental /sync"):
                room = await room_with_bob()
                _, before_leave = await sync_until(alice, joined_to(alice.user_id, room))
                await leave(alice, room)
                await sync_until(bob, left_from(alice.user_id, room))
                await forget(alice, room)
                await send(bob, room, "m.room.message", MESSAGE)
                body = await alice.request("GET", sync_path(before_leave, INCLUDE_LEAVE))
                assert room in body.get("rooms", {}).get("leave", {}), body.get("rooms")
            with case("Can forget room you've been kicked from"):
                room = await room_with_bob()
                await alice.post(f"/rooms/{q(room)}/kick", {"user_id": bob.user_id})
                await sync_until(alice, left_from(bob.user_id, room))
                body = await bob.request("GET", sync_path())
                for section in ("join", "invite"):
                    assert room not in body.get("rooms", {}).get(section, {}), (section, body["rooms"])
            with case("Can re-join room if re-invited"):
                room = await create_room(alice, preset="private_chat")
                await invite(alice, room, bob.user_id)
                await send_state(alice, room, "m.room.join_rules", {"join_rule": "invite"})
                await join(bob, room)
                before = await send(alice, room, "m.room.message", {"msgtype": "m.text", "body": "Before leave"})
                await leave(bob, room)
                await sync_until(alice, left_from(bob.user_id, room))
                await forget(bob, room)
                await expect(bob, "POST", f"{V3}/join/{q(room)}", {}, status=403, errcode="M_FORBIDDEN")
                await invite(alice, room, bob.user_id)
                await join(bob, room)
                chunk = (await messages(bob, room, limit="100"))["chunk"]
                assert before in [ev["event_id"] for ev in chunk], "did not find the 'Before leave' message"
                after = await send(alice, room, "m.room.message", {"msgtype": "m.text", "body": "After rejoin"})
                chunk = (await messages(bob, room, limit="1"))["chunk"]
                assert after in [ev["event_id"] for ev in chunk], chunk
            with case("Can forget room we weren't an actual member"):
                room = await create_room(alice, preset="private_chat")
                await invite(alice, room, bob.user_id)
                await leave(bob, room)
                await forget(bob, room)
                await leave(alice, room)
                await forget(alice, room)

        await on_both(self, scenario)


class RoomLevelsStateTest(unittest.TestCase):
    timeout = 300

    async def test_room_levels(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await side.register("alice")
            with case("GET /rooms/:room_id/state/m.room.power_levels can fetch levels"):
                room = await create_room(alice)
                levels = await get_state(alice, room, "m.room.power_levels")
                for key in ("ban", "kick", "redact", "state_default", "events_default", "events", "users"):
                    assert key in levels, (key, levels)
                assert levels["users"][alice.user_id] >= levels.get("users_default", 0), levels
            with case("PUT /rooms/:room_id/state/m.room.power_levels can set levels"):
                room = await create_room(alice)
                levels = await get_state(alice, room, "m.room.power_levels")
                levels["users"] = {alice.user_id: levels["users"][alice.user_id], "@random-other-user:their.home": 20}
                await send_state(alice, room, "m.room.power_levels", levels)
                levels = await get_state(alice, room, "m.room.power_levels")
                assert levels["users"]["@random-other-user:their.home"] == 20, levels
        await on_both(self, scenario)

    async def test_power_levels(self) -> None:
        """power_levels_test.go (which supersedes apidoc_room_levels_test.go's last case)."""

        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await side.register("alice")
            with case("Demoting users via users_default"):
                room = await create_room(alice, preset="public_chat", power_level_content_override={
                    "users_default": 100, "users": {alice.user_id: 100}, "events": {}, "notifications": {}})
                await send_state(alice, room, "m.room.power_levels", {
                    "users_default": 40, "users": {alice.user_id: 100}, "events": {}, "notifications": {}})
            room = await create_room(alice)
            with case("GET /rooms/:room_id/state/m.room.power_levels can fetch levels"):
                levels = await get_state(alice, room, "m.room.power_levels")
                for key in ("ban", "kick", "redact", "state_default", "events_default", "users_default"):
                    assert isinstance(levels[key], int), (key, levels)
                assert all(isinstance(v, int) for v in levels["events"].values()), levels
                assert all(isinstance(v, int) for v in levels["users"].values()), levels
                assert levels["users"][alice.user_id] > levels["users_default"], levels
            with case("PUT /rooms/:room_id/state/m.room.power_levels can set levels"):
                content = {"invite": 100, "users": {alice.user_id: 100, "@random-other-user:their.home": 20}}
                event_id = await send_state(alice, room, "m.room.power_levels", content)
                got = await alice.get(f"/rooms/{q(room)}/event/{q(event_id)}")
                assert got["content"] == content, got
            with case("PUT power_levels should not explode if the old power levels were empty"):
                await send_state(alice, room, "m.room.power_levels", {"users": {alice.user_id: 100}})
                await send_state(alice, room, "m.room.power_levels", {})
                await expect(alice, "PUT", f"{V3}/rooms/{q(room)}/state/m.room.power_levels", {"users": {}}, status=403)
                assert "users" not in await get_state(alice, room, "m.room.power_levels")

        await on_both(self, scenario)

    async def test_client_sending_power_levels_events(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await side.register("alice")
            bob = await side.register("bob")
            with case("Attempt to set valid power levels event"):
                room = await create_room(alice, preset="public_chat")
                await send_state(alice, room, "m.room.power_levels", {
                    "ban": 50, "events": {"m.room.name": 100, "m.room.power_levels": 100}, "events_default": 0, "invite": 50,
                    "kick": 50, "notifications": {"room": 20}, "redact": 50, "state_default": 50,
                    "users": {alice.user_id: 100, bob.user_id: 0}, "users_default": 0})
            with case("Attempt to set power levels event with string power level fails"):
                room = await create_room(alice, preset="public_chat")
                await expect(alice, "PUT", f"{V3}/rooms/{q(room)}/state/m.room.power_levels", {
                    "users_default": "30", "users": {alice.user_id: 100, bob.user_id: 0}, "events": {"m.room.power_levels": 100}},
                    status=400, errcode="M_BAD_JSON")
            with case("Attempt to set power levels event with unsafe integer fails"):
                room = await create_room(alice, preset="public_chat", room_version="5")
                for raw in (b'{"users_default": -9007199254740992}', b'{"users_default": 9007199254740992}'):
                    await expect(alice, "PUT", f"{V3}/rooms/{q(room)}/state/m.room.power_levels", data=raw, status=400, errcode="M_BAD_JSON")

        await on_both(self, scenario)

    async def test_room_members(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await side.register("alice")
            bob = await side.register("bob")
            tag = side.localpart("")
            hs = side.server_name
            with case("POST /rooms/:room_id/join can join a room"):
                room = await create_room(alice, visibility="public", preset="public_chat")
                got = await expect(bob, "POST", f"{V3}/rooms/{q(room)}/join", {})
                assert got["room_id"] == room, got
                await sync_until(bob, joined_to(bob.user_id, room))
            with case("POST /join/:room_alias can join a room"):
                room = await create_room(alice, visibility="public", preset="public_chat", room_alias_name="room_alias_random" + tag)
                got = await expect(bob, "POST", f"{V3}/join/{q('#room_alias_random' + tag + ':' + hs)}", {})
                assert got["room_id"] == room, got
                await sync_until(bob, joined_to(bob.user_id, room))
            with case("POST /join/:room_id can join a room"):
                room = await create_room(alice, visibility="public", preset="public_chat")
                got = await expect(bob, "POST", f"{V3}/join/{q(room)}", {})
                assert got["room_id"] == room, got
                await sync_until(bob, timeline_has(room, member_is(bob.user_id, "join")))
            with case("Test that we can be reinvited to a room we created"):
                room = await create_room(alice, preset="private_chat")
                await invite(alice, room, bob.user_id)
                await sync_until(bob, invited_to(room))
                await join(bob, room)
                await sync_until(bob, joined_to(bob.user_id, room))
                await send_state(alice, room, "m.room.power_levels", {"invite": 100, "users": {alice.user_id: 100, bob.user_id: 100}})
                await leave(alice, room)
                await sync_until(bob, timeline_has(room, member_is(alice.user_id, "leave")))
                await invite(bob, room, alice.user_id)
                _, since = await sync_until(alice, invited_to(room))
                await join(alice, room)
                await sync_until(alice, joined_to(alice.user_id, room), since)
            with case("POST /join/:room_id can join a room with custom content"):
                room = await create_room(alice, visibility="public", preset="public_chat")
                got = await expect(bob, "POST", f"{V3}/join/{q(room)}", {"foo": "bar"})
                assert got["room_id"] == room, got
                await sync_until(alice, joined_to(bob.user_id, room))
                content = await get_state(alice, room, "m.room.member", bob.user_id)
                assert content["membership"] == "join" and content["foo"] == "bar", content
            with case("POST /join/:room_alias can join a room with custom content"):
                room = await create_room(alice, visibility="public", preset="public_chat", room_alias_name="room_alias_random2" + tag)
                got = await expect(bob, "POST", f"{V3}/join/{q('#room_alias_random2' + tag + ':' + hs)}", {"foo": "bar"})
                assert got["room_id"] == room, got
                await sync_until(alice, joined_to(bob.user_id, room))
                content = await get_state(alice, room, "m.room.member", bob.user_id)
                assert content["membership"] == "join" and content["foo"] == "bar", content
            with case("POST /rooms/:room_id/ban can ban a user"):
                room = await create_room(alice, visibility="public", preset="public_chat")
                await join(bob, room)
                await sync_until(alice, joined_to(bob.user_id, room))
                await expect(alice, "POST", f"{V3}/rooms/{q(room)}/ban", {"user_id": bob.user_id, "reason": "Testing"})
                await sync_until(alice, timeline_has(room, member_is(bob.user_id, "ban")))
                assert (await get_state(alice, room, "m.room.member", bob.user_id))["membership"] == "ban"
            with case("POST /rooms/:room_id/invite can send an invite"):
                room = await create_room(alice)
                await invite(alice, room, bob.user_id)
                await sync_until(alice, timeline_has(room, member_is(bob.user_id, "invite")))
                assert (await get_state(alice, room, "m.room.member", bob.user_id))["membership"] == "invite"
            with case("POST /rooms/:room_id/leave can leave a room"):
                room = await create_room(alice)
                await invite(alice, room, bob.user_id)
                await sync_until(bob, invited_to(room))
                await join(bob, room)
                await sync_until(alice, joined_to(bob.user_id, room))
                await leave(bob, room)
                await sync_until(alice, left_from(bob.user_id, room))
                assert (await get_state(alice, room, "m.room.member", bob.user_id))["membership"] == "leave"

        await on_both(self, scenario)

    async def test_receipts_and_read_markers(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await side.register("alice")

            async def room_with_message() -> tuple[str, str]:
                room = await create_room(alice, preset="public_chat")
                await sync_until(alice, joined_to(alice.user_id, room))
                event_id = await send(alice, room, "m.room.message", MESSAGE)
                await sync_until(alice, timeline_has(room, lambda ev: ev["event_id"] == event_id))
                return room, event_id

            def has_receipt(room: str, event_id: str) -> Any:
                def check(body: dict[str, Any]) -> bool:
                    eph = body.get("rooms", {}).get("join", {}).get(room, {}).get("ephemeral", {}).get("events", [])
                    return any(e["type"] == "m.receipt" and alice.user_id in e["content"].get(event_id, {}).get("m.read", {}) for e in eph)
                return check

            with case("POST /rooms/:room_id/receipt can create receipts"):
                room, event_id = await room_with_message()
                await expect(alice, "POST", f"{V3}/rooms/{q(room)}/receipt/m.read/{q(event_id)}", {})
                await sync_until(alice, has_receipt(room, event_id))
            with case("POST /rooms/:room_id/read_markers can create read marker"):
                room, event_id = await room_with_message()
                await expect(alice, "POST", f"{V3}/rooms/{q(room)}/read_markers", {"m.fully_read": event_id, "m.read": event_id})
                await sync_until(alice, has_receipt(room, event_id))

                def fully_read(body: dict[str, Any]) -> bool:
                    data = body.get("rooms", {}).get("join", {}).get(room, {}).get("account_data", {}).get("events", [])
                    return any(e["type"] == "m.fully_read" and e["content"].get("event_id") == event_id for e in data)

                await sync_until(alice, fully_read)

        await on_both(self, scenario)

    async def test_room_state(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await side.register("alice")
            tag = side.localpart("")
            public = {"visibility": "public", "preset": "public_chat"}
            with case("GET /rooms/:room_id/state/m.room.member/:user_id fetches my membership"):
                room = await create_room(alice, **public)
                assert (await get_state(alice, room, "m.room.member", alice.user_id))["membership"] == "join"
            with case("GET /rooms/:room_id/state/m.room.member/:user_id?format=event fetches my membership event"):
                room = await create_room(alice, **public)
                ev = await alice.get(f"/rooms/{q(room)}/state/m.room.member/{q(alice.user_id)}?format=event")
                assert ev["sender"] == alice.user_id and ev["room_id"] == room and ev["content"]["membership"] == "join", ev
            with case("GET /rooms/:room_id/state/m.room.power_levels fetches powerlevels"):
                room = await create_room(alice, room_alias_name="room_alias" + tag, **public)
                levels = await get_state(alice, room, "m.room.power_levels")
                for key in ("ban", "kick", "redact", "users_default", "state_default", "events_default", "users", "events"):
                    assert key in levels, (key, levels)
            with case("GET /rooms/:room_id/joined_members fetches my membership"):
                room = await create_room(alice, **public)
                joined = (await alice.get(f"/rooms/{q(room)}/joined_members"))["joined"]
                assert "display_name" in joined[alice.user_id] and "avatar_url" in joined[alice.user_id], joined
            with case("GET /publicRooms lists newly-created room"):
                room = await create_room(alice, **public)

                async def listed() -> bool:
                    body = await alice.get("/publicRooms?limit=1000")
                    return room in [r["room_id"] for r in body["chunk"]]

                await eventually(listed, "the room in /publicRooms", 2)
            with case("GET /directory/room/:room_alias yields room ID"):
                room = await create_room(alice, room_alias_name="room_new" + tag, **public)
                got = await alice.get(f"/directory/room/{q('#room_new' + tag + ':' + side.server_name)}")
                assert got["room_id"] == room and isinstance(got["servers"], list), got
            with case("GET /joined_rooms lists newly-created room"):
                room = await create_room(alice, **public)
                assert room in (await alice.get("/joined_rooms"))["joined_rooms"]
            with case("GET /rooms/:room_id/state/m.room.name gets name"):
                room = await create_room(alice, name="room_name_test", **public)
                assert (await get_state(alice, room, "m.room.name")) == {"name": "room_name_test"}
            with case("POST /rooms/:room_id/state/m.room.name sets name"):
                room = await create_room(alice, **public)
                await send_state(alice, room, "m.room.name", {"name": "room_test_name"})
                assert (await get_state(alice, room, "m.room.name")) == {"name": "room_test_name"}
            with case("GET /rooms/:room_id/state/m.room.topic gets topic"):
                room = await create_room(alice, topic="room_topic_test", **public)
                assert (await get_state(alice, room, "m.room.topic"))["topic"] == "room_topic_test"
            with case("PUT /rooms/:room_id/state/m.room.topic sets topic"):
                room = await create_room(alice, **public)
                await send_state(alice, room, "m.room.topic", {"topic": "room_test_topic"})
                assert (await get_state(alice, room, "m.room.topic"))["topic"] == "room_test_topic"
            with case("GET /rooms/:room_id/state fetches entire room state"):
                room = await create_room(alice, name="room_test", topic="room_topic_test", **public)
                types = {ev["type"] for ev in await alice.get(f"/rooms/{q(room)}/state")}
                missing = {"m.room.create", "m.room.join_rules", "m.room.name", "m.room.power_levels", "m.room.topic"} - types
                assert not missing, missing
            with case("PUT /createRoom with creation content"):
                room = await create_room(alice, creation_content={"m.federate": False}, **public)
                assert (await get_state(alice, room, "m.room.create"))["m.federate"] is False
            with case("GET /rooms/:room_id/joined_members is forbidden after leaving room"):
                room = await create_room(alice)
                await leave(alice, room)
                await expect(alice, "GET", f"{V3}/rooms/{q(room)}/joined_members", status=403, errcode="M_FORBIDDEN")

        await on_both(self, scenario)
