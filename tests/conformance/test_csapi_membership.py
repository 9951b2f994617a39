"""Complement's membership, directory and validation cases, ported
(tests/conformance/complement.py runs each on Synapse and WSPR): room_ban_test.go,
room_kick_test.go, room_leave_test.go, room_members_test.go, room_profile_test.go,
membership_on_events_test.go, direct_message_create_test.go, public_rooms_test.go,
redact_test.go, invalid_test.go, user_directory_display_names_test.go, and tests/direct_messaging_test.go
(TestIsDirectFlagFederation with a real Synapse as the inviting server)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.trial import unittest

from tests.conformance.complement import (
    V3,
    CaseFn,
    MatrixClient,
    Side,
    create_room,
    eventually,
    expect,
    get_state,
    invited_to,
    join,
    joined_to,
    leave,
    messages,
    new_user,
    on_both,
    q,
    send,
    send_state,
    sync_path,
    sync_until,
    timeline,
    timeline_has,
)


def left_from(user_id: str, room_id: str) -> Callable[[dict[str, Any]], bool]:
    def check(body: dict[str, Any]) -> bool:
        for section in ("join", "leave"):
            room = body.get("rooms", {}).get(section, {}).get(room_id, {})
            for ev in room.get("timeline", {}).get("events", []) + room.get("state", {}).get("events", []):
                if ev.get("type") == "m.room.member" and ev.get("state_key") == user_id and ev["content"].get("membership") in ("leave", "ban"):
                    return True
        return False

    return check


def member_keys(chunk: list[dict[str, Any]]) -> list[str]:
    return sorted(f"{e['type']}|{e['state_key']}" for e in chunk)


class MembershipTest(unittest.TestCase):
    timeout = 300

    async def test_ban(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            with case("Non-present room members cannot ban others"):
                alice, bob, charlie = [await new_user(side, n) for n in ("alice", "bob", "charlie")]
                room = await create_room(alice, preset="public_chat")
                await join(bob, room)
                await send_state(alice, room, "m.room.power_levels", {"users": {charlie.user_id: 100, alice.user_id: 100}})
                await sync_until(bob, joined_to(bob.user_id, room))
                await expect(charlie, "POST", f"{V3}/rooms/{q(room)}/ban", {"user_id": bob.user_id, "reason": "testing"}, status=403)

            async def joined_pair() -> tuple[MatrixClient, MatrixClient, str]:
                alice, bob = await new_user(side, "alice"), await new_user(side, "bob")
                room = await create_room(alice, preset="public_chat")
                await join(bob, room)
                await sync_until(alice, joined_to(bob.user_id, room))
                return alice, bob, room

            with case("TestCanBanJoinedUser"):
                alice, bob, room = await joined_pair()
                await alice.post(f"/rooms/{q(room)}/ban", {"user_id": bob.user_id})
                await sync_until(alice, left_from(bob.user_id, room))
            with case("TestBannedUserCannotRejoin"):
                alice, bob, room = await joined_pair()
                await alice.post(f"/rooms/{q(room)}/ban", {"user_id": bob.user_id})
                code, _ = await bob.raw("POST", f"{V3}/join/{q(room)}", {})
                assert code >= 400, code
            with case("TestCanUnbanBannedUser"):
                alice, bob, room = await joined_pair()
                await alice.post(f"/rooms/{q(room)}/ban", {"user_id": bob.user_id})
                code, _ = await bob.raw("POST", f"{V3}/join/{q(room)}", {})
                assert code >= 400, code
                await alice.post(f"/rooms/{q(room)}/unban", {"user_id": bob.user_id})
                await join(bob, room)

        await on_both(self, scenario)

    async def test_kick(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice, bob = await new_user(side, "alice"), await new_user(side, "bob")
            with case("Users cannot kick users from a room they are not in"):
                room = await create_room(alice, preset="public_chat")
                await expect(alice, "POST", f"{V3}/rooms/{q(room)}/kick", {"user_id": bob.user_id, "reason": "testing"}, status=403)
            with case("Users cannot kick users who have already left a room"):
                room = await create_room(alice, preset="public_chat")
                await join(bob, room)
                await sync_until(alice, joined_to(bob.user_id, room))
                await leave(bob, room)
                await sync_until(alice, left_from(bob.user_id, room))
                await expect(alice, "POST", f"{V3}/rooms/{q(room)}/kick", {"user_id": bob.user_id, "reason": "testing"}, status=403)

        await on_both(self, scenario)

    async def test_left_room_fixture(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice, bob, charlie = [await new_user(side, n) for n in ("alice", "bob", "charlie")]
            room = await create_room(alice, preset="public_chat", initial_state=[
                {"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "joined"}}])
            await join(bob, room)
            await sync_until(alice, joined_to(bob.user_id, room))
            madeup = "madeup.test.state"

            async def synced(event_id: str) -> None:
                await sync_until(alice, timeline_has(room, lambda ev: ev["event_id"] == event_id))

            await synced(await send_state(alice, room, "m.room.name", {"name": "N1. B's room name before A left"}))
            await synced(await send_state(alice, room, madeup, {"body": "S1. B's state before A left"}))
            await synced(await send(alice, room, "m.room.message", {"msgtype": "m.text", "body": "M1. B's message before A left"}))
            await synced(await send(alice, room, "m.room.message", {"msgtype": "m.text", "body": "M2. B's message before A left"}))
            await leave(bob, room)
            await sync_until(alice, left_from(bob.user_id, room))
            bob_since = (await bob.request("GET", sync_path()))["next_batch"]
            await synced(await send_state(alice, room, "m.room.name", {"name": "N2. B's room name after A left"}))
            await synced(await send_state(alice, room, madeup, {"body": "S2. B's state after A left"}))
            await synced(await send(alice, room, "m.room.message", {"msgtype": "m.text", "body": "M3. B's message after A left"}))
            await join(charlie, room)
            await sync_until(alice, joined_to(charlie.user_id, room))

            with case("Can get rooms/{roomId}/state for a departed room"):
                assert (await get_state(bob, room, madeup))["body"] == "S1. B's state before A left"
                assert (await get_state(alice, room, madeup))["body"] == "S2. B's state after A left"
            with case("Can get rooms/{roomId}/members for a departed room"):
                chunk = (await bob.get(f"/rooms/{q(room)}/members"))["chunk"]
                got = sorted(f"{e['type']}|{e['state_key']}|{e['content']['membership']}" for e in chunk)
                assert got == sorted([f"m.room.member|{alice.user_id}|join", f"m.room.member|{bob.user_id}|leave"]), got
            with case("Can get rooms/{roomId}/messages for a departed room"):
                chunk = (await messages(bob, room, limit="3", **{"from": bob_since}))["chunk"]
                got = sorted(f"{e['type']}|{e['content'].get('body', '')}|{e.get('state_key', '')}" for e in chunk)
                want = sorted(["m.room.message|M1. B's message before A left|", "m.room.message|M2. B's message before A left|",
                               f"m.room.member||{bob.user_id}"])
                assert got == want, got
            with case("Can get 'm.room.name' state for a departed room"):
                assert (await get_state(bob, room, "m.room.name"))["name"] == "N1. B's room name before A left"
                assert (await get_state(alice, room, "m.room.name"))["name"] == "N2. B's room name after A left"
            with case("Getting messages going forward is limited for a departed room"):
                got = await messages(bob, room, dir="f", limit="100", **{"from": bob_since})
                assert got["chunk"] == [], got

        await on_both(self, scenario)

    async def test_room_members(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            async def pair() -> tuple[MatrixClient, MatrixClient]:
                return await new_user(side, "alice"), await new_user(side, "bob")

            with case("Can get rooms/{roomId}/members"):
                alice, bob = await pair()
                room = await create_room(alice, preset="public_chat")
                await join(bob, room)
                await sync_until(alice, joined_to(bob.user_id, room))
                chunk = (await alice.get(f"/rooms/{q(room)}/members"))["chunk"]
                assert all(e["room_id"] == room for e in chunk), chunk
                assert member_keys(chunk) == sorted([f"m.room.member|{alice.user_id}", f"m.room.member|{bob.user_id}"]), chunk
            with case("Can get rooms/{roomId}/members at a given point"):
                alice, bob = await pair()
                room = await create_room(alice, preset="public_chat")
                event_id = await send(alice, room, "m.room.message", {"msgtype": "m.text", "body": "Hello world!"})
                await sync_until(alice, timeline_has(room, lambda ev: ev["event_id"] == event_id))
                body = await alice.request("GET", sync_path())
                at = body["rooms"]["join"][room]["timeline"]["prev_batch"]
                await join(bob, room)
                await sync_until(alice, joined_to(bob.user_id, room))
                await send(bob, room, "m.room.message", {"msgtype": "m.text", "body": "Hello back"})
                chunk = (await alice.get(f"/rooms/{q(room)}/members?at={q(at)}"))["chunk"]
                assert all(e["room_id"] == room for e in chunk), chunk
                assert member_keys(chunk) == [f"m.room.member|{alice.user_id}"], chunk
            alice, bob = await pair()
            room = await create_room(alice, preset="public_chat")
            await join(bob, room)
            await sync_until(alice, joined_to(bob.user_id, room))
            await leave(bob, room)
            await sync_until(alice, left_from(bob.user_id, room))
            for name, query, who in (("not_membership", "not_membership=leave", alice), ("membership/leave", "membership=leave", bob),
                                     ("membership/join", "membership=join", alice)):
                with case(f"Can filter rooms/{{roomId}}/members: {name}"):
                    chunk = (await alice.get(f"/rooms/{q(room)}/members?{query}"))["chunk"]
                    assert member_keys(chunk) == [f"m.room.member|{who.user_id}"], chunk

        await on_both(self, scenario)

    async def test_profile_updates_affect_member_events(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            for field in ("avatar_url", "displayname"):
                with case(f"{field} updates affect room member events"):
                    alice = await new_user(side, "alice")
                    room = await create_room(alice, preset="public_chat")
                    _, since = await sync_until(alice, joined_to(alice.user_id, room))
                    await alice.put(f"/profile/{q(alice.user_id)}/{field}", {field: "LemurLover"})

                    def updated(body: dict[str, Any]) -> bool:
                        return any(e["type"] == "m.room.member" and e["state_key"] == alice.user_id
                                   and e["content"].get(field) == "LemurLover" for e in timeline(body, room))

                    await sync_until(alice, updated, since)

        await on_both(self, scenario)

    async def test_membership_on_events(self) -> None:
        """MSC4115: unsigned.membership is the requesting user's membership at each event."""

        async def scenario(side: Side, case: CaseFn) -> None:
            alice, bob = await new_user(side, "alice"), await new_user(side, "bob")
            with case("TestMembershipOnEvents"):
                room = await create_room(alice, preset="public_chat")
                pre = await send(alice, room, "m.room.message", {"msgtype": "m.text", "body": "prejoin"})
                await join(bob, room)
                post = await send(alice, room, "m.room.message", {"msgtype": "m.text", "body": "postjoin"})
                await sync_until(alice, timeline_has(room, lambda ev: ev["event_id"] == post))
                events = timeline(await bob.request("GET", sync_path()), room)
                ids = [e["event_id"] for e in events]
                assert pre in ids and post in ids, ids
                seen_join = False
                for ev in events:
                    if ev["type"] == "m.room.member" and ev.get("state_key") == bob.user_id:
                        seen_join = True
                    want = "join" if seen_join else "leave"
                    assert ev.get("unsigned", {}).get("membership") == want, (want, ev)

        await on_both(self, scenario)

    async def test_direct_message_create(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice, bob = await new_user(side, "alice"), await new_user(side, "bob")
            with case("TestDirectMessageCreate"):
                room = await create_room(alice, invite=[bob.user_id], is_direct=True)
                _, since = await sync_until(bob, invited_to(room))
                await join(bob, room)

                def bob_join(ev: dict[str, Any]) -> bool:
                    return ev["type"] == "m.room.member" and ev.get("state_key") == bob.user_id and ev["content"].get("membership") == "join"

                await sync_until(bob, timeline_has(room, bob_join), since)
                body = await bob.request("GET", sync_path(since, timeout=1000))
                joins = [ev for ev in timeline(body, room) if bob_join(ev)]
                assert len(joins) == 1, timeline(body, room)

        await on_both(self, scenario)


class DirectMessagingTest(unittest.TestCase):
    timeout = 240

    async def test_direct_messaging(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice, bob = await new_user(side, "alice"), await new_user(side, "bob")
            with case("TestWriteMDirectAccountData"):
                room = await create_room(alice, invite=[bob.user_id], is_direct=True)
                await alice.put(f"/user/{q(alice.user_id)}/account_data/m.direct", {bob.user_id: [room]})

                def m_direct(room_id: str) -> Callable[[dict[str, Any]], bool]:
                    return lambda body: any(e["type"] == "m.direct" and e["content"].get(bob.user_id) == [room_id]
                                            for e in body.get("account_data", {}).get("events", []))

                _, since = await sync_until(alice, m_direct(room))
                room = await create_room(alice, invite=[bob.user_id], is_direct=True)
                await alice.put(f"/user/{q(alice.user_id)}/account_data/m.direct", {bob.user_id: [room]})
                await sync_until(alice, m_direct(room), since)
                assert await alice.get(f"/user/{q(alice.user_id)}/account_data/m.direct") == {bob.user_id: [room]}
            with case("TestIsDirectFlagLocal"):
                room = await create_room(alice, invite=[bob.user_id], is_direct=True)

                def direct_invite(body: dict[str, Any]) -> bool:
                    events = body.get("rooms", {}).get("invite", {}).get(room, {}).get("invite_state", {}).get("events", [])
                    return any(e["type"] == "m.room.member" and e["state_key"] == bob.user_id
                               and e["content"].get("membership") == "invite" and e["content"].get("is_direct") is True for e in events)

                await sync_until(bob, direct_invite)

        await on_both(self, scenario)


class DirectoryAndValidationTest(unittest.TestCase):
    timeout = 300

    async def test_public_rooms(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            tag = side.localpart("")
            with case("Can search public room list"):
                alice = await new_user(side, "alice")
                word = "wombles" + tag
                room = await create_room(alice, visibility="public", name="Test Name", topic=f"Test Topic {word}")

                async def found() -> bool:
                    body = await alice.post("/publicRooms", {"filter": {"generic_search_term": word}})
                    return [r["room_id"] for r in body["chunk"]] == [room]

                await eventually(found, "the room in a /publicRooms search", 15)
            with case("Name/topic keys are correct"):
                alice = await new_user(side, "alice")
                configs = [
                    ("publicroomalias_no_name", "", ""),
                    ("publicroomalias_with_name", "name_1", ""),
                    ("publicroomalias_with_topic", "", "topic_1"),
                    ("publicroomalias_with_name_topic", "name_2", "topic_2"),
                    ("publicroom_with_unicode_chars_name", "un nom français", ""),
                    ("publicroom_with_unicode_chars_topic", "", "un topic à la française"),
                    ("publicroom_with_unicode_chars_name_topic", "un nom français", "un topic à la française"),
                ]
                created: dict[str, tuple[str, str]] = {}
                for alias, name, topic in configs:
                    body: dict[str, Any] = {"visibility": "public", "room_alias_name": alias + tag}
                    if name:
                        body["name"] = name
                    if topic:
                        body["topic"] = topic
                    await create_room(alice, **body)
                    created[f"#{alias}{tag}:{side.server_name}"] = (name, topic)
                rooms = (await alice.get("/publicRooms?limit=1000"))["chunk"]
                for entry in rooms:
                    for key in ("world_readable", "guest_can_join", "num_joined_members"):
                        assert key in entry, (key, entry)
                mine = {r["canonical_alias"]: r for r in rooms if r.get("canonical_alias") in created}
                assert set(mine) == set(created), sorted(created.keys() - mine.keys())
                for alias, (name, topic) in created.items():
                    entry = mine[alias]
                    assert entry["num_joined_members"] == 1, entry
                    assert entry.get("name", "") == name and entry.get("topic", "") == topic, entry

        await on_both(self, scenario)

    async def test_redact(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice, bob = await new_user(side, "alice"), await new_user(side, "bob")
            room = await create_room(alice, preset="public_chat")
            await join(bob, room)
            with case("Event content is redacted"):
                content = {"msgtype": "m.text", "body": "expected message body"}
                event_id = await send(alice, room, "m.room.message", content)
                await sync_until(alice, timeline_has(room, lambda ev: ev["event_id"] == event_id))
                assert (await bob.get(f"/rooms/{q(room)}/event/{q(event_id)}"))["content"] == content
                await alice.put(f"/rooms/{q(room)}/redact/{q(event_id)}/r1", {"reason": "reasons..."})
                assert (await bob.get(f"/rooms/{q(room)}/event/{q(event_id)}"))["content"] == {}

        await on_both(self, scenario)

    async def test_invalid_json(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await new_user(side, "alice")
            # Complement passes room_opts, which /createRoom ignores: the default version.
            room = await create_room(alice, room_opts={"room_version": "6"})
            with case("Invalid numerical values"):
                for raw in (b'{"body": 9007199254740992}', b'{"body": -9007199254740992}', b'{"body": 1.1}'):
                    await expect(alice, "POST", f"{V3}/rooms/{q(room)}/send/complement.dummy", data=raw, status=400, errcode="M_BAD_JSON")
            with case("Invalid JSON special values"):
                for raw in (b'{"body": Infinity}', b'{"body": -Infinity}', b'{"body": NaN}'):
                    await expect(alice, "POST", f"{V3}/rooms/{q(room)}/send/complement.dummy", data=raw, status=400)
            with case("Check creating invalid filters returns 4xx"):
                nao, nal = "not_an_object", "not_a_list"
                filters: list[dict[str, Any]] = [
                    {"presence": nao},
                    {"room": {"timeline": nao}}, {"room": {"state": nao}}, {"room": {"ephemeral": nao}}, {"room": {"account_data": nao}},
                    *({"room": {"timeline": {key: nal}}} for key in ("rooms", "not_rooms", "senders", "not_senders", "types", "not_types")),
                    {"room": {"timeline": {"types": [1]}}},
                    {"room": {"timeline": {"rooms": ["not_a_room_id"]}}},
                    {"room": {"timeline": {"senders": ["not_a_sender_id"]}}},
                ]
                bad = []
                for flt in filters:
                    code, body = await alice.raw("POST", f"{V3}/user/{q(alice.user_id)}/filter", flt)
                    if not 400 <= code < 500:
                        bad.append((flt, code, body))
                assert not bad, bad
            with case("Large Event"):
                body = {"msgtype": "m.text", "body": "and they dont stop coming " * 2700}
                await expect(alice, "PUT", f"{V3}/rooms/{q(room)}/send/m.room.message/1", body, status=413)
            with case("Large State Event"):
                body = {"body": "Dormammu, I've Come To Bargain.\n" * 2200}
                await expect(alice, "PUT", f"{V3}/rooms/{q(room)}/state/marvel.universe.fate", body, status=413)

        await on_both(self, scenario)

    async def test_user_directory_room_specific_names(self) -> None:
        """TestRoomSpecificUsernameChange and TestRoomSpecificUsernameAtJoin: a name Alice uses
        in one private room is not found by a user outside it. Names carry a per-run suffix
        (Complement starts a clean server per test; here one Synapse serves every test)."""

        async def scenario(side: Side, case: CaseFn) -> None:
            for variant in ("Change", "AtJoin"):
                tag = f"{side.localpart('')}{variant.lower()}"
                public, private = f"Alice Cooper {tag}", f"Freddy{tag}"
                alice, bob, eve = [await new_user(side, n) for n in ("alice", "bob", "eve")]
                await alice.put(f"/profile/{q(alice.user_id)}/displayname", {"displayname": public})
                await create_room(alice, visibility="public")
                room = await create_room(bob, visibility="private", invite=[alice.user_id])
                await sync_until(alice, invited_to(room))
                await join(alice, room)
                await alice.put(f"/rooms/{q(room)}/state/m.room.member/{q(alice.user_id)}", {"displayname": private, "membership": "join"})

                async def search(who: MatrixClient, term: str) -> list[dict[str, Any]]:
                    return list((await who.post("/user_directory/search", {"search_term": term}))["results"])

                def just_alice(results: list[dict[str, Any]]) -> bool:
                    return len(results) == 1 and results[0]["display_name"] == public and results[0]["user_id"] == alice.user_id

                localpart = alice.user_id[1:].split(":")[0]
                for who, name in ((eve, "Eve"), (bob, "Bob")):
                    with case(f"{variant}: {name} can find Alice by profile display name"):
                        assert just_alice(await search(who, public)), await search(who, public)
                    with case(f"{variant}: {name} can find Alice by mxid"):
                        assert just_alice(await search(who, localpart)), await search(who, localpart)
                with case(f"{variant}: Eve cannot find Alice by room-specific name that Eve is not privy to"):
                    assert await search(eve, private) == []

        await on_both(self, scenario)


class FederatedDirectMessagingTest(unittest.TestCase):
    """TestIsDirectFlagFederation with a real Synapse in place of Complement's fake server:
    a DM invite from another server keeps is_direct in the invitee's invite state."""

    timeout = 240

    async def test_is_direct_flag_federation(self) -> None:
        try:
            import synapse  # noqa: F401
        except ImportError as e:
            raise unittest.SkipTest("matrix-synapse is not installed") from e
        from tests.federation.helpers import start_federating
        from tests.support.synapse import start_synapse_peer, synapse_client

        wspr = await start_federating(self)
        syn = await start_synapse_peer(self, "wspr-dm-synapse-")
        alice = await MatrixClient.register(wspr.base_url, "alice")
        bob = await synapse_client(syn, "bob")
        since = (await alice.request("GET", sync_path()))["next_batch"]
        room = await create_room(bob, invite=[alice.user_id], is_direct=True)

        def direct_invite(body: dict[str, Any]) -> bool:
            events = body.get("rooms", {}).get("invite", {}).get(room, {}).get("invite_state", {}).get("events", [])
            return any(e["type"] == "m.room.member" and e["state_key"] == alice.user_id
                       and e["content"].get("membership") == "invite" and e["content"].get("is_direct") is True for e in events)

        await sync_until(alice, direct_invite, since, wait=20)
