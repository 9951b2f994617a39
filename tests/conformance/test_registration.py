"""``POST /register`` and its companions answered as Synapse answers them, step by step
against a real Synapse: usernames and their errcodes, ``/register/available``, the UIA
session (the 401's ``session``/``flows``/``params``/``completed``, parameters remembered
between steps, a retry with a completed session returning the same account), device id
and name, ``inhibit_login``, refresh tokens, guests and their upgrade, registration
tokens, and the shared-secret admin registration (what Complement's registration tests
and Sytest's guest tests check)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from twisted.trial import unittest

from tests.support.differential import ServerPair, Side, server_pair, shared_synapse
from tests.support.synapse import SynapseServer
from tests.support.wspr import MatrixClient

REGISTER = "/_matrix/client/v3/register"
AVAILABLE = "/_matrix/client/v3/register/available?username="
SECRET = "registration-test-secret"


def dummy(session: str | None = None) -> dict[str, Any]:
    auth: dict[str, Any] = {"type": "m.login.dummy"}
    if session is not None:
        auth["session"] = session
    return auth


def localpart(user_id: str) -> str:
    return user_id[1:].split(":", 1)[0]


class RegistrationConformanceTest(unittest.TestCase):
    timeout = 180

    async def test_usernames(self) -> None:
        pair = await server_pair(self)
        chosen: dict[str, dict[str, Any]] = {}
        for side in pair:
            anon = side.anonymous()
            await side.call(anon, "empty body: the flows", "POST", REGISTER, {})
            for label, name in [
                ("plain", "plain"),
                ("capitals are lowered", "user-UPPER"),
                ("allowed symbols", "a.b_c=d-e/f+g"),
                ("non-ascii password", "uebers3kr1t"),
            ]:
                password = "übers3kr1t" if label == "non-ascii password" else "sUp3rs3kr1t"
                code, body = await side.call(
                    anon, label, "POST", REGISTER,
                    {"username": side.localpart(name), "password": password, "auth": dummy()},
                )
                chosen.setdefault(side.label, {})[label] = body.get("user_id") if code == 200 else None
            for ch in ["!", '"', ":", "?", "\\", "@", "[", "]", "{", "|", "}", "£", "é", "\n", "'", " "]:
                await side.call(
                    anon, f"refused character {ch!r}", "POST", REGISTER,
                    {"username": f"user-{ch}-reject", "password": "pw", "auth": dummy()},
                )
            await side.call(anon, "taken", "POST", REGISTER, {"username": side.localpart("plain"), "password": "x", "auth": dummy()})
            await side.call(anon, "taken, other case", "POST", REGISTER, {"username": side.localpart("PLAIN"), "password": "x", "auth": dummy()})
            await side.call(anon, "numeric ids are the server's", "POST", REGISTER, {"username": "12345", "password": "x", "auth": dummy()})
            await side.call(anon, "no leading underscore", "POST", REGISTER, {"username": "_bridge", "password": "x", "auth": dummy()})
            await side.call(anon, "empty username", "POST", REGISTER, {"username": "", "password": "x", "auth": dummy()})
            await side.call(anon, "too long", "POST", REGISTER, {"username": "a" * 300, "password": "x", "auth": dummy()})
            await side.call(anon, "no password", "POST", REGISTER, {"username": side.localpart("nopw"), "auth": dummy()})
            await side.call(anon, "available", "GET", AVAILABLE + side.localpart("free"))
            await side.call(anon, "available: taken", "GET", AVAILABLE + side.localpart("plain"))
            await side.call(anon, "available: capitals are not lowered", "GET", AVAILABLE + "FreeName")
            await side.call(anon, "available: numeric", "GET", AVAILABLE + "4242")
            await side.call(anon, "available: bad characters", "GET", AVAILABLE + "bad%20name")
            await side.call(anon, "available: no username", "GET", "/_matrix/client/v3/register/available")
        pair.assert_same()
        for side in pair:
            self.assertEqual(chosen[side.label]["capitals are lowered"], f"@{side.localpart('user-upper')}:{side.server_name}")
            self.assertEqual(chosen[side.label]["allowed symbols"], f"@{side.localpart('a.b_c=d-e/f+g')}:{side.server_name}")
        for step in pair.wspr.steps:
            if step.name.startswith("refused character"):
                self.assertEqual((step.code, step.body["errcode"]), (400, "M_INVALID_USERNAME"), step.name)
        codes = {s.name: (s.code, s.body.get("errcode")) for s in pair.wspr.steps}
        self.assertEqual(codes["taken"], (400, "M_USER_IN_USE"))
        self.assertEqual(codes["taken, other case"], (400, "M_USER_IN_USE"))
        self.assertEqual(codes["numeric ids are the server's"], (400, "M_INVALID_USERNAME"))
        self.assertEqual(codes["no password"], (400, "M_MISSING_PARAM"))

    async def test_uia_session_remembers_and_is_idempotent(self) -> None:
        pair = await server_pair(self)
        devices: dict[str, list[Any]] = {}
        for side in pair:
            anon = side.anonymous()
            name = side.localpart("idem")
            _, first = await side.call(
                anon, "first step: the flows", "POST", REGISTER,
                {"username": name, "password": "pw", "device_id": "DEV1", "initial_device_display_name": "Phone"},
            )
            session = first["session"]
            _, done = await side.call(anon, "only auth: the remembered parameters", "POST", REGISTER, {"auth": dummy(session)})
            _, again = await side.call(anon, "the same session again: the same account", "POST", REGISTER, {"auth": dummy(session)})
            _, latest = await side.call(anon, "the same session, only its id", "POST", REGISTER, {"auth": {"session": session}})
            await side.call(
                anon, "the same session for another name", "POST", REGISTER,
                {"username": side.localpart("other"), "password": "pw", "auth": dummy(session)},
            )
            await side.call(anon, "an unknown session", "POST", REGISTER, {"auth": dummy("no-such-session")})
            # Without a username: the server picks one, and a retry gets the same.
            _, nameless = await side.call(anon, "no username: flows", "POST", REGISTER, {"password": "pw"})
            _, one = await side.call(anon, "no username", "POST", REGISTER, {"password": "pw", "auth": dummy(nameless["session"])})
            _, two = await side.call(anon, "no username, again", "POST", REGISTER, {"password": "pw", "auth": dummy(nameless["session"])})
            # (WSPR ends the first login's session when the retry signs the same device in
            # again; Synapse keeps both. A client retries because it lost the first answer.)
            user = MatrixClient(side.base_url, latest["access_token"])
            _, listing = await side.call(user, "devices", "GET", "/_matrix/client/v3/devices")
            devices[side.label] = [done, again, one, two, listing]
        pair.assert_same()
        for side in pair:
            done, again, one, two, listing = devices[side.label]
            self.assertEqual(done["user_id"], again["user_id"], side.label)
            self.assertEqual((done["device_id"], again["device_id"]), ("DEV1", "DEV1"), side.label)
            self.assertEqual(one["user_id"], two["user_id"], side.label)
            self.assertTrue(localpart(one["user_id"]).isdigit(), side.label)
            self.assertEqual([d["display_name"] for d in listing["devices"] if d["device_id"] == "DEV1"], ["Phone"])

    async def test_stage_errors_and_completed(self) -> None:
        pair = await server_pair(self)
        wrong_types: dict[str, list[tuple[str, int, Any]]] = {}
        for side in pair:
            anon = side.anonymous()
            name = side.localpart("stages")
            _, first = await side.call(anon, "flows", "POST", REGISTER, {"username": name, "password": "pw"})
            session = first["session"]
            await side.call(anon, "a stage type nobody knows", "POST", REGISTER, {"auth": {"type": "m.login.bogus", "session": session}})
            await side.call(anon, "auth is not an object", "POST", REGISTER, {"username": name, "password": "pw", "auth": "dummy"})
            await side.call(anon, "a password stage without a password", "POST", REGISTER, {"auth": {"type": "m.login.password", "session": session}})
            await side.call(anon, "the dummy stage", "POST", REGISTER, {"auth": dummy(session)})
            await side.call(anon, "body is not JSON", "POST", REGISTER, data=b"not json")
            await side.call(anon, "body is empty", "POST", REGISTER, data=b"")
            await side.call(anon, "body is a list", "POST", REGISTER, [])
            await side.call(anon, "unknown kind", "POST", REGISTER + "?kind=admin", {})
            for name_, body in [
                ("username not a string", {"username": 12, "password": "pw", "auth": dummy()}),
                ("password not a string", {"username": name + "x", "password": 12, "auth": dummy()}),
                ("refresh_token not a boolean", {"username": name + "y", "password": "pw", "refresh_token": "yes", "auth": dummy()}),
            ]:
                wrong_types.setdefault(side.label, []).append((name_, *(await anon.raw("POST", REGISTER, body))))
            await side.call(
                MatrixClient(side.base_url, "some-token"), "with an access token", "POST", REGISTER,
                {"username": name + "z", "password": "pw", "auth": dummy()},
            )
        pair.assert_same()
        # A field of the wrong type: 400 on both; Synapse says M_UNKNOWN, WSPR the spec's M_BAD_JSON.
        for (name_, code, body), (_, syn_code, _) in zip(wrong_types["WSPR"], wrong_types["Synapse"], strict=False):
            self.assertEqual((code, body["errcode"]), (400, "M_BAD_JSON"), name_)
            self.assertEqual(syn_code, 400, name_)

    async def test_login_fields(self) -> None:
        pair = await server_pair(self)
        answers: dict[str, dict[str, Any]] = {}
        for side in pair:
            anon = side.anonymous()
            _, inhibited = await side.call(
                anon, "inhibit_login", "POST", REGISTER,
                {"username": side.localpart("inhibit"), "password": "pw", "inhibit_login": True, "auth": dummy()},
            )
            await side.call(
                anon, "then log in", "POST", "/_matrix/client/v3/login",
                {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": side.localpart("inhibit")}, "password": "pw"},
            )
            _, refreshing = await side.call(
                anon, "refresh_token", "POST", REGISTER,
                {"username": side.localpart("refresh"), "password": "pw", "refresh_token": True, "auth": dummy()},
            )
            await side.call(anon, "refresh", "POST", "/_matrix/client/v3/refresh", {"refresh_token": refreshing["refresh_token"]})
            _, named = await side.call(
                anon, "device_id and name", "POST", REGISTER,
                {"username": side.localpart("device"), "password": "pw", "device_id": "my_device_id",
                 "initial_device_display_name": "Laptop", "auth": dummy()},
            )
            user = MatrixClient(side.base_url, named["access_token"])
            await side.call(user, "the device", "GET", "/_matrix/client/v3/devices/my_device_id")
            answers[side.label] = {"inhibited": inhibited, "named": named}
        # (Where WSPR writes a device's last sighting a moment after the request, Synapse
        # before answering: not this test's business.)
        pair.assert_same("well_known", "last_seen_ip", "last_seen_ts")
        for side in pair:
            self.assertNotIn("access_token", answers[side.label]["inhibited"])
            self.assertEqual(answers[side.label]["named"]["device_id"], "my_device_id")

    async def test_guests_and_their_upgrade(self) -> None:
        pair = await server_pair(self, allow_guest_access=True)
        results: dict[str, dict[str, Any]] = {}
        for side in pair:
            anon = side.anonymous()
            _, g = await side.call(anon, "guest", "POST", REGISTER + "?kind=guest", {"initial_device_display_name": "Kiosk"})
            await side.call(anon, "guest without a body", "POST", REGISTER + "?kind=guest", data=b"")
            _, g2 = await side.call(anon, "another guest", "POST", REGISTER + "?kind=guest", {"device_id": "MINE"})
            guest = MatrixClient(side.base_url, g["access_token"], g["user_id"])
            await side.call(guest, "whoami", "GET", "/_matrix/client/v3/account/whoami")
            await side.call(guest, "profile", "GET", f"/_matrix/client/v3/profile/{g['user_id']}")
            name = localpart(g["user_id"])
            await side.call(
                anon, "upgrade with another guest's token", "POST", REGISTER,
                {"username": name, "password": "pw", "guest_access_token": g2["access_token"], "auth": dummy()},
            )
            await side.call(
                anon, "upgrade with a made-up token", "POST", REGISTER,
                {"username": name, "password": "pw", "guest_access_token": "nope", "auth": dummy()},
            )
            await side.call(
                anon, "upgrade: flows", "POST", REGISTER,
                {"username": name, "password": "pw", "guest_access_token": g["access_token"]},
            )
            _, full = await side.call(
                anon, "upgrade", "POST", REGISTER,
                {"username": name, "password": "pw", "guest_access_token": g["access_token"], "auth": dummy()},
            )
            await side.call(guest, "the guest's token afterwards", "GET", "/_matrix/client/v3/account/whoami")
            upgraded = MatrixClient(side.base_url, full["access_token"])
            await side.call(upgraded, "whoami after", "GET", "/_matrix/client/v3/account/whoami")
            await side.call(upgraded, "profile after", "GET", f"/_matrix/client/v3/profile/{g['user_id']}")
            await side.call(upgraded, "can create rooms now", "POST", "/_matrix/client/v3/createRoom", {})
            await side.call(
                anon, "log in with the new password", "POST", "/_matrix/client/v3/login",
                {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": name}, "password": "pw"},
            )
            regular = await side.register("regular")
            await side.call(
                anon, "a regular user's token is no guest's", "POST", REGISTER,
                {"username": localpart(regular.user_id), "password": "pw", "guest_access_token": regular.access_token, "auth": dummy()},
            )
            results[side.label] = {"guest": g, "other": g2, "full": full}
        pair.assert_same("well_known")
        for side in pair:
            r = results[side.label]
            self.assertEqual(r["guest"]["device_id"], "guest_device")
            self.assertEqual(r["other"]["device_id"], "guest_device")  # a guest cannot pick one
            self.assertTrue(localpart(r["guest"]["user_id"]).isdigit())
            self.assertEqual(r["full"]["user_id"], r["guest"]["user_id"])
        steps = {s.name: s for s in pair.wspr.steps}
        self.assertTrue(steps["whoami"].body["is_guest"])
        self.assertFalse(steps["whoami after"].body["is_guest"])
        self.assertEqual(steps["the guest's token afterwards"].code, 401)

    async def test_guests_disabled(self) -> None:
        wspr = await server_pair(self, allow_guest_access=False)
        # The shared Synapse allows guests; compare WSPR with Synapse's documented answer.
        code, body = await wspr.wspr.anonymous().raw("POST", REGISTER + "?kind=guest", {})
        self.assertEqual((code, body["errcode"]), (403, "M_FORBIDDEN"))

    async def test_shared_secret_registration(self) -> None:
        pair = await server_pair(self, registration_shared_secret=SECRET)
        secrets_of = {"WSPR": SECRET, "Synapse": (await shared_synapse()).registration_shared_secret}
        created: dict[str, dict[str, Any]] = {}
        for side in pair:
            secret = secrets_of[side.label]
            anon = side.anonymous()
            await side.call(anon, "nonce", "GET", "/_synapse/admin/v1/register")

            async def shared(
                name: str, username: Any, password: Any = "sUp3rs3kr1t", admin: bool = False,
                side: Side = side, anon: MatrixClient = anon, secret: str = secret, **extra: Any,
            ) -> Any:
                _, nonce = await anon.raw("GET", "/_synapse/admin/v1/register")
                body = {"nonce": nonce["nonce"], "username": username, "password": password, "admin": admin, **extra}
                if "mac" not in extra:
                    body["mac"] = _mac(secret, nonce["nonce"], str(username), str(password), admin)
                return await side.call(anon, name, "POST", "/_synapse/admin/v1/register", body)

            _, created_admin = await shared("admin", side.localpart("adminuser"), admin=True)
            await shared("user", side.localpart("user-shared-secret"))
            _, downcased = await shared("capitals are lowered", side.localpart("User-UPPER-Shared"))
            await shared("symbols refused", "us,er")
            await shared("taken", side.localpart("adminuser"))
            await shared("wrong mac", side.localpart("wrongmac"), mac="00" * 20)
            await shared("inhibit_login", side.localpart("inhibited"), inhibit_login=True)
            await shared("device_id", side.localpart("withdevice"), device_id="SHARED")
            await side.call(anon, "a spent nonce", "POST", "/_synapse/admin/v1/register", {"nonce": "x" * 10, "username": "a", "password": "b", "mac": "c"})
            await side.call(anon, "no nonce", "POST", "/_synapse/admin/v1/register", {"username": "a"})
            admin_client = MatrixClient(side.base_url, created_admin["access_token"])
            account = await admin_client.request("GET", f"/_synapse/admin/v2/users/{created_admin['user_id']}")
            created[side.label] = {"downcased": downcased, "admin": account["admin"]}
        pair.assert_same()
        for side in pair:
            self.assertEqual(created[side.label]["downcased"]["user_id"], f"@{side.localpart('user-upper-shared')}:{side.server_name}")
            self.assertTrue(created[side.label]["admin"])


class RegistrationTokenConformanceTest(unittest.TestCase):
    """Against a Synapse of its own that requires registration tokens."""

    timeout = 180

    async def test_registration_tokens(self) -> None:
        import shutil
        import tempfile

        from twisted.internet.threads import deferToThread

        from tests.support.synapse import register_with_shared_secret
        from tests.support.wspr import start_homeserver

        workdir = tempfile.mkdtemp(prefix="wspr-diff-tokens-")
        syn = SynapseServer(workdir, log_level="WARNING", extra_config={"registration_requires_token": True})
        await syn.start_async()
        self.addCleanup(lambda: shutil.rmtree(workdir, True))
        self.addCleanup(syn.stop_async)
        hs = await start_homeserver(self, registration_requires_token=True, registration_shared_secret=SECRET)
        pair = ServerPair(Side("WSPR", hs.base_url, hs.server_name), Side("Synapse", syn.client_url, syn.server_name))
        for side in pair:
            secret = SECRET if side is pair.wspr else syn.registration_shared_secret
            root = await deferToThread(register_with_shared_secret, side.base_url, secret, side.localpart("root"), "pw", True)
            admin = MatrixClient(side.base_url, root["access_token"])
            await side.call(
                admin, "make a one-use token", "POST", "/_synapse/admin/v1/registration_tokens/new",
                {"token": "once", "uses_allowed": 1},
            )
            anon = side.anonymous()
            validity = "/_matrix/client/v1/register/m.login.registration_token/validity?token="
            await side.call(anon, "valid", "GET", validity + "once")
            await side.call(anon, "unknown token", "GET", validity + "never")
            _, first = await side.call(anon, "flows", "POST", REGISTER, {"username": side.localpart("t1"), "password": "pw"})
            session = first["session"]
            token_stage = {"type": "m.login.registration_token", "session": session}
            await side.call(anon, "no token", "POST", REGISTER, {"auth": token_stage})
            await side.call(anon, "token not a string", "POST", REGISTER, {"auth": {**token_stage, "token": 5}})
            await side.call(anon, "wrong token", "POST", REGISTER, {"auth": {**token_stage, "token": "never"}})
            await side.call(anon, "the token", "POST", REGISTER, {"auth": {**token_stage, "token": "once"}})
            # Held for this registration: nobody else can use it meanwhile.
            await side.call(anon, "held", "GET", validity + "once")
            _, other = await side.call(anon, "someone else: flows", "POST", REGISTER, {"username": side.localpart("t2"), "password": "pw"})
            await side.call(
                anon, "someone else with the held token", "POST", REGISTER,
                {"auth": {"type": "m.login.registration_token", "session": other["session"], "token": "once"}},
            )
            await side.call(anon, "changed token", "POST", REGISTER, {"auth": {**token_stage, "token": "other"}})
            await side.call(anon, "the dummy stage completes it", "POST", REGISTER, {"auth": dummy(session)})
            await side.call(admin, "the token's counters", "GET", "/_synapse/admin/v1/registration_tokens/once")
            await side.call(anon, "used up", "GET", validity + "once")
        pair.assert_same()
        counters = next(s for s in pair.wspr.steps if s.name == "the token's counters").body
        self.assertEqual((counters["pending"], counters["completed"]), (0, 1))
        flows = next(s for s in pair.wspr.steps if s.name == "flows").body["flows"]
        self.assertEqual(flows, [{"stages": ["m.login.registration_token", "m.login.dummy"]}])


def _mac(secret: str, nonce: str, username: str, password: str, admin: bool) -> str:
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
    mac.update(nonce.encode() + b"\x00" + username.encode() + b"\x00" + password.encode() + b"\x00")
    mac.update(b"admin" if admin else b"notadmin")
    return mac.hexdigest()


