"""Push rules API, unread counts in /sync, receipts clearing them, /notifications, /pushers."""

from __future__ import annotations

from urllib.parse import quote

from twisted.trial import unittest

from tests.support.wspr import MatrixClient, MatrixRequestError, PostgresUnavailable, start_homeserver


def counts(sync: dict, room_id: str) -> dict:
    return sync["rooms"]["join"][room_id]["unread_notifications"]


class PushMixin:
    database = "sqlite"

    async def _server(self):
        try:
            return await start_homeserver(self, database=self.database)  # type: ignore[arg-type]
        except PostgresUnavailable as e:
            raise unittest.SkipTest(str(e)) from e

    async def test_rules_api(self) -> None:
        t = self  # type: ignore[assignment]
        server = await self._server()
        alice = await MatrixClient.register(server.base_url, "alice")
        rules = await alice.get("/pushrules/")
        ids = [r["rule_id"] for r in rules["global"]["override"]]
        t.assertEqual(ids[0], ".m.rule.master")
        t.assertIn(".m.rule.is_user_mention", ids)
        t.assertEqual(rules["global"]["content"][0]["pattern"], "alice")
        t.assertIn(".m.rule.message", [r["rule_id"] for r in rules["global"]["underride"]])
        t.assertEqual((await alice.get("/pushrules/global/override/.m.rule.master/enabled")), {"enabled": False})

        # Create, order with before/after, update, read back.
        await alice.put("/pushrules/global/content/cake", {"pattern": "cake", "actions": ["notify"]})
        await alice.request("PUT", "/_matrix/client/v3/pushrules/global/content/pie?before=cake", {"pattern": "pie", "actions": []})
        await alice.request("PUT", "/_matrix/client/v3/pushrules/global/content/tart?after=cake", {"pattern": "tart", "actions": []})
        content = (await alice.get("/pushrules/global/"))["content"]
        t.assertEqual([r["rule_id"] for r in content], ["pie", "cake", "tart", ".m.rule.contains_user_name"])
        rule = await alice.get("/pushrules/global/content/cake")
        t.assertEqual(rule, {"rule_id": "cake", "default": False, "enabled": True, "actions": ["notify"], "pattern": "cake"})
        await alice.put("/pushrules/global/content/cake/enabled", {"enabled": False})
        await alice.put("/pushrules/global/content/cake/actions", {"actions": ["notify", {"set_tweak": "highlight"}]})
        rule = await alice.get("/pushrules/global/content/cake")
        t.assertFalse(rule["enabled"])
        t.assertEqual((await alice.get("/pushrules/global/content/cake/actions"))["actions"], ["notify", {"set_tweak": "highlight"}])
        # Default rules: enable/actions yes, replace/delete no.
        await alice.put("/pushrules/global/override/.m.rule.master/enabled", {"enabled": True})
        t.assertTrue((await alice.get("/pushrules/global/override/.m.rule.master"))["enabled"])
        await alice.put("/pushrules/global/override/.m.rule.master/enabled", {"enabled": False})
        code, body = await alice.raw("PUT", "/_matrix/client/v3/pushrules/global/override/.m.rule.mine", {"actions": []})
        t.assertEqual(code, 400)
        code, _ = await alice.raw("DELETE", "/_matrix/client/v3/pushrules/global/override/.m.rule.master")
        t.assertEqual(code, 404)  # Synapse finds no such (user) rule
        code, body = await alice.raw("PUT", "/_matrix/client/v3/pushrules/global/content/x?before=nope", {"pattern": "x", "actions": []})
        t.assertEqual(code, 400)
        code, body = await alice.raw("PUT", "/_matrix/client/v3/pushrules/global/content/x", {"pattern": "x", "actions": ["boom"]})
        t.assertEqual(code, 400)
        code, body = await alice.raw("PUT", "/_matrix/client/v3/pushrules/global/bogus/x", {"actions": []})
        t.assertEqual(code, 400)
        code, body = await alice.raw("PUT", "/_matrix/client/v3/pushrules/global/content/x", None, data=b"nope")
        t.assertEqual(code, 400)
        # Delete, then 404.
        await alice.request("DELETE", "/_matrix/client/v3/pushrules/global/content/pie")
        for method, path in (("GET", "content/pie"), ("DELETE", "content/pie"), ("GET", "content/pie/enabled"), ("PUT", "content/pie/enabled")):
            code, body = await alice.raw(method, "/_matrix/client/v3/pushrules/global/" + path, {"enabled": True} if method == "PUT" else None)
            t.assertEqual((code, body["errcode"]), (404, "M_NOT_FOUND"), path)
        # Room and sender rules; m.push_rules reaches /sync.
        room = quote("!someroom:localhost")
        await alice.put(f"/pushrules/global/room/{room}", {"actions": []})
        await alice.put(f"/pushrules/global/sender/{quote('@spam:localhost')}", {"actions": []})
        sync = await alice.sync()
        pr = [e for e in sync["account_data"]["events"] if e["type"] == "m.push_rules"]
        t.assertEqual(len(pr), 1)
        t.assertEqual(pr[0]["content"]["global"]["room"][0]["rule_id"], "!someroom:localhost")
        t.assertEqual(pr[0]["content"]["global"]["sender"][0]["rule_id"], "@spam:localhost")

    async def test_unread_counts(self) -> None:
        t = self  # type: ignore[assignment]
        server = await self._server()
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        carol = await MatrixClient.register(server.base_url, "carol")
        await alice.put(f"/profile/{alice.user_id}/displayname", {"displayname": "Alice Liddell"})
        room_id = (await bob.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        await alice.post(f"/join/{room_id}")
        await carol.post(f"/join/{room_id}")
        first = await alice.sync()
        t.assertEqual(counts(first, room_id), {"notification_count": 0, "highlight_count": 0})

        await bob.send_message(room_id, "hello everyone")
        await bob.send_message(room_id, "ping", **{"m.mentions": {"user_ids": [alice.user_id]}})
        await bob.send_message(room_id, "hey Alice Liddell, lunch?")
        last = await bob.send_message(room_id, "a notice", msgtype="m.notice")
        sync = await alice.sync(since=first["next_batch"])
        # The counts arrive with the events themselves.
        t.assertEqual(counts(sync, room_id), {"notification_count": 3, "highlight_count": 2})
        # Carol was only mentioned by display name of someone else: plain messages count.
        t.assertEqual(counts(await carol.sync(), room_id), {"notification_count": 3, "highlight_count": 0})
        # The sender's own messages never count for them.
        t.assertEqual(counts(await bob.sync(), room_id)["notification_count"], 0)

        notifs = await alice.get("/notifications")
        t.assertEqual(len(notifs["notifications"]), 3)
        t.assertFalse(notifs["notifications"][0]["read"])
        t.assertEqual(notifs["notifications"][0]["room_id"], room_id)
        t.assertEqual(len((await alice.get("/notifications?only=highlight"))["notifications"]), 2)
        page = await alice.get("/notifications?limit=2")
        t.assertEqual(len(page["notifications"]), 2)
        rest = await alice.get(f"/notifications?limit=2&from={page['next_token']}")
        t.assertEqual(len(rest["notifications"]), 1)

        # A receipt on the last event clears the counts.
        await alice.post(f"/rooms/{room_id}/receipt/m.read/{quote(last)}", {})
        sync2 = await alice.sync(since=sync["next_batch"])
        t.assertEqual(counts(sync2, room_id), {"notification_count": 0, "highlight_count": 0})
        t.assertTrue((await alice.get("/notifications"))["notifications"][0]["read"])

        # Private receipts count too; a receipt on an older event does not go backwards.
        await bob.send_message(room_id, "more")
        mid = await bob.send_message(room_id, "more still")
        await bob.send_message(room_id, "and more")
        await carol.post(f"/rooms/{room_id}/receipt/m.read.private/{quote(mid)}", {})
        t.assertEqual(counts(await carol.sync(), room_id)["notification_count"], 1)
        await carol.post(f"/rooms/{room_id}/receipt/m.read/{quote(last)}", {})
        t.assertEqual(counts(await carol.sync(), room_id)["notification_count"], 1)

        # Replying resets the replier's counts.
        await carol.send_message(room_id, "ok")
        t.assertEqual(counts(await carol.sync(), room_id)["notification_count"], 0)

        # Disabling .m.rule.message silences plain messages; the master rule silences all.
        await alice.put("/pushrules/global/underride/.m.rule.message/enabled", {"enabled": False})
        base = await alice.sync()
        before = counts(base, room_id)["notification_count"]  # bob's three and carol's "ok"
        t.assertEqual(before, 4)
        await bob.send_message(room_id, "quiet")
        t.assertEqual(counts(await alice.sync(since=base["next_batch"]), room_id)["notification_count"], before)

    async def test_threads_and_dm(self) -> None:
        t = self  # type: ignore[assignment]
        server = await self._server()
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        room_id = (await bob.post("/createRoom", {"invite": [alice.user_id], "is_direct": True}))["room_id"]
        invite_sync = await alice.sync()
        t.assertIn(room_id, invite_sync["rooms"]["invite"])
        notifs = await alice.get("/notifications")
        t.assertEqual(notifs["notifications"][0]["event"]["type"], "m.room.member")
        await alice.post(f"/join/{room_id}")
        root = await bob.send_message(room_id, "root")
        await bob.send_message(room_id, "in thread", **{"m.relates_to": {"rel_type": "m.thread", "event_id": root}})
        in_thread = await bob.send_message(room_id, "in thread 2", **{"m.relates_to": {"rel_type": "m.thread", "event_id": root}})
        # A client without thread support gets the thread's messages in the room count.
        unthreaded = (await alice.sync())["rooms"]["join"][room_id]
        t.assertEqual(unthreaded["unread_notifications"]["notification_count"], 3)
        t.assertNotIn("unread_thread_notifications", unthreaded)
        threaded_filter = {"room": {"timeline": {"unread_thread_notifications": True}}}
        sync = await alice.sync(filter=threaded_filter)
        room = sync["rooms"]["join"][room_id]
        # A 1:1 room: room_one_to_one matches. Main timeline has the root, the thread two.
        t.assertEqual(room["unread_notifications"]["notification_count"], 1)
        t.assertEqual(room["unread_thread_notifications"][root]["notification_count"], 2)
        # A threaded receipt only clears its thread.
        await alice.post(f"/rooms/{room_id}/receipt/m.read/{quote(in_thread)}", {"thread_id": root})
        room = (await alice.sync(filter=threaded_filter))["rooms"]["join"][room_id]
        t.assertEqual(room["unread_notifications"]["notification_count"], 1)
        t.assertNotIn(root, room.get("unread_thread_notifications", {}))
        # Reactions don't notify.
        await bob.put(f"/rooms/{room_id}/send/m.reaction/r1", {"m.relates_to": {"rel_type": "m.annotation", "event_id": root, "key": "👍"}})
        room = (await alice.sync(filter=threaded_filter))["rooms"]["join"][room_id]
        t.assertEqual(room["unread_notifications"]["notification_count"], 1)

    async def test_pushers(self) -> None:
        t = self  # type: ignore[assignment]
        server = await self._server()
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        t.assertEqual(await alice.get("/pushers"), {"pushers": []})
        pusher = {
            "kind": "http",
            "app_id": "com.example.app",
            "pushkey": "token1",
            "app_display_name": "App",
            "device_display_name": "Phone",
            "lang": "en",
            "data": {"url": "https://push.example.com/_matrix/push/v1/notify", "format": "event_id_only"},
        }
        await alice.post("/pushers/set", pusher)
        got = (await alice.get("/pushers"))["pushers"]
        t.assertEqual(len(got), 1)
        t.assertEqual(got[0]["data"]["format"], "event_id_only")
        # The same pushkey registered by bob (append false) takes it from alice.
        await bob.post("/pushers/set", pusher)
        t.assertEqual((await alice.get("/pushers"))["pushers"], [])
        await bob.post("/pushers/set", {"kind": None, "app_id": "com.example.app", "pushkey": "token1"})
        t.assertEqual((await bob.get("/pushers"))["pushers"], [])
        with t.assertRaises(MatrixRequestError) as cm:
            await alice.post("/pushers/set", {**pusher, "data": {}})
        t.assertEqual(cm.exception.code, 400)
        with t.assertRaises(MatrixRequestError) as cm:
            await alice.post("/pushers/set", {"app_id": "x"})
        t.assertEqual(cm.exception.code, 400)


class PushSQLiteTest(PushMixin, unittest.TestCase):
    database = "sqlite"


class PushPostgresTest(PushMixin, unittest.TestCase):
    database = "postgresql"


class PruneMixin:
    database = "sqlite"

    async def test_prune_keeps_unread(self) -> None:
        try:
            server = await start_homeserver(self, database=self.database)  # type: ignore[arg-type]
        except PostgresUnavailable as e:
            raise unittest.SkipTest(str(e)) from e
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        room_id = (await bob.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        await alice.post(f"/join/{room_id}")
        first = await bob.send_message(room_id, "one")
        await alice.post(f"/rooms/{room_id}/receipt/m.read/{quote(first)}", {})
        await bob.send_message(room_id, "two")
        await alice.get("/notifications")  # waits for evaluation
        await server.hs.store.prune_push_actions(2**62)
        notifs = (await alice.get("/notifications"))["notifications"]
        self.assertEqual([n["event"]["content"]["body"] for n in notifs], ["two"])
        self.assertEqual(counts(await alice.sync(), room_id)["notification_count"], 1)


class PruneSQLiteTest(PruneMixin, unittest.TestCase):
    database = "sqlite"


class PrunePostgresTest(PruneMixin, unittest.TestCase):
    database = "postgresql"


class FakeGateway:
    """A push gateway on loopback that records what it is sent."""

    def __init__(self, reject: bool = False) -> None:
        import json as _json

        from twisted.web import resource
        from twisted.web import server as web_server

        self.received: list[dict] = []
        gateway = self

        class Notify(resource.Resource):
            isLeaf = True

            def render_POST(self, request):  # type: ignore[no-untyped-def]
                body = _json.loads(request.content.read())
                gateway.received.append(body)
                rejected = [d["pushkey"] for d in body["notification"]["devices"]] if reject else []
                request.setHeader(b"Content-Type", b"application/json")
                return _json.dumps({"rejected": rejected}).encode()

        from twisted.internet import reactor as _reactor

        self.port = _reactor.listenTCP(0, web_server.Site(Notify()), interface="127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port.getHost().port}/_matrix/push/v1/notify"


class PushGatewayTest(unittest.TestCase):
    async def _setup(self, reject: bool = False, **overrides):
        from twisted.internet import defer as _defer

        gateway = FakeGateway(reject)
        self.addCleanup(lambda: _defer.maybeDeferred(gateway.port.stopListening))
        server = await start_homeserver(self, **overrides)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        room_id = (await bob.post("/createRoom", {"preset": "public_chat", "name": "Tea"}))["room_id"]
        await alice.post(f"/join/{room_id}")
        await alice.post("/pushers/set", {
            "kind": "http", "app_id": "com.example.app", "pushkey": "tok", "app_display_name": "App",
            "device_display_name": "Phone", "lang": "en", "data": {"url": gateway.url, "custom": 1},
        })
        return server, gateway, alice, bob, room_id

    async def _settle(self, server) -> None:
        from twisted.internet import defer as _defer

        gateway = server.hs.pushers
        while gateway.inflight:
            await _defer.DeferredList(list(gateway.inflight))

    async def test_delivers_to_gateway(self) -> None:
        server, gateway, alice, bob, room_id = await self._setup(federation={"ip_range_blocklist": []})
        event_id = await bob.send_message(room_id, "tea?")
        await alice.get("/notifications")
        await self._settle(server)
        self.assertEqual(len(gateway.received), 1)
        n = gateway.received[0]["notification"]
        self.assertEqual((n["event_id"], n["room_id"], n["sender"], n["room_name"]), (event_id, room_id, bob.user_id, "Tea"))
        self.assertEqual(n["content"]["body"], "tea?")
        self.assertEqual(n["counts"]["unread"], 1)
        self.assertEqual(n["devices"][0]["pushkey"], "tok")
        self.assertEqual(n["devices"][0]["data"], {"custom": 1})  # everything but the url

    async def test_blocklisted_gateway_is_not_called(self) -> None:
        server, gateway, alice, bob, room_id = await self._setup()  # default blocklist covers loopback
        await bob.send_message(room_id, "tea?")
        await alice.get("/notifications")
        await self._settle(server)
        self.assertEqual(gateway.received, [])

    async def test_rejected_pushkey_removes_pusher(self) -> None:
        server, gateway, alice, bob, room_id = await self._setup(reject=True, federation={"ip_range_blocklist": []})
        await bob.send_message(room_id, "tea?")
        await alice.get("/notifications")
        await self._settle(server)
        self.assertEqual(len(gateway.received), 1)
        self.assertEqual((await alice.get("/pushers"))["pushers"], [])
