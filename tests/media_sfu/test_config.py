import os
import tempfile
from typing import Any

from twisted.trial import unittest

from media_sfu.config import SFUConfig

SECRET = "z" * 32


class ConfigTests(unittest.TestCase):
    def test_defaults(self):
        c = SFUConfig.from_dict({"api_secret": SECRET})
        self.assertEqual((c.bind_address, c.port), ("127.0.0.1", 7880))
        self.assertTrue(c.enabled)
        self.assertEqual(c.effective_public_url, "ws://127.0.0.1:7880")
        self.assertIsNone(c.rtc.public_ip)
        self.assertEqual(c.ice_servers, ())

    def test_full(self):
        c = SFUConfig.from_dict({
            "bind_address": "0.0.0.0", "port": 7881, "public_url": "wss://sfu.example.org/",
            "api_key": "k", "api_secret": SECRET,
            "rtc": {"public_ip": "203.0.113.5", "udp_port_min": 50000, "udp_port_max": 50100},
            "ice_servers": [{"urls": ["turn:turn.example.org:3478"], "username": "u", "credential": "p"},
                            {"urls": "stun:stun.example.org"}],
        })
        self.assertEqual(c.public_url, "wss://sfu.example.org")
        self.assertEqual(c.rtc.public_ip, "203.0.113.5")
        self.assertEqual((c.rtc.udp_port_min, c.rtc.udp_port_max), (50000, 50100))
        self.assertEqual(c.ice_servers[0].urls, ("turn:turn.example.org:3478",))
        self.assertEqual(c.ice_servers[1].urls, ("stun:stun.example.org",))

    def test_errors_name_the_key(self):
        cases: dict[str, dict[str, Any]] = {
            "sfu.port": {"port": 70000},
            "sfu.api_secret": {"api_secret": "short"},
            "sfu.bind_address": {"bind_address": "nope"},
            "sfu.public_url": {"public_url": "ftp://x"},
            "sfu.rtc.public_ip": {"rtc": {"public_ip": "x.y"}},
            "sfu.rtc.udp_port_max": {"rtc": {"udp_port_min": 5000, "udp_port_max": 4000}},
            "sfu.ice_servers[0].urls": {"ice_servers": [{"urls": ["http://x"]}]},
            "sfu.ping_timeout": {"ping_interval": 10, "ping_timeout": 5},
            "sfu.bogus": {"bogus": 1},
            "sfu.enabled": {"enabled": "yes"},
        }
        for key, d in cases.items():
            d = {"api_secret": SECRET, **d}
            with self.assertRaises(ValueError) as cm:
                SFUConfig.from_dict(d)
            self.assertTrue(str(cm.exception).startswith(key + ":"), (key, str(cm.exception)))

    def test_disabled_needs_no_secret(self):
        self.assertFalse(SFUConfig.from_dict({"enabled": False}).enabled)

    def test_yaml_file(self):
        fd, path = tempfile.mkstemp(suffix=".yaml")
        with os.fdopen(fd, "w") as f:
            f.write(f"server_name: example.org\nsfu:\n  port: 7999\n  api_secret: {SECRET}\n")
        self.addCleanup(os.unlink, path)
        self.assertEqual(SFUConfig.from_yaml_file(path).port, 7999)
