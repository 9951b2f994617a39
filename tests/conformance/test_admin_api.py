"""The admin API answered as Synapse answers it: the same requests to WSPR and to a real
Synapse (tests/support/differential.py), each with an admin made through shared-secret
registration, compared step by step (status, errcode, the shape of the body)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from tests.support.differential import ServerPair, Side, server_pair, shared_synapse
from tests.support.synapse import register_with_shared_secret
from tests.support.wspr import MatrixClient

SECRET = "admin-conformance-secret"
V1 = "/_synapse/admin/v1"
V2 = "/_synapse/admin/v2"
V3 = "/_synapse/admin/v3"


def q(value: str) -> str:
    return quote(value, safe="")


async def make_admin(pair: ServerPair, side: Side) -> MatrixClient:
    secret = SECRET if side is pair.wspr else (await shared_synapse()).registration_shared_secret
    body: dict[str, Any] = await deferToThread(
        register_with_shared_secret, side.base_url, secret, side.localpart("admin"), "correct horse", True
    )
    return MatrixClient(side.base_url, body["access_token"], body["user_id"], body["device_id"])


async def settle(root: MatrixClient, delete_id: str) -> dict[str, Any]:
    for _ in range(300):
        code, status = await root.raw("GET", f"{V2}/rooms/delete_status/{q(delete_id)}")
        if code == 200 and status["status"] in ("complete", "failed"):
            return status
        await deferLater(reactor, 0.1, lambda: None)
    raise AssertionError("the deletion did not finish")


class AdminApiConformanceTest(unittest.TestCase):
    timeout = 300

    async def test_users(self) -> None:
        pair = await server_pair(self, registration_shared_secret=SECRET)
        for side in pair:
            root = await make_admin(pair, side)
            alice = await side.register("alice")
            await alice.raw("GET", "/_matrix/client/v3/account/whoami", headers={"User-Agent": "conformance/1"})
            sn = side.server_name
            erin = f"@{side.localpart('erin')}:{sn}"
            await side.call(alice, "not an admin", "GET", f"{V2}/users")
            await side.call(side.anonymous(), "no token", "GET", f"{V2}/users")
            await side.call(root, "list", "GET", f"{V2}/users?limit=2&name={q(side.localpart('alice'))}")
            await side.call(root, "list v3", "GET", f"{V3}/users?limit=2&deactivated=false&user_id={q(side.localpart('alice'))}")
            await side.call(root, "list ordered", "GET", f"{V2}/users?limit=1&order_by=creation_ts&dir=b")
            await side.call(root, "list bad order", "GET", f"{V2}/users?order_by=colour")
            await side.call(root, "list bad dir", "GET", f"{V2}/users?dir=sideways")
            await side.call(root, "list negative from", "GET", f"{V2}/users?from=-1")
            await side.call(root, "query", "GET", f"{V2}/users/{q(alice.user_id)}")
            await side.call(root, "query unknown", "GET", f"{V2}/users/{q(f'@ghost:{sn}')}")
            await side.call(root, "query remote", "GET", f"{V2}/users/{q('@someone:example.org')}")
            await side.call(root, "query not an id", "GET", f"{V2}/users/nobody")
            await side.call(
                root, "create", "PUT", f"{V2}/users/{q(erin)}",
                {"password": "erin-pw", "displayname": "Erin", "threepids": [{"medium": "email", "address": f"{side.localpart('erin')}@example.org"}],
                 "admin": False, "user_type": "bot"},
            )
            await side.call(root, "user by threepid", "GET", f"{V1}/threepid/email/users/{q(side.localpart('erin') + '@example.org')}")
            await side.call(root, "user by unknown threepid", "GET", f"{V1}/threepid/email/users/nobody%40example.org")
            await side.call(root, "modify", "PUT", f"{V2}/users/{q(erin)}", {"displayname": "Erin R.", "user_type": None, "threepids": []})
            await side.call(root, "modify bad admin", "PUT", f"{V2}/users/{q(erin)}", {"admin": "yes"})
            await side.call(root, "modify bad password", "PUT", f"{V2}/users/{q(erin)}", {"password": 12})
            await side.call(root, "modify bad deactivated", "PUT", f"{V2}/users/{q(erin)}", {"deactivated": "no"})
            await side.call(root, "modify bad user type", "PUT", f"{V2}/users/{q(erin)}", {"user_type": "wizard"})
            await side.call(root, "modify threepid without address", "PUT", f"{V2}/users/{q(erin)}", {"threepids": [{"medium": "email"}]})
            await side.call(root, "modify remote", "PUT", f"{V2}/users/{q('@someone:example.org')}", {})
            await side.call(root, "demote self", "PUT", f"{V2}/users/{q(root.user_id)}", {"admin": False})
            await side.call(root, "admin flag", "GET", f"{V1}/users/{q(erin)}/admin")
            await side.call(root, "set admin flag", "PUT", f"{V1}/users/{q(erin)}/admin", {"admin": True})
            await side.call(root, "set admin flag without it", "PUT", f"{V1}/users/{q(erin)}/admin", {})
            await side.call(root, "admin flag of a remote user", "GET", f"{V1}/users/{q('@someone:example.org')}/admin")
            await side.call(root, "reset password", "POST", f"{V1}/reset_password/{q(alice.user_id)}", {"new_password": "pw2", "logout_devices": False})
            await side.call(root, "reset password without one", "POST", f"{V1}/reset_password/{q(alice.user_id)}", {})
            await side.call(root, "joined rooms", "GET", f"{V1}/users/{q(alice.user_id)}/joined_rooms")
            base = f"{V2}/users/{q(alice.user_id)}/devices"
            await side.call(root, "devices", "GET", base)
            await side.call(root, "device", "GET", f"{base}/{q(alice.device_id)}")
            await side.call(root, "unknown device", "GET", f"{base}/NOPE")
            await side.call(root, "rename device", "PUT", f"{base}/{q(alice.device_id)}", {"display_name": "Laptop"})
            await side.call(root, "create device", "POST", base, {"device_id": "BRIDGE"})
            await side.call(root, "create device without id", "POST", base, {})
            await side.call(root, "delete device", "DELETE", f"{base}/BRIDGE")
            await side.call(root, "delete devices", "POST", f"{V2}/users/{q(alice.user_id)}/delete_devices", {"devices": ["NONE"]})
            await side.call(root, "delete devices without list", "POST", f"{V2}/users/{q(alice.user_id)}/delete_devices", {})
            await side.call(root, "devices of nobody", "GET", f"{V2}/users/{q(f'@ghost:{sn}')}/devices")
            await side.call(root, "login as", "POST", f"{V1}/users/{q(alice.user_id)}/login", {})
            await side.call(root, "login as self", "POST", f"{V1}/users/{q(root.user_id)}/login", {})
            await side.call(root, "login as with bad expiry", "POST", f"{V1}/users/{q(alice.user_id)}/login", {"valid_until_ms": "x"})
            await side.call(root, "login as nobody", "POST", f"{V1}/users/{q(f'@ghost:{sn}')}/login", {})
            await side.call(root, "deactivate", "POST", f"{V1}/deactivate/{q(erin)}", {"erase": True})
            await side.call(root, "deactivated user", "GET", f"{V2}/users/{q(erin)}")
            await side.call(root, "deactivate bad erase", "POST", f"{V1}/deactivate/{q(alice.user_id)}", {"erase": "yes"})
            await side.call(root, "deactivate nobody", "POST", f"{V1}/deactivate/{q(f'@ghost:{sn}')}", {})
            await side.call(root, "reactivate", "PUT", f"{V2}/users/{q(erin)}", {"deactivated": False, "password": "back"})
            await side.call(root, "server version", "GET", f"{V1}/server_version")
        # Synapse writes where users were seen every few seconds, and a device's
        # last_seen only from there: right after a request it still says null, where
        # WSPR already has the time (both are integers once Synapse has written).
        pair.assert_same("users*.last_seen_ts", "last_seen_ts")

    async def test_rooms(self) -> None:
        pair = await server_pair(self, registration_shared_secret=SECRET)
        for side in pair:
            root = await make_admin(pair, side)
            alice = await side.register("alice")
            bob = await side.register("bob")
            name = side.localpart("Conformance room")
            room_id = (await alice.post("/createRoom", {"preset": "public_chat", "name": name, "topic": "t",
                                                         "room_alias_name": side.localpart("conf")}))["room_id"]
            await bob.post(f"/rooms/{q(room_id)}/join")
            await alice.send_message(room_id, "hello")
            await side.call(alice, "not an admin", "GET", f"{V1}/rooms")
            await side.call(root, "search", "GET", f"{V1}/rooms?search_term={q(name)}")
            await side.call(root, "search by id", "GET", f"{V1}/rooms?search_term={q(room_id)}")
            await side.call(root, "page", "GET", f"{V1}/rooms?limit=1&from=1&order_by=joined_members")
            await side.call(root, "empty search term", "GET", f"{V1}/rooms?search_term=")
            await side.call(root, "bad order", "GET", f"{V1}/rooms?order_by=colour")
            await side.call(root, "details", "GET", f"{V1}/rooms/{q(room_id)}")
            await side.call(root, "details of nothing", "GET", f"{V1}/rooms/{q('!nothing:' + side.server_name)}")
            await side.call(root, "members", "GET", f"{V1}/rooms/{q(room_id)}/members")
            await side.call(root, "state", "GET", f"{V1}/rooms/{q(room_id)}/state?type=m.room.topic")
            await side.call(root, "messages", "GET", f"{V1}/rooms/{q(room_id)}/messages?limit=1")
            await side.call(root, "messages backwards", "GET", f"{V1}/rooms/{q(room_id)}/messages?limit=1&dir=b")
            await side.call(root, "block status", "GET", f"{V1}/rooms/{q(room_id)}/block")
            await side.call(root, "block", "PUT", f"{V1}/rooms/{q(room_id)}/block", {"block": True})
            await side.call(root, "blocked status", "GET", f"{V1}/rooms/{q(room_id)}/block")
            carol = await side.register("carol")
            await side.call(carol, "join a blocked room", "POST", f"/_matrix/client/v3/join/{q(room_id)}", {})
            await side.call(root, "block without flag", "PUT", f"{V1}/rooms/{q(room_id)}/block", {})
            await side.call(root, "block not a boolean", "PUT", f"{V1}/rooms/{q(room_id)}/block", {"block": "yes"})
            await side.call(root, "block not a room", "GET", f"{V1}/rooms/nothing/block")
            await side.call(root, "unblock", "PUT", f"{V1}/rooms/{q(room_id)}/block", {"block": False})
            await side.call(root, "delete without body", "DELETE", f"{V1}/rooms/{q(room_id)}")
            await side.call(root, "delete bad purge", "DELETE", f"{V1}/rooms/{q(room_id)}", {"purge": "x"})
            await side.call(root, "delete, new room", "DELETE", f"{V1}/rooms/{q(room_id)}",
                            {"new_room_user_id": root.user_id, "message": "closed", "block": True})
            await side.call(root, "deleted room details", "GET", f"{V1}/rooms/{q(room_id)}")
            other = (await alice.post("/createRoom", {"name": side.localpart("Second")}))["room_id"]
            code, started = await side.call(root, "delete v2", "DELETE", f"{V2}/rooms/{q(other)}", {})
            side.record("delete v2 finished", 200, await settle(root, started["delete_id"]))
            await side.call(root, "delete status by room", "GET", f"{V2}/rooms/{q(other)}/delete_status")
            await side.call(root, "delete status unknown", "GET", f"{V2}/rooms/delete_status/nope")
            await side.call(root, "delete status of a room never deleted", "GET", f"{V2}/rooms/{q('!never:' + side.server_name)}/delete_status")
        # Not the admin API's: WSPR's createRoom sets guest_access "forbidden" for the
        # public_chat preset (Synapse sets none) and writes m.topic as a list (Synapse
        # and the spec: an object with m.text).
        # The shared Synapse holds other tests' rooms too, so whether a page has a next
        # one depends on what ran before.
        pair.assert_same("rooms*.guest_access", "guest_access", "state*.content.m.topic", "next_batch", "prev_batch")

    async def test_media_reports_tokens(self) -> None:
        pair = await server_pair(self, registration_shared_secret=SECRET)
        for side in pair:
            root = await make_admin(pair, side)
            alice = await side.register("alice")
            bob = await side.register("bob")
            upload = await alice.request(
                "POST", "/_matrix/media/v3/upload?filename=a.txt", data=b"some text", headers={"Content-Type": "text/plain"}
            )
            media_id = upload["content_uri"].rsplit("/", 1)[1]
            sn = side.server_name
            await side.call(root, "user media", "GET", f"{V1}/users/{q(alice.user_id)}/media")
            await side.call(root, "user media ordered", "GET", f"{V1}/users/{q(alice.user_id)}/media?order_by=media_length&dir=f")
            await side.call(root, "user media of nobody", "GET", f"{V1}/users/{q(f'@ghost:{sn}')}/media")
            await side.call(root, "media info", "GET", f"{V1}/media/{sn}/{media_id}")
            await side.call(root, "quarantine", "POST", f"{V1}/media/quarantine/{sn}/{media_id}", {})
            await side.call(alice, "download quarantined", "GET", f"/_matrix/client/v1/media/download/{sn}/{media_id}")
            await side.call(root, "unquarantine", "POST", f"{V1}/media/unquarantine/{sn}/{media_id}", {})
            await side.call(root, "protect", "POST", f"{V1}/media/protect/{media_id}", {})
            await side.call(root, "quarantine user media", "POST", f"{V1}/user/{q(alice.user_id)}/media/quarantine", {})
            await side.call(root, "unprotect", "POST", f"{V1}/media/unprotect/{media_id}", {})
            room_id = (await alice.post("/createRoom", {"preset": "public_chat", "name": side.localpart("Reports")}))["room_id"]
            await bob.post(f"/rooms/{q(room_id)}/join")
            await alice.put(f"/rooms/{q(room_id)}/send/m.room.message/m1", {"msgtype": "m.file", "body": "f", "url": upload["content_uri"]})
            await side.call(root, "room media", "GET", f"{V1}/room/{q(room_id)}/media")
            await side.call(root, "quarantine room media", "POST", f"{V1}/room/{q(room_id)}/media/quarantine", {})
            await side.call(root, "delete media", "DELETE", f"{V1}/media/{sn}/{media_id}")
            await side.call(root, "delete media again", "DELETE", f"{V1}/media/{sn}/{media_id}")
            await side.call(root, "delete remote media", "DELETE", f"{V1}/media/example.org/abc")
            await side.call(root, "delete by date in seconds", "POST", f"{V1}/media/delete?before_ts=1000")
            future = int(time.time() * 1000) + 60_000
            await side.call(root, "delete by date", "POST", f"{V1}/media/delete?before_ts={future}&size_gt=1000000")

            bad = await alice.send_message(room_id, "spam")
            await bob.post(f"/rooms/{q(room_id)}/report/{q(bad)}", {"reason": "spam", "score": -100})
            code, listing = await side.call(root, "reports of the room", "GET", f"{V1}/event_reports?room_id={q(room_id)}")
            report_id = listing["event_reports"][0]["id"]
            await side.call(root, "reports oldest first", "GET", f"{V1}/event_reports?dir=f&limit=1&room_id={q(room_id)}")
            await side.call(root, "report", "GET", f"{V1}/event_reports/{report_id}")
            await side.call(root, "report not a number", "GET", f"{V1}/event_reports/abc")
            await side.call(root, "delete report", "DELETE", f"{V1}/event_reports/{report_id}")
            await side.call(root, "deleted report", "GET", f"{V1}/event_reports/{report_id}")

            token = side.localpart("tok")
            await side.call(root, "new token", "POST", f"{V1}/registration_tokens/new", {"token": token, "uses_allowed": 3})
            await side.call(root, "new generated token", "POST", f"{V1}/registration_tokens/new", {"length": 12})
            await side.call(root, "token exists", "POST", f"{V1}/registration_tokens/new", {"token": token})
            await side.call(root, "token bad characters", "POST", f"{V1}/registration_tokens/new", {"token": "a b"})
            await side.call(root, "token in the past", "POST", f"{V1}/registration_tokens/new", {"expiry_time": 1000})
            await side.call(root, "token", "GET", f"{V1}/registration_tokens/{token}")
            await side.call(root, "update token", "PUT", f"{V1}/registration_tokens/{token}", {"uses_allowed": None, "expiry_time": future})
            await side.call(root, "update token badly", "PUT", f"{V1}/registration_tokens/{token}", {"uses_allowed": -2})
            await side.call(root, "valid tokens", "GET", f"{V1}/registration_tokens?valid=true")
            await side.call(root, "delete token", "DELETE", f"{V1}/registration_tokens/{token}")
            await side.call(root, "deleted token", "GET", f"{V1}/registration_tokens/{token}")
            await side.call(root, "server notice, notices off", "POST", f"{V1}/send_server_notice",
                            {"user_id": alice.user_id, "content": {"msgtype": "m.text", "body": "hi"}})
        pair.assert_same(
            # Synapse on SQLite hands out the database's 0/1 for these flags; the API
            # documents booleans, which WSPR gives (and Synapse on PostgreSQL).
            "media*.authenticated", "media_info.authenticated", "media_info.safe_from_quarantine",
            # signed by each server under its own name; Synapse stores its unsigned too
            "event_json.signatures.*", "event_json.unsigned",
            # the shared Synapse holds other tests' tokens, listed in another order
            "registration_tokens*",
        )


NOTICES = {
    "system_mxid_localpart": "notices",
    "system_mxid_display_name": "Server Notices",
    "room_name": "Server Notices",
    "auto_join": False,
}


class ServerNoticesConformanceTest(unittest.TestCase):
    """With server notices configured the same on both (a Synapse of its own)."""

    timeout = 300

    async def test_server_notices(self) -> None:
        from tests.support.synapse import start_synapse_peer
        from tests.support.wspr import start_homeserver

        syn = await start_synapse_peer(self, log_level="WARNING", extra_config={"server_notices": NOTICES})
        hs = await start_homeserver(self, registration_shared_secret=SECRET, server_notices=NOTICES)
        pair = ServerPair(Side("WSPR", hs.base_url, hs.server_name), Side("Synapse", syn.client_url, syn.server_name))
        for side, secret in ((pair.wspr, SECRET), (pair.synapse, syn.registration_shared_secret)):
            body: dict[str, Any] = await deferToThread(
                register_with_shared_secret, side.base_url, secret, side.localpart("admin"), "correct horse", True
            )
            root = MatrixClient(side.base_url, body["access_token"], body["user_id"], body["device_id"])
            alice = await side.register("alice")
            notice = {"user_id": alice.user_id, "content": {"msgtype": "m.text", "body": "Maintenance at noon"}}
            await side.call(root, "send", "POST", f"{V1}/send_server_notice", notice)
            await side.call(root, "send again", "POST", f"{V1}/send_server_notice", notice)
            await side.call(root, "send with a transaction id", "PUT", f"{V1}/send_server_notice/t1", notice)
            await side.call(root, "the same transaction again", "PUT", f"{V1}/send_server_notice/t1", notice)
            await side.call(root, "a state event", "POST", f"{V1}/send_server_notice",
                            {**notice, "type": "m.room.topic", "state_key": "", "content": {"topic": "notices"}})
            await side.call(root, "without content", "POST", f"{V1}/send_server_notice", {"user_id": alice.user_id})
            await side.call(root, "to nobody", "POST", f"{V1}/send_server_notice", {**notice, "user_id": f"@ghost:{side.server_name}"})
            await side.call(root, "to a remote user", "POST", f"{V1}/send_server_notice", {**notice, "user_id": "@someone:example.org"})
            await side.call(alice, "not an admin", "POST", f"{V1}/send_server_notice", notice)
            invites = (await alice.sync())["rooms"].get("invite", {})
            side.record("one invite", 200, {"count": len(invites)})
            room_id = next(iter(invites))
            await alice.post(f"/rooms/{q(room_id)}/join")
            await side.call(alice, "room name", "GET", f"/_matrix/client/v3/rooms/{q(room_id)}/state/m.room.name")
            await side.call(alice, "tags", "GET", f"/_matrix/client/v3/user/{q(alice.user_id)}/rooms/{q(room_id)}/tags")
            code, messages = await alice.raw("GET", f"/_matrix/client/v3/rooms/{q(room_id)}/messages?dir=b&limit=20")
            side.record("notices", code, sorted(e["content"].get("body", "") for e in messages["chunk"] if e["type"] == "m.room.message"))
            await side.call(alice, "speak", "PUT", f"/_matrix/client/v3/rooms/{q(room_id)}/send/m.room.message/x1",
                            {"msgtype": "m.text", "body": "hello?"})
        pair.assert_same()
        for side in pair:
            self.assertEqual(side.steps[9].body, {"count": 1}, side.label)
            self.assertEqual(side.steps[12].body, ["Maintenance at noon"] * 3, side.label)
