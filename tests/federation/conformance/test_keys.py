"""Complement ``tests/federation_keys_test.go`` (TestInboundFederationKeys: the server's own
key response, checked byte for byte), and the notary cases its TODO lists, checked here
against what Synapse answers: ``/_matrix/key/v2/query`` for another server's keys, GET and
POST, with ``minimum_valid_until_ts``, for an unreachable server and for the notary itself."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from signedjson.key import decode_verify_key_bytes
from twisted.trial import unittest

from homeserver.protocol.canonical_json import encode_canonical_json
from homeserver.protocol.signing import encode_verify_key_base64, get_verify_key, key_id
from tests.conformance.complement import CaseFn, Side, q
from tests.federation.conformance.harness import on_wspr_and_synapse
from tests.support.fake_homeserver import start_fake_homeserver
from tests.support.synapse import free_port


def _b64(s: str) -> bytes:
    return base64.b64decode(s + "=" * (-len(s) % 4))


class KeysTest(unittest.TestCase):
    timeout = 180

    async def test_inbound_federation_keys(self) -> None:
        """GET /_matrix/key/v2/server needs no signature and answers the server's keys,
        signed by each of them, in canonical JSON (the signature is checked against the
        bytes as served)."""

        async def scenario(side: Side, case: CaseFn) -> None:
            srv = await start_fake_homeserver(self)
            code, raw = await srv.raw_bytes("GET", side.server_name, "/_matrix/key/v2/server")
            body = json.loads(raw)
            with case("200 with server_name and a valid_until_ts in the future"):
                assert code == 200, (code, raw)
                assert body["server_name"] == side.server_name, body
                assert isinstance(body["valid_until_ts"], int) and body["valid_until_ts"] > time.time() * 1000, body
            keys: dict[str, bytes] = {}
            old: dict[str, bytes] = {}
            with case("verify_keys: ed25519 keys in unpadded base64"):
                for kid, entry in body["verify_keys"].items():
                    assert kid.startswith("ed25519:"), kid
                    assert isinstance(entry["key"], str) and "=" not in entry["key"], entry
                    keys[kid] = _b64(entry["key"])
                assert keys, "no verify key"
            with case("old_verify_keys: expired_ts numbers and keys, none of them current"):
                for kid, entry in body.get("old_verify_keys", {}).items():
                    assert kid.startswith("ed25519:"), kid
                    assert isinstance(entry["expired_ts"], int), entry
                    assert isinstance(entry["key"], str), entry
                    old[kid] = _b64(entry["key"])
                    assert kid not in keys, kid
            with case("signatures: only the server's own, one per current key, verifying the bytes as served"):
                sigs = body["signatures"]
                assert list(sigs) == [side.server_name], list(sigs)
                assert set(keys) <= set(sigs[side.server_name]), sigs
                assert set(sigs[side.server_name]) <= set(keys) | set(old), sigs
                unsigned = {k: v for k, v in body.items() if k != "signatures"}
                # Complement deletes "signatures" from the raw body and verifies what remains:
                # the body must be canonical JSON.
                assert raw == encode_canonical_json(body), raw
                for kid, sig in sigs[side.server_name].items():
                    vk = decode_verify_key_bytes(kid, keys.get(kid) or old[kid])
                    vk.verify(encode_canonical_json(unsigned), _b64(sig))

        await on_wspr_and_synapse(self, scenario)

    async def test_notary(self) -> None:
        """The server as a notary of another server's keys (the TODO of Complement's file):
        /key/v2/query answers the origin's own key response, countersigned. (Synapse's GET
        without a key id only answers keys it already holds: the POST naming a key id
        comes first.)"""

        async def scenario(side: Side, case: CaseFn) -> None:
            srv = await start_fake_homeserver(self)
            fake_kid = key_id(srv.signing_key)
            fake_key = encode_verify_key_base64(get_verify_key(srv.signing_key))

            def check_fake_keys(resp: Any) -> None:
                entries = [k for k in resp["server_keys"] if k.get("server_name") == srv.server_name]
                assert entries, resp
                for entry in entries:
                    assert entry["verify_keys"][fake_kid]["key"] == fake_key, entry
                    assert fake_kid in entry["signatures"][srv.server_name], entry
                    assert entry["signatures"].get(side.server_name), f"not countersigned: {entry}"

            with case("POST /key/v2/query with criteria"):
                future = int(time.time() * 1000) + 3600 * 1000
                code, body = await srv.raw_request(side.server_name, "POST", "/_matrix/key/v2/query", {
                    "server_keys": {srv.server_name: {fake_kid: {"minimum_valid_until_ts": future}}}
                })
                assert code == 200, (code, body)
                check_fake_keys(body)
            with case("GET /key/v2/query/{serverName}: the keys fetched before, countersigned"):
                code, body = await srv.raw_request(side.server_name, "GET", f"/_matrix/key/v2/query/{q(srv.server_name)}")
                assert code == 200, (code, body)
                check_fake_keys(body)
            with case("POST /key/v2/query with no criteria for the server"):
                code, body = await srv.raw_request(side.server_name, "POST", "/_matrix/key/v2/query",
                                                   {"server_keys": {srv.server_name: {}}})
                assert code == 200, (code, body)
                check_fake_keys(body)
            with case("an unreachable server: 200 with no keys"):
                gone = f"127.0.0.1:{free_port()}"
                code, body = await srv.raw_request(side.server_name, "POST", "/_matrix/key/v2/query",
                                                   {"server_keys": {gone: {}}})
                assert code == 200, (code, body)
                assert body["server_keys"] == [], body
            with case("the notary's own keys: 200 (Synapse lists none, WSPR its own response)"):
                code, body = await srv.raw_request(side.server_name, "GET", f"/_matrix/key/v2/query/{q(side.server_name)}")
                assert code == 200, (code, body)
                for own in body["server_keys"]:
                    assert own["server_name"] == side.server_name and own["signatures"].get(side.server_name), body
            with case("a bad request body is 400"):
                code, body = await srv.raw_request(side.server_name, "POST", "/_matrix/key/v2/query", {"server_keys": []})
                assert code == 400, (code, body)

        await on_wspr_and_synapse(self, scenario)

    async def test_notary_keeps_keys(self) -> None:
        """Complement's TODOs "Key notary server should return an expired key if it can't
        find any others" and "Key notary server must not overwrite a valid key with a
        spurious result from the origin server"."""

        async def scenario(side: Side, case: CaseFn) -> None:
            from twisted.internet import reactor
            from twisted.internet.task import deferLater

            from homeserver.protocol.signing import generate_signing_key, sign_json
            from tests.support.fake_homeserver import FedRequest

            kid = None
            with case("a spurious answer of the origin does not replace the key the notary holds"):
                srv = await start_fake_homeserver(self)
                kid = key_id(srv.signing_key)
                good = encode_verify_key_base64(get_verify_key(srv.signing_key))
                code, body = await srv.raw_request(side.server_name, "POST", "/_matrix/key/v2/query", {
                    "server_keys": {srv.server_name: {kid: {"minimum_valid_until_ts": int(time.time() * 1000)}}}
                })
                assert code == 200 and body["server_keys"], (code, body)
                impostor = generate_signing_key(srv.signing_key.version)  # the same key id, another key

                async def spurious(req: FedRequest) -> tuple[int, Any]:
                    bad = {
                        "server_name": srv.server_name,
                        "verify_keys": {kid: {"key": encode_verify_key_base64(get_verify_key(impostor))}},
                        "old_verify_keys": {},
                        "valid_until_ts": int(time.time() * 1000) + 7 * 24 * 3600 * 1000,
                    }
                    bad = sign_json(bad, srv.server_name, srv.signing_key)  # signed by the old key, not its own
                    return 200, bad

                srv.handle("GET", r"/_matrix/key/v2/server(/[^/]*)?", spurious)
                code, body = await srv.raw_request(side.server_name, "POST", "/_matrix/key/v2/query", {
                    "server_keys": {srv.server_name: {kid: {"minimum_valid_until_ts": int(time.time() * 1000) + 3 * 24 * 3600 * 1000}}}
                })
                assert code == 200, (code, body)
                keys = [k["verify_keys"].get(kid, {}).get("key") for k in body["server_keys"]]
                assert keys and all(k == good for k in keys), body
            with case("an expired key is served when the origin cannot be reached"):
                srv2 = await start_fake_homeserver(self)
                kid2 = key_id(srv2.signing_key)
                short = int(time.time() * 1000) + 1500

                async def short_lived(req: FedRequest) -> tuple[int, Any]:
                    body = {
                        "server_name": srv2.server_name,
                        "verify_keys": {kid2: {"key": encode_verify_key_base64(get_verify_key(srv2.signing_key))}},
                        "old_verify_keys": {},
                        "valid_until_ts": short,
                    }
                    return 200, sign_json(body, srv2.server_name, srv2.signing_key)

                srv2.handle("GET", r"/_matrix/key/v2/server(/[^/]*)?", short_lived)
                code, body = await srv2.raw_request(side.server_name, "POST", "/_matrix/key/v2/query", {
                    "server_keys": {srv2.server_name: {kid2: {"minimum_valid_until_ts": int(time.time() * 1000)}}}
                })
                assert code == 200 and body["server_keys"], (code, body)
                await deferLater(reactor, 2.0, lambda: None)
                name = srv2.server_name
                await srv2.stop()
                code, body = await srv.raw_request(side.server_name, "POST", "/_matrix/key/v2/query", {
                    "server_keys": {name: {kid2: {"minimum_valid_until_ts": int(time.time() * 1000)}}}
                })
                assert code == 200, (code, body)
                entries = [k for k in body["server_keys"] if k.get("server_name") == name]
                assert entries and entries[0]["valid_until_ts"] == short, body

        await on_wspr_and_synapse(self, scenario)

