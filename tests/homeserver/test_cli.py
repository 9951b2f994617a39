"""The `wspr` command as a user runs it: init, register, run (as a real process), SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml
from twisted.trial import unittest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wspr(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "homeserver.cli", *args], capture_output=True, text=True, timeout=60, **kw)  # type: ignore[call-overload]


class CliTest(unittest.TestCase):
    timeout = 90

    def test_init_register_run_login_sigterm(self) -> None:
        directory = tempfile.mkdtemp()
        port = _free_port()
        r = _wspr("init", directory, "--server-name", "localhost", "--http-port", str(port), "--federation-port", str(_free_port()))
        self.assertEqual(r.returncode, 0, r.stderr)
        for name in ("wspr.yaml", "signing.key", "tls.crt", "tls.key"):
            self.assertTrue(os.path.exists(os.path.join(directory, name)), name)
        config = os.path.join(directory, "wspr.yaml")
        r = _wspr("register", "-c", config, "Carol", "--password", "s3cret", "--admin")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("@carol:localhost", r.stdout)
        r = _wspr("register", "-c", config, "carol", "--password", "x")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("already exists", r.stderr)

        proc = subprocess.Popen([sys.executable, "-m", "homeserver.cli", "run", "-c", config], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.time() + 30
            while True:
                try:
                    urllib.request.urlopen(base + "/_matrix/client/versions", timeout=2).read()
                    break
                except OSError:
                    if time.time() > deadline or proc.poll() is not None:
                        self.fail("server did not start: " + (proc.stdout.read() if proc.poll() is not None else ""))  # type: ignore[union-attr]
                    time.sleep(0.2)
            body = json.dumps({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "carol"}, "password": "s3cret"}).encode()
            req = urllib.request.Request(base + "/_matrix/client/v3/login", data=body, method="POST", headers={"Content-Type": "application/json"})
            login = json.loads(urllib.request.urlopen(req, timeout=10).read())
            self.assertEqual(login["user_id"], "@carol:localhost")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                self.fail("SIGTERM did not stop the server")
        self.assertEqual(code, 0)

    def test_bad_config_one_line(self) -> None:
        directory = tempfile.mkdtemp()
        self.assertEqual(_wspr("init", directory, "--server-name", "localhost").returncode, 0)
        config = os.path.join(directory, "wspr.yaml")
        with open(config) as f:
            data = yaml.safe_load(f)
        data["listeners"]["client"]["port"] = "eighty"
        with open(config, "w") as f:
            yaml.safe_dump(data, f)
        r = _wspr("run", "-c", config)
        self.assertEqual(r.returncode, 2)
        lines = [line for line in r.stderr.strip().splitlines() if line]
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn("listeners.client.port", lines[0])
        self.assertNotIn("Traceback", r.stderr)


def _init(directory: str, *args: str) -> dict:
    r = _wspr("init", directory, *args)
    assert r.returncode == 0, r.stderr
    with open(os.path.join(directory, "wspr.yaml")) as f:
        return yaml.safe_load(f)


def _edit(directory: str, **changes: dict) -> str:
    path = os.path.join(directory, "wspr.yaml")
    with open(path) as f:
        data = yaml.safe_load(f)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            for sub, sub_value in value.items():
                if isinstance(sub_value, dict) and isinstance(data[key].get(sub), dict):
                    data[key][sub].update(sub_value)
                else:
                    data[key][sub] = sub_value
        else:
            data[key] = value
    with open(path, "w") as f:
        yaml.safe_dump(data, f)
    return path


class _Held:
    """A port some other program listens on."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]


class InitTest(unittest.TestCase):
    timeout = 60

    def test_public_baseurl_default_and_flag(self) -> None:
        """A real domain is reached through a TLS proxy on 443; a loopback name (the test
        set-ups' 127.0.0.1:PORT included) on this machine's client port."""
        for name, expected in [
            ("example.org", "https://example.org/"),
            ("example.org:8448", "https://example.org/"),
            ("[2001:db8::1]:8448", "https://[2001:db8::1]/"),
            ("localhost", "http://localhost:8123/"),
            ("127.0.0.1:8448", "http://localhost:8123/"),
            ("[::1]", "http://localhost:8123/"),
        ]:
            data = _init(tempfile.mkdtemp(), "--server-name", name, "--http-port", "8123")
            self.assertEqual(data["public_baseurl"], expected, name)
        data = _init(tempfile.mkdtemp(), "--server-name", "example.org", "--public-baseurl", "https://matrix.example.org")
        self.assertEqual(data["public_baseurl"], "https://matrix.example.org/")
        self.assertEqual(data["sfu"]["port"], 7880)
        self.assertEqual(_init(tempfile.mkdtemp(), "--server-name", "example.org", "--sfu-port", "7990")["sfu"]["port"], 7990)
        # What `wspr run` would refuse is refused here, before anything is written.
        for args, key in [(["--server-name", "a b"], "server_name"), (["--server-name", "x.org", "--public-baseurl", "ftp://x"], "public_baseurl")]:
            directory = os.path.join(tempfile.mkdtemp(), "data")
            r = _wspr("init", directory, *args)
            self.assertEqual(r.returncode, 2)
            self.assertIn(f"config error: {key}:", r.stderr)
            self.assertFalse(os.path.exists(directory))


class StartupErrorTest(unittest.TestCase):
    """A port that cannot be opened stops `wspr run` with one line naming the key."""

    timeout = 180

    def _run_fails(self, config: str, key: str, port: int) -> None:
        r = _wspr("run", "-c", config)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(f"config error: {key}: port {port} is already in use", r.stderr.strip().splitlines())
        self.assertNotIn("Traceback", r.stderr)

    def test_taken_listener_ports(self) -> None:
        directory = tempfile.mkdtemp()
        _init(directory, "--server-name", "localhost", "--http-port", str(_free_port()), "--federation-port", str(_free_port()))
        _edit(directory, sfu={"enabled": False}, web_client={"enabled": False})
        held = _Held()
        self.addCleanup(held.sock.close)
        config = _edit(directory, listeners={"client": {"port": held.port}})
        self._run_fails(config, "listeners.client.port", held.port)
        config = _edit(directory, listeners={"client": {"port": _free_port()}, "federation": {"port": held.port}})
        self._run_fails(config, "listeners.federation.port", held.port)
        config = _edit(directory, listeners={"federation": {"port": _free_port()}, "metrics": {"enabled": True, "port": held.port}})
        self._run_fails(config, "listeners.metrics.port", held.port)

    def test_second_server_on_one_machine_sfu_port(self) -> None:
        """The SFU runs in its own process: a taken sfu.port is reported by `wspr run` all
        the same; with `wspr init --sfu-port` a second server runs beside the first."""
        held = _Held()  # the first server's SFU
        self.addCleanup(held.sock.close)
        directory = tempfile.mkdtemp()
        http_port = _free_port()
        _init(
            directory, "--server-name", "localhost", "--http-port", str(http_port), "--federation-port", str(_free_port()),
            "--sfu-port", str(held.port), "--public-baseurl", "https://chat.example.org/",
        )
        config = _edit(directory, web_client={"enabled": False}, enable_registration=True)
        self._run_fails(config, "sfu.port", held.port)

        sfu_port = _free_port()
        _init(
            directory, "--force", "--server-name", "localhost", "--http-port", str(http_port), "--federation-port", str(_free_port()),
            "--sfu-port", str(sfu_port), "--public-baseurl", "https://chat.example.org/",
        )
        config = _edit(directory, web_client={"enabled": False})
        r = _wspr("register", "-c", config, "carol", "--password", "s3cret")
        self.assertEqual(r.returncode, 0, r.stderr)
        proc = subprocess.Popen([sys.executable, "-m", "homeserver.cli", "run", "-c", config], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            base = f"http://127.0.0.1:{http_port}"
            deadline = time.time() + 60
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{sfu_port}/healthz", timeout=2).read()
                    break
                except OSError:
                    if time.time() > deadline or proc.poll() is not None:
                        self.fail("server or SFU did not start: " + (proc.stdout.read() if proc.poll() is not None else ""))  # type: ignore[union-attr]
                    time.sleep(0.2)
            # Clients are sent to the public base URL given to init.
            body = json.dumps({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "carol"}, "password": "s3cret"}).encode()
            req = urllib.request.Request(base + "/_matrix/client/v3/login", data=body, method="POST", headers={"Content-Type": "application/json"})
            login = json.loads(urllib.request.urlopen(req, timeout=10).read())
            self.assertEqual(login["well_known"], {"m.homeserver": {"base_url": "https://chat.example.org/"}})
            well_known = json.loads(urllib.request.urlopen(base + "/.well-known/matrix/client", timeout=10).read())
            self.assertEqual(well_known["m.homeserver"]["base_url"].rstrip("/"), "https://chat.example.org")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                self.fail("SIGTERM did not stop the server")
            proc.stdout.close()  # type: ignore[union-attr]
        self.assertEqual(code, 0)
