"""Accounts over HTTP: registration (UIA, tokens, guests), login, refresh, logout,
password change, deactivation, devices, profile."""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial import unittest

from tests.support.wspr import MatrixClient, MatrixRequestError, start_homeserver


class RegistrationTest(unittest.TestCase):
    async def test_uia_dummy_flow_and_available(self) -> None:
        server = await start_homeserver(self)
        anon = MatrixClient(server.base_url)
        code, body = await anon.raw("POST", "/_matrix/client/v3/register", {"username": "dora", "password": "pw"})
        self.assertEqual(code, 401)
        self.assertEqual(body["flows"], [{"stages": ["m.login.dummy"]}])
        self.assertIn("session", body)
        self.assertNotIn("errcode", body)
        ok = await anon.request(
            "POST", "/_matrix/client/v3/register",
            {"username": "Dora", "password": "pw", "auth": {"type": "m.login.dummy", "session": body["session"]}},
        )
        self.assertEqual(ok["user_id"], "@dora:localhost")
        self.assertIn("access_token", ok)
        code, body = await anon.raw("GET", "/_matrix/client/v3/register/available?username=dora")
        self.assertEqual((code, body["errcode"]), (400, "M_USER_IN_USE"))
        code, body = await anon.raw("GET", "/_matrix/client/v3/register/available?username=free")
        self.assertEqual((code, body), (200, {"available": True}))
        code, body = await anon.raw("GET", "/_matrix/client/v3/register/available?username=Bad%20Name")
        self.assertEqual((code, body["errcode"]), (400, "M_INVALID_USERNAME"))

    async def test_registration_disabled_by_default_setting(self) -> None:
        server = await start_homeserver(self, enable_registration=False)
        code, body = await MatrixClient(server.base_url).raw("POST", "/_matrix/client/v3/register", {"username": "x", "password": "y"})
        self.assertEqual((code, body["errcode"]), (403, "M_FORBIDDEN"))

    async def test_registration_token(self) -> None:
        server = await start_homeserver(self, registration_requires_token=True)
        await server.hs.store.create_registration_token("letmein", 1, None)
        anon = MatrixClient(server.base_url)
        validity = await anon.request("GET", "/_matrix/client/v1/register/m.login.registration_token/validity?token=letmein")
        self.assertTrue(validity["valid"])
        code, body = await anon.raw("POST", "/_matrix/client/v3/register", {"username": "t1", "password": "pw"})
        self.assertEqual(body["flows"], [{"stages": ["m.login.registration_token", "m.login.dummy"]}])
        code, bad = await anon.raw("POST", "/_matrix/client/v3/register", {"username": "t1", "password": "pw", "auth": {"type": "m.login.registration_token", "token": "nope", "session": body["session"]}})
        self.assertEqual(code, 401)
        self.assertEqual(bad["errcode"], "M_UNAUTHORIZED")
        code, half = await anon.raw("POST", "/_matrix/client/v3/register", {"auth": {"type": "m.login.registration_token", "token": "letmein", "session": body["session"]}})
        self.assertEqual((code, half["completed"]), (401, ["m.login.registration_token"]))
        ok = await anon.request("POST", "/_matrix/client/v3/register", {"auth": {"type": "m.login.dummy", "session": body["session"]}})
        self.assertEqual(ok["user_id"], "@t1:localhost")
        validity = await anon.request("GET", "/_matrix/client/v1/register/m.login.registration_token/validity?token=letmein")
        self.assertFalse(validity["valid"])  # single use, now used

    async def test_guests(self) -> None:
        server = await start_homeserver(self, allow_guest_access=True)
        anon = MatrixClient(server.base_url)
        guest = await anon.request("POST", "/_matrix/client/v3/register?kind=guest", {})
        g = MatrixClient(server.base_url, guest["access_token"])
        who = await g.get("/account/whoami")
        self.assertTrue(who["is_guest"])
        # Guests can't create rooms.
        code, body = await g.raw("POST", "/_matrix/client/v3/createRoom", {})
        self.assertEqual((code, body["errcode"]), (403, "M_GUEST_ACCESS_FORBIDDEN"))
        # ...and can only join rooms that allow guests.
        alice = await MatrixClient.register(server.base_url, "alice")
        closed = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        code, body = await g.raw("POST", f"/_matrix/client/v3/join/{closed}", {})
        self.assertEqual((code, body["errcode"]), (403, "M_FORBIDDEN"))  # Synapse's errcode here
        open_room = (await alice.post("/createRoom", {"preset": "public_chat", "initial_state": [{"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "can_join"}}]}))["room_id"]
        await g.post(f"/join/{open_room}")

    async def test_guest_upgrade_keeps_the_account(self) -> None:
        server = await start_homeserver(self, allow_guest_access=True)
        anon = MatrixClient(server.base_url)
        alice = await MatrixClient.register(server.base_url, "alice")
        room = (await alice.post("/createRoom", {"preset": "private_chat"}))["room_id"]  # guests may join
        g = await anon.request("POST", "/_matrix/client/v3/register?kind=guest", {})
        guest = MatrixClient(server.base_url, g["access_token"], g["user_id"])
        await alice.post(f"/rooms/{room}/invite", {"user_id": g["user_id"]})
        await guest.post(f"/rooms/{room}/join")
        name = g["user_id"][1:].split(":")[0]
        code, first = await anon.raw("POST", "/_matrix/client/v3/register", {"username": name, "password": "pw", "guest_access_token": g["access_token"]})
        self.assertEqual(code, 401)
        full = await anon.request(
            "POST", "/_matrix/client/v3/register", {"auth": {"type": "m.login.dummy", "session": first["session"]}}
        )
        self.assertEqual(full["user_id"], g["user_id"])
        code, body = await guest.raw("GET", "/_matrix/client/v3/account/whoami")
        self.assertEqual((code, body["errcode"]), (401, "M_UNKNOWN_TOKEN"))
        user = await MatrixClient.login(server.base_url, name, "pw")
        self.assertFalse((await user.get("/account/whoami"))["is_guest"])
        self.assertEqual((await user.get("/joined_rooms"))["joined_rooms"], [room])
        # Once upgraded, the name is taken like any other.
        code, body = await anon.raw("POST", "/_matrix/client/v3/register", {"username": name, "password": "pw", "auth": {"type": "m.login.dummy"}})
        self.assertEqual((code, body["errcode"]), (400, "M_USER_IN_USE"))

    async def test_registration_token_held_until_used_or_abandoned(self) -> None:
        server = await start_homeserver(self, registration_requires_token=True)
        store = server.hs.store
        await store.create_registration_token("once", 1, None)
        anon = MatrixClient(server.base_url)
        _, first = await anon.raw("POST", "/_matrix/client/v3/register", {"username": "t1", "password": "pw"})
        stage = {"type": "m.login.registration_token", "token": "once", "session": first["session"]}
        code, _ = await anon.raw("POST", "/_matrix/client/v3/register", {"auth": stage})
        self.assertEqual(code, 401)
        token = await store.get_registration_token("once")
        self.assertEqual((token.pending, token.completed), (1, 0))
        self.assertFalse(await store.registration_token_valid("once"))  # held
        await anon.request("POST", "/_matrix/client/v3/register", {"auth": {"type": "m.login.dummy", "session": first["session"]}})
        token = await store.get_registration_token("once")
        self.assertEqual((token.pending, token.completed), (0, 1))
        # A session that never finishes gives its held use back when it expires.
        await store.create_registration_token("twice", 2, None)
        _, other = await anon.raw("POST", "/_matrix/client/v3/register", {"username": "t2", "password": "pw"})
        await anon.raw("POST", "/_matrix/client/v3/register", {"auth": {"type": "m.login.registration_token", "token": "twice", "session": other["session"]}})
        self.assertEqual((await store.get_registration_token("twice")).pending, 1)
        server.hs.auth._uia_sessions[other["session"]].created -= 24 * 3600
        server.hs.auth._expire_uia_sessions()
        for _ in range(50):
            if (await store.get_registration_token("twice")).pending == 0:
                break
            await deferLater(reactor, 0.05, lambda: None)
        self.assertEqual((await store.get_registration_token("twice")).pending, 0)

    async def test_shared_secret_admin_register(self) -> None:
        import hashlib
        import hmac

        server = await start_homeserver(self, registration_shared_secret="s3cr3t")
        anon = MatrixClient(server.base_url)
        nonce = (await anon.request("GET", "/_synapse/admin/v1/register"))["nonce"]
        mac = hmac.new(b"s3cr3t", digestmod=hashlib.sha1)
        mac.update(nonce.encode() + b"\x00bot\x00pw\x00admin")
        ok = await anon.request("POST", "/_synapse/admin/v1/register", {"nonce": nonce, "username": "bot", "password": "pw", "admin": True, "mac": mac.hexdigest()})
        self.assertEqual(ok["user_id"], "@bot:localhost")
        nonce = (await anon.request("GET", "/_synapse/admin/v1/register"))["nonce"]
        code, body = await anon.raw("POST", "/_synapse/admin/v1/register", {"nonce": nonce, "username": "bot2", "password": "pw", "mac": "00" * 20})
        self.assertEqual((code, body["errcode"]), (403, "M_UNKNOWN"))  # Synapse's errcode for its own API


class LoginTest(unittest.TestCase):
    async def test_login_refresh_logout(self) -> None:
        # Opaque tokens: the old access token dies with the refresh. (JWT sessions keep it
        # until it expires and let the old refresh token be retried until the new one is
        # used: tests/homeserver/oauth/test_jwt_sessions.py.)
        server = await start_homeserver(self, access_token_format="opaque")
        await MatrixClient.register(server.base_url, "erin", "pw1")
        anon = MatrixClient(server.base_url)
        flows = await anon.request("GET", "/_matrix/client/v3/login")
        self.assertIn({"type": "m.login.password"}, flows["flows"])
        code, body = await anon.raw("POST", "/_matrix/client/v3/login", {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "erin"}, "password": "wrong"})
        self.assertEqual((code, body["errcode"]), (403, "M_FORBIDDEN"))

        login = await anon.request("POST", "/_matrix/client/r0/login", {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "@erin:localhost"}, "password": "pw1", "refresh_token": True, "device_id": "PHONE"})
        self.assertEqual(login["device_id"], "PHONE")
        self.assertIn("refresh_token", login)
        self.assertGreater(login["expires_in_ms"], 0)
        c = MatrixClient(server.base_url, login["access_token"])
        self.assertEqual((await c.get("/account/whoami"))["device_id"], "PHONE")
        refreshed = await anon.request("POST", "/_matrix/client/v3/refresh", {"refresh_token": login["refresh_token"]})
        # The old refresh token is single use; the old access token is gone.
        code, body = await anon.raw("POST", "/_matrix/client/v3/refresh", {"refresh_token": login["refresh_token"]})
        self.assertEqual((code, body["errcode"]), (401, "M_UNKNOWN_TOKEN"))
        code, body = await c.raw("GET", "/_matrix/client/v3/account/whoami")
        self.assertEqual((code, body["errcode"]), (401, "M_UNKNOWN_TOKEN"))
        c2 = MatrixClient(server.base_url, refreshed["access_token"])
        await c2.get("/account/whoami")
        await c2.post("/logout")
        code, _ = await c2.raw("GET", "/_matrix/client/v3/account/whoami")
        self.assertEqual(code, 401)

    async def test_logout_all_and_password_change(self) -> None:
        server = await start_homeserver(self)
        a1 = await MatrixClient.register(server.base_url, "fred", "old")
        a2 = await MatrixClient.login(server.base_url, "fred", "old")
        a3 = await MatrixClient.login(server.base_url, "fred", "old")
        # Password change needs the old password (UIA) and logs out the other devices.
        code, body = await a1.raw("POST", "/_matrix/client/v3/account/password", {"new_password": "new"})
        self.assertEqual(code, 401)
        await a1.post("/account/password", {"new_password": "new", "auth": {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "fred"}, "password": "old", "session": body["session"]}})
        self.assertEqual((await a2.raw("GET", "/_matrix/client/v3/account/whoami"))[0], 401)
        await a1.get("/account/whoami")
        await MatrixClient.login(server.base_url, "fred", "new")
        with self.assertRaises(MatrixRequestError):
            await MatrixClient.login(server.base_url, "fred", "old")
        await a1.post("/logout/all")
        self.assertEqual((await a1.raw("GET", "/_matrix/client/v3/account/whoami"))[0], 401)
        del a3

    async def test_deactivate(self) -> None:
        server = await start_homeserver(self)
        gina = await MatrixClient.register(server.base_url, "gina", "pw")
        alice = await MatrixClient.register(server.base_url, "alice")
        room = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        await gina.post(f"/join/{room}")
        code, body = await gina.raw("POST", "/_matrix/client/v3/account/deactivate", {})
        self.assertEqual(code, 401)
        await gina.post("/account/deactivate", {"auth": {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "gina"}, "password": "pw", "session": body["session"]}})
        with self.assertRaises(MatrixRequestError):
            await MatrixClient.login(server.base_url, "gina", "pw")
        members = await alice.get(f"/rooms/{room}/joined_members")
        self.assertNotIn("@gina:localhost", members["joined"])
        code, body = await MatrixClient(server.base_url).raw("GET", "/_matrix/client/v3/register/available?username=gina")
        self.assertEqual(body["errcode"], "M_USER_IN_USE")  # ids are never reused


class DevicesAndProfileTest(unittest.TestCase):
    async def test_devices(self) -> None:
        server = await start_homeserver(self)
        h1 = await MatrixClient.register(server.base_url, "hank", "pw")
        h2 = await MatrixClient.login(server.base_url, "hank", "pw", initial_device_display_name="Laptop")
        devices = (await h1.get("/devices"))["devices"]
        self.assertEqual({d["device_id"] for d in devices}, {h1.device_id, h2.device_id})
        self.assertEqual((await h1.get(f"/devices/{h2.device_id}"))["display_name"], "Laptop")
        await h1.put(f"/devices/{h2.device_id}", {"display_name": "Old laptop"})
        self.assertEqual((await h1.get(f"/devices/{h2.device_id}"))["display_name"], "Old laptop")
        code, body = await h1.raw("DELETE", f"/_matrix/client/v3/devices/{h2.device_id}", {})
        self.assertEqual(code, 401)
        await h1.request("DELETE", f"/_matrix/client/v3/devices/{h2.device_id}", {"auth": {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "hank"}, "password": "pw", "session": body["session"]}})
        self.assertEqual((await h2.raw("GET", "/_matrix/client/v3/account/whoami"))[0], 401)
        code, body = await h1.raw("GET", "/_matrix/client/v3/devices/NOPE")
        self.assertEqual((code, body["errcode"]), (404, "M_NOT_FOUND"))

    async def test_profile(self) -> None:
        server = await start_homeserver(self)
        ivy = await MatrixClient.register(server.base_url, "ivy")
        joe = await MatrixClient.register(server.base_url, "joe")
        room = (await ivy.post("/createRoom", {"invite": [joe.user_id]}))["room_id"]
        await ivy.put(f"/profile/{ivy.user_id}/displayname", {"displayname": "Ivy ✨"})
        await ivy.put(f"/profile/{ivy.user_id}/avatar_url", {"avatar_url": "mxc://localhost/abc"})
        profile = await joe.get(f"/profile/{ivy.user_id}")
        self.assertEqual(profile, {"displayname": "Ivy ✨", "avatar_url": "mxc://localhost/abc"})
        self.assertEqual(await joe.get(f"/profile/{ivy.user_id}/displayname"), {"displayname": "Ivy ✨"})
        # The member event in every room follows the profile.
        member = await ivy.get(f"/rooms/{room}/state/m.room.member/{ivy.user_id}")
        self.assertEqual(member["displayname"], "Ivy ✨")
        code, body = await joe.raw("PUT", f"/_matrix/client/v3/profile/{ivy.user_id}/displayname", {"displayname": "hacked"})
        self.assertEqual((code, body["errcode"]), (403, "M_FORBIDDEN"))
        code, body = await joe.raw("GET", "/_matrix/client/v3/profile/@nobody:localhost")
        self.assertEqual(code, 404)


# The same behaviour on PostgreSQL, the production store.


class RegistrationTestPostgres(RegistrationTest):
    database = "postgresql"


class LoginTestPostgres(LoginTest):
    database = "postgresql"


class DevicesAndProfileTestPostgres(DevicesAndProfileTest):
    database = "postgresql"
