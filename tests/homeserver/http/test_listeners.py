"""Listener resources (Synapse's listeners[].resources[].names) and
/.well-known/matrix/server: the configuration, and what each listener answers over HTTP."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import treq
from twisted.internet import reactor
from twisted.trial import unittest
from twisted.web.client import HTTPConnectionPool

from homeserver.config import ConfigError, parse_config
from homeserver.http.listeners import path_kind
from tests.support.wspr import start_homeserver


def _parse(**data: Any) -> Any:
    base: dict[str, Any] = {"server_name": "example.org", "listeners": {"federation": {"enabled": False}}, "sfu": {"enabled": False}}
    for key, value in data.items():
        if key == "listeners":
            base["listeners"].update(value)
        else:
            base[key] = value
    return parse_config(base, tempfile.mkdtemp())


async def _get(base: str, path: str) -> tuple[int, bytes, str]:
    resp = await treq.get((base + path).encode(), pool=HTTPConnectionPool(reactor, persistent=False))
    body = await resp.content()
    return resp.code, body, (resp.headers.getRawHeaders(b"Content-Type") or [b""])[0].decode()


class ListenerConfigTest(unittest.TestCase):
    def test_defaults_and_synapse_shape(self) -> None:
        config = _parse()
        self.assertEqual(config.client_listener.resources, ("client",))
        self.assertEqual(config.federation_listener.resources, ("federation",))
        self.assertEqual(config.metrics_listener.resources, ("metrics",))
        config = _parse(
            listeners={
                "client": {
                    "port": 8008,
                    "x_forwarded": True,
                    "resources": [{"names": ["client", "federation"], "compress": False}, {"names": ["metrics", "client"]}],
                },
                "metrics": {"x_forwarded": True, "trusted_proxies": ["10.0.0.0/8"]},
            }
        )
        self.assertEqual(config.client_listener.resources, ("client", "federation", "metrics"))
        self.assertTrue(config.client_listener.x_forwarded)
        self.assertEqual(config.metrics_listener.trusted_proxies, ("10.0.0.0/8",))

    def test_bad_resources_name_the_key(self) -> None:
        for resources, key in [
            ([{"names": ["client", "replication"]}], "listeners.client.resources[0].names"),
            ([{"names": []}], "listeners.client.resources[0].names"),
            (["client"], "listeners.client.resources[0]"),
            ([{"names": ["client"], "tls": True}], "listeners.client.resources[0].tls"),
            ([{"names": ["client"], "compress": "yes"}], "listeners.client.resources[0].compress"),
            ([], "listeners.client.resources"),
        ]:
            with self.assertRaises(ConfigError) as cm:
                _parse(listeners={"client": {"resources": resources}})
            self.assertEqual(cm.exception.key, key, resources)

    def test_well_known_server(self) -> None:
        self.assertIsNone(_parse().well_known_server)
        # As Synapse's ServerWellKnownResource: the server name, on 443 unless it has a port.
        self.assertEqual(_parse(serve_server_wellknown=True).well_known_server, "example.org:443")
        self.assertEqual(_parse(server_name="example.org:8448", serve_server_wellknown=True).well_known_server, "example.org:8448")
        self.assertEqual(_parse(well_known_server="matrix.example.org:443").well_known_server, "matrix.example.org:443")
        with self.assertRaises(ConfigError) as cm:
            _parse(well_known_server="https://matrix.example.org/")
        self.assertEqual(cm.exception.key, "well_known_server")

    def test_path_kinds(self) -> None:
        for path, kind in [
            ("/_matrix/federation/v1/send/1", "federation"),
            ("/_matrix/key/v2/server", "federation"),
            ("/_matrix/federation/v1/media/download/abc", "federation_media"),
            ("/_matrix/media/v3/download/example.org/abc", "legacy_media"),
            ("/_matrix/client/v1/media/download/example.org/abc", "client_media"),
            ("/_matrix/client/v3/sync", "client"),
            ("/.well-known/matrix/server", "client"),
            ("/_synapse/admin/v1/users", "client"),
            ("/_synapse/metrics", "metrics"),
            ("/metrics", "metrics"),
            ("/", "web"),
            ("/room/abc", "web"),
        ]:
            self.assertEqual(path_kind(path), kind, path)


class ListenerResourcesTest(unittest.TestCase):
    timeout = 60

    async def test_one_plain_listener_for_client_and_federation(self) -> None:
        server = await start_homeserver(
            self,
            listeners={"client": {"bind_address": "127.0.0.1", "port": 0, "resources": [{"names": ["client", "federation"]}]}},
            serve_server_wellknown=True,
        )
        base = server.base_url
        code, body, _ = await _get(base, "/_matrix/federation/v1/version")
        self.assertEqual((code, json.loads(body)["server"]["name"]), (200, "WSPR"))
        code, body, _ = await _get(base, "/_matrix/key/v2/server")
        self.assertEqual((code, json.loads(body)["server_name"]), (200, "localhost"))
        code, _, _ = await _get(base, "/_matrix/client/versions")
        self.assertEqual(code, 200)
        code, body, ctype = await _get(base, "/.well-known/matrix/server")
        self.assertEqual((code, json.loads(body), ctype), (200, {"m.server": "localhost:443"}, "application/json"))
        code, _, _ = await _get(base, "/_synapse/metrics")
        self.assertEqual(code, 404)  # not a resource of this listener

    async def test_listener_serves_only_its_resources(self) -> None:
        web = tempfile.mkdtemp()
        with open(os.path.join(web, "index.html"), "w") as f:
            f.write("<html>the app</html>")
        server = await start_homeserver(
            self,
            listeners={"client": {"bind_address": "127.0.0.1", "port": 0, "resources": [{"names": ["static", "metrics"]}]}},
            web_client={"enabled": True, "path": web},
        )
        base = server.base_url
        code, body, _ = await _get(base, "/rooms/abc")
        self.assertEqual((code, body), (200, b"<html>the app</html>"))
        code, body, _ = await _get(base, "/_matrix/client/versions")
        self.assertEqual((code, json.loads(body)["errcode"]), (404, "M_UNRECOGNIZED"))
        code, _, _ = await _get(base, "/_matrix/federation/v1/version")
        self.assertEqual(code, 404)
        code, body, _ = await _get(base, "/_synapse/metrics")
        self.assertEqual(code, 200)
        self.assertIn(b"wspr_http_requests_total", body)

    async def test_server_well_known_off_by_default(self) -> None:
        server = await start_homeserver(self)
        code, body, ctype = await _get(server.base_url, "/.well-known/matrix/server")
        # Synapse's answer when serve_server_wellknown is off.
        self.assertEqual((code, ctype, body), (404, "text/plain", b"404. Is anything ever truly *well* known?\n"))
        code, _, _ = await _get(server.base_url, "/_matrix/federation/v1/version")
        self.assertEqual(code, 404)  # the client listener does not serve federation by default
