"""A bad config file fails with one line naming the key."""

from __future__ import annotations

import os
import tempfile

import yaml
from twisted.trial import unittest

from homeserver.cli import main as wspr_main
from homeserver.config import ConfigError, load_config


class ConfigTest(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp()
        assert wspr_main(["init", self.dir, "--server-name", "example.org"]) == 0
        self.path = os.path.join(self.dir, "wspr.yaml")
        with open(self.path) as f:
            self.data = yaml.safe_load(f)

    def _write(self, data: object) -> None:
        with open(self.path, "w") as f:
            yaml.safe_dump(data, f)

    def test_generated_config_loads_with_defaults(self) -> None:
        config = load_config(self.path)
        self.assertEqual(config.server_name, "example.org")
        self.assertFalse(config.enable_registration)
        self.assertTrue(config.rate_limits.enabled)
        self.assertTrue(config.federation.verify_certificates)
        self.assertIn("127.0.0.0/8", config.federation.ip_range_blocklist)
        self.assertTrue(config.database_url.startswith("sqlite:///" + self.dir))
        self.assertEqual(config.client_listener.bind_address, "127.0.0.1")

    def test_every_key_commented(self) -> None:
        with open(self.path) as f:
            text = f.read()
        self.assertGreater(text.count("#"), 25)

    def _expect_error(self, key: str) -> ConfigError:
        with self.assertRaises(ConfigError) as cm:
            load_config(self.path)
        self.assertEqual(cm.exception.key, key)
        self.assertNotIn("\n", str(cm.exception))
        self.assertIn(key, str(cm.exception))
        return cm.exception

    def test_bad_port(self) -> None:
        self.data["listeners"]["client"]["port"] = 99999
        self._write(self.data)
        self._expect_error("listeners.client.port")

    def test_wrong_type(self) -> None:
        self.data["enable_registration"] = "yes please"
        self._write(self.data)
        self._expect_error("enable_registration")

    def test_unknown_key(self) -> None:
        self.data["federation"]["verify_certs"] = False
        self._write(self.data)
        self._expect_error("federation.verify_certs")

    def test_bad_cidr(self) -> None:
        self.data["federation"]["ip_range_blocklist"] = ["not-a-range"]
        self._write(self.data)
        self._expect_error("federation.ip_range_blocklist")

    def test_default_room_version(self) -> None:
        self.assertEqual(load_config(self.path).default_room_version, "11")
        for value, expected in (("1", "1"), (9, "9"), ("12", "12")):
            self.data["default_room_version"] = value
            self._write(self.data)
            self.assertEqual(load_config(self.path).default_room_version, expected)
        for bad in ("13", "0", "9.1"):
            self.data["default_room_version"] = bad
            self._write(self.data)
            self._expect_error("default_room_version")

    def test_rate_limits_off(self) -> None:
        self.data["rate_limits"] = {"enabled": False}
        self._write(self.data)
        config = load_config(self.path)
        self.assertIsNone(config.rate_limits.get("message"))

    def test_bad_database_url(self) -> None:
        self.data["database"]["url"] = "mysql://nope"
        self._write(self.data)
        self._expect_error("database.url")

    def test_invalid_yaml(self) -> None:
        with open(self.path, "w") as f:
            f.write("server_name: [unclosed\n")
        self._expect_error("(file)")

    def test_missing_server_name(self) -> None:
        del self.data["server_name"]
        self._write(self.data)
        self._expect_error("server_name")

    def test_x_forwarded(self) -> None:
        config = load_config(self.path)
        self.assertFalse(config.client_listener.x_forwarded)
        self.assertEqual(config.client_listener.trusted_proxies, ())
        # On, without a list: a proxy on the same machine.
        self.data["listeners"]["client"]["x_forwarded"] = True
        self._write(self.data)
        config = load_config(self.path)
        self.assertTrue(config.client_listener.x_forwarded)
        self.assertEqual(config.client_listener.trusted_proxies, ("127.0.0.0/8", "::1/128"))
        self.data["listeners"]["client"]["trusted_proxies"] = ["10.0.0.0/8", "2001:db8::/32"]
        self._write(self.data)
        self.assertEqual(load_config(self.path).client_listener.trusted_proxies, ("10.0.0.0/8", "2001:db8::/32"))
        self.data["listeners"]["client"]["trusted_proxies"] = ["proxy.example"]
        self._write(self.data)
        self._expect_error("listeners.client.trusted_proxies")
        self.data["listeners"]["client"]["trusted_proxies"] = []
        self._write(self.data)
        self._expect_error("listeners.client.trusted_proxies")

    def test_login_limits(self) -> None:
        config = load_config(self.path)
        self.assertEqual((config.rate_limits.login_failed_attempts.per_second, config.rate_limits.login_failed_attempts.burst), (0.17, 3))
        self.data["rate_limits"]["login_failed_attempts"] = {"per_second": 0.01, "burst": 5}
        self.data["rate_limits"]["login_account"] = {"per_second": 1, "burst": 2}
        self._write(self.data)
        config = load_config(self.path)
        self.assertEqual(config.rate_limits.login_failed_attempts.burst, 5)
        self.assertEqual(config.rate_limits.login_account.per_second, 1.0)
