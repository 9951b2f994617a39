"""The E2EE key APIs over real HTTP: upload/query/claim/changes, sync counts and
device_lists, cross-signing with signature checks, to-device, device deletion and the
one-time-key claim race (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from tests.homeserver.e2e._helpers import SIGS, Ed25519, cross_signing_key, device_keys
from tests.support.wspr import MatrixClient, MatrixRequestError, PostgresUnavailable, start_homeserver


async def _start(test: unittest.TestCase, database: str = "sqlite") -> Any:
    try:
        return await start_homeserver(test, database=database)
    except PostgresUnavailable as e:
        raise unittest.SkipTest(str(e)) from e


def _otks(prefix: str, n: int, start: int = 0) -> dict[str, Any]:
    return {f"signed_curve25519:{prefix}{i:04d}": {"key": f"{prefix}-key-{i}", "signatures": SIGS} for i in range(start, start + n)}


class KeysApiMixin:
    database = "sqlite"

    async def test_upload_query_claim_and_sync_counts(self) -> None:
        server = await _start(self, self.database)  # type: ignore[arg-type]
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        ed = Ed25519(alice.device_id)
        keys = device_keys(alice, ed)
        res = await alice.post(
            "/keys/upload",
            {
                "device_keys": keys,
                "one_time_keys": _otks("A", 3),
                "fallback_keys": {"signed_curve25519:FB1": {"key": "fallback", "fallback": True, "signatures": SIGS}},
            },
        )
        self.assertEqual(res["one_time_key_counts"], {"signed_curve25519": 3})
        # Re-uploading the same keys is fine; a different key under a used id is not.
        await alice.post("/keys/upload", {"one_time_keys": _otks("A", 1)})
        with self.assertRaises(MatrixRequestError) as cm:
            await alice.post("/keys/upload", {"one_time_keys": {"signed_curve25519:A0000": {"key": "other", "signatures": SIGS}}})
        self.assertEqual(cm.exception.code, 400)
        # Keys for another device are refused.
        with self.assertRaises(MatrixRequestError):
            await bob.post("/keys/upload", {"device_keys": keys})

        sync = await alice.sync()
        self.assertEqual(sync["device_one_time_keys_count"], {"signed_curve25519": 3})
        self.assertEqual(sync["device_unused_fallback_key_types"], ["signed_curve25519"])

        q = await bob.post("/keys/query", {"device_keys": {alice.user_id: []}})
        got = q["device_keys"][alice.user_id][alice.device_id]
        self.assertEqual(got["keys"], keys["keys"])
        self.assertEqual(got["signatures"], keys["signatures"])
        self.assertEqual(q["failures"], {})
        q = await bob.post("/keys/query", {"device_keys": {alice.user_id: ["NOPE"]}})
        self.assertEqual(q["device_keys"][alice.user_id], {})

        claimed = []
        for _ in range(4):
            c = await bob.post("/keys/claim", {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}})
            claimed.append(list(c["one_time_keys"][alice.user_id][alice.device_id].items())[0])
        ids = [k for k, _ in claimed]
        self.assertEqual(ids[:3], ["signed_curve25519:A0000", "signed_curve25519:A0001", "signed_curve25519:A0002"])
        # Out of one-time keys: the fallback key, marked used, and still handed out.
        self.assertEqual(ids[3], "signed_curve25519:FB1")
        sync = await alice.sync()
        self.assertEqual(sync["device_one_time_keys_count"], {"signed_curve25519": 0})
        self.assertEqual(sync["device_unused_fallback_key_types"], [])
        c = await bob.post("/keys/claim", {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}})
        self.assertIn("signed_curve25519:FB1", c["one_time_keys"][alice.user_id][alice.device_id])
        # A new fallback key is unused again.
        await alice.post("/keys/upload", {"fallback_keys": {"signed_curve25519:FB2": {"key": "fb2", "fallback": True, "signatures": SIGS}}})
        self.assertEqual((await alice.sync())["device_unused_fallback_key_types"], ["signed_curve25519"])

        # Remote users without federation: reported in failures, not an error.
        # An unreachable remote server is reported in failures, not as an error.
        q = await bob.post("/keys/query", {"device_keys": {"@carol:127.0.0.1:1": []}, "timeout": 3000})
        self.assertIn("127.0.0.1:1", q["failures"])
        c = await bob.post("/keys/claim", {"one_time_keys": {"@carol:127.0.0.1:1": {"D": "signed_curve25519"}}})
        self.assertIn("127.0.0.1:1", c["failures"])

    async def test_device_lists_and_deletion(self) -> None:
        server = await _start(self, self.database)  # type: ignore[arg-type]
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        room_id = (await alice.post("/createRoom", {"invite": [bob.user_id]}))["room_id"]
        await bob.post(f"/join/{room_id}")
        first = await bob.sync()
        since = first["next_batch"]

        # A new device for alice shows up in bob's device_lists.changed and /keys/changes.
        alice2 = await MatrixClient.login(server.base_url, "alice")
        ed2 = Ed25519(alice2.device_id)
        await alice2.post("/keys/upload", {"device_keys": device_keys(alice2, ed2), "one_time_keys": _otks("B", 2)})
        sync = await bob.sync(since=since)
        self.assertIn(alice.user_id, sync["device_lists"]["changed"])
        changes = await bob.get(f"/keys/changes?from={since}&to={sync['next_batch']}")
        self.assertIn(alice.user_id, changes["changed"])
        q = await bob.post("/keys/query", {"device_keys": {alice.user_id: []}})
        self.assertIn(alice2.device_id, q["device_keys"][alice.user_id])

        # Deleting the device removes its keys and tells bob.
        since = sync["next_batch"]
        code, uia = await alice.raw("DELETE", f"/_matrix/client/v3/devices/{alice2.device_id}", {})
        self.assertEqual(code, 401)
        await alice.request(
            "DELETE",
            f"/_matrix/client/v3/devices/{alice2.device_id}",
            {
                "auth": {
                    "type": "m.login.password",
                    "session": uia["session"],
                    "identifier": {"type": "m.id.user", "user": "alice"},
                    "password": "correct horse",
                }
            },
        )
        sync = await bob.sync(since=since)
        self.assertIn(alice.user_id, sync["device_lists"]["changed"])
        q = await bob.post("/keys/query", {"device_keys": {alice.user_id: []}})
        self.assertNotIn(alice2.device_id, q["device_keys"][alice.user_id])
        c = await bob.post("/keys/claim", {"one_time_keys": {alice.user_id: {alice2.device_id: "signed_curve25519"}}})
        self.assertEqual(c["one_time_keys"], {})

        # Bob leaves: alice's later changes are no longer his business, and he sees alice in `left`.
        since = sync["next_batch"]
        await bob.post(f"/rooms/{room_id}/leave")
        sync = await bob.sync(since=since)
        self.assertIn(alice.user_id, sync["device_lists"]["left"])

    async def test_to_device(self) -> None:
        server = await _start(self, self.database)  # type: ignore[arg-type]
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        bob2 = await MatrixClient.login(server.base_url, "bob")
        s1 = await bob.sync()
        s2 = await bob2.sync()
        for i in range(3):
            await alice.put(
                f"/sendToDevice/m.test/txn{i}", {"messages": {bob.user_id: {bob.device_id: {"n": i}, "NOSUCH": {"n": -1}}}}
            )
        # Same transaction id again: not delivered twice.
        await alice.put("/sendToDevice/m.test/txn2", {"messages": {bob.user_id: {bob.device_id: {"n": 2}}}})
        await alice.put("/sendToDevice/m.test/all", {"messages": {bob.user_id: {"*": {"n": "all"}}}})
        sync = await bob.sync(since=s1["next_batch"])
        events = sync["to_device"]["events"]
        self.assertEqual([e["content"]["n"] for e in events], [0, 1, 2, "all"])
        self.assertEqual({e["sender"] for e in events}, {alice.user_id})
        self.assertEqual({e["type"] for e in events}, {"m.test"})
        # Delivered once: the next sync (acknowledging the previous) is empty.
        again = await bob.sync(since=sync["next_batch"])
        self.assertEqual(again["to_device"]["events"], [])
        sync2 = await bob2.sync(since=s2["next_batch"])
        self.assertEqual([e["content"]["n"] for e in sync2["to_device"]["events"]], ["all"])
        with self.assertRaises(MatrixRequestError) as cm:
            await alice.put("/sendToDevice/m.test/bad", {"messages": {bob.user_id: "nope"}})
        self.assertEqual(cm.exception.code, 400)

        # Undelivered messages for a device go when the device goes.
        await alice.put("/sendToDevice/m.test/late", {"messages": {bob.user_id: {bob2.device_id: {"n": "late"}}}})

        def queued(txn: Any) -> int:
            return txn.select_value("SELECT COUNT(*) FROM to_device_messages WHERE device_id = ?", (bob2.device_id,))

        self.assertEqual(await server.hs.store.db.read(queued), 2)
        await server.hs.devices.delete_devices(bob.user_id, [bob2.device_id])
        self.assertEqual(await server.hs.store.db.read(queued), 0)

    async def test_cross_signing(self) -> None:
        server = await _start(self, self.database)  # type: ignore[arg-type]
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        room_id = (await alice.post("/createRoom", {"invite": [bob.user_id]}))["room_id"]
        await bob.post(f"/join/{room_id}")
        dev = Ed25519(alice.device_id)
        await alice.post("/keys/upload", {"device_keys": device_keys(alice, dev)})
        since = (await bob.sync())["next_batch"]

        master, ssk, usk = Ed25519(), Ed25519(), Ed25519()
        mk = cross_signing_key(alice.user_id, master, "master")
        sk = master.sign(cross_signing_key(alice.user_id, ssk, "self_signing"), alice.user_id)
        uk = master.sign(cross_signing_key(alice.user_id, usk, "user_signing"), alice.user_id)
        # A self-signing key not signed by the master key is refused.
        bad = cross_signing_key(alice.user_id, ssk, "self_signing")
        with self.assertRaises(MatrixRequestError) as cm:
            await alice.post("/keys/device_signing/upload", {"master_key": mk, "self_signing_key": bad})
        self.assertEqual(cm.exception.code, 400)
        # First upload: no UIA needed.
        await alice.post(
            "/keys/device_signing/upload", {"master_key": mk, "self_signing_key": sk, "user_signing_key": uk}
        )
        # Identical re-upload: no UIA either.
        await alice.post("/keys/device_signing/upload", {"master_key": mk, "self_signing_key": sk})
        # Replacing needs the password.
        master2 = Ed25519()
        code, body = await alice.raw(
            "POST", "/_matrix/client/v3/keys/device_signing/upload",
            {"master_key": cross_signing_key(alice.user_id, master2, "master")},
        )
        self.assertEqual(code, 401)
        self.assertIn("session", body)

        sync = await bob.sync(since=since)
        self.assertIn(alice.user_id, sync["device_lists"]["changed"])

        q = await bob.post("/keys/query", {"device_keys": {alice.user_id: []}})
        self.assertEqual(q["master_keys"][alice.user_id]["keys"], mk["keys"])
        self.assertEqual(q["self_signing_keys"][alice.user_id]["keys"], sk["keys"])
        self.assertNotIn(alice.user_id, q["user_signing_keys"])
        q = await alice.post("/keys/query", {"device_keys": {alice.user_id: []}})
        self.assertEqual(q["user_signing_keys"][alice.user_id]["keys"], uk["keys"])

        # Sign the device with the self-signing key; others then see the signature.
        stored = q["device_keys"][alice.user_id][alice.device_id]
        signed_dev = ssk.sign(stored, alice.user_id)
        res = await alice.post("/keys/signatures/upload", {alice.user_id: {alice.device_id: signed_dev}})
        self.assertEqual(res["failures"], {})
        q = await bob.post("/keys/query", {"device_keys": {alice.user_id: []}})
        sigs = q["device_keys"][alice.user_id][alice.device_id]["signatures"][alice.user_id]
        self.assertIn(ssk.key_id, sigs)
        self.assertIn(dev.key_id, sigs)
        # A forged signature is refused with a per-key failure.
        forged = Ed25519(ssk.public).sign(stored, alice.user_id)
        forged["signatures"][alice.user_id][ssk.key_id] = forged["signatures"][alice.user_id][ssk.key_id][::-1]
        res = await alice.post("/keys/signatures/upload", {alice.user_id: {alice.device_id: forged}})
        self.assertIn(alice.device_id, res["failures"][alice.user_id])

        # Bob cross-signs alice's master key with his user-signing key; only bob sees it.
        bm, busk = Ed25519(), Ed25519()
        await bob.post(
            "/keys/device_signing/upload",
            {
                "master_key": cross_signing_key(bob.user_id, bm, "master"),
                "user_signing_key": bm.sign(cross_signing_key(bob.user_id, busk, "user_signing"), bob.user_id),
            },
        )
        alice_master = q["master_keys"][alice.user_id]
        res = await bob.post(
            "/keys/signatures/upload", {alice.user_id: {master.public: busk.sign(alice_master, bob.user_id)}}
        )
        self.assertEqual(res["failures"], {})
        q_bob = await bob.post("/keys/query", {"device_keys": {alice.user_id: []}})
        self.assertIn(busk.key_id, q_bob["master_keys"][alice.user_id]["signatures"][bob.user_id])
        q_alice = await alice.post("/keys/query", {"device_keys": {alice.user_id: []}})
        self.assertNotIn(bob.user_id, q_alice["master_keys"][alice.user_id].get("signatures", {}))

        # Alice's device signs her master key (what clients do after verifying).
        res = await alice.post(
            "/keys/signatures/upload", {alice.user_id: {master.public: dev.sign(alice_master, alice.user_id)}}
        )
        self.assertEqual(res["failures"], {})
        q_alice = await alice.post("/keys/query", {"device_keys": {alice.user_id: []}})
        self.assertIn(dev.key_id, q_alice["master_keys"][alice.user_id]["signatures"][alice.user_id])


class KeysApiSQLiteTest(KeysApiMixin, unittest.TestCase):
    database = "sqlite"


class KeysApiPostgresTest(KeysApiMixin, unittest.TestCase):
    database = "postgresql"


class ClaimRaceMixin:
    database = "sqlite"

    async def test_concurrent_claims_never_share_a_key(self) -> None:
        server = await _start(self, self.database)  # type: ignore[arg-type]
        alice = await MatrixClient.register(server.base_url, "alice")
        n_keys, n_claims = 30, 40
        await alice.post("/keys/upload", {"one_time_keys": _otks("R", n_keys)})
        claimers = [await MatrixClient.register(server.base_url, f"c{i}") for i in range(4)]
        body = {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}}
        results = await defer.gatherResults(
            [defer.ensureDeferred(claimers[i % 4].post("/keys/claim", body)) for i in range(n_claims)]
        )
        got = [
            k
            for r in results
            for k in r["one_time_keys"].get(alice.user_id, {}).get(alice.device_id, {})
        ]
        self.assertEqual(len(got), n_keys)  # type: ignore[attr-defined]
        self.assertEqual(len(set(got)), n_keys)  # type: ignore[attr-defined]
        counts = (await alice.sync())["device_one_time_keys_count"]
        self.assertEqual(counts["signed_curve25519"], 0)  # type: ignore[attr-defined]

    async def test_claim_race_in_the_store(self) -> None:
        """Many claim transactions at once straight on the store (on PostgreSQL they run on
        parallel connections, so this exercises the DELETE row-count re-check)."""
        server = await _start(self, self.database)  # type: ignore[arg-type]
        store = server.hs.store
        alice = await MatrixClient.register(server.base_url, "alice")
        u, d = alice.user_id, alice.device_id
        await store.e2e_add_one_time_keys(u, d, [("signed_curve25519", f"K{i:03d}", {"k": i}) for i in range(50)])
        results = await defer.gatherResults(
            [defer.ensureDeferred(store.e2e_claim_keys([(u, d, "signed_curve25519")])) for _ in range(60)]
        )
        got = [k for r in results for k in r.one_time_keys.get(u, {}).get(d, {})]
        self.assertEqual(len(got), 50)  # type: ignore[attr-defined]
        self.assertEqual(len(set(got)), 50)  # type: ignore[attr-defined]


class ClaimRaceSQLiteTest(ClaimRaceMixin, unittest.TestCase):
    database = "sqlite"


class ClaimRacePostgresTest(ClaimRaceMixin, unittest.TestCase):
    database = "postgresql"


class DehydratedDeviceTest(unittest.TestCase):
    """MSC3814 as Synapse serves it (unstable prefix)."""

    async def test_dehydrated_device_lifecycle(self) -> None:
        server = await _start(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        base = "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device"
        code, body = await alice.raw("GET", base)
        self.assertEqual((code, body["errcode"]), (404, "M_NOT_FOUND"))

        dehydrated = MatrixClient(server.base_url, None, alice.user_id, "DEHYDRATED1")
        ed = Ed25519("DEHYDRATED1")
        keys = device_keys(dehydrated, ed)
        keys["dehydrated"] = True
        put = {
            "device_id": "DEHYDRATED1",
            "device_data": {"algorithm": "org.matrix.msc3814.v1.olm", "device_pickle": "opaque"},
            "initial_device_display_name": "Dehydrated device",
            "device_keys": keys,
            "one_time_keys": _otks("D", 2),
            "fallback_keys": {"signed_curve25519:DFB": {"key": "dfb", "fallback": True, "signatures": SIGS}},
        }
        # A logged-in device's id cannot be taken over.
        code, _ = await alice.raw("PUT", base, {**put, "device_id": alice.device_id})
        self.assertEqual(code, 400)
        self.assertEqual(await alice.request("PUT", base, put), {"device_id": "DEHYDRATED1"})
        got = await alice.request("GET", base)
        self.assertEqual(got, {"device_id": "DEHYDRATED1", "device_data": put["device_data"]})
        q = await bob.post("/keys/query", {"device_keys": {alice.user_id: []}})
        self.assertTrue(q["device_keys"][alice.user_id]["DEHYDRATED1"]["dehydrated"])
        c = await bob.post("/keys/claim", {"one_time_keys": {alice.user_id: {"DEHYDRATED1": "signed_curve25519"}}})
        self.assertIn("signed_curve25519:D0000", c["one_time_keys"][alice.user_id]["DEHYDRATED1"])

        # To-device messages wait for it; paginated with d-tokens.
        for i in range(3):
            await bob.put(f"/sendToDevice/m.room.encrypted/d{i}", {"messages": {alice.user_id: {"DEHYDRATED1": {"n": i}}}})
        code, body = await alice.raw("GET", f"{base}/OTHER/events")
        self.assertEqual(code, 403)
        page = await alice.request("GET", f"{base}/DEHYDRATED1/events?limit=2")
        self.assertEqual([e["content"]["n"] for e in page["events"]], [0, 1])
        page2 = await alice.request("GET", f"{base}/DEHYDRATED1/events?limit=2&from={page['next_batch']}")
        self.assertEqual([e["content"]["n"] for e in page2["events"]], [2])
        self.assertNotIn("next_batch", page2)
        post = await alice.request("POST", f"{base}/DEHYDRATED1/events", {"next_batch": page["next_batch"]})
        self.assertEqual([e["content"]["n"] for e in post["events"]], [2])
        code, _ = await alice.raw("GET", f"{base}/DEHYDRATED1/events?from=bogus")
        self.assertEqual(code, 400)

        # A new dehydrated device replaces (deletes) the old one and its keys.
        put2 = dict(put, device_id="DEHYDRATED2", device_keys=device_keys(MatrixClient(server.base_url, None, alice.user_id, "DEHYDRATED2"), Ed25519("DEHYDRATED2")))
        put2.pop("one_time_keys")
        await alice.request("PUT", base, put2)
        devices = [d["device_id"] for d in (await alice.get("/devices"))["devices"]]
        self.assertNotIn("DEHYDRATED1", devices)
        self.assertIn("DEHYDRATED2", devices)
        q = await bob.post("/keys/query", {"device_keys": {alice.user_id: []}})
        self.assertNotIn("DEHYDRATED1", q["device_keys"][alice.user_id])

        self.assertEqual(await alice.request("DELETE", base), {"device_id": "DEHYDRATED2"})
        code, _ = await alice.raw("GET", base)
        self.assertEqual(code, 404)
        q = await bob.post("/keys/query", {"device_keys": {alice.user_id: []}})
        self.assertEqual(list(q["device_keys"][alice.user_id]), [])
