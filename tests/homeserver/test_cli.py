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
        lines = [l for l in r.stderr.strip().splitlines() if l]
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn("listeners.client.port", lines[0])
        self.assertNotIn("Traceback", r.stderr)
