"""Complement's end-to-end encryption and to-device cases, ported
(tests/conformance/complement.py runs each on Synapse and WSPR): apidoc_sendtodevice_test.go,
to_device_test.go, device_lists_test.go (the remote variants against a real Synapse),
keychanges_test.go, upload_keys_test.go, user_query_keys_test.go, e2e_key_backup_test.go,
encryption_test.go.

Device and one-time keys are made up: servers store and serve them without checking
signatures (neither Synapse nor WSPR verifies a device's self-signature on upload)."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Callable
from typing import Any

from twisted.internet import threads
from twisted.trial import unittest

from tests.conformance.complement import (
    V3,
    CaseFn,
    MatrixClient,
    Side,
    create_room,
    each,
    expect,
    join,
    joined_to,
    leave,
    login,
    new_user,
    on_both,
    q,
    sleep,
    sync_path,
    sync_until,
)


def b64(n: int = 32) -> str:
    return base64.b64encode(secrets.token_bytes(n)).decode().rstrip("=")


def device_keys(client: MatrixClient) -> dict[str, Any]:
    dev = client.device_id
    return {
        "user_id": client.user_id,
        "device_id": dev,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {f"ed25519:{dev}": b64(), f"curve25519:{dev}": b64()},
        "signatures": {client.user_id: {f"ed25519:{dev}": b64(64)}},
    }


def one_time_keys(client: MatrixClient, n: int) -> dict[str, Any]:
    return {
        f"signed_curve25519:{i}": {"key": b64(), "signatures": {client.user_id: {f"ed25519:{client.device_id}": b64(64)}}}
        for i in range(n)
    }


async def upload_new_keys(client: MatrixClient) -> dict[str, Any]:
    keys = device_keys(client)
    await client.post("/keys/upload", {"device_keys": keys})
    return keys


async def query_keys(client: MatrixClient, user_id: str) -> dict[str, Any]:
    return dict(await client.post("/keys/query", {"device_keys": {user_id: []}}))


def device_lists_has(section: str, user_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda body: user_id in body.get("device_lists", {}).get(section, [])


def left_from(user_id: str, room_id: str) -> Callable[[dict[str, Any]], bool]:
    def check(body: dict[str, Any]) -> bool:
        for section in ("join", "leave"):
            room = body.get("rooms", {}).get(section, {}).get(room_id, {})
            for ev in room.get("timeline", {}).get("events", []) + room.get("state", {}).get("events", []):
                if ev.get("type") == "m.room.member" and ev.get("state_key") == user_id and ev["content"].get("membership") == "leave":
                    return True
        return False

    return check


def to_device_events(body: dict[str, Any]) -> list[dict[str, Any]]:
    # Complement checks that `to_device.events` is absent once nothing is left: Synapse
    # leaves empty sections out of /sync, WSPR sends them empty (see the report of this
    # port); both mean "no messages", which is what is checked here.
    return list(body.get("to_device", {}).get("events", []))


async def join_via(client: MatrixClient, room_id: str, server: str) -> None:
    await client.post(f"/join/{q(room_id)}?server_name={q(server)}", {})


async def device_list_cases(case: CaseFn, make_alice: Callable[[str], Any], make_bob: Callable[[str], Any],
                            alice_server: str, bob_server: str, where: str) -> None:
    """Complement's TestDeviceListUpdates cases: Alice (on ``alice_server``) watches the
    device list of Bob (on ``bob_server``, the same server or another)."""

    async def barrier_for(observer: MatrixClient) -> Callable[[str], Any]:
        # Complement's barrier: a device list update of a user of Bob's server that Alice
        # sees after the ones before it.
        barry = await make_bob("barry")
        room = await create_room(barry, preset="public_chat")
        await join_via(observer, room, bob_server)
        await sync_until(observer, joined_to(observer.user_id, room))

        async def barrier(since: str) -> str:
            await upload_new_keys(barry)
            _, since = await sync_until(observer, device_lists_has("changed", barry.user_id), since, wait=20)
            return since

        return barrier

    async def check_keys(alice: MatrixClient, bob: MatrixClient, keys: dict[str, Any]) -> None:
        got = (await query_keys(alice, bob.user_id))["device_keys"][bob.user_id][bob.device_id]
        assert got["algorithms"] == keys["algorithms"] and got["keys"] == keys["keys"], got

    async def users() -> tuple[MatrixClient, MatrixClient, Any, dict[str, Any]]:
        alice = await make_alice("alice")
        bob = await make_bob("bob")
        barrier = await barrier_for(alice)
        return alice, bob, barrier, await upload_new_keys(bob)

    def until(client: MatrixClient, check: Callable[[dict[str, Any]], bool], since: str | None = None) -> Any:
        return sync_until(client, check, since, wait=20)

    with case(f"when {where} user joins a room"):
        alice, bob, barrier, keys = await users()
        room = await create_room(alice, preset="public_chat")
        since = (await alice.request("GET", sync_path()))["next_batch"]
        await join_via(bob, room, alice_server)
        await until(bob, joined_to(bob.user_id, room))
        _, since = await until(alice, each(joined_to(bob.user_id, room), device_lists_has("changed", bob.user_id)), since)
        await check_keys(alice, bob, keys)
        since = await barrier(since)
        keys = await upload_new_keys(bob)
        await until(alice, device_lists_has("changed", bob.user_id), since)
        await check_keys(alice, bob, keys)
    with case(f"when joining a room with a {where} user"):
        alice, bob, barrier, keys = await users()
        room = await create_room(bob, preset="public_chat")
        since = (await alice.request("GET", sync_path()))["next_batch"]
        await join_via(alice, room, bob_server)
        await until(bob, joined_to(alice.user_id, room))
        _, since = await until(alice, each(joined_to(alice.user_id, room), device_lists_has("changed", bob.user_id)), since)
        await check_keys(alice, bob, keys)
        since = await barrier(since)
        keys = await upload_new_keys(bob)
        await until(alice, device_lists_has("changed", bob.user_id), since)
        await check_keys(alice, bob, keys)
    with case(f"when {where} user leaves a room"):
        alice, bob, barrier, keys = await users()
        room = await create_room(alice, preset="public_chat")
        await join_via(bob, room, alice_server)
        _, bob_since = await until(bob, joined_to(bob.user_id, room))
        _, since = await until(alice, joined_to(bob.user_id, room))
        await check_keys(alice, bob, keys)
        since = await barrier(since)
        await leave(bob, room)
        await until(bob, left_from(bob.user_id, room), bob_since)
        _, since = await until(alice, each(left_from(bob.user_id, room), device_lists_has("left", bob.user_id)), since)
        keys = await upload_new_keys(bob)
        await check_keys(alice, bob, keys)
        body = await alice.request("GET", sync_path(since))
        assert not device_lists_has("changed", bob.user_id)(body), "notified of a device change of a user sharing no room"
    with case(f"when leaving a room with a {where} user"):
        alice, bob, barrier, keys = await users()
        room = await create_room(bob, preset="public_chat")
        await join_via(alice, room, bob_server)
        _, bob_since = await until(bob, joined_to(alice.user_id, room))
        _, since = await until(alice, joined_to(alice.user_id, room))
        await check_keys(alice, bob, keys)
        since = await barrier(since)
        await leave(alice, room)
        await until(bob, left_from(alice.user_id, room), bob_since)
        _, since = await until(alice, each(left_from(alice.user_id, room), device_lists_has("left", bob.user_id)), since)
        keys = await upload_new_keys(bob)
        await check_keys(alice, bob, keys)
        body = await alice.request("GET", sync_path(since))
        assert not device_lists_has("changed", bob.user_id)(body), "notified of a device change of a user sharing no room"
    with case(f"when {where} user rejoins a room"):
        alice, bob, barrier, keys = await users()
        room = await create_room(alice, preset="public_chat")
        await join_via(bob, room, alice_server)
        _, bob_since = await until(bob, joined_to(bob.user_id, room))
        _, since = await until(alice, joined_to(bob.user_id, room))
        await check_keys(alice, bob, keys)
        since = await barrier(since)
        await leave(bob, room)
        _, bob_since = await until(bob, left_from(bob.user_id, room), bob_since)
        await until(alice, each(left_from(bob.user_id, room), device_lists_has("left", bob.user_id)), since)
        keys = await upload_new_keys(bob)
        await join_via(bob, room, alice_server)
        await until(bob, joined_to(bob.user_id, room), bob_since)
        await until(alice, each(joined_to(bob.user_id, room), device_lists_has("changed", bob.user_id)), since)
        await check_keys(alice, bob, keys)


class ToDeviceTest(unittest.TestCase):
    timeout = 240

    async def test_send_to_device(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await new_user(side, "alice")
            bob = await new_user(side, "bob")
            charlie = await new_user(side, "charlie")
            next_request = [0]

            async def send(content: dict[str, Any] | None = None, messages: dict[str, Any] | None = None) -> None:
                alice._txn += 1
                if messages is None:
                    content = content or {"action": "request", "requesting_device_id": alice.device_id, "request_id": next_request[0]}
                    next_request[0] += 1
                    messages = {bob.user_id: {bob.device_id: content}}
                await alice.put(f"/sendToDevice/m.room_key_request/t{alice._txn}-{secrets.token_hex(3)}", {"messages": messages})

            def check_messages(client: MatrixClient, request_id: str, want: int) -> Callable[[dict[str, Any]], bool]:
                def check(body: dict[str, Any]) -> bool:
                    events = to_device_events(body)
                    assert len(events) == want, f"{client.user_id}: wanted {want} to-device events, got {events}"
                    for ev in events:
                        assert ev["sender"] == alice.user_id and ev["type"] == "m.room_key_request", ev
                        assert ev["content"]["action"] == "request" and ev["content"]["requesting_device_id"] == alice.device_id, ev
                        assert ev["content"]["request_id"] == request_id, ev
                    return True
                return check

            def in_order(want: int) -> tuple[Callable[[dict[str, Any]], bool], list[int]]:
                seen: list[int] = []

                def check(body: dict[str, Any]) -> bool:
                    for ev in to_device_events(body):
                        seen.append(ev["content"]["request_id"])
                    assert seen == list(range(next_request[0] - want, next_request[0]))[: len(seen)], f"out of order: {seen}"
                    return len(seen) == want

                return check, seen

            with case("Can recv a device message using /sync"):
                await send()
                check, _ = in_order(1)
                _, since = await sync_until(bob, check)
                assert not to_device_events(await bob.request("GET", sync_path(since)))
            with case("Can send a to-device message to two users which both receive it using /sync"):
                content = {"action": "request", "requesting_device_id": alice.device_id, "request_id": "1"}
                await send(messages={bob.user_id: {bob.device_id: content}, charlie.user_id: {"*": content}})
                _, since = await sync_until(bob, check_messages(bob, "1", 1))
                await sync_until(bob, check_messages(bob, "1", 0), since)
                await sync_until(charlie, check_messages(charlie, "1", 1))
            with case("sendToDevice messages are not sent multiple times"):
                content = {"action": "request", "requesting_device_id": alice.device_id, "request_id": "2"}
                await send(messages={bob.user_id: {bob.device_id: content}})
                await sync_until(bob, check_messages(bob, "2", 1))
                _, since = await sync_until(bob, check_messages(bob, "2", 1))
                _, since = await sync_until(bob, check_messages(bob, "2", 0), since)
                await send(messages={bob.user_id: {bob.device_id: content}})
                previous = since
                _, since = await sync_until(bob, check_messages(bob, "2", 1), since)
                await sync_until(bob, check_messages(bob, "2", 1), previous)
                await sync_until(bob, check_messages(bob, "2", 0), since)
                await sync_until(bob, check_messages(bob, "2", 0), previous)
            with case("sendToDevice messages are ordered by arrival"):
                for _ in range(10):
                    await send()
                check, _ = in_order(10)
                _, since = await sync_until(bob, check)
                assert not to_device_events(await bob.request("GET", sync_path(since)))

        await on_both(self, scenario)

    async def test_to_device_messages(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await new_user(side, "alice")
            bob = await new_user(side, "bob")
            charlie = await new_user(side, "charlie")
            with case("TestToDeviceMessages"):
                bob_since = (await bob.request("GET", sync_path()))["next_batch"]
                charlie_since = (await charlie.request("GET", sync_path()))["next_batch"]
                content = {"my_key": "my_value"}
                await alice.put(f"/sendToDevice/my.test.type/{secrets.token_hex(4)}", {"messages": {
                    bob.user_id: {bob.device_id: content}, charlie.user_id: {charlie.device_id: content}}})

                def got_it(body: dict[str, Any]) -> bool:
                    return any(e["type"] == "my.test.type" and e["sender"] == alice.user_id and e["content"] == content
                               for e in to_device_events(body))

                await sync_until(bob, got_it, bob_since)
                await sync_until(charlie, got_it, charlie_since)

        await on_both(self, scenario)


class KeysTest(unittest.TestCase):
    timeout = 300

    async def test_device_list_updates(self) -> None:
        """TestDeviceListUpdates with both users on one server (the remote variants are
        FederatedDeviceListsTest)."""

        async def scenario(side: Side, case: CaseFn) -> None:
            async def local(name: str) -> MatrixClient:
                return await new_user(side, name)

            await device_list_cases(case, local, local, side.server_name, side.server_name, "local")

        await on_both(self, scenario)

    async def test_key_changes_local(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await new_user(side, "alice")
            bob = await new_user(side, "bob", "$uperSecretPassword")
            with case("New login should create a device_lists.changed entry"):
                await bob.post("/keys/upload", {"device_keys": device_keys(bob), "one_time_keys": one_time_keys(bob, 1)})
                room = await create_room(alice, preset="public_chat")
                await join(bob, room)
                _, since1 = await sync_until(alice, joined_to(bob.user_id, room))
                second = await login(side, bob.user_id, "$uperSecretPassword")
                await second.post("/keys/upload", {"device_keys": device_keys(second), "one_time_keys": one_time_keys(second, 1)})
                _, since2 = await sync_until(alice, device_lists_has("changed", bob.user_id), since1)
                changes = await alice.get(f"/keys/changes?from={q(since1)}&to={q(since2)}")
                assert changes["changed"][0] == bob.user_id, changes
                devices = (await query_keys(alice, bob.user_id))["device_keys"][bob.user_id]
                assert len(devices) == 2, devices

        await on_both(self, scenario)

    async def test_upload_keys(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await new_user(side, "alice")
            bob = await new_user(side, "bob")
            keys = device_keys(alice)
            otks = one_time_keys(alice, 1)
            with case("Can upload device keys"):
                got = await alice.post("/keys/upload", {"device_keys": keys, "one_time_keys": otks})
                assert got["one_time_key_counts"].get("signed_curve25519") == 1, got
            with case("Can query device keys using POST"):
                got = await query_keys(alice, alice.user_id)
                assert isinstance(got["device_keys"][alice.user_id][alice.device_id], dict), got
            with case("Can query specific device keys using POST"):
                got = await alice.post("/keys/query", {"device_keys": {alice.user_id: [alice.device_id]}})
                mine = got["device_keys"][alice.user_id][alice.device_id]
                for key in ("algorithms", "device_id", "keys", "signatures"):
                    assert mine[key] == keys[key], (key, mine)
            with case("query for user with no keys returns empty key dict"):
                got = await query_keys(alice, bob.user_id)
                assert got["device_keys"][bob.user_id] == {}, got
            with case("Can claim one time key using POST"):
                claim = {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}}
                got = await alice.post("/keys/claim", claim)
                assert got["one_time_keys"][alice.user_id][alice.device_id] == otks, got
                got = await alice.post("/keys/claim", claim)
                assert alice.user_id not in got["one_time_keys"], got

        await on_both(self, scenario)

    async def test_key_claim_ordering(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await new_user(side, "alice")
            otks = one_time_keys(alice, 2)
            with case("TestKeyClaimOrdering"):
                first = {"signed_curve25519:1": otks["signed_curve25519:1"]}
                second = {"signed_curve25519:0": otks["signed_curve25519:0"]}
                await alice.post("/keys/upload", {"one_time_keys": first})
                await sleep(1)
                await alice.post("/keys/upload", {"one_time_keys": second})
                claim = {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}}
                got = await alice.post("/keys/claim", claim)
                assert got["one_time_keys"][alice.user_id][alice.device_id] == first, got
                got = await alice.post("/keys/claim", claim)
                assert got["one_time_keys"][alice.user_id][alice.device_id] == second, got

        await on_both(self, scenario)

    async def test_upload_key_idempotency(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            with case("TestUploadKeyIdempotency"):
                alice = await new_user(side, "alice")
                otks = one_time_keys(alice, 4)
                for body in ({"device_keys": device_keys(alice), "one_time_keys": otks}, {"one_time_keys": otks}, {"one_time_keys": otks}):
                    got = await alice.post("/keys/upload", body)
                    assert got["one_time_key_counts"].get("signed_curve25519") == 4, got
            with case("TestUploadKeyIdempotencyOverlap"):
                alice = await new_user(side, "alice")
                otks = one_time_keys(alice, 4)
                names = sorted(otks)
                abc = {k: otks[k] for k in names[:3]}
                bcd = {k: otks[k] for k in names[1:]}
                for body, want in (({"device_keys": device_keys(alice)}, 0), ({"one_time_keys": abc}, 3), ({"one_time_keys": bcd}, 4)):
                    got = await alice.post("/keys/upload", body)
                    assert got["one_time_key_counts"].get("signed_curve25519", 0) == want, (want, got)

        await on_both(self, scenario)

    async def test_keys_query_with_device_id_as_object_fails(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await new_user(side, "alice")
            with case("TestKeysQueryWithDeviceIDAsObjectFails"):
                await expect(alice, "POST", V3 + "/keys/query",
                             {"device_keys": {f"@bob:{side.server_name}": {"device_id1": True, "device_id2": True}}},
                             status=400, errcode="M_BAD_JSON")

        await on_both(self, scenario)

    async def test_key_backup_replace_room_key_rules(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await new_user(side, "alice")
            room = f"!foo:{side.server_name}"
            version = (await alice.post("/room_keys/version", {"algorithm": "m.megolm_backup.v1", "auth_data": {"foo": "bar"}}))["version"]

            def path(session: str) -> str:
                return f"/room_keys/keys/{q(room)}/{session}?version={version}"

            def key(verified: bool, index: int, forwarded: int) -> dict[str, Any]:
                return {"first_message_index": index, "forwarded_count": forwarded, "is_verified": verified, "session_data": {"a": "b"}}

            cases = [
                ("a", key(False, 10, 5), [key(False, 11, 5), key(False, 10, 6), key(False, 11, 6)]),
                ("b", key(True, 10, 5), [key(False, 11, 5), key(False, 10, 6), key(False, 11, 6),
                                         key(True, 11, 5), key(True, 10, 6), key(True, 11, 6)]),
            ]
            for session, kept, others in cases:
                with case(f"a key {kept} is not replaced by worse keys"):
                    await alice.put(path(session), kept)
                    for other in others:
                        await alice.put(path(session), other)
                        got = await alice.get(path(session))
                        for field in ("first_message_index", "forwarded_count", "is_verified"):
                            assert got[field] == kept[field], (other, got)

        await on_both(self, scenario)


class EncryptionTest(unittest.TestCase):
    timeout = 240

    async def test_encryption(self) -> None:
        """TestEncryption with matrix-nio as the encrypting client (Complement uses mautrix):
        tests/homeserver/e2e/test_nio.py's scenario, on both servers."""
        try:
            from tests.homeserver.e2e.test_nio import _scenario, nio
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise unittest.SkipTest(str(e)) from e
        if nio is None:
            raise unittest.SkipTest("matrix-nio[e2e] is not installed")

        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await new_user(side, "alice")
            bob = await new_user(side, "bob")
            with case("an encrypted message is decrypted by the other member"):
                result = await threads.deferToThread(asyncio.run, _scenario(side.base_url, alice.user_id, bob.user_id))
                assert "hello bob, secretly" in result["bob_saw"], result
                assert "hi alice, also secret" in result["alice_saw"], result

        await on_both(self, scenario)


class FederatedDeviceListsTest(unittest.TestCase):
    """TestDeviceListUpdates' remote variants: Alice on WSPR, Bob on a real Synapse."""

    timeout = 400

    async def test_device_list_updates_remote(self) -> None:
        try:
            import synapse  # noqa: F401
        except ImportError as e:
            raise unittest.SkipTest("matrix-synapse is not installed") from e
        from tests.conformance.complement import _Cases
        from tests.federation.helpers import start_federating
        from tests.support.synapse import start_synapse_peer, synapse_client

        wspr = await start_federating(self)
        syn = await start_synapse_peer(self, "wspr-devlists-synapse-")
        numbers = iter(range(1, 1000))

        async def on_wspr(name: str) -> MatrixClient:
            return await MatrixClient.register(wspr.base_url, f"{name}{next(numbers)}")

        async def on_synapse(name: str) -> MatrixClient:
            return await synapse_client(syn, f"{name}{next(numbers)}")

        cases = _Cases("WSPR")
        await device_list_cases(cases.case, on_wspr, on_synapse, wspr.server_name, syn.server_name, "remote")
        self.assertEqual(cases.failures, [])
