"""Complement's account cases, ported (tests/conformance/complement.py runs each on Synapse
and WSPR): account_change_password_test.go, account_data_test.go,
account_deactivate_test.go, apidoc_login_test.go, apidoc_logout_test.go,
apidoc_device_management_test.go, apidoc_profile_avatar_url_test.go,
apidoc_profile_displayname_test.go, apidoc_request_encoding_test.go, apidoc_content_test.go,
apidoc_server_capabilities_test.go, apidoc_version_test.go, and tests/unknown_endpoints_test.go."""

from __future__ import annotations

from twisted.trial import unittest

from tests.conformance.complement import V3, CaseFn, MatrixClient, Side, create_room, expect, login, on_both, q

PASSWORD = "correct horse"


def password_login(user: str, password: str, **extra: object) -> dict[str, object]:
    return {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": password, **extra}


def password_auth(user_id: str, password: str) -> dict[str, object]:
    return {"type": "m.login.password", "user": user_id, "password": password}


class AccountTest(unittest.TestCase):
    timeout = 240

    async def test_change_password(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            user = await side.register("pwchange", "superuser")
            other = await login(side, user.user_id, "superuser")
            anon = side.anonymous()
            with case("After changing password, can't log in with old password"):
                await user.post("/account/password", {"auth": password_auth(user.user_id, "superuser"), "new_password": "my_new_password"})
                await expect(anon, "POST", V3 + "/login", password_login(user.user_id, "superuser"), status=403, errcode="M_FORBIDDEN")
            with case("After changing password, can log in with new password"):
                body = await expect(anon, "POST", V3 + "/login", password_login(user.user_id, "my_new_password"))
                assert body["user_id"] == user.user_id, body
            with case("After changing password, existing session still works"):
                await expect(user, "GET", V3 + "/account/whoami")
            with case("After changing password, a different session no longer works by default"):
                await expect(other, "GET", V3 + "/account/whoami", status=401)
            with case("After changing password, different sessions can optionally be kept"):
                kept = await login(side, user.user_id, "my_new_password")
                await expect(user, "POST", V3 + "/account/password", {
                    "auth": password_auth(user.user_id, "my_new_password"),
                    "new_password": "new_optional_password",
                    "logout_devices": False,
                })
                await expect(kept, "GET", V3 + "/account/whoami")

        await on_both(self, scenario)

    async def test_account_data(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await side.register("alice")
            me = q(alice.user_id)
            with case("Can add global account data"):
                await alice.put(f"/user/{me}/account_data/test.key", {"value": "first"})
                assert (await alice.get(f"/user/{me}/account_data/test.key")) == {"value": "first"}
                await alice.put(f"/user/{me}/account_data/test.key", {"value": "second"})
                assert (await alice.get(f"/user/{me}/account_data/test.key")) == {"value": "second"}
            with case("Can add room account data"):
                room = q(await create_room(alice))
                await alice.put(f"/user/{me}/rooms/{room}/account_data/test.key", {"value": "room first"})
                assert (await alice.get(f"/user/{me}/rooms/{room}/account_data/test.key")) == {"value": "room first"}
                await alice.put(f"/user/{me}/rooms/{room}/account_data/test.key", {"value": "room second"})
                assert (await alice.get(f"/user/{me}/rooms/{room}/account_data/test.key")) == {"value": "room second"}

        await on_both(self, scenario)

    async def test_deactivate(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            user = await side.register("deactivate", "superuser")
            with case("Can't deactivate account with wrong password"):
                await expect(user, "POST", V3 + "/account/deactivate", {"auth": password_auth(user.user_id, "wrong_password")},
                             status=401, errcode="M_FORBIDDEN")
            with case("Can deactivate account"):
                await expect(user, "POST", V3 + "/account/deactivate", {"auth": password_auth(user.user_id, "superuser")})
            with case("After deactivating account, can't log in with password"):
                await expect(side.anonymous(), "POST", V3 + "/login", password_login(user.user_id, "superuser"), status=403)

        await on_both(self, scenario)

    async def test_login(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            user = await side.register("test_login_user", "superuser")
            localpart = user.user_id[1:].split(":")[0]
            anon = side.anonymous()
            with case("GET /login yields a set of flows"):
                code, body = await anon.raw("GET", V3 + "/login")
                assert code == 200, body
                assert body["flows"] and all(isinstance(f.get("stages"), list) or f.get("type") for f in body["flows"]), body
            with case("POST /login can login as user"):
                body = await expect(anon, "POST", V3 + "/login", password_login(user.user_id, "superuser"))
                assert isinstance(body["access_token"], str) and body["home_server"] == side.server_name, body
            with case("POST /login returns the same device_id as that in the request"):
                body = await expect(anon, "POST", V3 + "/login", password_login(user.user_id, "superuser", device_id="test_device_id"))
                assert body["device_id"] == "test_device_id", body
            with case("POST /login can log in as a user with just the local part of the id"):
                body = await expect(anon, "POST", V3 + "/login", password_login(localpart, "superuser"))
                assert isinstance(body["access_token"], str) and body["home_server"] == side.server_name, body
            with case("POST /login as non-existing user is rejected"):
                await expect(anon, "POST", V3 + "/login", password_login("i-dont-exist", "superuser"), status=403)
            with case("POST /login wrong password is rejected"):
                await expect(anon, "POST", V3 + "/login", password_login(user.user_id, "wrong_password"), status=403, errcode="M_FORBIDDEN")
            with case("Login with uppercase username works and GET /whoami (and /sync) afterwards also"):
                upper = "@" + localpart[0].upper() + localpart[1:] + ":" + side.server_name
                body = await expect(anon, "POST", V3 + "/login", password_login(upper, "superuser"))
                client = MatrixClient(side.base_url, body["access_token"], body["user_id"])
                await expect(client, "GET", V3 + "/account/whoami")
                await expect(client, "GET", V3 + "/sync?timeout=0")

        await on_both(self, scenario)

    async def test_logout(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            user = await side.register("testuser", "superuser")
            with case("Can logout current device"):
                second = await login(side, user.user_id, "superuser")
                assert len((await second.get("/devices"))["devices"]) == 2
                await second.post("/logout")
                await expect(second, "GET", V3 + "/sync", status=401)
                devices = (await user.get("/devices"))["devices"]
                assert [d["device_id"] for d in devices] == [user.device_id], devices
            with case("Can logout all devices"):
                second = await login(side, user.user_id, "superuser")
                assert len((await second.get("/devices"))["devices"]) == 2
                await expect(second, "POST", V3 + "/logout/all", {})
                await expect(second, "GET", V3 + "/sync", status=401)
                await expect(user, "GET", V3 + "/sync", status=401)
            with case("Request to logout with invalid an access token is rejected"):
                bad = MatrixClient(side.base_url, "invalidAccessToken")
                await expect(bad, "POST", V3 + "/logout", {}, status=401, errcode="M_UNKNOWN_TOKEN")
            with case("Request to logout without an access token is rejected"):
                await expect(side.anonymous(), "POST", V3 + "/logout", {}, status=401, errcode="M_MISSING_TOKEN")

        await on_both(self, scenario)

    async def test_device_management(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            user = await side.register("devmgmt", "superuser")
            anon = side.anonymous()
            with case("GET /device/{deviceId}"):
                await expect(anon, "POST", V3 + "/login", password_login(
                    user.user_id, "superuser", device_id="login_device", initial_device_display_name="device display"))
                body = await user.get("/devices/login_device")
                assert body["device_id"] == "login_device" and body["display_name"] == "device display", body
            with case("GET /device/{deviceId} gives a 404 for unknown devices"):
                await expect(user, "GET", V3 + "/devices/unknown_device", status=404)
            with case("GET /devices"):
                await expect(anon, "POST", V3 + "/login", password_login(
                    user.user_id, "superuser", device_id="login_device_2", initial_device_display_name="device display"))
                ids = {d["device_id"] for d in (await user.get("/devices"))["devices"]}
                assert {"login_device", "login_device_2"} <= ids, ids
            with case("PUT /device/{deviceId} updates device fields"):
                await user.put("/devices/login_device", {"display_name": "new device display"})
                body = await user.get("/devices/login_device")
                assert body["device_id"] == "login_device" and body["display_name"] == "new device display", body
            with case("PUT /device/{deviceId} gives a 404 for unknown devices"):
                await expect(user, "PUT", V3 + "/devices/unknown_device", {"display_name": "new device display"}, status=404)
            with case("DELETE /device/{deviceId}"):
                second = await login(side, user.user_id, "superuser")
                await expect(second, "GET", V3 + "/sync?timeout=0")
                path = f"{V3}/devices/{q(second.device_id)}"
                body = await expect(user, "DELETE", path, status=401)
                assert {"session", "flows", "params"} <= set(body), body
                body = await expect(user, "DELETE", path, {"auth": password_login(user.user_id, "super-wrong-password")},
                                    status=401, errcode="M_FORBIDDEN")
                assert {"flows", "params", "session", "error"} <= set(body), body
                await expect(user, "DELETE", path, {"auth": password_login(user.user_id, "superuser")})
                await expect(user, "GET", path, status=404)
                await expect(second, "GET", V3 + "/sync?timeout=0", status=401)
            with case("DELETE /device/{deviceId} requires UI auth user to match device owner"):
                bob = await side.register("bob", "bobspassword")
                second = await login(side, user.user_id, "superuser")
                path = f"{V3}/devices/{q(second.device_id)}"
                await expect(user, "DELETE", path, {"auth": password_login(bob.user_id, "bobspassword")}, status=403)
                await expect(user, "GET", path)
                await expect(user, "DELETE", path, {"auth": password_login(user.user_id, "superuser")})
                await expect(user, "GET", path, status=404)

        await on_both(self, scenario)

    async def test_profile(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await side.register("alice")
            anon = side.anonymous()
            me = q(alice.user_id)
            with case("PUT /profile/:user_id/avatar_url sets my avatar"):
                await expect(alice, "PUT", f"{V3}/profile/{me}/avatar_url", {"avatar_url": "mxc://example.com/SEsfnsuifSDFSSEF"})
            with case("GET /profile/:user_id/avatar_url publicly accessible"):
                body = await expect(anon, "GET", f"{V3}/profile/{me}/avatar_url")
                assert body == {"avatar_url": "mxc://example.com/SEsfnsuifSDFSSEF"}, body
            with case("PUT /profile/:user_id/displayname sets my name"):
                await expect(alice, "PUT", f"{V3}/profile/{me}/displayname", {"displayname": "my_display_name"})
            with case("GET /profile/:user_id/displayname publicly accessible"):
                body = await expect(anon, "GET", f"{V3}/profile/{me}/displayname")
                assert body == {"displayname": "my_display_name"}, body

        await on_both(self, scenario)

    async def test_request_encoding(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            with case("POST rejects invalid utf-8 in JSON"):
                await expect(side.anonymous(), "POST", V3 + "/register", data=b'{ "test":"a\x81" }', status=400, errcode="M_NOT_JSON")

        await on_both(self, scenario)

    async def test_content(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await side.register("alice")
            text = b"Here is the content I am uploading"
            uri = ""
            with case("POST /media/v3/upload can create an upload"):
                anon = side.anonymous()
                body = await expect(anon, "POST", f"/_matrix/media/v3/upload?access_token={alice.access_token}", data=text,
                                    headers={"Content-Type": "text/plain"})
                uri = body["content_uri"]
                assert uri.startswith("mxc://"), body
            with case("GET /media/v3/download can fetch the value again"):
                server, media_id = uri[len("mxc://"):].split("/", 1)
                # Complement downloads without authentication: the legacy endpoint, which
                # both servers here serve as long as enable_authenticated_media is off.
                code, got = await alice.raw("GET", f"/_matrix/client/v1/media/download/{server}/{media_id}")
                assert code == 200 and got == text, (code, got)

        await on_both(self, scenario)

    async def test_server_capabilities_and_versions(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await side.register("alice")
            with case("GET /capabilities is present and well formed for registered user"):
                caps = (await alice.get("/capabilities"))["capabilities"]
                assert "m.room_versions" in caps and "m.change_password" in caps, caps
            with case("GET /v3/capabilities is not public"):
                await expect(side.anonymous(), "GET", V3 + "/capabilities", status=401)
            with case("Version responds 200 OK with valid structure"):
                body = await expect(side.anonymous(), "GET", "/_matrix/client/versions")
                assert body["versions"] and all(isinstance(v, str) for v in body["versions"]), body
                assert isinstance(body.get("unstable_features", {}), dict), body

        await on_both(self, scenario)

    async def test_unknown_endpoints(self) -> None:
        """404 M_UNRECOGNIZED for unknown paths, 405 M_UNRECOGNIZED for a known path with the
        wrong method. Complement's homeservers serve every API on one port, as this WSPR's
        client listener does here (Synapse's listener here carries client and federation)."""
        listeners = {"client": {"bind_address": "127.0.0.1", "port": 0, "resources": [{"names": ["client", "federation"]}]}}

        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await side.register("alice")

            async def unknown(path: str) -> None:
                await expect(alice, "GET", path, status=404, errcode="M_UNRECOGNIZED")

            async def wrong_method(method: str, path: str) -> None:
                await expect(alice, method, path, status=405, errcode="M_UNRECOGNIZED")

            with case("Unknown prefix"):
                await unknown("/_matrix/unknown")
            with case("Client-server endpoints"):
                for path in ("/_matrix/client/unknown", "/_matrix/client/v1/unknown", "/_matrix/client/v3/room/unknown"):
                    await unknown(path)
                await wrong_method("PUT", "/_matrix/client/v3/login")
            with case("Server-server endpoints"):
                for path in ("/_matrix/federation/unknown", "/_matrix/federation/v1/unknown"):
                    await unknown(path)
                await wrong_method("PUT", "/_matrix/federation/v1/version")
            with case("Key endpoints"):
                for path in ("/_matrix/key/unknown", "/_matrix/key/v2/unknown"):
                    await unknown(path)
                await wrong_method("PUT", "/_matrix/key/v2/query")
            with case("Media endpoints"):
                for path in ("/_matrix/media/unknown", "/_matrix/media/v3/unknown"):
                    await unknown(path)
                await wrong_method("PATCH", "/_matrix/media/v3/upload")

        await on_both(self, scenario, listeners=listeners)
