"""A homeserver as organisations run it: behind a real nginx that terminates TLS on port
443, one plain listener serving both the client and the federation API, federation
delegated with /.well-known/matrix/server to the proxy's second port.

The proxied server is named ``localhost`` (no port), so another server (a second WSPR,
a real Synapse) finds it the way the spec says: https://localhost/.well-known/matrix/server
(nginx on 443) names ``localhost:<proxy port>``, and every federation request goes through
nginx. Port 443 is needed (root, as in CI); a test that cannot bind it is skipped, saying
so, and one that finds it taken fails. Clients
come from other loopback addresses (127.0.0.2, 127.0.0.3) so the address nginx forwards
differs from nginx's own: the devices' last_seen_ip and the login rate limit use it."""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote

import treq
from twisted.internet import reactor, ssl
from twisted.trial import unittest
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from tests.federation.helpers import LOOPBACK_FEDERATION, start_federating, wait_for
from tests.support.nginx import start_nginx
from tests.support.synapse import free_port, start_synapse_peer, synapse_client
from tests.support.wspr import MatrixClient, start_homeserver

BASE = "https://localhost"  # nginx on 443


@implementer(IPolicyForHTTPS)
class _TrustOnly:
    """Verifies the proxy's certificate against exactly this one (self-signed) certificate."""

    def __init__(self, pem: bytes) -> None:
        self._root = ssl.Certificate.loadPEM(pem)

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        return ssl.optionsForClientTLS(hostname.decode("ascii"), trustRoot=self._root)


def client_from(source_ip: str, cert_pem: bytes) -> type[MatrixClient]:
    """A MatrixClient class whose requests leave from ``source_ip`` and trust the proxy's certificate."""
    policy = _TrustOnly(cert_pem)

    class ProxiedClient(MatrixClient):
        async def raw(
            self, method: str, path: str, body: Any = None, *, data: bytes | None = None, headers: dict[str, str] | None = None
        ) -> tuple[int, Any]:
            hdrs = {"Content-Type": "application/json"}
            if self.access_token:
                hdrs["Authorization"] = f"Bearer {self.access_token}"
            hdrs.update(headers or {})
            payload = data if data is not None else (json.dumps(body).encode() if body is not None else None)
            agent = Agent(reactor, contextFactory=policy, pool=HTTPConnectionPool(reactor, persistent=False), bindAddress=(source_ip, 0))
            resp = await treq.request(method, (self.base_url + path).encode(), data=payload, headers={k: [v] for k, v in hdrs.items()}, agent=agent)
            content = await resp.content()
            try:
                parsed = json.loads(content) if content else None
            except ValueError:
                parsed = content
            return resp.code, parsed

    return ProxiedClient


class ReverseProxyTest(unittest.TestCase):
    timeout = 180

    async def _proxied(self, **overrides: Any) -> tuple[Any, Any, bytes]:
        """The server named "localhost" behind nginx (443 and the delegated port)."""
        proxy_port = free_port()
        proxied = await start_homeserver(
            self,
            server_name="localhost",
            start_extras=True,
            public_baseurl="https://localhost/",
            well_known_server=f"localhost:{proxy_port}",
            listeners={
                # The one listener nginx sends everything to: client and federation.
                "client": {
                    "bind_address": "127.0.0.1",
                    "port": 0,
                    "resources": [{"names": ["client", "federation"]}],
                    "x_forwarded": True,
                    "trusted_proxies": ["127.0.0.1/32", "::1/128"],
                },
                "federation": {"enabled": False},
            },
            federation=dict(LOOPBACK_FEDERATION),
            **overrides,
        )
        directory = os.path.dirname(proxied.config_path)
        cert = os.path.join(directory, "tls.crt")  # wspr init's self-signed pair for "localhost"
        with open(cert, "rb") as f:
            cert_pem = f.read()
        nginx = await start_nginx(
            self, upstream_port=proxied.hs.client_port, cert=cert, key=os.path.join(directory, "tls.key"), ports=[443, proxy_port]
        )
        code, body = await client_from("127.0.0.2", cert_pem)(BASE).raw("GET", "/.well-known/matrix/server")
        self.assertEqual((code, body), (200, {"m.server": f"localhost:{proxy_port}"}))
        return proxied, nginx, cert_pem

    async def _federate(self, alice: MatrixClient, bob: MatrixClient, nginx: Any) -> None:
        """Federation both ways: the other server reaches "localhost" only through nginx."""
        room_id = (await bob.post("/createRoom", {"invite": [alice.user_id]}))["room_id"]

        async def invited() -> bool:
            return room_id in (await alice.sync())["rooms"].get("invite", {})

        await wait_for(invited, timeout=30)
        await alice.post(f"/join/{quote(room_id)}")
        await bob.send_message(room_id, "hello through the proxy")
        await alice.send_message(room_id, "and back")

        async def seen(client: MatrixClient, body: str) -> bool:
            chunk = (await client.get(f"/rooms/{quote(room_id)}/messages?dir=b&limit=20"))["chunk"]
            return any(e.get("content", {}).get("body") == body for e in chunk)

        await wait_for(lambda: seen(alice, "hello through the proxy"), timeout=30)
        await wait_for(lambda: seen(bob, "and back"), timeout=30)
        # The other server's requests went through the proxy: the well-known on 443, then
        # keys and the invite or transactions on the delegated port.
        log = nginx.access_log
        self.assertRegex(log, r'127\.0\.0\.1 "GET /\.well-known/matrix/server HTTP/1\.1" 200')
        self.assertRegex(log, r'"GET /_matrix/key/v2/server(/\S*)? HTTP/1\.1" 200')
        self.assertRegex(log, r'"PUT /_matrix/federation/v\d/(send|invite)/\S+ HTTP/1\.1" 200')

    async def test_client_addresses_and_a_wspr_peer(self) -> None:
        _, nginx, cert_pem = await self._proxied(rate_limits={"enabled": True, "login": {"per_second": 0.001, "burst": 2}})
        Alice = client_from("127.0.0.2", cert_pem)
        Mallory = client_from("127.0.0.3", cert_pem)

        # The login limit counts per forwarded address: 127.0.0.3 runs out, 127.0.0.2 does not
        # (without x_forwarded both would be nginx's 127.0.0.1, one budget).
        guess = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": "wrong"}
        codes = [(await Mallory(BASE).raw("POST", "/_matrix/client/v3/login", guess))[0] for _ in range(3)]
        self.assertEqual(codes, [403, 403, 429])
        await Alice.register(BASE, "alice")
        login = await Alice(BASE).request(
            "POST",
            "/_matrix/client/v3/login",
            {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": "correct horse"},
        )
        self.assertEqual(login["well_known"], {"m.homeserver": {"base_url": "https://localhost/"}})
        alice = Alice(BASE, login["access_token"], login["user_id"], login["device_id"])

        # The device's address is the client's, whatever X-Forwarded-For the client sends.
        await alice.raw("GET", "/_matrix/client/v3/account/whoami", headers={"X-Forwarded-For": "6.6.6.6"})

        async def last_seen_ip_is(expected: str) -> bool:
            devices = (await alice.get("/devices"))["devices"]
            return next(d["last_seen_ip"] for d in devices if d["device_id"] == alice.device_id) == expected

        await wait_for(lambda: last_seen_ip_is("127.0.0.2"))

        other = await start_federating(self)
        bob = await MatrixClient.register(other.base_url, "bob")
        await self._federate(alice, bob, nginx)

    async def test_a_synapse_peer(self) -> None:
        _, nginx, cert_pem = await self._proxied()
        alice = await client_from("127.0.0.2", cert_pem).register(BASE, "alice")
        synapse = await start_synapse_peer(self, "wspr-proxy-synapse-")
        bob = await synapse_client(synapse, "bob")
        await self._federate(alice, bob, nginx)
