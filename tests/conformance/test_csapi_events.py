"""Complement's event, relation, thread, receipt, typing and invite cases, ported
(tests/conformance/complement.py runs each on Synapse and WSPR): room_relations_test.go,
room_threads_test.go, thread_notifications_test.go, room_typing_test.go,
rooms_state_test.go, rooms_members_local_test.go, rooms_invite_test.go."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.trial import unittest

from tests.conformance.complement import (
    V1,
    V3,
    CaseFn,
    MatrixClient,
    Side,
    create_room,
    each,
    expect,
    get_state,
    invite,
    invited_to,
    join,
    joined_room,
    joined_to,
    leave,
    new_user,
    on_both,
    q,
    send,
    send_state,
    sleep,
    sync_path,
    sync_until,
    timeline_has,
)

Check = Callable[[dict[str, Any]], bool]


def has_id(room: str, event_id: str) -> Check:
    return timeline_has(room, lambda ev: ev["event_id"] == event_id)


def left_from(user_id: str, room_id: str) -> Check:
    def check(body: dict[str, Any]) -> bool:
        for section in ("join", "leave"):
            room = body.get("rooms", {}).get(section, {}).get(room_id, {})
            for ev in room.get("timeline", {}).get("events", []) + room.get("state", {}).get("events", []):
                if ev.get("type") == "m.room.member" and ev.get("state_key") == user_id and ev["content"].get("membership") == "leave":
                    return True
        return False

    return check


def thread_reply(root: str, body: str) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": body, "m.relates_to": {"event_id": root, "rel_type": "m.thread"}}


async def put_message(client: MatrixClient, room: str, txn: str, content: dict[str, Any], event_type: str = "m.room.message") -> str:
    return str((await client.put(f"/rooms/{q(room)}/send/{event_type}/{txn}", content))["event_id"])


def chunk_ids(body: dict[str, Any]) -> list[str]:
    return [e["event_id"] for e in body["chunk"]]


class RelationsThreadsTest(unittest.TestCase):
    timeout = 300

    async def test_relations(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await new_user(side, "alice")
            room = await create_room(alice, preset="public_chat")
            token = (await alice.request("GET", sync_path()))["next_batch"]
            rel = f"{V1}/rooms/{q(room)}/relations"
            with case("TestRelations"):
                root = await put_message(alice, room, "txn-1", {"msgtype": "m.text", "body": "root"})
                thread = await put_message(alice, room, "txn-2", thread_reply(root, "reply"))
                dummy = await put_message(alice, room, "txn-3", {"m.relates_to": {"event_id": root, "rel_type": "m.thread"}}, "m.dummy")
                edit = await put_message(alice, room, "txn-4", {
                    "msgtype": "m.text", "body": "* edited root", "m.new_content": {"msgtype": "m.text", "body": "edited root"},
                    "m.relates_to": {"event_id": root, "rel_type": "m.replace"}})
                await sync_until(alice, has_id(room, edit), token)
                assert sorted(chunk_ids(await expect(alice, "GET", f"{rel}/{q(root)}"))) == sorted([thread, dummy, edit])
                assert sorted(chunk_ids(await expect(alice, "GET", f"{rel}/{q(root)}/m.thread"))) == sorted([thread, dummy])
                assert chunk_ids(await expect(alice, "GET", f"{rel}/{q(root)}/m.thread/m.room.message")) == [thread]

        await on_both(self, scenario)

    async def test_relations_pagination(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await new_user(side, "alice")
            room = await create_room(alice, preset="public_chat")
            token = (await alice.request("GET", sync_path()))["next_batch"]
            rel = f"{V1}/rooms/{q(room)}/relations"
            with case("TestRelationsPagination"):
                root = await put_message(alice, room, "txn-1", {"msgtype": "m.text", "body": "root"})
                ids = [await put_message(alice, room, f"txn-{2 + i}", thread_reply(root, f"reply {i}")) for i in range(10)]
                await sync_until(alice, has_id(room, ids[9]), token)
                page = await expect(alice, "GET", f"{rel}/{q(root)}?limit=3")
                assert sorted(chunk_ids(page)) == sorted(ids[7:10]), page
                page = await expect(alice, "GET", f"{rel}/{q(root)}?limit=3&from={q(page['next_batch'])}")
                assert sorted(chunk_ids(page)) == sorted(ids[4:7]), page
                page = await expect(alice, "GET", f"{rel}/{q(root)}?limit=3&dir=f")
                assert sorted(chunk_ids(page)) == sorted(ids[0:3]), page
                page = await expect(alice, "GET", f"{rel}/{q(root)}?limit=3&dir=f&from={q(page['next_batch'])}")
                assert sorted(chunk_ids(page)) == sorted(ids[3:6]), page

        await on_both(self, scenario)

    async def test_relations_pagination_sync(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await new_user(side, "alice")
            room = await create_room(alice, preset="public_chat")
            token = (await alice.request("GET", sync_path()))["next_batch"]
            rel = f"{V1}/rooms/{q(room)}/relations"
            with case("TestRelationsPaginationSync"):
                root = await put_message(alice, room, "txn-1", {"msgtype": "m.text", "body": "root"})
                last = ""
                for i in range(5):
                    last = await put_message(alice, room, f"txn-{2 + i}", thread_reply(root, f"reply {i}"))
                _, next_batch = await sync_until(alice, has_id(room, last), token)
                ids = [await put_message(alice, room, f"txn-{7 + i}", thread_reply(root, f"reply {i}")) for i in range(5)]
                await sync_until(alice, has_id(room, ids[4]), token)
                page = await expect(alice, "GET", f"{rel}/{q(root)}?limit=3&dir=f&from={q(next_batch)}")
                assert sorted(chunk_ids(page)) == sorted(ids[0:3]), page
                page = await expect(alice, "GET", f"{rel}/{q(root)}?limit=3&dir=f&from={q(page['next_batch'])}")
                assert sorted(chunk_ids(page)) == sorted(ids[3:5]), page

        await on_both(self, scenario)

    async def test_threads_endpoint(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await new_user(side, "alice")
            room = await create_room(alice, preset="public_chat")
            token = (await alice.request("GET", sync_path()))["next_batch"]

            async def threads() -> list[str]:
                body = await expect(alice, "GET", f"{V1}/rooms/{q(room)}/threads")
                return [f"{e['event_id']}|{e['unsigned']['m.relations']['m.thread']['latest_event']['event_id']}" for e in body["chunk"]]

            with case("TestThreadsEndpoint"):
                t1 = await put_message(alice, room, "txn-1", {"msgtype": "m.text", "body": "Thread 1 Root"})
                t2 = await put_message(alice, room, "txn-2", {"msgtype": "m.text", "body": "Thread 2 Root"})
                r1 = await put_message(alice, room, "txn-3", thread_reply(t1, "Thread 1 Reply"))
                r2 = await put_message(alice, room, "txn-4", thread_reply(t2, "Thread 2 Reply"))
                await sync_until(alice, has_id(room, r2), token)
                assert await threads() == [f"{t2}|{r2}", f"{t1}|{r1}"]
                r3 = await put_message(alice, room, "txn-5", thread_reply(t1, "Thread 1 Reply 2"))
                await sync_until(alice, has_id(room, r3), token)
                assert await threads() == [f"{t1}|{r3}", f"{t2}|{r2}"]

        await on_both(self, scenario)

    async def test_threaded_receipts(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice, bob = await new_user(side, "alice"), await new_user(side, "bob")
            room = await create_room(alice, preset="public_chat")
            await join(bob, room)
            _, token = await sync_until(bob, joined_to(bob.user_id, room))
            thread_filter = {"room": {"timeline": {"unread_thread_notifications": True}}}

            async def synced(event_id: str) -> str:
                await sync_until(alice, has_id(room, event_id))
                return event_id

            def counts(want: tuple[int, int], threads: dict[str, tuple[int, int]] | None) -> Check:
                def check(body: dict[str, Any]) -> bool:
                    joined = joined_room(body, room)
                    unread = joined.get("unread_notifications")
                    if unread is None:
                        return False
                    got = (unread.get("highlight_count"), unread.get("notification_count"))
                    by_thread = joined.get("unread_thread_notifications")
                    got_threads = None if by_thread is None else {
                        k: (v.get("highlight_count"), v.get("notification_count")) for k, v in by_thread.items()}
                    return (got, got_threads) == (want, threads)
                return check

            async def expect_counts(plain: tuple[int, int], threaded: tuple[int, int], threads: dict[str, tuple[int, int]] | None) -> None:
                await sync_until(bob, each(has_id(room, second), counts(plain, None)), token)
                await sync_until(bob, each(has_id(room, second), counts(threaded, threads)), token, flt=thread_filter)

            with case("TestThreadedReceipts"):
                first = await synced(await send(alice, room, "m.room.message", {"msgtype": "m.text", "body": "Hello world!"}))
                first_thread = await synced(await send(alice, room, "m.room.message", thread_reply(first, "Start thread!")))
                await synced(await send(alice, room, "m.room.message", thread_reply(first, f"Thread response {bob.user_id}!")))
                second = await synced(await send(alice, room, "m.room.message", {"msgtype": "m.text", "body": f"Hello {bob.user_id}!"}))
                await expect_counts((2, 4), (1, 2), {first: (1, 2)})
                await bob.post(f"/rooms/{q(room)}/receipt/m.read/{q(first)}", {"thread_id": "main"})
                await expect_counts((2, 3), (1, 1), {first: (1, 2)})
                await bob.post(f"/rooms/{q(room)}/receipt/m.read/{q(first_thread)}", {"thread_id": first})
                await expect_counts((2, 2), (1, 1), {first: (1, 1)})
                await bob.post(f"/rooms/{q(room)}/receipt/m.read/{q(second)}", {})
                await expect_counts((0, 0), (0, 0), None)

        await on_both(self, scenario)


class RoomEventsTest(unittest.TestCase):
    timeout = 300

    async def test_typing(self) -> None:
        def typing_is(room: str, users: list[str]) -> Check:
            def check(body: dict[str, Any]) -> bool:
                for ev in joined_room(body, room).get("ephemeral", {}).get("events", []):
                    if ev["type"] == "m.typing" and sorted(ev["content"]["user_ids"]) == sorted(users):
                        return True
                return False
            return check

        async def scenario(side: Side, case: CaseFn) -> None:
            alice, bob, charlie = [await new_user(side, n) for n in ("alice", "bob", "charlie")]
            room = await create_room(alice, preset="public_chat")
            await join(bob, room)
            _, token = await sync_until(bob, joined_to(bob.user_id, room))
            charlie_token = (await charlie.request("GET", sync_path()))["next_batch"]
            await alice.put(f"/rooms/{q(room)}/typing/{q(alice.user_id)}", {"typing": True, "timeout": 10000})
            with case("Typing notification sent to local room members"):
                await sync_until(bob, typing_is(room, [alice.user_id]), token)
            with case("Typing can be explicitly stopped"):
                await alice.put(f"/rooms/{q(room)}/typing/{q(alice.user_id)}", {"typing": False})
                await sync_until(bob, typing_is(room, []), token)
            with case("Typing notifications don't leak"):
                body = await charlie.request("GET", sync_path(charlie_token, timeout=1000))
                assert room not in body.get("rooms", {}).get("join", {}), body["rooms"]

        await on_both(self, scenario)

    async def test_room_creation_reports_events_to_myself(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice, bob = await new_user(side, "alice"), await new_user(side, "bob")
            room = await create_room(alice)
            with case("Room creation reports m.room.create to myself"):
                def create(ev: dict[str, Any]) -> bool:
                    if ev["type"] != "m.room.create":
                        return False
                    assert ev["sender"] == alice.user_id, ev
                    # Since room version 11 the creator is the sender (content.creator is gone);
                    # Complement's check of content.creator assumes an older default version.
                    assert ev["content"].get("creator", alice.user_id) == alice.user_id, ev
                    return True
                await sync_until(alice, timeline_has(room, create))
            with case("Room creation reports m.room.member to myself"):
                def member(ev: dict[str, Any]) -> bool:
                    if ev["type"] != "m.room.member":
                        return False
                    assert ev["sender"] == alice.user_id and ev["state_key"] == alice.user_id, ev
                    assert ev["content"]["membership"] == "join", ev
                    return True
                await sync_until(alice, timeline_has(room, member))
            with case("Setting room topic reports m.room.topic to myself"):
                event_id = await send_state(alice, room, "m.room.topic", {"topic": "Testing topic for the new room"})
                await sync_until(alice, has_id(room, event_id))

                def topic(ev: dict[str, Any]) -> bool:
                    if ev["type"] != "m.room.topic" or "state_key" not in ev:
                        return False
                    assert ev["sender"] == alice.user_id and ev["content"]["topic"] == "Testing topic for the new room", ev
                    return True
                await sync_until(alice, timeline_has(room, topic))
            with case("Setting state twice is idempotent"):
                first = await send_state(alice, room, "a.test.state.type", {"a_key": "a_value"})
                await sync_until(alice, has_id(room, first))
                second = await send_state(alice, room, "a.test.state.type", {"a_key": "a_value"})
                assert first == second, (first, second)
            with case("Joining room twice is idempotent"):
                other = await create_room(bob, visibility="public", preset="public_chat")
                await join(alice, other)
                await sync_until(alice, joined_to(alice.user_id, other))

                async def member_event_id() -> str:
                    state = await alice.get(f"/rooms/{q(other)}/state")
                    return next(e["event_id"] for e in state if e["type"] == "m.room.member" and e["state_key"] == alice.user_id)

                first = await member_event_id()
                await join(alice, other)
                await sleep(2)
                assert await member_event_id() == first

        await on_both(self, scenario)

    async def test_members_local(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice, bob = await new_user(side, "alice"), await new_user(side, "bob")
            room = await create_room(alice, preset="public_chat")
            await bob.put(f"/presence/{q(bob.user_id)}/status", {"presence": "online"})
            token = (await alice.request("GET", sync_path()))["next_batch"]
            await join(bob, room)

            def presence_of(user_id: str) -> Check:
                return lambda body: any(e["sender"] == user_id for e in body.get("presence", {}).get("events", []))

            with case("New room members see their own join event"):
                await sync_until(alice, joined_to(alice.user_id, room))
            with case("Existing members see new members' join events"):
                await sync_until(alice, joined_to(bob.user_id, room))
            with case("Existing members see new members' presence in initial sync"):
                await sync_until(alice, joined_to(bob.user_id, room))
                await sync_until(alice, each(joined_to(bob.user_id, room), presence_of(bob.user_id)))
            with case("Existing members see new members' presence in incremental sync"):
                await sync_until(alice, each(joined_to(bob.user_id, room), presence_of(bob.user_id)), token)

        await on_both(self, scenario)

    async def test_rooms_invite(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice, bob = await new_user(side, "alice"), await new_user(side, "bob")
            with case("Can invite users to invite-only rooms"):
                room = await create_room(alice, preset="private_chat")
                await invite(alice, room, bob.user_id)
                await sync_until(bob, invited_to(room))
                await join(bob, room)
                await sync_until(bob, joined_to(bob.user_id, room))
                await sync_until(alice, joined_to(bob.user_id, room))
            with case("Uninvited users cannot join the room"):
                room = await create_room(alice, preset="private_chat")
                await expect(bob, "POST", f"{V3}/join/{q(room)}", {}, status=403)
            with case("Invited user can reject invite"):
                room = await create_room(alice, preset="private_chat")
                await invite(alice, room, bob.user_id)
                await sync_until(bob, invited_to(room))
                await leave(bob, room)
                await sync_until(alice, left_from(bob.user_id, room))
            with case("Invited user can reject invite for empty room"):
                room = await create_room(alice, preset="private_chat")
                _, alice_since = await sync_until(alice, joined_to(alice.user_id, room))
                await invite(alice, room, bob.user_id)
                _, bob_since = await sync_until(bob, invited_to(room))
                await leave(alice, room)
                await sync_until(alice, left_from(alice.user_id, room), alice_since)
                await leave(bob, room)
                _, bob_since = await sync_until(bob, left_from(bob.user_id, room), bob_since)
                body = await bob.request("GET", sync_path(bob_since))
                assert room not in body.get("rooms", {}).get("invite", {}), body["rooms"]
            with case("Users cannot invite themselves to a room"):
                room = await create_room(alice, preset="private_chat")
                await expect(alice, "POST", f"{V3}/rooms/{q(room)}/invite", {"user_id": alice.user_id}, status=403)
            with case("Users cannot invite a user that is already in the room"):
                room = await create_room(alice, preset="private_chat")
                await invite(alice, room, bob.user_id)
                await sync_until(bob, invited_to(room))
                await join(bob, room)
                await sync_until(alice, joined_to(bob.user_id, room))
                await expect(alice, "POST", f"{V3}/rooms/{q(room)}/invite", {"user_id": bob.user_id}, status=403)
            with case("Invited user can see room metadata"):
                room = await create_room(alice, preset="private_chat", name="Invites room")
                await invite(alice, room, bob.user_id)
                await sync_until(bob, invited_to(room))
                body = await bob.request("GET", sync_path())
                wanted = {"m.room.join_rules": "join_rule", "m.room.name": "name"}
                seen = set()
                for ev in body["rooms"]["invite"][room]["invite_state"]["events"]:
                    field = wanted.get(ev["type"])
                    if field:
                        seen.add(ev["type"])
                        assert (await get_state(alice, room, ev["type"], ev["state_key"]))[field] == ev["content"][field], ev
                assert seen == set(wanted), seen
            with case("Test that we can be reinvited to a room we created"):
                room = await create_room(alice, preset="private_chat")
                await invite(alice, room, bob.user_id)
                await sync_until(bob, invited_to(room))
                await join(bob, room)
                await sync_until(alice, joined_to(bob.user_id, room))
                await alice.put(f"/rooms/{q(room)}/state/m.room.power_levels", {"users": {bob.user_id: 100}})
                await leave(alice, room)
                await sync_until(bob, left_from(alice.user_id, room))
                await invite(bob, room, alice.user_id)
                await sync_until(alice, invited_to(room))
                await join(alice, room)
                await sync_until(bob, joined_to(alice.user_id, room))

        await on_both(self, scenario)
