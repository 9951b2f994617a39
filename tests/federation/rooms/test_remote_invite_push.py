"""An invite from another server rings the invitee's phone. The invite arrives over
federation (PUT /v2/invite) for a room this server is not in, so it is stored as an
out-of-band membership, outside any timeline; Synapse still runs the invitee's push rules
on it (``on_invite_request``) and names the room from the invite's stripped state. Two
WSPR servers on loopback and a push gateway (tests/support/push_gateway.py)."""

from __future__ import annotations

from urllib.parse import quote

from twisted.trial import unittest

from tests.federation.helpers import start_federating
from tests.homeserver.push.test_push_gateway import pusher_body
from tests.support.push_gateway import PushGateway
from tests.support.wspr import MatrixClient


class RemoteInvitePushTest(unittest.TestCase):
    timeout = 120
    database = "sqlite"

    async def test_a_remote_invite_is_pushed_with_the_room_name(self) -> None:
        a = await start_federating(self, self.database)
        b = await start_federating(self, self.database)
        gateway = await PushGateway.start(self)
        alice = await MatrixClient.register(a.base_url, "alice")
        await alice.put(f"/profile/{quote(alice.user_id)}/displayname", {"displayname": "Alice A."})
        bob = await MatrixClient.register(b.base_url, "bob")
        await bob.post("/pushers/set", pusher_body(gateway.url))
        room_id = (await alice.post("/createRoom", {"preset": "private_chat", "name": "Across servers"}))["room_id"]
        await alice.post(f"/rooms/{quote(room_id)}/invite", {"user_id": bob.user_id})

        [push] = await gateway.wait_for(1, timeout=30)
        self.assertEqual(push["room_id"], room_id)
        self.assertEqual((push["type"], push["sender"]), ("m.room.member", alice.user_id))
        self.assertEqual((push["membership"], push["user_is_target"]), ("invite", True))
        self.assertEqual(push["room_name"], "Across servers")
        self.assertEqual(push["sender_display_name"], "Alice A.")
        self.assertEqual(push["prio"], "high")
        self.assertEqual(push["counts"], {"unread": 1})
        self.assertEqual(push["devices"][0]["tweaks"], {"highlight": False, "sound": "default"})
        # The pushed event is the invite bob's /sync shows.
        sync = await bob.sync()
        invite_state = sync["rooms"]["invite"][room_id]["invite_state"]["events"]
        self.assertIn(("m.room.member", bob.user_id), [(e["type"], e.get("state_key")) for e in invite_state])
        await gateway.quiet()
        self.assertEqual(len(gateway.notifications), 1)


class RemoteInvitePushPostgresTest(RemoteInvitePushTest):
    database = "postgresql"
