"""Inbound request authentication and policy, over real TLS between two WSPR servers:
bad signatures, wrong destination, unknown keys, the domain allowlist, the IP blocklist,
transaction limits and deduplication."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from twisted.trial import unittest

from federation.errors import FederationDenied, FederationError
from federation.transport.xmatrix import sign_request
from homeserver.protocol.signing import generate_signing_key
from tests.federation.helpers import raw_federation_request, start_federating
from tests.support.wspr import MatrixClient


class AuthTest(unittest.TestCase):
    timeout = 60

    async def _pair(self, **b_fed: Any):
        a = await start_federating(self)
        b = await start_federating(self, **b_fed)
        return a, b

    async def _call(self, a, b, path: str, *, key=None, kid=None, destination=None, method="GET", body=None, signed_body=None):
        key = key or a.hs.signing_key
        header = sign_request(key, a.server_name, destination or b.server_name, method, path,
                              signed_body if signed_body is not None else body)
        if kid is not None:
            header = header.replace(f'key="ed25519:{key.version}"', f'key="{kid}"')
        return await raw_federation_request(b.hs.federation.listening_port, method, path, body, {"Authorization": header})

    async def test_signatures(self) -> None:
        a, b = await self._pair()
        bob = await MatrixClient.register(b.base_url, "bob")
        path = "/_matrix/federation/v1/query/profile?user_id=" + quote(bob.user_id)
        code, body = await self._call(a, b, path)
        self.assertEqual(code, 200, body)

        code, body = await raw_federation_request(b.hs.federation.listening_port, "GET", path)
        self.assertEqual((code, body["errcode"]), (401, "M_UNAUTHORIZED"))

        forged = generate_signing_key(a.hs.signing_key.version)  # same key id, wrong key
        code, body = await self._call(a, b, path, key=forged)
        self.assertEqual((code, body["errcode"]), (401, "M_UNAUTHORIZED"), body)

        code, body = await self._call(a, b, path, destination="elsewhere.example")
        self.assertEqual((code, body["errcode"]), (401, "M_UNAUTHORIZED"), body)

        code, body = await self._call(a, b, path, kid="ed25519:unknown")
        self.assertEqual((code, body["errcode"]), (401, "M_UNAUTHORIZED"), body)

        # the signature covers the body
        code, body = await self._call(a, b, "/_matrix/federation/v1/send/t1", method="PUT",
                                      body={"pdus": [], "edus": []}, signed_body={"pdus": [], "edus": [{}]})
        self.assertEqual((code, body["errcode"]), (401, "M_UNAUTHORIZED"), body)

        code, body = await raw_federation_request(
            b.hs.federation.listening_port, "GET", path, headers={"Authorization": "X-Matrix garbage"}
        )
        self.assertEqual((code, body["errcode"]), (401, "M_UNAUTHORIZED"), body)

    async def test_domain_allowlist(self) -> None:
        a, b = await self._pair(domain_allowlist=["friends.example"])
        code, body = await self._call(a, b, "/_matrix/federation/v1/query/profile?user_id=%40x%3Ay")
        self.assertEqual((code, body["errcode"]), (403, "M_FORBIDDEN"), body)
        # and outbound: b refuses to contact a
        with self.assertRaises(FederationDenied):
            await b.hs.federation.get_version(a.server_name)

    async def test_ip_blocklist(self) -> None:
        # default blocklist: loopback is private
        a = await start_federating(self, ip_range_blocklist=["127.0.0.0/8", "::1/128"])
        b = await start_federating(self)
        with self.assertRaises(FederationDenied) as cm:
            await a.hs.federation.get_version(b.server_name)
        self.assertEqual(cm.exception.code, 403)
        # the allowlist re-opens a blocked range
        c = await start_federating(self, ip_range_blocklist=["127.0.0.0/8"], ip_range_allowlist=["127.0.0.1/32"])
        version = await c.hs.federation.get_version(b.server_name)
        self.assertEqual(version["server"]["name"], "WSPR")

    async def test_unreachable(self) -> None:
        from tests.support.synapse import free_port

        a = await start_federating(self)
        with self.assertRaises(FederationError) as cm:
            await a.hs.federation.get_version(f"127.0.0.1:{free_port()}")
        self.assertEqual(cm.exception.code, 502)

    async def test_oversized_response_is_refused(self) -> None:
        import federation.transport.client as client_module

        a, b = await self._pair()
        self.patch(client_module, "MAX_RESPONSE_BYTES", 10)
        with self.assertRaises(FederationError) as cm:
            await a.hs.federation.get_version(b.server_name)
        self.assertEqual(cm.exception.code, 502)
        self.assertIn("_TooLarge", cm.exception.msg)

    async def test_transaction_limits_and_dedupe(self) -> None:
        a, b = await self._pair()
        seen: list[Any] = []

        class FakeIngest:
            async def on_receive_pdus(self, origin: str, pdus: list[Any]) -> dict[str, Any]:
                seen.append((origin, len(pdus)))
                return {"$ok": None, "$bad": "rejected"}

        b.hs.federation.ingest = FakeIngest()
        too_many = {"pdus": [{}] * 51, "edus": []}
        code, body = await self._call(a, b, "/_matrix/federation/v1/send/big", method="PUT", body=too_many)
        self.assertEqual((code, body["errcode"]), (400, "M_BAD_JSON"))
        code, body = await self._call(a, b, "/_matrix/federation/v1/send/edus", method="PUT",
                                      body={"pdus": [], "edus": [{"edu_type": "x", "content": {}}] * 101})
        self.assertEqual(code, 400)
        txn = {"origin": a.server_name, "origin_server_ts": 1, "pdus": [{"type": "x"}], "edus": []}
        for _ in range(2):
            code, body = await self._call(a, b, "/_matrix/federation/v1/send/t1", method="PUT", body=txn)
            self.assertEqual(code, 200, body)
            self.assertEqual(body, {"pdus": {"$ok": {}, "$bad": {"error": "rejected"}}})
        self.assertEqual(seen, [(a.server_name, 1)])
        # the same txn id from another origin is another transaction
        c = await start_federating(self)
        code, _ = await self._call(c, b, "/_matrix/federation/v1/send/t1", method="PUT", body=txn)
        self.assertEqual(code, 200)
        self.assertEqual(len(seen), 2)

    async def test_unauthenticated_endpoints(self) -> None:
        a = await start_federating(self)
        port = a.hs.federation.listening_port
        code, body = await raw_federation_request(port, "GET", "/_matrix/federation/v1/version")
        self.assertEqual((code, body["server"]["name"]), (200, "WSPR"))
        code, body = await raw_federation_request(port, "GET", "/_matrix/federation/v1/openid/userinfo?access_token=nope")
        self.assertEqual((code, body["errcode"]), (401, "M_UNKNOWN_TOKEN"))
        code, body = await raw_federation_request(port, "GET", "/_matrix/key/v2/server")
        self.assertEqual(code, 200)
        self.assertEqual(body["server_name"], a.server_name)
        self.assertIn("old_verify_keys", body)
