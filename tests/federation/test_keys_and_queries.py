"""Key fetching and caching, the notary, and the query endpoints between two WSPR servers."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from twisted.trial import unittest

from federation.keyring import KeyLookupError, Keyring
from homeserver.http.errors import MatrixError
from homeserver.protocol.signing import (
    decode_verify_key_base64,
    encode_verify_key_base64,
    generate_signing_key,
    get_verify_key,
    sign_json,
    verify_json,
)
from homeserver.util.ids import now_ms
from tests.federation.helpers import raw_federation_request, start_federating
from tests.support.wspr import MatrixClient, MatrixRequestError, start_homeserver


class CountingTransport:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str]] = []

    async def request(self, destination: str, method: str, path: str, **kw: Any) -> Any:
        self.calls.append((destination, path))
        return await self.inner.request(destination, method, path, **kw)


class FakeKeyServer:
    """Serves whatever key response the test sets."""

    def __init__(self) -> None:
        self.response: Any = None
        self.calls = 0

    async def request(self, destination: str, method: str, path: str, **kw: Any) -> Any:
        self.calls += 1
        return self.response


class KeyringTest(unittest.TestCase):
    timeout = 60
    database = "sqlite"

    async def test_fetch_cache_and_persist(self) -> None:
        a = await start_federating(self, database=self.database)
        b = await start_federating(self)
        counting = CountingTransport(a.hs.federation.transport)
        keyring = Keyring(a.hs, counting)
        kid = f"ed25519:{b.hs.signing_key.version}"
        key = await keyring.get_verify_key(b.server_name, kid)
        self.assertEqual(encode_verify_key_base64(key), encode_verify_key_base64(get_verify_key(b.hs.signing_key)))
        await keyring.get_verify_key(b.server_name, kid)
        self.assertEqual(counting.calls, [(b.server_name, "/_matrix/key/v2/server")])
        # a fresh keyring (a restart) finds the key in the database
        again = Keyring(a.hs, counting)
        await again.get_verify_key(b.server_name, kid)
        self.assertEqual(len(counting.calls), 1)
        # verify_json_for_server accepts b's signature and rejects a forgery
        signed = sign_json({"hello": "world"}, b.server_name, b.hs.signing_key)
        await again.verify_json_for_server(b.server_name, signed)
        with self.assertRaises(MatrixError) as cm:
            await again.verify_json_for_server(b.server_name, dict(signed, hello="moon"))
        self.assertEqual((cm.exception.code, cm.exception.errcode), (401, "M_UNAUTHORIZED"))
        with self.assertRaises(KeyLookupError):
            await again.verify_json_for_server(b.server_name, {"hello": "world"})

    async def test_validity_and_old_keys(self) -> None:
        server = await start_homeserver(self)
        fake = FakeKeyServer()
        keyring = Keyring(server.hs, fake)
        current, old = generate_signing_key("new"), generate_signing_key("old")
        now = now_ms()
        fake.response = sign_json(
            {
                "server_name": "remote.example",
                "verify_keys": {"ed25519:new": {"key": encode_verify_key_base64(get_verify_key(current))}},
                "old_verify_keys": {
                    "ed25519:old": {"key": encode_verify_key_base64(get_verify_key(old)), "expired_ts": now - 1000}
                },
                "valid_until_ts": now + 60_000,
            },
            "remote.example",
            current,
        )
        await keyring.get_verify_key("remote.example", "ed25519:new")
        # the old key signs things from before it expired, not after
        await keyring.get_verify_key("remote.example", "ed25519:old", valid_at_ts=now - 5000)
        with self.assertRaises(KeyLookupError):
            await keyring.get_verify_key("remote.example", "ed25519:old")
        # the current key is not valid beyond valid_until_ts (and refetches are rate limited)
        with self.assertRaises(KeyLookupError):
            await keyring.get_verify_key("remote.example", "ed25519:new", valid_at_ts=now + 120_000)
        self.assertEqual(fake.calls, 1)

    async def test_rejects_bad_key_responses(self) -> None:
        server = await start_homeserver(self)
        fake = FakeKeyServer()
        key, other = generate_signing_key("k"), generate_signing_key("k")
        body = {
            "server_name": "remote.example",
            "verify_keys": {"ed25519:k": {"key": encode_verify_key_base64(get_verify_key(key))}},
            "valid_until_ts": now_ms() + 60_000,
        }
        for response in (
            sign_json(body, "remote.example", other),  # not self-signed
            sign_json(dict(body, server_name="impostor.example"), "impostor.example", key),  # wrong server
            dict(body),  # unsigned
        ):
            fake.response = response
            with self.assertRaises(KeyLookupError):
                await Keyring(server.hs, fake).get_verify_key("remote.example", "ed25519:k")
        self.assertEqual(await server.hs.store.get_server_keys("remote.example"), [])

    async def test_notary(self) -> None:
        a = await start_federating(self)
        b = await start_federating(self)
        c = await start_federating(self)
        # a asks b (as notary) for c's keys: b fetches them and countersigns
        for method, path, body in (
            ("GET", f"/_matrix/key/v2/query/{c.server_name}", None),
            ("POST", "/_matrix/key/v2/query", {"server_keys": {c.server_name: {}}}),
        ):
            resp = await a.hs.federation.request(b.server_name, method, path, body=body)
            self.assertEqual(len(resp["server_keys"]), 1, resp)
            entry = resp["server_keys"][0]
            self.assertEqual(entry["server_name"], c.server_name)
            await a.hs.federation.keyring.verify_json_for_server(c.server_name, entry)
            await a.hs.federation.keyring.verify_json_for_server(b.server_name, entry)
        # and its own keys
        code, resp = await raw_federation_request(
            b.hs.federation.listening_port, "POST", "/_matrix/key/v2/query", {"server_keys": {b.server_name: {}}}
        )
        self.assertEqual(code, 200)
        kid = f"ed25519:{b.hs.signing_key.version}"
        vk = decode_verify_key_base64("ed25519", b.hs.signing_key.version, resp["server_keys"][0]["verify_keys"][kid]["key"])
        verify_json(resp["server_keys"][0], b.server_name, vk)


class KeyringPostgresTest(unittest.TestCase):
    timeout = 60
    database = "postgresql"
    test_fetch_cache_and_persist = KeyringTest.test_fetch_cache_and_persist


class QueriesTest(unittest.TestCase):
    timeout = 60

    async def test_directory_public_rooms_openid(self) -> None:
        a = await start_federating(self)
        b = await start_federating(self)
        bob = await MatrixClient.register(b.base_url, "bob")
        room_id = (await bob.post("/createRoom", {"preset": "public_chat", "name": "Lobby", "visibility": "public"}))["room_id"]
        alias = f"#lobby:{b.server_name}"
        await bob.put(f"/directory/room/{quote(alias)}", {"room_id": room_id})
        alice = await MatrixClient.register(a.base_url, "alice")

        resolved = await alice.get(f"/directory/room/{quote(alias)}")
        self.assertEqual(resolved, {"room_id": room_id, "servers": [b.server_name]})
        with self.assertRaises(MatrixRequestError) as cm:
            await alice.get(f"/directory/room/{quote('#nope:' + b.server_name)}")
        self.assertEqual((cm.exception.code, cm.exception.errcode), (404, "M_NOT_FOUND"))

        rooms = await alice.get(f"/publicRooms?server={quote(b.server_name)}")
        self.assertEqual([r["room_id"] for r in rooms["chunk"]], [room_id])
        rooms = await alice.post(f"/publicRooms?server={quote(b.server_name)}", {"filter": {"generic_search_term": "lob"}})
        self.assertEqual([r["name"] for r in rooms["chunk"]], ["Lobby"])
        rooms = await alice.post(f"/publicRooms?server={quote(b.server_name)}", {"filter": {"generic_search_term": "zzz"}})
        self.assertEqual(rooms["chunk"], [])

        token = await bob.post(f"/user/{quote(bob.user_id)}/openid/request_token", {})
        info = await a.hs.federation.openid_userinfo(b.server_name, token["access_token"])
        self.assertEqual(info, {"sub": bob.user_id})

        # profile of a user the remote doesn't host: 400 there, passed through
        with self.assertRaises(MatrixError) as cm2:
            await a.hs.federation.query_profile(b.server_name, "@x:elsewhere.example")
        self.assertEqual(cm2.exception.code, 400)
        # devices / keys endpoints answer (E2EE layer may be absent or present)
        devices = await a.hs.federation.get_user_devices(b.server_name, bob.user_id)
        self.assertEqual(devices["user_id"], bob.user_id)
        keys = await a.hs.federation.query_user_keys(b.server_name, {"device_keys": {bob.user_id: []}})
        self.assertIn("device_keys", keys)
        claimed = await a.hs.federation.claim_user_keys(b.server_name, {"one_time_keys": {bob.user_id: {}}})
        self.assertIn("one_time_keys", claimed)
