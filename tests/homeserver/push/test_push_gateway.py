"""HTTP pushers end to end: a real push gateway on loopback (tests/support/push_gateway.py)
receives what WSPR sends it, in the push gateway API's format, and answers as scripted.

Covers what Complement's push and account_change_password_pushers tests check, in our own
words: /pushers/set validation, pushers going with the device (logout, password change),
and the deliveries: messages, mentions, invites, event_id_only, the badge after reading,
retries with backoff in order, giving up, a gateway's rejected pushkeys, IPv6 literal URLs.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from twisted.internet import defer, reactor
from twisted.trial import unittest

from tests.support.push_gateway import PushGateway
from tests.support.wspr import MatrixClient, PostgresUnavailable, start_homeserver

# The gateways listen on loopback, which the default blocklist refuses.
OPEN = {"federation": {"ip_range_blocklist": []}}
# Retries a test can wait for: 0.2 s, then 0.4 s, ...
FAST_RETRY = {"min_retry_interval": 0.2, "max_retry_interval": 5}


def pusher_body(url: str, pushkey: str = "tok", **data: Any) -> dict[str, Any]:
    return {
        "kind": "http",
        "app_id": "com.example.app",
        "pushkey": pushkey,
        "app_display_name": "App",
        "device_display_name": "Phone",
        "lang": "en",
        "data": {"url": url, **data},
    }


async def eventually(check: Any, timeout: float = 10.0) -> Any:
    """Polls ``await check()`` until it is truthy (what the server does after answering
    the gateway is not visible to the gateway)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        d: defer.Deferred[None] = defer.Deferred()
        reactor.callLater(0.05, d.callback, None)  # type: ignore[attr-defined]
        await d


def password_change(new: str, old: str, user_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "new_password": new,
        "auth": {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user_id}, "password": old},
        **extra,
    }


async def _equals(value: Any, expected: Any) -> bool:
    return (await value) == expected


class GatewayMixin:
    database = "sqlite"
    timeout = 120

    async def _server(self, **overrides: Any) -> Any:
        t: Any = self
        try:
            return await start_homeserver(t, database=self.database, **{**OPEN, **overrides})
        except PostgresUnavailable as e:
            raise unittest.SkipTest(str(e)) from e

    async def _room(self, server: Any, *, members: int = 3) -> tuple[MatrixClient, MatrixClient, str]:
        """alice (with a pusher set up by the caller), bob who sends, a named room of
        ``members`` members (3: not a one-to-one room, whose rule would make every
        message ring)."""
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        await bob.put(f"/profile/{quote(bob.user_id)}/displayname", {"displayname": "Bob"})
        room_id = (await bob.post("/createRoom", {"preset": "public_chat", "name": "Tea"}))["room_id"]
        await alice.post(f"/join/{quote(room_id)}")
        for i in range(members - 2):
            other = await MatrixClient.register(server.base_url, f"other{i}")
            await other.post(f"/join/{quote(room_id)}")
        return alice, bob, room_id

    # -- deliveries ---------------------------------------------------------------------

    async def test_message_mention_and_notifications(self) -> None:
        t: Any = self
        server = await self._server()
        gateway = await PushGateway.start(t)
        alice, bob, room_id = await self._room(server)
        registered = int(time.time())
        await alice.post("/pushers/set", pusher_body(gateway.url, custom=1))

        event_id = await bob.send_message(room_id, "tea?")
        [n] = await gateway.wait_for(1)
        t.assertEqual(
            {k: v for k, v in n.items() if k != "devices"},
            {
                "id": event_id,
                "event_id": event_id,
                "room_id": room_id,
                "type": "m.room.message",
                "sender": bob.user_id,
                "sender_display_name": "Bob",
                "room_name": "Tea",
                # A plain message in a group neither rings nor highlights.
                "prio": "low",
                "content": {"msgtype": "m.text", "body": "tea?"},
                "counts": {"unread": 1},
            },
        )
        [device] = n["devices"]
        t.assertEqual(device["app_id"], "com.example.app")
        t.assertEqual(device["pushkey"], "tok")
        t.assertLessEqual(abs(device["pushkey_ts"] - registered), 5)
        t.assertEqual(device["data"], {"custom": 1})  # everything but the url
        t.assertEqual(device["tweaks"], {"highlight": False})  # .m.rule.message, as Synapse's

        mention = await bob.send_message(room_id, "alice!", **{"m.mentions": {"user_ids": [alice.user_id]}})
        notifications = await gateway.wait_for(2)
        n = notifications[1]
        t.assertEqual((n["event_id"], n["prio"]), (mention, "high"))
        t.assertEqual(n["devices"][0]["tweaks"], {"highlight": True, "sound": "default"})
        # One room with unread notifications: the badge counts rooms (Synapse's default).
        t.assertEqual(n["counts"], {"unread": 1})

        # /notifications lists what was pushed, newest first.
        listed = await alice.get("/notifications")
        t.assertEqual([x["event"]["event_id"] for x in listed["notifications"]], [mention, event_id])
        t.assertEqual([x["read"] for x in listed["notifications"]], [False, False])
        highlights = await alice.get("/notifications?only=highlight")
        t.assertEqual([x["event"]["event_id"] for x in highlights["notifications"]], [mention])
        page = await alice.get("/notifications?limit=1")
        rest = await alice.get(f"/notifications?from={page['next_token']}")
        t.assertEqual([x["event"]["event_id"] for x in rest["notifications"]], [event_id])

        # Reading sends the badge down: an empty notification with the counts only.
        await alice.post(f"/rooms/{quote(room_id)}/receipt/m.read/{quote(mention)}", {})
        await gateway.wait_for(3)
        badge = gateway.notifications[2]
        t.assertEqual({k: v for k, v in badge.items() if k != "devices"}, {"id": "", "type": None, "sender": "", "counts": {"unread": 0}})
        t.assertEqual(badge["devices"][0]["data"], {"custom": 1})
        t.assertNotIn("tweaks", badge["devices"][0])
        t.assertTrue(all(x["read"] for x in (await alice.get("/notifications"))["notifications"]))
        # The same receipt again changes no count: no second badge.
        await alice.post(f"/rooms/{quote(room_id)}/receipt/m.read/{quote(mention)}", {})
        await gateway.quiet()
        t.assertEqual(len(gateway.received), 3)
        # Bob's own messages are never pushed to bob (he has no pusher), nor alice's to her.
        await alice.send_message(room_id, "coming")
        await gateway.quiet()
        t.assertEqual(len(gateway.received), 3)

    async def test_invite_and_event_id_only(self) -> None:
        t: Any = self
        server = await self._server()
        gateway = await PushGateway.start(t)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        await alice.post("/pushers/set", pusher_body(gateway.url))
        await alice.post("/pushers/set", pusher_body(gateway.url, pushkey="tok2", format="event_id_only"))
        room_id = (await bob.post("/createRoom", {"name": "Secret"}))["room_id"]
        await bob.post(f"/rooms/{quote(room_id)}/invite", {"user_id": alice.user_id})
        notifications = await gateway.wait_for(2)
        by_key = {n["devices"][0]["pushkey"]: n for n in notifications}
        full, short = by_key["tok"], by_key["tok2"]
        t.assertEqual(full["type"], "m.room.member")
        t.assertEqual((full["membership"], full["user_is_target"]), ("invite", True))
        t.assertEqual((full["room_name"], full["sender"], full["prio"]), ("Secret", bob.user_id, "high"))
        t.assertEqual(full["content"]["membership"], "invite")
        # The invite counts in the badge.
        t.assertEqual(full["counts"], {"unread": 1})
        t.assertEqual(full["devices"][0]["tweaks"], {"highlight": False, "sound": "default"})
        # event_id_only: ids, priority and counts; no content, no tweaks; data keeps format.
        t.assertEqual(
            {k: v for k, v in short.items() if k != "devices"},
            {"event_id": full["event_id"], "room_id": room_id, "prio": "high", "counts": {"unread": 1}},
        )
        t.assertEqual(short["devices"][0]["data"], {"format": "event_id_only"})
        t.assertNotIn("tweaks", short["devices"][0])

    async def test_retries_with_backoff_in_order(self) -> None:
        t: Any = self
        server = await self._server(push=FAST_RETRY)
        gateway = await PushGateway.start(t)
        alice, bob, room_id = await self._room(server)
        await alice.post("/pushers/set", pusher_body(gateway.url))
        gateway.script = [500, 500]
        first = await bob.send_message(room_id, "one")
        second = await bob.send_message(room_id, "two")
        notifications = await gateway.wait_for(4)
        # The first is tried until the gateway takes it; the second waits its turn.
        t.assertEqual([n["event_id"] for n in notifications], [first, first, first, second])
        t.assertEqual([r.status for r in gateway.received], [500, 500, 200, 200])
        gaps = [b.at - a.at for a, b in zip(gateway.received, gateway.received[1:3], strict=False)]
        t.assertGreaterEqual(gaps[0], 0.18)
        t.assertGreaterEqual(gaps[1], 0.36)  # doubled
        await gateway.quiet()
        t.assertEqual(len(gateway.received), 4)
        # After a success the delay starts from the beginning again.
        gateway.script = [503]
        third = await bob.send_message(room_id, "three")
        await gateway.wait_for(6)
        t.assertEqual([n["event_id"] for n in gateway.notifications[4:]], [third, third])
        t.assertLess(gateway.received[5].at - gateway.received[4].at, 0.36)

    async def test_gives_up_on_a_notification(self) -> None:
        t: Any = self
        server = await self._server(push={**FAST_RETRY, "give_up_after": 0.5})
        gateway = await PushGateway.start(t)
        alice, bob, room_id = await self._room(server)
        await alice.post("/pushers/set", pusher_body(gateway.url))
        doomed = await bob.send_message(room_id, "doomed")
        gateway.decide = lambda body: 500 if body["notification"]["event_id"] == doomed else None
        after = await bob.send_message(room_id, "after")
        # 0 s, 0.2 s, 0.6 s (failing for longer than 0.5 s: dropped), then the next one.
        notifications = await gateway.wait_for(4)
        t.assertEqual([n["event_id"] for n in notifications], [doomed, doomed, doomed, after])
        await gateway.quiet()
        t.assertEqual(len(gateway.received), 4)

    async def test_rejected_pushkey_removes_the_pusher(self) -> None:
        t: Any = self
        server = await self._server()
        gateway = await PushGateway.start(t)
        alice, bob, room_id = await self._room(server)
        await alice.post("/pushers/set", pusher_body(gateway.url, pushkey="gone"))
        await alice.post("/pushers/set", pusher_body(gateway.url, pushkey="kept"))
        gateway.reject = {"gone"}
        await bob.send_message(room_id, "one")
        await gateway.wait_for(2)

        async def pushkeys() -> list[str]:
            return [p["pushkey"] for p in (await alice.get("/pushers"))["pushers"]]

        await eventually(lambda: _equals(pushkeys(), ["kept"]))
        t.assertEqual(await pushkeys(), ["kept"])
        await bob.send_message(room_id, "two")
        await gateway.wait_for(3)
        await gateway.quiet()
        t.assertEqual([n["devices"][0]["pushkey"] for n in gateway.notifications[2:]], ["kept"])

    async def test_ipv6_literal_gateway(self) -> None:
        t: Any = self
        server = await self._server()
        try:
            gateway = await PushGateway.start(t, host="::1")
        except Exception as e:
            raise unittest.SkipTest(f"no IPv6 loopback here: {e}") from e
        alice, bob, room_id = await self._room(server)
        await alice.post("/pushers/set", pusher_body(gateway.url))
        event_id = await bob.send_message(room_id, "over v6")
        [n] = await gateway.wait_for(1)
        t.assertEqual(n["event_id"], event_id)

    async def test_blocked_addresses_are_not_called(self) -> None:
        t: Any = self
        server = await self._server(federation={})  # the default blocklist: loopback is refused
        gateway = await PushGateway.start(t)
        alice, bob, room_id = await self._room(server)
        await alice.post("/pushers/set", pusher_body(gateway.url))
        await alice.post("/pushers/set", pusher_body(gateway.url.replace("127.0.0.1", "[::ffff:127.0.0.1]"), pushkey="mapped"))
        await alice.post("/pushers/set", pusher_body(gateway.url.replace("127.0.0.1", "localhost"), pushkey="named"))
        await bob.send_message(room_id, "hello")
        await alice.get("/notifications")
        await gateway.quiet(1.0)
        t.assertEqual(gateway.received, [])

    async def test_pending_notifications_survive_a_restart(self) -> None:
        t: Any = self
        from homeserver.app import HomeServer
        from homeserver.config import load_config

        server = await self._server(push=FAST_RETRY)
        gateway = await PushGateway.start(t)
        alice, bob, room_id = await self._room(server)
        await alice.post("/pushers/set", pusher_body(gateway.url))
        gateway.script = [500] * 1000
        event_id = await bob.send_message(room_id, "while down")
        await gateway.wait_for(1)
        await server.hs.stop()
        gateway.script = []
        hs = HomeServer(load_config(server.config_path))
        await hs.start()
        t.addCleanup(lambda: defer.ensureDeferred(hs.stop()))
        notifications = await gateway.wait_for(2)
        t.assertEqual(notifications[-1]["event_id"], event_id)

    # -- which pushers exist ----------------------------------------------------------------

    async def test_set_pusher_validation(self) -> None:
        t: Any = self
        server = await self._server()
        alice = await MatrixClient.register(server.base_url, "alice")
        good = pusher_body("https://push.example.com/_matrix/push/v1/notify")
        for name, body, errcode in [
            ("no data", {k: v for k, v in good.items() if k != "data"}, "M_MISSING_PARAM"),
            ("no lang", {k: v for k, v in good.items() if k != "lang"}, "M_MISSING_PARAM"),
            ("no url", {**good, "data": {}}, "M_MISSING_PARAM"),
            ("url not a string", {**good, "data": {"url": 5}}, "M_MISSING_PARAM"),
            ("wrong path", {**good, "data": {"url": "https://push.example.com/notify"}}, "M_MISSING_PARAM"),
            ("relative url", {**good, "data": {"url": "/_matrix/push/v1/notify"}}, "M_MISSING_PARAM"),
            ("null data", {**good, "data": None}, "M_MISSING_PARAM"),
        ]:
            code, answer = await alice.raw("POST", "/_matrix/client/v3/pushers/set", body)
            t.assertEqual((code, answer.get("errcode")), (400, errcode), name)
        t.assertEqual(await alice.get("/pushers"), {"pushers": []})
        await alice.post("/pushers/set", {**good, "profile_tag": "tag"})
        [listed] = (await alice.get("/pushers"))["pushers"]
        t.assertEqual(
            listed,
            {
                "app_display_name": "App",
                "app_id": "com.example.app",
                "data": {"url": "https://push.example.com/_matrix/push/v1/notify"},
                "device_display_name": "Phone",
                "kind": "http",
                "lang": "en",
                "profile_tag": "tag",
                "pushkey": "tok",
            },
        )
        # append: true lets another user keep the same pushkey too; false takes it.
        bob = await MatrixClient.register(server.base_url, "bob")
        await bob.post("/pushers/set", {**good, "append": True})
        t.assertEqual(len((await alice.get("/pushers"))["pushers"]), 1)
        await bob.post("/pushers/set", good)
        t.assertEqual((await alice.get("/pushers"))["pushers"], [])
        # kind null deletes (an unknown pusher too, silently).
        await bob.post("/pushers/set", {"app_id": "com.example.app", "pushkey": "tok", "kind": None})
        await bob.post("/pushers/set", {"app_id": "com.example.app", "pushkey": "nope", "kind": None})
        t.assertEqual((await bob.get("/pushers"))["pushers"], [])

    async def test_pushers_go_with_their_device(self) -> None:
        """Complement's TestChangePasswordPushers, and logout."""
        t: Any = self
        server = await self._server()
        main = await MatrixClient.register(server.base_url, "alice", "first")
        other = await MatrixClient.login(server.base_url, main.user_id, "first")
        url = "https://push.example.com/_matrix/push/v1/notify"
        await other.post("/pushers/set", {**pusher_body(url), "profile_tag": "tag"})
        # A password change signs the other sessions out, and their pushers go with them.
        await main.post("/account/password", password_change("second", "first", main.user_id))
        t.assertEqual((await main.get("/pushers"))["pushers"], [])
        # A pusher of the session that changes the password stays.
        await main.post("/pushers/set", pusher_body(url))
        await main.post("/account/password", password_change("first", "second", main.user_id))
        t.assertEqual(len((await main.get("/pushers"))["pushers"]), 1)
        # logout_devices: false keeps the other sessions and their pushers.
        third = await MatrixClient.login(server.base_url, main.user_id, "first")
        await third.post("/pushers/set", pusher_body(url, pushkey="third"))
        await main.post("/account/password", password_change("second", "first", main.user_id, logout_devices=False))
        t.assertEqual(len((await main.get("/pushers"))["pushers"]), 2)
        # Logging out removes the device's pusher.
        await third.post("/logout", {})
        t.assertEqual([p["pushkey"] for p in (await main.get("/pushers"))["pushers"]], ["tok"])

    async def test_push_rule_changes_wake_sync(self) -> None:
        """Complement's TestPushSync and TestPushRuleCacheHealth."""
        t: Any = self
        server = await self._server()
        alice = await MatrixClient.register(server.base_url, "alice")
        first = await alice.sync()
        rules = [e for e in first["account_data"]["events"] if e["type"] == "m.push_rules"]
        t.assertIn("global", rules[0]["content"])
        since = first["next_batch"]
        for method, path, body in [
            ("PUT", "room/%21foo%3Aexample.com", {"actions": ["notify"]}),
            ("PUT", "room/%21foo%3Aexample.com/enabled", {"enabled": False}),
            ("PUT", "room/%21foo%3Aexample.com/enabled", {"enabled": True}),
            ("PUT", "room/%21foo%3Aexample.com/actions", {"actions": ["dont_notify"]}),
        ]:
            waiting = defer.ensureDeferred(alice.sync(since=since, timeout=10_000))
            await alice.request(method, f"/_matrix/client/v3/pushrules/global/{path}", body)
            synced = await waiting
            t.assertIn("m.push_rules", [e["type"] for e in synced["account_data"]["events"]], path)
            since = synced["next_batch"]
        await alice.put(f"/pushrules/global/sender/{quote(alice.user_id)}", {"actions": ["dont_notify"]})
        for _ in range(2):
            got = await alice.get("/pushrules/")
            t.assertEqual(got["global"]["sender"][0]["actions"], ["dont_notify"])


class GatewaySQLiteTest(GatewayMixin, unittest.TestCase):
    database = "sqlite"


class GatewayPostgresTest(GatewayMixin, unittest.TestCase):
    database = "postgresql"
