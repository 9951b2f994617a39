"""The audit log over HTTP, on SQLite and PostgreSQL: sign-ins and failures with address
and user agent, password changes, device deletions and admin actions are recorded, and
admins read them back at /_wspr/admin/v1/audit_log with filters and paging."""

from __future__ import annotations

from typing import Any

from twisted.trial import unittest

from tests.homeserver.admin.support import AUDIT, V1, V2, admin_server, q
from tests.support.wspr import MatrixClient


def login_body(user: str, password: str) -> dict[str, Any]:
    return {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": password}


class AuditLogTest(unittest.TestCase):
    timeout = 180
    database = "sqlite"

    async def test_sign_ins_passwords_and_devices(self) -> None:
        server, root = await admin_server(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        anon = MatrixClient(server.base_url)
        code, _ = await anon.raw("POST", "/_matrix/client/v3/login", login_body("alice", "wrong"), headers={"User-Agent": "Guesser/1"})
        self.assertEqual(code, 403)
        phone = await anon.request(
            "POST", "/_matrix/client/v3/login", {**login_body("alice", "correct horse"), "device_id": "PHONE"},
            headers={"User-Agent": "Phone/2"},
        )
        phone_client = MatrixClient(server.base_url, phone["access_token"], phone["user_id"], phone["device_id"])
        await alice.request(
            "POST", "/_matrix/client/v3/account/password",
            {"new_password": "new-pw", "logout_devices": False,
             "auth": {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": "correct horse"}},
            headers={"User-Agent": "Desktop/3"},
        )
        code, flow = await alice.raw("POST", "/_matrix/client/v3/delete_devices", {"devices": ["PHONE"]})
        await alice.request(
            "POST", "/_matrix/client/v3/delete_devices",
            {"devices": ["PHONE"], "auth": {"type": "m.login.password", "session": flow["session"],
                                            "identifier": {"type": "m.id.user", "user": "alice"}, "password": "new-pw"}},
        )
        self.assertEqual((await phone_client.raw("GET", "/_matrix/client/v3/account/whoami"))[0], 401)

        log = await root.request("GET", f"{AUDIT}?user_id={q(alice.user_id)}&dir=f")
        kinds = [e["event_type"] for e in log["entries"]]
        self.assertEqual(kinds, ["login.failure", "login.success", "password.change", "device.delete"])
        self.assertEqual(log["total"], 4)
        failure, success, password, device = log["entries"]
        self.assertEqual(
            set(failure), {"id", "ts", "event_type", "user_id", "actor", "ip", "user_agent", "details"}
        )
        self.assertEqual(
            (failure["ip"], failure["user_agent"], failure["actor"], failure["details"]["errcode"]),
            ("127.0.0.1", "Guesser/1", None, "M_FORBIDDEN"),
        )
        self.assertEqual((success["user_agent"], success["details"]["device_id"], success["actor"]), ("Phone/2", "PHONE", alice.user_id))
        self.assertEqual((password["user_agent"], password["details"]), ("Desktop/3", {"logout_devices": False}))
        self.assertEqual((device["details"]["device_ids"], device["actor"], device["ip"]), (["PHONE"], alice.user_id, "127.0.0.1"))
        # no secret ever goes in
        self.assertNotIn("wrong", str(log))
        self.assertNotIn("new-pw", str(log))
        # a failure for an account that does not exist is kept too
        await anon.raw("POST", "/_matrix/client/v3/login", login_body("mallory", "x"))
        failures = await root.request("GET", f"{AUDIT}?event_type=login.failure")
        self.assertEqual({e["user_id"] for e in failures["entries"]}, {alice.user_id, "@mallory:localhost"})
        # a family by prefix, newest first by default
        family = await root.request("GET", f"{AUDIT}?event_type=login.")
        self.assertEqual([e["event_type"] for e in family["entries"]][:2], ["login.failure", "login.success"])
        self.assertTrue(all(e["event_type"].startswith("login.") for e in family["entries"]))

    async def test_sign_in_pages(self) -> None:
        """The OAuth sign-in pages' steps, through LoginFlow.listeners."""
        from tests.homeserver.oauth.helpers import Browser

        server, root = await admin_server(self)
        await MatrixClient.register(server.base_url, "alice")
        browser = Browser(server.base_url)
        await browser.get("/_wspr/login")
        code, _, _ = await browser.post("/_wspr/login", {"step": "password", "username": "alice", "password": "wrong"})
        self.assertEqual(code, 400)
        await browser.post("/_wspr/login", {"step": "password", "username": "alice", "password": "correct horse"})
        log = await root.request("GET", f"{AUDIT}?event_type=login.&dir=f")
        pages = [e for e in log["entries"] if e["details"].get("via") == "sign_in_pages"]
        # the flow does not tell its listeners who a refused sign-in was for
        self.assertEqual(
            [(e["event_type"], e["user_id"], e["details"]["step"]) for e in pages],
            [("login.failure", None, "password"), ("login.step", "@alice:localhost", "password")],
        )
        self.assertEqual([e["ip"] for e in pages], ["127.0.0.1", "127.0.0.1"])

    async def test_admin_actions_paging_and_access(self) -> None:
        server, root = await admin_server(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        code, _ = await root.raw("PUT", f"{V2}/users/{q('@bob:localhost')}", {"password": "pw", "admin": False}, headers={"User-Agent": "synadm/0.49"})
        self.assertEqual(code, 201)
        await root.request("POST", f"{V1}/reset_password/{q(alice.user_id)}", {"new_password": "x"})
        await root.request("PUT", f"{V1}/users/{q(alice.user_id)}/admin", {"admin": True})
        await root.request("POST", f"{V1}/users/{q(alice.user_id)}/login", {})
        await root.request("POST", f"{V1}/deactivate/{q('@bob:localhost')}", {})
        await root.request("POST", f"{V1}/registration_tokens/new", {"token": "abc"})
        room_id = (await root.post("/createRoom", {}))["room_id"]
        await root.request("PUT", f"{V1}/rooms/{q(room_id)}/block", {"block": True})
        await root.request("DELETE", f"{V1}/rooms/{q(room_id)}", {})
        log = await root.request("GET", f"{AUDIT}?actor={q(root.user_id)}&event_type=admin.&dir=f")
        self.assertEqual(
            [e["event_type"] for e in log["entries"]],
            ["admin.user.create", "admin.user.reset_password", "admin.user.set_admin", "admin.user.login",
             "admin.user.deactivate", "admin.registration_token", "admin.room.block", "admin.room.delete"],
        )
        created = log["entries"][0]
        self.assertEqual((created["user_id"], created["user_agent"], created["ip"]), ("@bob:localhost", "synadm/0.49", "127.0.0.1"))
        self.assertEqual(log["entries"][-1]["details"]["room_id"], room_id)
        # the devices the reset signed out are recorded as deleted by the admin
        devices = await root.request("GET", f"{AUDIT}?event_type=device.delete&user_id={q(alice.user_id)}")
        self.assertEqual(devices["entries"][0]["actor"], root.user_id)
        # paging
        page = await root.request("GET", f"{AUDIT}?limit=3")
        self.assertEqual((len(page["entries"]), page["next_token"]), (3, "3"))
        rest = await root.request("GET", f"{AUDIT}?limit=1000&from=3")
        self.assertEqual(len(rest["entries"]), page["total"] - 3)
        self.assertNotIn("next_token", rest)
        newest = page["entries"][0]["ts"]
        self.assertEqual((await root.request("GET", f"{AUDIT}?since={newest + 1}"))["total"], 0)
        self.assertEqual((await root.request("GET", f"{AUDIT}?until={newest + 1}"))["total"], page["total"])
        for bad in ("limit=1001", "from=-1", "dir=x", "since=soon"):
            code, body = await root.raw("GET", f"{AUDIT}?{bad}")
            self.assertEqual((code, body["errcode"]), (400, "M_INVALID_PARAM"), bad)
        # alice became an admin above and can read it; bob's deactivated token cannot
        token = await MatrixClient.login(server.base_url, "alice", "x")
        self.assertEqual((await token.raw("GET", AUDIT))[0], 200)

    async def test_record_api(self) -> None:
        """The typed API other code records with (MFA, OAuth)."""
        from homeserver.handlers.audit import AuditEvent

        server, root = await admin_server(self)
        audit = server.hs.audit
        await audit.record(AuditEvent.MFA_ENROLLED, "@alice:localhost", "@alice:localhost", "10.0.0.1", {"method": "totp"}, user_agent="UA")
        entry = (await root.request("GET", f"{AUDIT}?event_type=mfa.enrol"))["entries"][0]
        self.assertEqual(
            (entry["user_id"], entry["ip"], entry["user_agent"], entry["details"]), ("@alice:localhost", "10.0.0.1", "UA", {"method": "totp"})
        )


class AuditLogTestPostgres(AuditLogTest):
    database = "postgresql"
