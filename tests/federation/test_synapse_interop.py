"""WSPR and a real Synapse federate on loopback: each fetches the other's keys, verifies
the other's X-Matrix requests, and answers profile / directory / public room queries."""

from __future__ import annotations

import time
from urllib.parse import quote

from twisted.trial import unittest

from tests.federation.helpers import start_federating, wait_for
from tests.support.synapse import SynapseServer, start_synapse_peer, synapse_client
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
        # Synapse publishes no room to its directory unless a rule allows it.
        return await start_synapse_peer(
            self, "wspr-fed-synapse-", extra_config={"room_list_publication_rules": [{"action": "allow"}]}
        )

    async def test_queries_both_ways(self) -> None:
        syn = await self._synapse()
        wspr = await start_federating(self)
        sam = await synapse_client(syn, "sam")
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

        # rough numbers: signed query round trips to Synapse and from Synapse (via its client API)
        import time

        times = []
        for _ in range(30):
            t0 = time.perf_counter()
            await wspr.hs.federation.query_profile(syn.server_name, sam.user_id)
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        back = []
        for _ in range(30):
            t0 = time.perf_counter()
            await sam.get(f"/profile/{quote(alice.user_id)}")
            back.append((time.perf_counter() - t0) * 1000)
        back.sort()
        print(f"\n  WSPR->Synapse signed profile query p50 {times[15]:.1f} ms; "
              f"Synapse client /profile of a WSPR user (Synapse->WSPR query) p50 {back[15]:.1f} ms")

        # both sides cached each other's keys
        self.assertTrue(await wspr.hs.store.get_server_keys(syn.server_name))
        notary = await wspr.hs.federation.request(
            syn.server_name, "POST", "/_matrix/key/v2/query", body={"server_keys": {wspr.server_name: {}}}
        )
        self.assertEqual([k["server_name"] for k in notary["server_keys"]], [wspr.server_name])
        self.assertIn(f"ed25519:{wspr.hs.signing_key.version}", notary["server_keys"][0]["verify_keys"])
        # ...and Synapse signed what it serves as a notary, with the key we fetched
        await wspr.hs.federation.keyring.verify_json_for_server(syn.server_name, notary["server_keys"][0])

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
        code, body = await raw_federation_request(wspr.hs.federation.listening_port, "PUT", "/_matrix/federation/v1/send/x",
                                                  {"pdus": [], "edus": []}, headers={"Authorization": header})
        self.assertEqual((code, body["errcode"]), (401, "M_UNAUTHORIZED"))


async def _has_room(d, room_id: str) -> bool:
    return room_id in [r["room_id"] for r in (await d)["chunk"]]


async def _synapse_side_userinfo(wspr, token: str):
    from tests.federation.helpers import raw_federation_request

    return await raw_federation_request(
        wspr.hs.federation.listening_port, "GET", "/_matrix/federation/v1/openid/userinfo?access_token=" + quote(token)
    )


class SynapseEduTest(unittest.TestCase):
    timeout = 180
    if synapse is None:
        skip = "matrix-synapse is not installed"

    async def test_typing_receipts_presence_with_synapse(self) -> None:
        syn = await start_synapse_peer(self, "wspr-fed-synapse-")
        wspr = await start_federating(self)
        sam = await synapse_client(syn, "sam")
        room_id = (await sam.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        alice = await MatrixClient.register(wspr.base_url, "alice")
        await alice.post(f"/join/{quote(room_id)}?server_name={quote(syn.server_name)}", {})

        async def sam_sees_alice_joined() -> bool:
            members = await sam.get(f"/rooms/{quote(room_id)}/joined_members")
            return alice.user_id in members.get("joined", {})

        await wait_for(sam_sees_alice_joined, timeout=30)

        # WSPR -> Synapse typing
        # alice keeps typing, renewing the notice every few seconds as Element does: typing is
        # ephemeral, and a transaction that fails (a busy peer) loses it on either server.
        async def alice_typing_seen_by_sam() -> bool:
            if await _sync_typing(sam, room_id, alice.user_id):
                return True
            now = time.monotonic()
            if now - renewed[0] > 4:
                renewed[0] = now
                await alice.put(f"/rooms/{quote(room_id)}/typing/{quote(alice.user_id)}", {"typing": True, "timeout": 20000})
            return False

        renewed = [time.monotonic()]
        await alice.put(f"/rooms/{quote(room_id)}/typing/{quote(alice.user_id)}", {"typing": True, "timeout": 20000})
        await wait_for(alice_typing_seen_by_sam, timeout=20)
        # Synapse -> WSPR typing
        await sam.put(f"/rooms/{quote(room_id)}/typing/{quote(sam.user_id)}", {"typing": True, "timeout": 20000})
        await wait_for(lambda: _sync_typing(alice, room_id, sam.user_id), timeout=20)
        await sam.put(f"/rooms/{quote(room_id)}/typing/{quote(sam.user_id)}", {"typing": False})
        await wait_for(lambda: _sync_typing(alice, room_id, sam.user_id, present=False), timeout=20)
        await alice.put(f"/rooms/{quote(room_id)}/typing/{quote(alice.user_id)}", {"typing": False})

        # Synapse message, WSPR read receipt -> Synapse; and the other way
        event_id = await sam.send_message(room_id, "hi from synapse")
        await wait_for(lambda: wspr.hs.store.get_event(event_id), timeout=20)
        # Synapse's initial sync leaves out receipts: watch incremental syncs.
        sam_watch = await _Watcher.start(sam, room_id)
        await alice.post(f"/rooms/{quote(room_id)}/receipt/m.read/{quote(event_id)}", {})
        await wait_for(lambda: sam_watch.receipt(event_id, alice.user_id), timeout=20)
        wspr_event = await alice.send_message(room_id, "hi from wspr")

        async def sam_has(eid: str) -> bool:
            try:
                await sam.get(f"/rooms/{quote(room_id)}/event/{quote(eid)}")
                return True
            except MatrixRequestError:
                return False

        await wait_for(lambda: sam_has(wspr_event), timeout=20)
        await sam.post(f"/rooms/{quote(room_id)}/receipt/m.read/{quote(wspr_event)}", {})
        await wait_for(lambda: _sync_receipt(alice, room_id, wspr_event, sam.user_id), timeout=20)

        # presence both ways
        await alice.put(f"/presence/{quote(alice.user_id)}/status", {"presence": "unavailable", "status_msg": "at lunch"})

        async def sam_sees_presence() -> bool:
            status = await sam.get(f"/presence/{quote(alice.user_id)}/status")
            return status.get("presence") == "unavailable" and status.get("status_msg") == "at lunch"

        await wait_for(sam_sees_presence, timeout=20)
        await sam.put(f"/presence/{quote(sam.user_id)}/status", {"presence": "online", "status_msg": "synapsing"})

        async def alice_sees_presence() -> bool:
            status = await alice.get(f"/presence/{quote(sam.user_id)}/status")
            return status.get("presence") == "online" and status.get("status_msg") == "synapsing"

        await wait_for(alice_sees_presence, timeout=20)
        # every transaction we sent was accepted
        self.assertEqual(wspr.hs.federation.sender.retry_state(syn.server_name), (0, 0))


class _Watcher:
    def __init__(self, client: MatrixClient, room_id: str, since: str) -> None:
        self.client, self.room_id, self.since = client, room_id, since
        self.events: list = []

    @classmethod
    async def start(cls, client: MatrixClient, room_id: str) -> _Watcher:
        return cls(client, room_id, (await client.sync())["next_batch"])

    async def receipt(self, event_id: str, user_id: str) -> bool:
        body = await self.client.sync(since=self.since)
        self.since = body["next_batch"]
        room = body.get("rooms", {}).get("join", {}).get(self.room_id, {})
        self.events.extend(room.get("ephemeral", {}).get("events", []))
        return any(
            ev["type"] == "m.receipt" and user_id in ev["content"].get(event_id, {}).get("m.read", {}) for ev in self.events
        )


async def _sync_ephemeral(client: MatrixClient, room_id: str) -> list:
    body = await client.sync()
    return body.get("rooms", {}).get("join", {}).get(room_id, {}).get("ephemeral", {}).get("events", [])


async def _sync_typing(client: MatrixClient, room_id: str, user_id: str, present: bool = True) -> bool:
    for ev in await _sync_ephemeral(client, room_id):
        if ev["type"] == "m.typing":
            return (user_id in ev["content"]["user_ids"]) == present
    return not present


async def _sync_receipt(client: MatrixClient, room_id: str, event_id: str, user_id: str) -> bool:
    for ev in await _sync_ephemeral(client, room_id):
        if ev["type"] == "m.receipt" and user_id in ev["content"].get(event_id, {}).get("m.read", {}):
            return True
    return False


class SynapseCatchUpTest(unittest.TestCase):
    """Each side goes away while the other sends; everything arrives once it is back."""

    timeout = 240
    if synapse is None:
        skip = "matrix-synapse is not installed"

    async def test_outages_both_ways(self) -> None:
        from federation.transport.server import start_federation_listener

        syn = await start_synapse_peer(self, "wspr-fed-synapse-")
        wspr = await start_federating(self)
        sam = await synapse_client(syn, "sam")
        room_id = (await sam.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        alice = await MatrixClient.register(wspr.base_url, "alice")
        await alice.post(f"/join/{quote(room_id)}?server_name={quote(syn.server_name)}", {})

        async def sam_has(eid: str) -> bool:
            try:
                await sam.get(f"/rooms/{quote(room_id)}/event/{quote(eid)}")
                return True
            except MatrixRequestError:
                return False

        async def alice_has(eid: str) -> bool:
            return await wspr.hs.store.get_event(eid) is not None

        first = await alice.send_message(room_id, "before")
        await wait_for(lambda: sam_has(first), timeout=30)
        # Synapse only catches a destination up from its last successful PDU transaction
        reply = await sam.send_message(room_id, "before too")
        await wait_for(lambda: alice_has(reply), timeout=30)

        # Synapse is down while alice writes; WSPR backs off, then delivers after the restart
        await syn.stop_async()
        await wspr.hs.federation.transport.pool.closeCachedConnections()
        sent = [await alice.send_message(room_id, f"while synapse was down {i}") for i in range(5)]
        await wait_for(lambda: wspr.hs.federation.sender.retry_state(syn.server_name)[1] > 0, timeout=20)
        await syn.start_async()
        for eid in sent:
            await wait_for(lambda: sam_has(eid), timeout=60)

        # WSPR's federation port is down while sam writes; Synapse catches up afterwards
        from tests.federation.helpers import drop_listener

        await drop_listener(wspr.hs.federation.listener)
        wspr.hs.federation.listener = None
        from_sam = [await sam.send_message(room_id, f"while wspr was down {i}") for i in range(3)]
        await syn.stop_async()  # drop Synapse's kept-alive connections to us too
        await syn.start_async()
        wspr.hs.federation.listener = start_federation_listener(wspr.hs)
        # anything from us makes Synapse retry at once (it resets its backoff on contact)
        await alice.put(f"/rooms/{quote(room_id)}/typing/{quote(alice.user_id)}", {"typing": True, "timeout": 1000})
        # Synapse catches up with its newest event; the earlier ones we pull (get_missing_events)
        await wait_for(lambda: alice_has(from_sam[-1]), timeout=90)
        for eid in from_sam:
            await wait_for(lambda: alice_has(eid), timeout=30)
        await alice.put(f"/rooms/{quote(room_id)}/typing/{quote(alice.user_id)}", {"typing": False})
