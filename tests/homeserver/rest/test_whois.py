"""``/admin/whois``: every authenticated request records where and with which client a
session was used (per access token and address, with the latest user agent, written at
most every two minutes as Synapse does), and whois lists it to the user and to admins.
On SQLite and PostgreSQL."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from tests.support.synapse import register_with_shared_secret
from tests.support.wspr import MatrixClient, RunningHomeServer, start_homeserver

SECRET = "whois-secret"
WHOIS = "/_matrix/client/v3/admin/whois/"


def connections(answer: dict[str, Any]) -> list[dict[str, Any]]:
    return answer["devices"][""]["sessions"][0]["connections"]


async def stored(server: RunningHomeServer, user_id: str, want: int) -> list[Any]:
    """The connections written to the database (the write follows the request)."""
    for _ in range(100):
        rows = await server.hs.store.get_user_connections(user_id)
        if len(rows) >= want:
            return rows
        await deferLater(reactor, 0.05, lambda: None)
    return rows


class WhoisTest(unittest.TestCase):
    timeout = 120
    database = "sqlite"

    async def _server(self, **overrides: Any) -> tuple[RunningHomeServer, MatrixClient]:
        server = await start_homeserver(self, registration_shared_secret=SECRET, **overrides)
        body = await deferToThread(register_with_shared_secret, server.base_url, SECRET, "root", "pw", True)
        return server, MatrixClient(server.base_url, body["access_token"], body["user_id"], body["device_id"])

    async def test_sessions_and_user_agents(self) -> None:
        server, root = await self._server()
        alice = await MatrixClient.register(server.base_url, "alice")
        phone = await MatrixClient.login(server.base_url, "alice")
        await alice.raw("GET", "/_matrix/client/v3/account/whoami", headers={"User-Agent": "Desktop/1"})
        await phone.raw("GET", "/_matrix/client/v3/account/whoami", headers={"User-Agent": "Phone/2"})
        # within two minutes, the same token and address are not written again
        await alice.raw("GET", "/_matrix/client/v3/account/whoami", headers={"User-Agent": "Desktop/1.1"})
        answer = await root.get("/admin/whois/" + quote(alice.user_id))
        self.assertEqual(answer["user_id"], alice.user_id)
        agents = sorted(c["user_agent"] for c in connections(answer))
        self.assertEqual(agents, ["Desktop/1", "Phone/2"])
        self.assertTrue(all(c["ip"] == "127.0.0.1" and isinstance(c["last_seen"], int) for c in connections(answer)))
        rows = await stored(server, alice.user_id, 2)
        self.assertEqual(sorted(r.user_agent for r in rows), ["Desktop/1", "Phone/2"])
        # what is stored survives the process: a fresh recorder reads the same from the database
        server.hs.auth.client_ips._recent.clear()
        again = await root.get("/admin/whois/" + quote(alice.user_id))
        self.assertEqual(sorted(c["user_agent"] for c in connections(again)), ["Desktop/1", "Phone/2"])
        # a request without a User-Agent is recorded with an empty one, as Synapse does
        bob = await MatrixClient.register(server.base_url, "bob")
        mine = await bob.get("/admin/whois/" + quote(bob.user_id))
        self.assertEqual([c["user_agent"] for c in connections(mine)], [""])

    async def test_who_may_ask(self) -> None:
        server, root = await self._server()
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        self.assertEqual((await alice.raw("GET", WHOIS + quote(alice.user_id)))[0], 200)
        code, body = await bob.raw("GET", WHOIS + quote(alice.user_id))
        self.assertEqual((code, body["errcode"]), (403, "M_FORBIDDEN"))
        self.assertEqual((await root.raw("GET", WHOIS + quote(alice.user_id)))[0], 200)
        code, body = await root.raw("GET", WHOIS + quote("@x:example.org"))
        self.assertEqual(code, 400)
        code, body = await root.raw("GET", WHOIS + "x")
        self.assertEqual((code, body["errcode"]), (400, "M_INVALID_PARAM"))

    async def test_the_address_behind_a_trusted_proxy(self) -> None:
        server, root = await self._server(
            listeners={"client": {"bind_address": "127.0.0.1", "port": 0, "x_forwarded": True}},
        )
        alice = await MatrixClient.register(server.base_url, "alice")
        await alice.raw("GET", "/_matrix/client/v3/account/whoami", headers={"X-Forwarded-For": "198.51.100.7", "User-Agent": "Proxied/1"})
        answer = await root.get("/admin/whois/" + quote(alice.user_id))
        self.assertEqual([(c["ip"], c["user_agent"]) for c in connections(answer)], [("198.51.100.7", "Proxied/1")])
        rows = await stored(server, alice.user_id, 1)
        self.assertEqual([r.ip for r in rows], ["198.51.100.7"])

    async def test_a_long_user_agent_is_cut(self) -> None:
        server, _ = await self._server()
        alice = await MatrixClient.register(server.base_url, "alice")
        await alice.raw("GET", "/_matrix/client/v3/account/whoami", headers={"User-Agent": "x" * 5000})
        rows = await stored(server, alice.user_id, 1)
        self.assertEqual(len(rows[0].user_agent), 512)


    async def test_old_connections_are_forgotten(self) -> None:
        """After 28 days unseen (Synapse's user_ips_max_age), a connection is dropped; the
        server does so at start and hourly after."""
        server, root = await self._server()
        store = server.hs.store
        day = 24 * 3600 * 1000
        now = int(time.time() * 1000)
        await store.record_client_ip("@old:localhost", "t1", "D", "10.0.0.1", "Old/1", now - 29 * day)
        await store.record_client_ip("@old:localhost", "t2", "D", "10.0.0.2", "Recent/1", now - 27 * day)
        self.assertEqual(await store.prune_client_ips(now - 28 * day), 1)
        answer = await root.get("/admin/whois/" + quote("@old:localhost"))
        self.assertEqual([c["user_agent"] for c in connections(answer)], ["Recent/1"])


class WhoisTestPostgres(WhoisTest):
    database = "postgresql"
