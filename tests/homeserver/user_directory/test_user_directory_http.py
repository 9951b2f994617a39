"""POST /user_directory/search: who is visible, matching, limits."""

from __future__ import annotations

from twisted.trial import unittest

from tests.support.wspr import MatrixClient, MatrixRequestError, PostgresUnavailable, start_homeserver


class UserDirectoryMixin:
    database = "sqlite"

    async def test_search(self) -> None:
        t = self  # type: ignore[assignment]
        try:
            server = await start_homeserver(self, database=self.database)  # type: ignore[arg-type]
        except PostgresUnavailable as e:
            raise unittest.SkipTest(str(e)) from e
        url = server.base_url
        alice = await MatrixClient.register(url, "alice")
        bob = await MatrixClient.register(url, "bob")
        carol = await MatrixClient.register(url, "carol")
        dave = await MatrixClient.register(url, "dave")
        erin = await MatrixClient.register(url, "erin")
        await bob.put(f"/profile/{bob.user_id}/displayname", {"displayname": "Bobby Tables"})
        await carol.put(f"/profile/{carol.user_id}/displayname", {"displayname": "Carol Ann"})
        await dave.put(f"/profile/{dave.user_id}/displayname", {"displayname": "Dave Secret"})

        async def search(client: MatrixClient, term: str, limit: int | None = None) -> dict:
            body: dict = {"search_term": term}
            if limit is not None:
                body["limit"] = limit
            return await client.post("/user_directory/search", body)

        def ids(result: dict) -> list[str]:
            return [r["user_id"] for r in result["results"]]

        # Nobody shares a room with alice yet.
        t.assertEqual(await search(alice, "bob"), {"results": [], "limited": False})
        # A private room shared with bob; a public room with carol in it; dave in a private room elsewhere.
        private = (await alice.post("/createRoom", {"invite": [bob.user_id]}))["room_id"]
        await bob.post(f"/join/{private}")
        await carol.post("/createRoom", {"preset": "public_chat"})
        secret = (await dave.post("/createRoom", {"invite": [erin.user_id]}))["room_id"]
        await erin.post(f"/join/{secret}")

        result = await search(alice, "bob")
        # avatar_url null when unset, as Synapse answers (both keys always).
        t.assertEqual(result["results"], [{"user_id": bob.user_id, "display_name": "Bobby Tables", "avatar_url": None}])
        t.assertFalse(result["limited"])
        t.assertEqual(ids(await search(alice, "TABLES")), [bob.user_id])  # display name, case-insensitive
        t.assertEqual(ids(await search(alice, "carol")), [carol.user_id])  # public room
        t.assertEqual(ids(await search(alice, "ann")), [carol.user_id])
        t.assertEqual(await search(alice, "dave"), {"results": [], "limited": False})  # not visible
        t.assertEqual(ids(await search(erin, "secret")), [dave.user_id])  # shares a room
        # A changed display name is found by its new value.
        await bob.put(f"/profile/{bob.user_id}/displayname", {"displayname": "Robert"})
        t.assertEqual(ids(await search(alice, "robert")), [bob.user_id])
        t.assertEqual((await search(alice, "robert"))["results"][0]["display_name"], "Robert")
        # Multiple words must all match; wildcards are literal.
        t.assertEqual(ids(await search(alice, "carol ann")), [carol.user_id])
        t.assertEqual(ids(await search(alice, "carol zed")), [])
        t.assertEqual(ids(await search(alice, "%")), [])
        t.assertEqual(ids(await search(alice, "_")), [])
        # The server name matches everyone visible; the limit says it was cut.
        everyone = await search(alice, "localhost", limit=1)
        t.assertEqual(len(everyone["results"]), 1)
        t.assertTrue(everyone["limited"])
        t.assertEqual(len((await search(alice, "localhost"))["results"]), 3)  # alice, bob, carol
        # Leaving the shared room hides bob again.
        await bob.post(f"/rooms/{private}/leave")
        t.assertEqual(ids(await search(alice, "robert")), [])
        # Bad input.
        for body in ({}, {"search_term": 5}, {"search_term": "x", "limit": "ten"}):
            with t.assertRaises(MatrixRequestError) as cm:
                await alice.post("/user_directory/search", body)
            t.assertEqual(cm.exception.code, 400)


class UserDirectorySQLiteTest(UserDirectoryMixin, unittest.TestCase):
    database = "sqlite"


class UserDirectoryPostgresTest(UserDirectoryMixin, unittest.TestCase):
    database = "postgresql"
