"""WSPR and a real Synapse federate on loopback: each fetches the other's keys, verifies
the other's X-Matrix requests, and answers profile / directory / public room queries."""

from __future__ import annotations

import shutil
import tempfile
from urllib.parse import quote

from twisted.trial import unittest

from federation.errors import FederationError
from tests.federation.helpers import start_federating, wait_for
from tests.support.synapse import SynapseServer
from tests.support.wspr import MatrixClient, MatrixRequestError

try:
    import synapse  # noqa: F401
except ImportError:  # matrix-synapse is a test extra
    synapse = None


class SynapseInteropTest(unittest.TestCase):
    timeout = 180
    if synapse is None:
        skip = "matrix-synapse is not installed"

    async def _synapse(self) -> SynapseServer:
        workdir = tempfile.mkdtemp(prefix="wspr-fed-synapse-")
        # Synapse publishes no room to its directory unless a rule allows it.
        syn = SynapseServer(workdir, extra_config={"room_list_publication_rules": [{"action": "allow"}]})
        self.addCleanup(shutil.rmtree, workdir, True)
        self.addCleanup(syn.stop_async)
        await syn.start_async()
        return syn

    async def test_queries_both_ways(self) -> None:
        syn = await self._synapse()
        wspr = await start_federating(self)
        reg = await syn.register_user_async("sam", "sam-pw")
        sam = MatrixClient(syn.client_url, reg["access_token"], reg["user_id"])
        await sam.put(f"/profile/{quote(sam.user_id)}/displayname", {"displayname": "Sam Synapse"})
        syn_room = (await sam.post("/createRoom", {"room_alias_name": "synroom", "visibility": "public", "name": "Syn Room",
                                                   "preset": "public_chat"}))["room_id"]

        alice = await MatrixClient.register(wspr.base_url, "alice")
        await alice.put(f"/profile/{quote(alice.user_id)}/displayname", {"displayname": "Alice WSPR"})
        wspr_room = (await alice.post("/createRoom", {"visibility": "public", "name": "WSPR Room", "preset": "public_chat"}))["room_id"]
        await alice.put(f"/directory/room/{quote('#wsprroom:' + wspr.server_name)}", {"room_id": wspr_room})

        # WSPR -> Synapse (Synapse verifies our signature, so it fetches our key)
        profile = await alice.get(f"/profile/{quote(sam.user_id)}")
        self.assertEqual(profile["displayname"], "Sam Synapse")
        resolved = await alice.get(f"/directory/room/{quote('#synroom:' + syn.server_name)}")
        self.assertEqual(resolved["room_id"], syn_room)
        self.assertIn(syn.server_name, resolved["servers"])
        # Synapse fills its directory from room stats a moment after the room is created.
        await wait_for(lambda: _has_room(sam.get("/publicRooms"), syn_room), timeout=20)
        public = await alice.get(f"/publicRooms?server={quote(syn.server_name)}")
        self.assertIn(syn_room, [r["room_id"] for r in public["chunk"]])
        with self.assertRaises(MatrixRequestError) as cm:
            await alice.get(f"/directory/room/{quote('#missing:' + syn.server_name)}")
        self.assertEqual(cm.exception.code, 404)
        version = await wspr.hs.federation.get_version(syn.server_name)
        self.assertEqual(version["server"]["name"], "Synapse")

        # Synapse -> WSPR (WSPR verifies Synapse's signature, fetching Synapse's key)
        profile = await sam.get(f"/profile/{quote(alice.user_id)}")
        self.assertEqual(profile["displayname"], "Alice WSPR")
        resolved = await sam.get(f"/directory/room/{quote('#wsprroom:' + wspr.server_name)}")
        self.assertEqual(resolved["room_id"], wspr_room)
        self.assertEqual(resolved["servers"], [wspr.server_name])
        public = await sam.post(f"/publicRooms?server={quote(wspr.server_name)}", {"limit": 10})
        self.assertEqual([r["room_id"] for r in public["chunk"]], [wspr_room])
        with self.assertRaises(MatrixRequestError) as cm:
            await sam.get(f"/profile/{quote('@nobody:' + wspr.server_name)}")
        self.assertEqual(cm.exception.code, 404)

        # both sides cached each other's keys
        self.assertTrue(await wspr.hs.store.get_server_keys(syn.server_name))
        notary = await wspr.hs.federation.request(
            syn.server_name, "POST", "/_matrix/key/v2/query", body={"server_keys": {wspr.server_name: {}}}
        )
        self.assertEqual([k["server_name"] for k in notary["server_keys"]], [wspr.server_name])
        self.assertIn(f"ed25519:{wspr.hs.signing_key.version}", notary["server_keys"][0]["verify_keys"])
        # ...and Synapse signed what it serves as a notary, with the key we fetched
        await wspr.hs.keyring.verify_json_for_server(syn.server_name, notary["server_keys"][0])

        # openid: a Synapse user's token checked through Synapse's userinfo
        token = await sam.post(f"/user/{quote(sam.user_id)}/openid/request_token", {})
        info = await wspr.hs.federation.openid_userinfo(syn.server_name, token["access_token"])
        self.assertEqual(info, {"sub": sam.user_id})
        # and WSPR's userinfo for a WSPR token, as an SFU token service would call it
        token = await alice.post(f"/user/{quote(alice.user_id)}/openid/request_token", {})
        code, body = await _synapse_side_userinfo(wspr, token["access_token"])
        self.assertEqual((code, body), (200, {"sub": alice.user_id}))

    async def test_synapse_rejects_bad_requests_and_we_reject_its_spoofs(self) -> None:
        syn = await self._synapse()
        wspr = await start_federating(self)
        # A request signed for another destination: Synapse refuses it with 401.
        from federation.transport.xmatrix import sign_request
        from tests.federation.helpers import raw_federation_request

        path = "/_matrix/federation/v1/query/profile?user_id=" + quote(f"@x:{syn.server_name}")
        header = sign_request(wspr.hs.signing_key, wspr.server_name, "someone.else", "GET", path)
        code, body = await raw_federation_request(syn.federation_port, "GET", path, headers={"Authorization": header})
        self.assertEqual(code, 401, body)
        # The right destination works (404: the user doesn't exist) and proves the format is right.
        header = sign_request(wspr.hs.signing_key, wspr.server_name, syn.server_name, "GET", path)
        code, body = await raw_federation_request(syn.federation_port, "GET", path, headers={"Authorization": header})
        self.assertEqual(code, 404, body)
        # A transaction claiming to come from Synapse but signed by us: WSPR refuses it.
        header = sign_request(wspr.hs.signing_key, syn.server_name, wspr.server_name, "PUT", "/_matrix/federation/v1/send/x",
                              {"pdus": [], "edus": []})
        header = header.replace(f'key="ed25519:{wspr.hs.signing_key.version}"', 'key="ed25519:a_ABCD"')
        code, body = await raw_federation_request(wspr.hs.federation_listening_port, "PUT", "/_matrix/federation/v1/send/x",
                                                  {"pdus": [], "edus": []}, headers={"Authorization": header})
        self.assertEqual((code, body["errcode"]), (401, "M_UNAUTHORIZED"))


async def _has_room(d, room_id: str) -> bool:
    return room_id in [r["room_id"] for r in (await d)["chunk"]]


async def _synapse_side_userinfo(wspr, token: str):
    from tests.federation.helpers import raw_federation_request

    return await raw_federation_request(
        wspr.hs.federation_listening_port, "GET", "/_matrix/federation/v1/openid/userinfo?access_token=" + quote(token)
    )
