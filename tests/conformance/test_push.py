"""Pushers and notifications compared with a real Synapse: the same steps on both servers,
each pushing to its own gateway on loopback (tests/support/push_gateway.py); the answers of
/pushers, /pushers/set and /notifications, and what each gateway receives, must have the
same shape, and the values that do not depend on the server (priority, counts, tweaks,
room and sender names) must be equal."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from twisted.trial import unittest

from tests.support.differential import Side, server_pair
from tests.support.push_gateway import PushGateway


def pusher(url: str, pushkey: str, **data: Any) -> dict[str, Any]:
    return {
        "kind": "http",
        "app_id": "org.wspr.test",
        "pushkey": pushkey,
        "app_display_name": "Test",
        "device_display_name": "Phone",
        "lang": "en",
        "data": {"url": url, **data},
    }


class PushDifferentialTest(unittest.TestCase):
    timeout = 180
    maxDiff = None

    async def _scenario(self, side: Side, gateway: PushGateway) -> dict[str, Any]:
        """The steps, recorded on ``side``; returns the values compared exactly."""
        alice = await side.register("alice")
        bob = await side.register("bob")
        carol = await side.register("carol")
        await bob.put(f"/profile/{quote(bob.user_id)}/displayname", {"displayname": "Bob"})
        room_id = (await bob.post("/createRoom", {"preset": "public_chat", "name": "Tea"}))["room_id"]
        await alice.post(f"/join/{quote(room_id)}")
        await carol.post(f"/join/{quote(room_id)}")
        v3 = "/_matrix/client/v3"
        await side.call(alice, "set pusher", "POST", v3 + "/pushers/set", {**pusher(gateway.url, "key1", custom=1), "profile_tag": "p"})
        await side.call(alice, "set id-only pusher", "POST", v3 + "/pushers/set", pusher(gateway.url, "key2", format="event_id_only"))
        await side.call(alice, "pushers", "GET", v3 + "/pushers")
        for name, body in [
            ("set: missing params", {"app_id": "x", "pushkey": "y"}),
            ("set: no url", {**pusher(gateway.url, "key3"), "data": {}}),
            ("set: wrong path", {**pusher(gateway.url, "key3"), "data": {"url": "http://127.0.0.1/push"}}),
            ("set: null kind deletes", {"app_id": "x", "pushkey": "y", "kind": None}),
        ]:
            await side.call(alice, name, "POST", v3 + "/pushers/set", body)

        values: dict[str, Any] = {}
        await bob.send_message(room_id, "tea?")
        await gateway.wait_for(2)
        mention = await bob.send_message(room_id, "alice?", **{"m.mentions": {"user_ids": [alice.user_id]}})
        await gateway.wait_for(4)
        for i, label in [(0, "message"), (2, "mention")]:
            pair = sorted(gateway.notifications[i : i + 2], key=lambda n: n["devices"][0]["pushkey"])
            for n, kind in zip(pair, ("full", "id only"), strict=False):
                side.record(f"{label} ({kind})", 200, n)
                device = n["devices"][0]
                values[f"{label} ({kind})"] = (
                    n["prio"],
                    n["counts"],
                    device.get("tweaks"),
                    device["data"],
                    n.get("room_name"),
                    n.get("sender_display_name"),
                    (n.get("content") or {}).get("body"),
                )
        await side.call(alice, "notifications", "GET", v3 + "/notifications")
        await side.call(alice, "highlights", "GET", v3 + "/notifications?only=highlight")
        await side.call(alice, "notifications page", "GET", v3 + "/notifications?limit=1")

        await alice.post(f"/rooms/{quote(room_id)}/receipt/m.read/{quote(mention)}", {})
        await gateway.wait_for(6)
        for n in sorted(gateway.notifications[4:6], key=lambda n: n["devices"][0]["pushkey"]):
            side.record("badge " + n["devices"][0]["pushkey"], 200, n)
            values["badge " + n["devices"][0]["pushkey"]] = ({k: v for k, v in n.items() if k != "devices"}, n["devices"][0]["data"])
        await side.call(alice, "notifications after reading", "GET", v3 + "/notifications")

        secret = (await bob.post("/createRoom", {"name": "Secret"}))["room_id"]
        await bob.post(f"/rooms/{quote(secret)}/invite", {"user_id": alice.user_id})
        await gateway.wait_for(8)
        for n in sorted(gateway.notifications[6:8], key=lambda n: n["devices"][0]["pushkey"]):
            side.record("invite " + n["devices"][0]["pushkey"], 200, n)
            values["invite " + n["devices"][0]["pushkey"]] = (
                n["prio"], n["counts"], n["devices"][0].get("tweaks"), n.get("room_name"), n.get("membership"), n.get("user_is_target")
            )
        return values

    async def test_pushers_notifications_and_gateway_payloads(self) -> None:
        pair = await server_pair(self, federation={"ip_range_blocklist": []})
        values = {}
        for side in pair:
            gateway = await PushGateway.start(self)
            values[side.label] = await self._scenario(side, gateway)
        pair.assert_same()
        self.assertEqual(values["WSPR"], values["Synapse"])
