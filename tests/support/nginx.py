"""A real nginx (Debian's, installed by .ci/run) as the TLS-terminating reverse proxy in
front of a homeserver, on loopback, for the duration of a test.

    proxy = await start_nginx(self, upstream_port=hs.client_port, cert=..., key=..., ports=[443, 8443])
    # https://localhost:443/_matrix/... -> http://127.0.0.1:<upstream_port>/_matrix/...

The configuration is the one README.md shows for production (``/_matrix``,
``/_synapse/client`` and ``/.well-known/matrix`` proxied with ``X-Forwarded-For``), on the
given ports of 127.0.0.1 and ::1. Requests are logged to ``proxy.access_log`` (one line
each: the client address and the request line). The test is skipped, saying so, when
nginx is not installed.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

from twisted.internet import defer, reactor, task, threads
from twisted.trial import unittest

CONFIG = """\
{user}
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    log_format wspr '$remote_addr "$request" $status';
    access_log {dir}/access.log wspr;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;

    server {{
{listen}
        server_name localhost;
        ssl_certificate {cert};
        ssl_certificate_key {key};

        location ~ ^(/_matrix|/_synapse/client|/\\.well-known/matrix) {{
            # No URI after the address: the request line goes up unchanged (federation
            # requests are signed over it).
            proxy_pass http://127.0.0.1:{upstream};
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header Host $host;
            proxy_http_version 1.1;
            client_max_body_size 50M;
        }}
    }}
}}
"""


@dataclass
class Nginx:
    proc: subprocess.Popen[bytes]
    directory: str
    ports: list[int]

    @property
    def access_log(self) -> str:
        with open(os.path.join(self.directory, "access.log"), encoding="utf-8", errors="replace") as f:
            return f.read()

    def error_log(self) -> str:
        try:
            with open(os.path.join(self.directory, "error.log"), encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)


def check_port_free(port: int) -> None:
    """Fails the test when a port the proxy needs is taken (skips when binding it needs
    privileges this process lacks)."""
    with socket.socket() as s:
        # As nginx binds: connections of an earlier run still in TIME_WAIT do not count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except PermissionError as e:
            raise unittest.SkipTest(f"listening on port {port} needs root (or CAP_NET_BIND_SERVICE): {e}") from e
        except OSError as e:
            raise AssertionError(f"port {port} on 127.0.0.1 is taken; the reverse-proxy test needs it: {e}") from e


async def start_nginx(test: unittest.TestCase, *, upstream_port: int, cert: str, key: str, ports: list[int]) -> Nginx:
    binary = nginx_binary()
    if binary is None:
        raise unittest.SkipTest("nginx is not installed (.ci/run installs Debian's nginx)")
    for port in sorted(p for p in ports if p < 1024):
        # A fixed port (443): the tests that need it wait for each other, in whatever trial
        # worker they run, instead of finding it taken.
        await _hold_port_lock(test, port)
    for port in ports:
        check_port_free(port)
    directory = tempfile.mkdtemp(prefix="wspr-nginx-")
    os.chmod(directory, 0o755)
    listen = "\n".join(f"        listen 127.0.0.1:{p} ssl;\n        listen [::1]:{p} ssl;" for p in ports)
    # As root, nginx's workers would otherwise run as nobody, who cannot write here.
    user = "user root root;" if os.geteuid() == 0 else ""
    conf = os.path.join(directory, "nginx.conf")
    with open(conf, "w", encoding="utf-8") as f:
        f.write(CONFIG.format(user=user, dir=directory, listen=listen, cert=cert, key=key, upstream=upstream_port))
    proc = subprocess.Popen(
        [binary, "-p", directory, "-c", conf, "-e", os.path.join(directory, "error.log"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    proxy = Nginx(proc, directory, ports)

    async def stop() -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)  # graceful: the workers finish and exit with it
            try:
                await threads.deferToThread(proc.wait, 10)
            except subprocess.TimeoutExpired:
                proc.kill()
                await threads.deferToThread(proc.wait)
        if proc.stderr is not None:
            proc.stderr.close()
        shutil.rmtree(directory, ignore_errors=True)

    test.addCleanup(lambda: defer.ensureDeferred(stop()))
    deadline = time.monotonic() + 15
    while not all(_listening(p) for p in ports):
        if proc.poll() is not None:
            err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
            raise AssertionError(f"nginx exited ({proc.returncode}): {err} {proxy.error_log()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"nginx did not listen on {ports}: {proxy.error_log()}")
        await task.deferLater(reactor, 0.1, lambda: None)
    return proxy


async def _hold_port_lock(test: unittest.TestCase, port: int, timeout: float = 600) -> None:
    """An exclusive lock on a file named after the port, held until the test's cleanups
    (registered first, so it is released after nginx has stopped)."""
    fd = os.open(os.path.join(tempfile.gettempdir(), f"wspr-test-port-{port}.lock"), os.O_CREAT | os.O_RDWR, 0o600)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise AssertionError(f"port {port} stayed locked by another test for {timeout} s") from None
            await task.deferLater(reactor, 0.2, lambda: None)
    test.addCleanup(os.close, fd)  # closing the file releases the lock


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0
