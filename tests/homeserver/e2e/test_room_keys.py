"""Server-side key backup (/room_keys): versions, etag/count, replacement rules, errors."""

from __future__ import annotations

from typing import Any

from twisted.trial import unittest

from tests.support.wspr import MatrixClient, MatrixRequestError, PostgresUnavailable, start_homeserver

ALG = "m.megolm_backup.v1.curve25519-aes-sha2"


def _key(fmi: int, fc: int, verified: bool, data: str) -> dict[str, Any]:
    return {"first_message_index": fmi, "forwarded_count": fc, "is_verified": verified, "session_data": {"ct": data}}


class RoomKeysMixin:
    database = "sqlite"

    async def _error(self, coro: Any) -> MatrixRequestError:
        with self.assertRaises(MatrixRequestError) as cm:
            await coro
        return cm.exception

    async def test_versions_and_keys(self) -> None:
        try:
            server = await start_homeserver(self, database=self.database)  # type: ignore[arg-type]
        except PostgresUnavailable as e:
            raise unittest.SkipTest(str(e)) from e
        alice = await MatrixClient.register(server.base_url, "alice")
        err = await self._error(alice.get("/room_keys/version"))
        self.assertEqual((err.code, err.errcode), (404, "M_NOT_FOUND"))
        err = await self._error(alice.put("/room_keys/keys?version=1", {"rooms": {}}))
        self.assertEqual(err.code, 404)

        v1 = (await alice.post("/room_keys/version", {"algorithm": ALG, "auth_data": {"public_key": "pk1"}}))["version"]
        info = await alice.get("/room_keys/version")
        self.assertEqual(info, {"version": v1, "algorithm": ALG, "auth_data": {"public_key": "pk1"}, "etag": "0", "count": 0})
        self.assertEqual(await alice.get(f"/room_keys/version/{v1}"), info)
        self.assertEqual((await self._error(alice.get("/room_keys/version/999"))).code, 404)
        self.assertEqual((await self._error(alice.get("/room_keys/version/abc"))).code, 404)

        res = await alice.put(
            f"/room_keys/keys?version={v1}",
            {"rooms": {"!r:x": {"sessions": {"s1": _key(5, 1, False, "a"), "s2": _key(0, 0, True, "b")}}}},
        )
        self.assertEqual(res, {"etag": "1", "count": 2})
        # Worse key: not stored, etag unchanged.
        res = await alice.put(f"/room_keys/keys/!r:x/s1?version={v1}", _key(7, 1, False, "worse"))
        self.assertEqual(res, {"etag": "1", "count": 2})
        # Lower first_message_index: replaces.
        res = await alice.put(f"/room_keys/keys/!r:x?version={v1}", {"sessions": {"s1": _key(2, 1, False, "better")}})
        self.assertEqual(res, {"etag": "2", "count": 2})
        self.assertEqual((await alice.get(f"/room_keys/keys/!r:x/s1?version={v1}"))["session_data"], {"ct": "better"})
        # Verified beats unverified.
        await alice.put(f"/room_keys/keys/!r:x/s1?version={v1}", _key(3, 1, True, "verified"))
        self.assertEqual((await alice.get(f"/room_keys/keys/!r:x/s1?version={v1}"))["session_data"], {"ct": "verified"})
        # Lower forwarded_count, same index: replaces.
        await alice.put(f"/room_keys/keys/!r:x/s1?version={v1}", _key(3, 0, True, "fc0"))
        self.assertEqual((await alice.get(f"/room_keys/keys/!r:x/s1?version={v1}"))["session_data"], {"ct": "fc0"})

        everything = await alice.get(f"/room_keys/keys?version={v1}")
        self.assertEqual(set(everything["rooms"]["!r:x"]["sessions"]), {"s1", "s2"})
        self.assertEqual(await alice.get(f"/room_keys/keys/!other:x?version={v1}"), {"sessions": {}})
        self.assertEqual((await self._error(alice.get(f"/room_keys/keys/!r:x/nope?version={v1}"))).code, 404)
        err = await self._error(alice.get("/room_keys/keys"))
        self.assertEqual(err.errcode, "M_MISSING_PARAM")
        err = await self._error(alice.put(f"/room_keys/keys/!r:x/s3?version={v1}", {"first_message_index": 0}))
        self.assertEqual(err.code, 400)

        # A new version: the old one is no longer writable (403 with the current version).
        v2 = (await alice.post("/room_keys/version", {"algorithm": ALG, "auth_data": {"public_key": "pk2"}}))["version"]
        self.assertNotEqual(v1, v2)
        err = await self._error(alice.put(f"/room_keys/keys/!r:x/s1?version={v1}", _key(0, 0, True, "x")))
        self.assertEqual((err.code, err.errcode, err.body.get("current_version")), (403, "M_WRONG_ROOM_KEYS_VERSION", v2))
        self.assertEqual((await alice.get("/room_keys/version"))["version"], v2)
        # The old version is still readable.
        self.assertEqual((await alice.get(f"/room_keys/version/{v1}"))["count"], 2)

        # Update: algorithm must match, version in body must match.
        await alice.put(f"/room_keys/version/{v2}", {"algorithm": ALG, "auth_data": {"public_key": "pk2b"}, "version": v2})
        self.assertEqual((await alice.get("/room_keys/version"))["auth_data"], {"public_key": "pk2b"})
        err = await self._error(alice.put(f"/room_keys/version/{v2}", {"algorithm": "other", "auth_data": {}}))
        self.assertEqual(err.code, 400)
        err = await self._error(alice.put(f"/room_keys/version/{v2}", {"algorithm": ALG, "auth_data": {}, "version": v1}))
        self.assertEqual(err.code, 400)

        # Deleting keys bumps the etag and the count drops.
        res = await alice.request("DELETE", f"/_matrix/client/v3/room_keys/keys/!r:x/s1?version={v1}")
        self.assertEqual(res["count"], 1)
        self.assertEqual(res["etag"], str(int((await alice.get(f"/room_keys/version/{v1}"))["etag"])))

        # Deleting the current version: it is gone, and the newest remaining one is current.
        await alice.request("DELETE", f"/_matrix/client/v3/room_keys/version/{v2}")
        self.assertEqual((await self._error(alice.get(f"/room_keys/version/{v2}"))).code, 404)
        self.assertEqual((await alice.get("/room_keys/version"))["version"], v1)
        v3 = (await alice.post("/room_keys/version", {"algorithm": ALG, "auth_data": {}}))["version"]
        self.assertEqual(int(v3), int(v2) + 1)  # versions are never reused

        # Another user sees none of it.
        bob = await MatrixClient.register(server.base_url, "bob")
        self.assertEqual((await self._error(bob.get(f"/room_keys/version/{v1}"))).code, 404)


class RoomKeysSQLiteTest(RoomKeysMixin, unittest.TestCase):
    database = "sqlite"


class RoomKeysPostgresTest(RoomKeysMixin, unittest.TestCase):
    database = "postgresql"
