"""Send transaction ids compared with Synapse: what a retry returns, per room and across
the access tokens of one device, and who sees ``unsigned.transaction_id``."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from twisted.trial import unittest

from tests.support.differential import server_pair
from tests.support.wspr import MatrixClient


class TxnIdsTest(unittest.TestCase):
    timeout = 120

    async def test_txn_scope_as_synapse(self) -> None:
        pair = await server_pair(self)
        outcome: dict[str, dict[str, Any]] = {}
        for side in pair:
            alice = await side.register("alice")
            room1 = (await alice.post("/createRoom", {}))["room_id"]
            room2 = (await alice.post("/createRoom", {}))["room_id"]

            async def send(client: MatrixClient, room_id: str, body: str) -> str:
                path = f"/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/txn1"
                code, result = await side.call(client, f"send {body}", "PUT", path, {"msgtype": "m.text", "body": body})
                assert code == 200, result
                return str(result["event_id"])

            async def txn_seen(client: MatrixClient, event_id: str) -> Any:
                path = f"/_matrix/client/v3/rooms/{quote(room1)}/event/{quote(event_id)}"
                _, event = await side.call(client, "event", "GET", path)
                return event.get("unsigned", {}).get("transaction_id")

            first = await send(alice, room1, "first")
            again = await send(alice, room1, "changed")
            seen_by_sender = await txn_seen(alice, first)
            # A second login on the same device (the spec has it end the first token).
            second = await MatrixClient.login(side.base_url, side.localpart("alice"), device_id=alice.device_id)
            same_device = await send(second, room1, "second token")
            other_room = await send(second, room2, "other room")
            other_device = await MatrixClient.login(side.base_url, side.localpart("alice"))
            device2 = await send(other_device, room1, "other device")
            outcome[side.label] = {
                "retry is the first event": again == first,
                "another token of the device is the same client": same_device == first,
                "another room is a new event": other_room != first,
                "another device is a new event": device2 != first,
                "sender's device sees its txn id": seen_by_sender,
                "another token of the device sees it": await txn_seen(second, first),
                "another device does not": await txn_seen(other_device, first),
            }
        self.assertEqual(outcome["WSPR"], outcome["Synapse"])
        pair.assert_same()
