"""The admin API for users over HTTP, on SQLite and PostgreSQL: who may call it, the list
with its filters and paging, query, create and modify, deactivation, password resets,
the admin flag, joined rooms, devices and signing in as a user."""

from __future__ import annotations

from twisted.trial import unittest

from tests.homeserver.admin.support import V1, V2, V3, admin_server, q
from tests.support.wspr import MatrixClient, MatrixRequestError


class AdminUsersTest(unittest.TestCase):
    timeout = 180
    database = "sqlite"

    async def test_only_admins(self) -> None:
        server, root = await admin_server(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        for method, path, body in [
            ("GET", f"{V2}/users", None),
            ("GET", f"{V2}/users/{q(alice.user_id)}", None),
            ("PUT", f"{V2}/users/{q('@x:localhost')}", {}),
            ("POST", f"{V1}/deactivate/{q(root.user_id)}", {}),
            ("GET", f"{V1}/rooms", None),
            ("GET", f"{V1}/registration_tokens", None),
            ("GET", "/_wspr/admin/v1/audit_log", None),
        ]:
            code, answer = await alice.raw(method, path, body)
            self.assertEqual((code, answer["errcode"], answer["error"]), (403, "M_FORBIDDEN", "You are not a server admin"), path)
        code, answer = await MatrixClient(server.base_url).raw("GET", f"{V2}/users")
        self.assertEqual((code, answer["errcode"]), (401, "M_MISSING_TOKEN"))
        # the server version needs no token at all
        code, answer = await MatrixClient(server.base_url).raw("GET", f"{V1}/server_version")
        self.assertEqual(code, 200)
        self.assertIsInstance(answer["server_version"], str)

    async def test_list_filters_order_and_paging(self) -> None:
        server, root = await admin_server(self)
        for name in ("carol", "alice", "bob"):
            await MatrixClient.register(server.base_url, name)
        code, _ = await root.raw("PUT", f"{V2}/users/{q('@dave:localhost')}", {"displayname": "zed Dave", "user_type": "bot"})
        self.assertEqual(code, 201)
        page = await root.request("GET", f"{V2}/users?limit=2")
        self.assertEqual([u["name"] for u in page["users"]], ["@alice:localhost", "@bob:localhost"])
        self.assertEqual((page["total"], page["next_token"]), (5, "2"))
        rest = await root.request("GET", f"{V2}/users?from={page['next_token']}&limit=2")
        self.assertEqual([u["name"] for u in rest["users"]], ["@carol:localhost", "@dave:localhost"])
        last = await root.request("GET", f"{V2}/users?from=4&limit=2")
        self.assertNotIn("next_token", last)
        entry = page["users"][0]
        self.assertEqual(
            set(entry),
            {"name", "user_type", "is_guest", "admin", "deactivated", "shadow_banned", "displayname", "avatar_url",
             "creation_ts", "erased", "last_seen_ts", "locked"},
        )
        self.assertEqual((entry["displayname"], entry["admin"], entry["is_guest"]), ("alice", False, False))
        self.assertIsInstance(entry["last_seen_ts"], int)
        names = lambda a: [u["name"] for u in a["users"]]  # noqa: E731
        self.assertEqual(names(await root.request("GET", f"{V2}/users?name=zed")), ["@dave:localhost"])
        self.assertEqual(names(await root.request("GET", f"{V2}/users?user_id=aro")), ["@carol:localhost"])
        self.assertEqual(names(await root.request("GET", f"{V2}/users?admins=true")), [root.user_id])
        self.assertEqual(len(names(await root.request("GET", f"{V2}/users?admins=false"))), 4)
        self.assertEqual(names(await root.request("GET", f"{V2}/users?not_user_type=bot&order_by=name&dir=b"))[:2],
                         [root.user_id, "@carol:localhost"])
        self.assertNotIn("@dave:localhost", names(await root.request("GET", f"{V2}/users?not_user_type=bot")))
        self.assertEqual(names(await root.request("GET", f"{V2}/users?not_user_type=")), ["@dave:localhost"])
        by_name = names(await root.request("GET", f"{V2}/users?order_by=displayname&dir=b"))
        self.assertEqual(by_name[0], "@dave:localhost")
        # deactivated accounts: hidden from v2 unless asked; v3 filters both ways
        await root.request("POST", f"{V1}/deactivate/{q('@bob:localhost')}", {})
        self.assertNotIn("@bob:localhost", names(await root.request("GET", f"{V2}/users")))
        self.assertIn("@bob:localhost", names(await root.request("GET", f"{V2}/users?deactivated=true")))
        self.assertEqual(names(await root.request("GET", f"{V3}/users?deactivated=true")), ["@bob:localhost"])
        self.assertEqual(len(names(await root.request("GET", f"{V3}/users"))), 5)
        self.assertEqual(len(names(await root.request("GET", f"{V3}/users?deactivated=false"))), 4)
        for bad in ("order_by=nope", "dir=x", "from=-1", "limit=-1", "limit=x", "deactivated=maybe"):
            code, answer = await root.raw("GET", f"{V2}/users?{bad}")
            self.assertEqual((code, answer["errcode"]), (400, "M_INVALID_PARAM"), bad)

    async def test_query_create_and_modify(self) -> None:
        server, root = await admin_server(self)
        code, answer = await root.raw("GET", f"{V2}/users/{q('@nobody:localhost')}")
        self.assertEqual((code, answer["errcode"]), (404, "M_NOT_FOUND"))
        code, answer = await root.raw("GET", f"{V2}/users/{q('@x:elsewhere.example')}")
        self.assertEqual(code, 400)
        code, answer = await root.raw("GET", f"{V2}/users/nosigil")
        self.assertEqual((code, answer["errcode"]), (400, "M_INVALID_PARAM"))
        # create: 201, with what was given
        code, user = await root.raw(
            "PUT",
            f"{V2}/users/{q('@erin:localhost')}",
            {"password": "erin-pw", "displayname": "Erin", "avatar_url": "mxc://localhost/abc",
             "threepids": [{"medium": "email", "address": "Erin@Example.org"}], "user_type": "support"},
        )
        self.assertEqual(code, 201, user)
        self.assertEqual(
            (user["name"], user["displayname"], user["avatar_url"], user["admin"], user["user_type"], user["deactivated"]),
            ("@erin:localhost", "Erin", "mxc://localhost/abc", False, "support", False),
        )
        self.assertEqual([(t["medium"], t["address"]) for t in user["threepids"]], [("email", "erin@example.org")])
        self.assertEqual(user["external_ids"], [])
        found = await root.request("GET", f"{V1}/threepid/email/users/{q('erin@example.org')}")
        self.assertEqual(found, {"user_id": "@erin:localhost"})
        code, answer = await root.raw("GET", f"{V1}/threepid/email/users/{q('nobody@example.org')}")
        self.assertEqual((code, answer["errcode"]), (404, "M_NOT_FOUND"))
        erin = await MatrixClient.login(server.base_url, "erin", "erin-pw")
        phone = await MatrixClient.login(server.base_url, "erin", "erin-pw")
        room_id = (await erin.post("/createRoom", {}))["room_id"]
        # modify: 200; a new password signs every device out by default
        code, user = await root.raw(
            "PUT",
            f"{V2}/users/{q('@erin:localhost')}",
            {"displayname": "Erin R.", "admin": True, "password": "new-pw", "threepids": [], "user_type": None},
        )
        self.assertEqual(code, 200, user)
        self.assertEqual((user["displayname"], user["admin"], user["threepids"], user["user_type"]), ("Erin R.", True, [], None))
        for device in (erin, phone):
            self.assertEqual((await device.raw("GET", "/_matrix/client/v3/account/whoami"))[0], 401)
        erin = await MatrixClient.login(server.base_url, "erin", "new-pw")
        # the display name change reached the member event
        member = await erin.get(f"/rooms/{q(room_id)}/state/m.room.member/{q(erin.user_id)}")
        self.assertEqual(member["displayname"], "Erin R.")
        # logout_devices: false keeps the sessions
        await root.request("PUT", f"{V2}/users/{q(erin.user_id)}", {"password": "third-pw", "logout_devices": False})
        self.assertEqual((await erin.raw("GET", "/_matrix/client/v3/account/whoami"))[0], 200)
        # bad bodies, in Synapse's words
        for body, errcode in [
            ({"admin": "yes"}, "M_BAD_JSON"),
            ({"password": 5}, "M_UNKNOWN"),
            ({"password": "x" * 513}, "M_UNKNOWN"),
            ({"deactivated": "no"}, "M_UNKNOWN"),
            ({"logout_devices": 1}, "M_UNKNOWN"),
            ({"user_type": "wizard"}, "M_UNKNOWN"),
            ({"threepids": [{"medium": "email"}]}, "M_MISSING_PARAM"),
            ({"deactivated": True, "locked": True}, "M_UNKNOWN"),
        ]:
            code, answer = await root.raw("PUT", f"{V2}/users/{q(erin.user_id)}", body)
            self.assertEqual((code, answer["errcode"]), (400, errcode), body)
        code, answer = await root.raw("PUT", f"{V2}/users/{q('@x:elsewhere.example')}", {})
        self.assertEqual(code, 400)
        code, answer = await root.raw("PUT", f"{V2}/users/{q('@Bad Name:localhost')}", {})
        self.assertEqual((code, answer["errcode"]), (400, "M_INVALID_USERNAME"))
        # an admin cannot demote themselves
        code, answer = await root.raw("PUT", f"{V2}/users/{q(root.user_id)}", {"admin": False})
        self.assertEqual((code, answer["error"]), (400, "You may not demote yourself."))

    async def test_deactivate_reactivate_and_erase(self) -> None:
        server, root = await admin_server(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        room_id = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        other = (await alice.post("/createRoom", {}))["room_id"]
        await bob.post(f"/rooms/{q(room_id)}/join")
        await alice.post(f"/rooms/{q(other)}/invite", {"user_id": bob.user_id})
        answer = await root.request("POST", f"{V1}/deactivate/{q(bob.user_id)}", {"erase": False})
        self.assertEqual(answer, {"id_server_unbind_result": "success"})
        self.assertEqual((await bob.raw("GET", "/_matrix/client/v3/account/whoami"))[0], 401)
        members = await alice.get(f"/rooms/{q(room_id)}/joined_members")
        self.assertEqual(set(members["joined"]), {alice.user_id})
        state = await alice.get(f"/rooms/{q(other)}/state/m.room.member/{q(bob.user_id)}")
        self.assertEqual(state["membership"], "leave")
        user = await root.request("GET", f"{V2}/users/{q(bob.user_id)}")
        # without erase the profile stays (as Synapse)
        self.assertEqual((user["deactivated"], user["erased"], user["displayname"]), (True, False, "bob"))
        code, answer = await MatrixClient(server.base_url).raw(
            "POST", "/_matrix/client/v3/login",
            {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "bob"}, "password": "correct horse"},
        )
        self.assertEqual(code, 403)
        # reactivation, with a new password
        user = await root.request("PUT", f"{V2}/users/{q(bob.user_id)}", {"deactivated": False, "password": "back"})
        self.assertFalse(user["deactivated"])
        await MatrixClient.login(server.base_url, "bob", "back")
        # erase: the profile goes too
        await root.request("POST", f"{V1}/deactivate/{q(alice.user_id)}", {"erase": True})
        user = await root.request("GET", f"{V2}/users/{q(alice.user_id)}")
        self.assertEqual((user["deactivated"], user["erased"], user["displayname"]), (True, True, None))
        for body, code_ in [({"erase": "yes"}, 400)]:
            code, answer = await root.raw("POST", f"{V1}/deactivate/{q(bob.user_id)}", body)
            self.assertEqual((code, answer["errcode"]), (code_, "M_BAD_JSON"))
        code, answer = await root.raw("POST", f"{V1}/deactivate/{q('@nobody:localhost')}", {})
        self.assertEqual((code, answer["errcode"]), (404, "M_NOT_FOUND"))
        code, answer = await root.raw("POST", f"{V1}/deactivate/{q('@x:elsewhere.example')}", {})
        self.assertEqual(code, 400)

    async def test_reset_password_admin_flag_joined_rooms(self) -> None:
        server, root = await admin_server(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        await root.request("POST", f"{V1}/reset_password/{q(alice.user_id)}", {"new_password": "reset-pw"})
        self.assertEqual((await alice.raw("GET", "/_matrix/client/v3/account/whoami"))[0], 401)
        alice = await MatrixClient.login(server.base_url, "alice", "reset-pw")
        await root.request(
            "POST", f"{V1}/reset_password/{q(alice.user_id)}", {"new_password": "again", "logout_devices": False}
        )
        self.assertEqual((await alice.raw("GET", "/_matrix/client/v3/account/whoami"))[0], 200)
        code, answer = await root.raw("POST", f"{V1}/reset_password/{q(alice.user_id)}", {})
        self.assertEqual((code, answer["errcode"]), (400, "M_MISSING_PARAM"))
        self.assertEqual(await root.request("GET", f"{V1}/users/{q(alice.user_id)}/admin"), {"admin": False})
        self.assertEqual(await root.request("PUT", f"{V1}/users/{q(alice.user_id)}/admin", {"admin": True}), {})
        self.assertEqual(await root.request("GET", f"{V1}/users/{q(alice.user_id)}/admin"), {"admin": True})
        # alice is an admin now
        self.assertEqual((await alice.raw("GET", f"{V2}/users"))[0], 200)
        code, answer = await root.raw("PUT", f"{V1}/users/{q(root.user_id)}/admin", {"admin": False})
        self.assertEqual((code, answer["error"]), (400, "You may not demote yourself."))
        code, answer = await root.raw("PUT", f"{V1}/users/{q(alice.user_id)}/admin", {})
        self.assertEqual((code, answer["errcode"]), (400, "M_MISSING_PARAM"))
        room_id = (await alice.post("/createRoom", {}))["room_id"]
        joined = await root.request("GET", f"{V1}/users/{q(alice.user_id)}/joined_rooms")
        self.assertEqual(joined, {"joined_rooms": [room_id], "total": 1})

    async def test_devices_and_login_as(self) -> None:
        server, root = await admin_server(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        phone = await MatrixClient.login(server.base_url, "alice", device_id="PHONE", initial_device_display_name="Phone")
        await phone.raw("GET", "/_matrix/client/v3/account/whoami", headers={"User-Agent": "PhoneApp/1"})
        base = f"{V2}/users/{q(alice.user_id)}/devices"
        listing = await root.request("GET", base)
        self.assertEqual(listing["total"], 2)
        by_id = {d["device_id"]: d for d in listing["devices"]}
        self.assertEqual(set(by_id), {alice.device_id, "PHONE"})
        self.assertEqual(
            set(by_id["PHONE"]),
            {"user_id", "device_id", "display_name", "last_seen_user_agent", "last_seen_ts", "last_seen_ip"},
        )
        self.assertEqual(by_id["PHONE"]["display_name"], "Phone")
        device = await root.request("GET", f"{base}/PHONE")
        self.assertEqual((device["user_id"], device["device_id"]), (alice.user_id, "PHONE"))
        self.assertEqual(await root.request("PUT", f"{base}/PHONE", {"display_name": "Old phone"}), {})
        self.assertEqual((await root.request("GET", f"{base}/PHONE"))["display_name"], "Old phone")
        code, answer = await root.raw("GET", f"{base}/NOPE")
        self.assertEqual((code, answer["errcode"]), (404, "M_NOT_FOUND"))
        code, answer = await root.raw("PUT", f"{base}/NOPE", {"display_name": "x"})
        self.assertEqual((code, answer["errcode"]), (404, "M_NOT_FOUND"))
        code, _ = await root.raw("POST", base, {"device_id": "BRIDGE"})
        self.assertEqual(code, 201)
        self.assertEqual((await root.request("GET", base))["total"], 3)
        self.assertEqual(await root.request("DELETE", f"{base}/PHONE"), {})
        self.assertEqual((await phone.raw("GET", "/_matrix/client/v3/account/whoami"))[0], 401)
        self.assertEqual(
            await root.request("POST", f"{V2}/users/{q(alice.user_id)}/delete_devices", {"devices": ["BRIDGE", "GONE"]}), {}
        )
        self.assertEqual([d["device_id"] for d in (await root.request("GET", base))["devices"]], [alice.device_id])
        code, answer = await root.raw("POST", f"{V2}/users/{q(alice.user_id)}/delete_devices", {})
        self.assertEqual((code, answer["errcode"]), (400, "M_MISSING_PARAM"))
        code, answer = await root.raw("GET", f"{V2}/users/{q('@nobody:localhost')}/devices")
        self.assertEqual((code, answer["errcode"]), (404, "M_NOT_FOUND"))
        # login as: a token for alice on no new device
        token = (await root.request("POST", f"{V1}/users/{q(alice.user_id)}/login", {}))["access_token"]
        puppet = MatrixClient(server.base_url, token)
        self.assertEqual((await puppet.get("/account/whoami"))["user_id"], alice.user_id)
        self.assertEqual((await root.request("GET", base))["total"], 1)
        expired = (await root.request("POST", f"{V1}/users/{q(alice.user_id)}/login", {"valid_until_ms": 1}))["access_token"]
        code, answer = await MatrixClient(server.base_url, expired).raw("GET", "/_matrix/client/v3/account/whoami")
        self.assertEqual((code, answer["errcode"]), (401, "M_UNKNOWN_TOKEN"))
        code, answer = await root.raw("POST", f"{V1}/users/{q(root.user_id)}/login", {})
        self.assertEqual((code, answer["error"]), (400, "Cannot use admin API to login as self"))
        code, answer = await root.raw("POST", f"{V1}/users/{q(alice.user_id)}/login", {"valid_until_ms": "soon"})
        self.assertEqual(code, 400)
        code, answer = await root.raw("POST", f"{V1}/users/{q('@nobody:localhost')}/login", {})
        self.assertEqual(code, 404)
        # a password reset ends the puppet token too
        await root.request("POST", f"{V1}/reset_password/{q(alice.user_id)}", {"new_password": "pw2"})
        with self.assertRaises(MatrixRequestError):
            await puppet.get("/account/whoami")


class AdminUsersTestPostgres(AdminUsersTest):
    database = "postgresql"


class AdminBadInputTest(unittest.TestCase):
    """Junk in paths, queries and bodies gets a 4xx, never a 500."""

    timeout = 180
    database = "sqlite"

    async def test_no_server_errors(self) -> None:
        server, root = await admin_server(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        big = "9" * 30
        u = q(alice.user_id)
        cases = [
            ("GET", f"{V2}/users?limit={big}", None),
            ("GET", f"{V2}/users?from=99999999999999999", None),
            ("GET", f"{V2}/users?name=%25_%25&user_id=%00", None),
            ("PUT", f"{V2}/users/{u}", {"displayname": 5}),
            ("PUT", f"{V2}/users/{u}", {"threepids": "x"}),
            ("PUT", f"{V2}/users/{u}", {"threepids": [{"medium": 1, "address": 2}]}),
            ("PUT", f"{V2}/users/{u}", {"external_ids": [{"auth_provider": "x"}]}),
            ("PUT", f"{V2}/users/{u}", ["not", "an", "object"]),
            ("PUT", f"{V2}/users/{q('@:localhost')}", {}),
            ("POST", f"{V1}/users/{u}/login", {"valid_until_ms": 2**70}),
            ("PUT", f"{V2}/users/{u}/devices/X", {"display_name": 5}),
            ("POST", f"{V2}/users/{u}/devices", {"device_id": 5}),
            ("POST", f"{V2}/users/{u}/delete_devices", {"devices": "all"}),
            ("GET", f"{V1}/rooms?limit={big}", None),
            ("GET", f"{V1}/rooms/{q('!x:localhost')}/messages?from=garbage", None),
            ("GET", f"{V1}/rooms/{q('!x:localhost')}/messages?dir=sideways", None),
            ("DELETE", f"{V1}/rooms/{q('!x:localhost')}", {"message": 5}),
            ("GET", f"{V1}/event_reports/{big}", None),
            ("GET", f"{V1}/event_reports?limit=-5", None),
            ("POST", f"{V1}/media/delete?before_ts={big}", None),
            ("DELETE", f"{V1}/media/localhost/{q('../../etc')}", None),
            ("POST", f"{V1}/registration_tokens/new", {"uses_allowed": 2**70}),
            ("PUT", f"{V1}/registration_tokens/x", {"expiry_time": True}),
            ("PUT", f"{V1}/registration_tokens/x", {"expiry_time": 2**70}),
            ("POST", f"{V1}/send_server_notice", {"user_id": 5, "content": {}}),
            ("GET", f"/_wspr/admin/v1/audit_log?until={big}", None),
            ("GET", "/_wspr/admin/v1/audit_log?event_type=%25", None),
        ]
        for method, path, body in cases:
            code, answer = await root.raw(method, path, body)
            self.assertTrue(400 <= code < 500 or code == 200, f"{method} {path} {body}: {code} {answer}")


class AdminBadInputTestPostgres(AdminBadInputTest):
    database = "postgresql"
