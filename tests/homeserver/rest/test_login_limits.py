"""Password guessing is limited per (account, client address), at /login and in
user-interactive auth, without letting one attacker lock the owner out; behind a trusted
reverse proxy the client address comes from X-Forwarded-For, and only then (issue 9,
findings 5 and 6; issue 11, x_forwarded)."""

from __future__ import annotations

import json
from typing import Any

import treq
from twisted.internet import reactor, task
from twisted.trial import unittest
from twisted.web.client import Agent, HTTPConnectionPool

from tests.homeserver.e2e._helpers import Ed25519, cross_signing_key
from tests.support.wspr import MatrixClient, RunningHomeServer, start_homeserver

ATTACKER = "203.0.113.66"
OWNER = "198.51.100.7"
# The limits as configured by default, turned on (the test servers turn them off).
LIMITS_ON = {"enabled": True}


async def request(
    server: RunningHomeServer,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    forwarded_for: str | None = None,
    source: str | None = None,
) -> tuple[int, Any, Any]:
    """One request from ``source`` (a loopback address to connect from) with an optional
    X-Forwarded-For; returns (status, JSON body, response headers)."""
    headers = {"Content-Type": ["application/json"]}
    if token:
        headers["Authorization"] = [f"Bearer {token}"]
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = [forwarded_for]
    pool = HTTPConnectionPool(reactor, persistent=False)
    agent = Agent(reactor, pool=pool, bindAddress=(source, 0) if source else None)
    resp = await treq.request(
        method,
        (server.base_url + path).encode(),
        data=json.dumps(body).encode() if body is not None else None,
        headers=headers,
        agent=agent,
    )
    content = await resp.content()
    return resp.code, json.loads(content) if content else None, resp.headers


async def last_seen_ip(client: MatrixClient) -> str:
    """The device's last_seen_ip once recorded (the server writes it after answering)."""
    for _ in range(100):
        ip = (await client.get(f"/devices/{client.device_id}")).get("last_seen_ip")
        if ip:
            return ip
        await task.deferLater(reactor, 0.05, lambda: None)
    raise AssertionError("last_seen_ip never recorded")


def login_body(user: str, password: str) -> dict[str, Any]:
    return {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": password}


def password_auth(user_id: str, password: str, session: str | None) -> dict[str, Any]:
    auth: dict[str, Any] = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user_id}, "password": password}
    if session:
        auth["session"] = session
    return auth


class LoginLimitsTest(unittest.TestCase):
    database = "sqlite"
    timeout = 120

    def assert_limited(self, code: int, body: Any, headers: Any) -> None:
        self.assertEqual(code, 429, body)
        self.assertEqual(body["errcode"], "M_LIMIT_EXCEEDED")
        self.assertEqual(body["error"], "Too Many Requests")
        self.assertIsInstance(body["retry_after_ms"], int)
        self.assertGreater(body["retry_after_ms"], 0)
        retry_after = headers.getRawHeaders("Retry-After")
        self.assertEqual(retry_after, [str(-(-body["retry_after_ms"] // 1000))])

    async def test_failed_guesses_from_one_address_get_429(self) -> None:
        server = await start_homeserver(self, database=self.database, rate_limits=LIMITS_ON)
        await MatrixClient.register(server.base_url, "bob", "right")
        codes = []
        # Without x_forwarded on the listener, X-Forwarded-For changes nothing.
        for i in range(3):
            code, body, _ = await request(
                server, "POST", "/_matrix/client/v3/login", login_body("bob", "wrong"), forwarded_for=f"192.0.2.{i}"
            )
            codes.append(code)
        self.assertEqual(codes, [403, 403, 403])
        code, body, headers = await request(
            server, "POST", "/_matrix/client/v3/login", login_body("bob", "wrong"), forwarded_for="192.0.2.99"
        )
        self.assert_limited(code, body, headers)
        # The right password from the same address waits too: otherwise the 429 would only
        # slow down the wrong guesses, and a 403 would tell the attacker he was wrong.
        code, body, headers = await request(server, "POST", "/_matrix/client/v3/login", login_body("bob", "right"))
        self.assert_limited(code, body, headers)

    async def test_lockout_attempt_through_trusted_proxy(self) -> None:
        # Every client reaches the server through a reverse proxy on loopback.
        server = await start_homeserver(
            self, database=self.database, rate_limits=LIMITS_ON,
            listeners={"client": {"bind_address": "127.0.0.1", "port": 0, "x_forwarded": True}},
        )
        await MatrixClient.register(server.base_url, "bob", "right")
        for _ in range(12):
            await request(server, "POST", "/_matrix/client/v3/login", login_body("bob", "wrong"), forwarded_for=ATTACKER)
        code, body, headers = await request(
            server, "POST", "/_matrix/client/v3/login", login_body("bob", "wrong"), forwarded_for=ATTACKER
        )
        self.assert_limited(code, body, headers)
        # Bob, from his own address, logs in at once, several times.
        for _ in range(3):
            code, body, _ = await request(
                server, "POST", "/_matrix/client/v3/login", login_body("bob", "right"), forwarded_for=OWNER
            )
            self.assertEqual(code, 200, body)
        # His two wrong tries from his own address are his own budget, not the attacker's.
        for _ in range(2):
            code, body, _ = await request(
                server, "POST", "/_matrix/client/v3/login", login_body("bob", "typo"), forwarded_for=OWNER
            )
            self.assertEqual(code, 403, body)
        code, body, _ = await request(server, "POST", "/_matrix/client/v3/login", login_body("bob", "right"), forwarded_for=OWNER)
        self.assertEqual(code, 200, body)

    async def test_lockout_attempt_from_another_address(self) -> None:
        # No proxy: the attacker and bob connect from different (loopback) addresses.
        server = await start_homeserver(self, database=self.database, rate_limits=LIMITS_ON)
        await MatrixClient.register(server.base_url, "bob", "right")
        for _ in range(12):
            code, body, headers = await request(
                server, "POST", "/_matrix/client/v3/login", login_body("bob", "wrong"), source="127.0.0.2"
            )
        self.assert_limited(code, body, headers)
        code, body, _ = await request(server, "POST", "/_matrix/client/v3/login", login_body("bob", "right"), source="127.0.0.3")
        self.assertEqual(code, 200, body)

    async def test_untrusted_peer_forwarded_for_is_ignored(self) -> None:
        # Only 127.0.0.1 is a trusted proxy; the attacker connects from 127.0.0.2 and sends
        # a different X-Forwarded-For with every guess.
        server = await start_homeserver(
            self, database=self.database, rate_limits=LIMITS_ON,
            listeners={"client": {"bind_address": "127.0.0.1", "port": 0, "x_forwarded": True, "trusted_proxies": ["127.0.0.1/32"]}},
        )
        bob = await MatrixClient.register(server.base_url, "bob", "right")
        for i in range(3):
            code, _, _ = await request(
                server, "POST", "/_matrix/client/v3/login", login_body("bob", "wrong"),
                forwarded_for=f"198.51.100.{i + 1}", source="127.0.0.2",
            )
            self.assertEqual(code, 403)
        code, body, headers = await request(
            server, "POST", "/_matrix/client/v3/login", login_body("bob", "wrong"), forwarded_for="198.51.100.99", source="127.0.0.2"
        )
        self.assert_limited(code, body, headers)
        # The device's last_seen_ip is the untrusted peer's, not what it claimed.
        await request(server, "GET", "/_matrix/client/v3/account/whoami", token=bob.access_token, forwarded_for="192.0.2.1", source="127.0.0.2")
        self.assertEqual(await last_seen_ip(bob), "127.0.0.2")

    async def test_last_seen_ip_is_the_forwarded_address(self) -> None:
        server = await start_homeserver(
            self, database=self.database,
            listeners={"client": {"bind_address": "127.0.0.1", "port": 0, "x_forwarded": True}},
        )
        code, body, _ = await request(server, "POST", "/_matrix/client/v3/register", {"username": "bob", "password": "right"})
        self.assertEqual(code, 401, body)
        code, body, _ = await request(
            server, "POST", "/_matrix/client/v3/register",
            {"username": "bob", "password": "right", "auth": {"type": "m.login.dummy", "session": body["session"]}},
        )
        bob = MatrixClient(server.base_url, body["access_token"], body["user_id"], body["device_id"])
        # The client wrote a left-most entry of its own; the proxy appended the address it
        # saw (a second proxy on loopback passed it on): the right-most untrusted entry wins.
        await request(
            server, "GET", "/_matrix/client/v3/account/whoami", token=bob.access_token,
            forwarded_for=f"10.9.9.9, {OWNER}, 127.0.0.1",
        )
        self.assertEqual(await last_seen_ip(bob), OWNER)


class UIAPasswordLimitsTest(unittest.TestCase):
    """Wrong passwords in user-interactive auth count as failed attempts too: 429 after three,
    on every endpoint that asks for the password, per (account, address)."""

    database = "sqlite"
    timeout = 120

    async def _guess(
        self, server: RunningHomeServer, bob: MatrixClient, method: str, path: str, body: dict[str, Any], ip: str | None
    ) -> list[int]:
        codes = []
        session = None
        for _ in range(4):
            code, resp, headers = await request(
                server, method, path, {**body, "auth": password_auth(bob.user_id, "wrong", session)},
                token=bob.access_token, forwarded_for=ip,
            )
            codes.append(code)
            if code == 401:
                session = resp["session"]
                self.assertEqual(resp.get("errcode"), "M_FORBIDDEN")
            elif code == 429:
                self.assertEqual(resp["errcode"], "M_LIMIT_EXCEEDED")
                self.assertGreater(resp["retry_after_ms"], 0)
                self.assertTrue(headers.getRawHeaders("Retry-After"))
        return codes

    async def test_every_uia_password_endpoint_is_limited(self) -> None:
        server = await start_homeserver(
            self, database=self.database, rate_limits=LIMITS_ON,
            listeners={"client": {"bind_address": "127.0.0.1", "port": 0, "x_forwarded": True}},
        )
        bob = await MatrixClient.register(server.base_url, "bob", "right")
        other = await MatrixClient.login(server.base_url, "bob", "right")
        # Cross-signing keys exist, so replacing them needs the password.
        master = Ed25519()
        await bob.post("/keys/device_signing/upload", {"master_key": cross_signing_key(bob.user_id, master, "master")})
        replacement = {"master_key": cross_signing_key(bob.user_id, Ed25519(), "master")}
        endpoints: list[tuple[str, str, dict[str, Any]]] = [
            ("POST", "/_matrix/client/v3/account/password", {"new_password": "mine now"}),
            ("DELETE", f"/_matrix/client/v3/devices/{other.device_id}", {}),
            ("POST", "/_matrix/client/v3/delete_devices", {"devices": [other.device_id]}),
            ("POST", "/_matrix/client/v3/keys/device_signing/upload", replacement),
            ("POST", "/_matrix/client/v3/account/deactivate", {}),
        ]
        for i, (method, path, body) in enumerate(endpoints):
            codes = await self._guess(server, bob, method, path, body, f"203.0.113.{i + 1}")
            self.assertEqual(codes, [401, 401, 401, 429], path)
        # The owner, from another address, still gets through with the right password.
        code, resp, _ = await request(
            server, "DELETE", f"/_matrix/client/v3/devices/{other.device_id}", {}, token=bob.access_token, forwarded_for=OWNER
        )
        self.assertEqual(code, 401)
        code, resp, _ = await request(
            server, "DELETE", f"/_matrix/client/v3/devices/{other.device_id}",
            {"auth": password_auth(bob.user_id, "right", resp["session"])}, token=bob.access_token, forwarded_for=OWNER,
        )
        self.assertEqual(code, 200, resp)

    async def test_uia_and_login_share_the_budget(self) -> None:
        # Guessing the password through UIA and through /login from one address is one
        # budget: both guess the same secret.
        server = await start_homeserver(self, database=self.database, rate_limits=LIMITS_ON)
        bob = await MatrixClient.register(server.base_url, "bob", "right")
        codes = await self._guess(server, bob, "POST", "/_matrix/client/v3/account/password", {"new_password": "x"}, None)
        self.assertEqual(codes, [401, 401, 401, 429])
        code, body, _ = await request(server, "POST", "/_matrix/client/v3/login", login_body("bob", "wrong"))
        self.assertEqual((code, body["errcode"]), (429, "M_LIMIT_EXCEEDED"))


class LoginLimitsTestPostgres(LoginLimitsTest):
    database = "postgresql"


class UIAPasswordLimitsTestPostgres(UIAPasswordLimitsTest):
    database = "postgresql"


class SameAsSynapseTest(unittest.TestCase):
    """The 429 of too many wrong passwords at /login as Synapse answers it: status, body and
    Retry-After header; WSPR's 429 in user-interactive auth has the same shape. (Synapse
    1.163 does not limit wrong passwords in UIA at all: its UIA limiter only counts a
    LoginError that escapes check_ui_auth, and a wrong password becomes the 401 instead.)"""

    timeout = 180

    async def _post(self, url: str, body: Any, token: str | None = None) -> tuple[int, Any, list[str] | None]:
        headers = {"Content-Type": ["application/json"]}
        if token:
            headers["Authorization"] = [f"Bearer {token}"]
        resp = await treq.post(
            url.encode(), data=json.dumps(body).encode(), headers=headers, pool=HTTPConnectionPool(reactor, persistent=False)
        )
        return resp.code, json.loads(await resp.content()), resp.headers.getRawHeaders("Retry-After")

    async def _logins(self, base_url: str, user_id: str) -> list[tuple[int, Any, list[str] | None]]:
        return [await self._post(base_url + "/_matrix/client/v3/login", login_body(user_id, "wrong")) for _ in range(4)]

    @staticmethod
    def _shape(answer: tuple[int, Any, list[str] | None]) -> Any:
        code, body, retry_after = answer
        if code != 429:
            return (code, body.get("errcode"))
        ceil_seconds = -(-body["retry_after_ms"] // 1000)
        return (code, sorted(body), body["errcode"], body["error"], type(body["retry_after_ms"]).__name__, retry_after == [str(ceil_seconds)])

    async def test_429_matches_synapse(self) -> None:
        from tests.support.synapse import start_synapse_peer, synapse_client

        failed = {"per_second": 0.17, "burst_count": 3}
        synapse = await start_synapse_peer(self, extra_config={"rc_login": {"failed_attempts": failed}})
        wspr = await start_homeserver(self, rate_limits={"enabled": True})
        theirs = [self._shape(a) for a in await self._logins(synapse.client_url, (await synapse_client(synapse, "bob")).user_id)]
        bob = await MatrixClient.register(wspr.base_url, "bob")
        mine = [self._shape(a) for a in await self._logins(wspr.base_url, bob.user_id)]
        self.assertEqual(mine, theirs)
        self.assertEqual([a[0] for a in theirs], [403, 403, 403, 429])
        uia = await self._post(
            wspr.base_url + "/_matrix/client/v3/account/password",
            {"new_password": "new", "auth": password_auth(bob.user_id, "wrong", None)},
            bob.access_token,
        )
        self.assertEqual(self._shape(uia), theirs[3])
