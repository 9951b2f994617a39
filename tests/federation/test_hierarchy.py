"""GET /hierarchy/{roomId}: a space's children as another server sees them."""

from __future__ import annotations

from urllib.parse import quote

from twisted.trial import unittest

from federation.errors import FederationError
from tests.federation.helpers import start_federating
from tests.support.wspr import MatrixClient


class HierarchyTest(unittest.TestCase):
    timeout = 60

    async def test_space_children(self) -> None:
        a = await start_federating(self)
        b = await start_federating(self)
        bob = await MatrixClient.register(b.base_url, "bob")
        space = (await bob.post("/createRoom", {"preset": "public_chat", "name": "Space",
                                                "creation_content": {"type": "m.space"}}))["room_id"]
        public = (await bob.post("/createRoom", {"preset": "public_chat", "name": "Public child"}))["room_id"]
        private = (await bob.post("/createRoom", {"preset": "private_chat", "name": "Private child"}))["room_id"]
        hidden = (await bob.post("/createRoom", {"preset": "private_chat"}))["room_id"]
        for child, suggested in ((public, True), (private, False)):
            await bob.put(f"/rooms/{quote(space)}/state/m.space.child/{quote(child)}",
                          {"via": [b.server_name], "suggested": suggested})
        # a child without "via" has been removed
        await bob.put(f"/rooms/{quote(space)}/state/m.space.child/{quote(hidden)}", {})

        resp = await a.hs.federation.get_hierarchy(b.server_name, space)
        self.assertEqual(resp["room"]["room_id"], space)
        self.assertEqual(resp["room"]["room_type"], "m.space")
        self.assertEqual({c["state_key"] for c in resp["room"]["children_state"]}, {public, private})
        self.assertEqual([c["room_id"] for c in resp["children"]], [public])
        self.assertEqual(resp["children"][0]["name"], "Public child")
        self.assertEqual(resp["inaccessible_children"], [private])

        resp = await a.hs.federation.get_hierarchy(b.server_name, space, suggested_only=True)
        self.assertEqual([c["state_key"] for c in resp["room"]["children_state"]], [public])

        # a private room's hierarchy is not for strangers; unknown rooms are 404
        with self.assertRaises(FederationError) as cm:
            await a.hs.federation.get_hierarchy(b.server_name, private)
        self.assertEqual(cm.exception.code, 403)
        with self.assertRaises(FederationError) as cm:
            await a.hs.federation.get_hierarchy(b.server_name, "!nope:" + b.server_name)
        self.assertEqual(cm.exception.code, 404)

        # a server banned by the space's ACL gets nothing
        await bob.put(f"/rooms/{quote(space)}/state/m.room.server_acl", {"allow": ["*"], "deny": ["127.0.0.1"]})
        with self.assertRaises(FederationError) as cm:
            await a.hs.federation.get_hierarchy(b.server_name, space)
        self.assertEqual((cm.exception.code, cm.exception.errcode), (403, "M_FORBIDDEN"))
