"""Hostile request bodies (issue 9, finding 3): a body over the endpoint's limit is refused
with 413 M_TOO_LARGE and the connection closed before the body is read (declared with
Content-Length) or the moment it passes the limit (chunked), on the client, federation and
metrics listeners; nothing beyond the limit is spooled to the temporary directory; a body
trickled in too slowly is cut off.

The attacks run from a blocking socket in a thread, against a real server in the test's
reactor, while the reactor samples how much the server has spooled to temporary files.
"""

from __future__ import annotations

import json
import os
import select
import socket
import ssl
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from twisted.internet import reactor, task, threads
from twisted.trial import unittest

from homeserver.http.server import Router, Site
from tests.support.synapse import free_port
from tests.support.wspr import MatrixClient, start_homeserver

MiB = 1024 * 1024
CHUNK = 256 * 1024


@dataclass
class Outcome:
    sent: int  # body bytes the client got into the connection before the answer came
    status: int | None
    headers: dict[str, str]
    body: bytes
    closed: bool  # the server closed the connection after answering


def push(port: int, head: bytes, chunks: Iterable[bytes], tls: bool = False, wait_first: float = 2.0) -> Outcome:
    """Sends ``head``, waits up to ``wait_first`` s for an early answer, then sends the
    chunks until the server answers or closes; reads the answer until EOF."""
    sock: socket.socket = socket.create_connection(("127.0.0.1", port), timeout=10)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        sock = ctx.wrap_socket(sock)

    raw = b""
    closed = False

    def answered(timeout: float) -> bool:
        nonlocal raw, closed
        deadline = time.monotonic() + timeout
        while True:
            if not select.select([sock], [], [], max(0.0, deadline - time.monotonic()))[0]:
                return False
            # Under TLS the socket is also readable for session tickets: only bytes count.
            sock.setblocking(False)
            try:
                data = sock.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError):
                continue
            finally:
                sock.settimeout(10)
            if not data:
                closed = True
            raw += data
            return True

    sent = 0
    try:
        sock.sendall(head)
        if not answered(wait_first):
            for chunk in chunks:
                sock.sendall(chunk)
                sent += len(chunk)
                if answered(0):
                    break
    except OSError:
        pass  # cut off by the server
    sock.settimeout(10)
    try:
        while not closed:
            if _complete(raw):
                sock.settimeout(LINGER_WAIT)  # answered: the server must close now
            data = sock.recv(65536)
            if not data:
                closed = True
                break
            raw += data
    except TimeoutError:
        pass
    except OSError:
        closed = True
    sock.close()
    return _parse(sent, raw, closed)


LINGER_WAIT = 5.0


def _complete(raw: bytes) -> bool:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            return len(body) >= int(v)
    return False


def _parse(sent: int, raw: bytes, closed: bool) -> Outcome:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith(b"HTTP/") else None
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower().decode()] = v.strip().decode()
    return Outcome(sent, status, headers, body, closed)


def zeros(total: int, size: int = CHUNK) -> Iterator[bytes]:
    block = b"0" * size
    for _ in range(total // size):
        yield block


def chunked(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    block = b"%x\r\n" % size + b"0" * size + b"\r\n"
    for _ in range(total // size):
        yield block


def request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class SpoolWatcher:
    """The most this process has held in temporary files at once while the attack ran:
    Twisted spools request bodies to unnamed files in the temp dir (O_TMPFILE), so they are
    found through /proc/self/fd."""

    def __init__(self) -> None:
        self.peak = 0
        self._prefix = tempfile.gettempdir().rstrip("/") + "/"
        self._loop = task.LoopingCall(self._sample)

    def _sample(self) -> None:
        total = 0
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
                if target.startswith(self._prefix) and target.endswith(" (deleted)"):
                    total += os.fstat(int(fd)).st_size
            except OSError:
                continue
        self.peak = max(self.peak, total)

    async def during(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        self._loop.start(0.005)
        try:
            return await threads.deferToThread(fn, *args, **kwargs)
        finally:
            self._loop.stop()
            self._sample()


class BodyLimitTest(unittest.TestCase):
    timeout = 120

    def assertRefused(self, out: Outcome, max_sent: int, status: int = 413, errcode: str = "M_TOO_LARGE") -> None:
        self.assertLessEqual(out.sent, max_sent, f"the server read {out.sent} bytes of the body before answering")
        self.assertEqual(out.status, status, out)
        self.assertEqual(json.loads(out.body)["errcode"], errcode)
        self.assertEqual(out.headers.get("content-type"), "application/json")
        self.assertTrue(out.closed, "the server must close the connection")

    async def test_declared_body_over_limit_refused_before_read(self) -> None:
        server = await start_homeserver(self)
        port = server.hs.client_port
        watch = SpoolWatcher()
        head = request_head("POST", "/_matrix/client/v3/login", {"Content-Type": "application/json", "Content-Length": str(50 * MiB)})
        out = await watch.during(push, port, head, zeros(50 * MiB))
        self.assertRefused(out, max_sent=0)
        self.assertEqual(watch.peak, 0)
        # With Expect: 100-continue the refusal comes instead of "100 Continue".
        head = request_head(
            "POST", "/_matrix/client/v3/login", {"Content-Length": str(3 * MiB), "Expect": "100-continue"}
        )
        out = await threads.deferToThread(push, port, head, zeros(3 * MiB))
        self.assertRefused(out, max_sent=0)
        # The server still answers normal requests.
        code, body = await MatrixClient(server.base_url).raw("POST", "/_matrix/client/v3/login", {"type": "m.login.password"})
        self.assertEqual(code, 400, body)

    async def test_chunked_body_cut_off_at_limit(self) -> None:
        server = await start_homeserver(self)
        watch = SpoolWatcher()
        head = request_head("POST", "/_matrix/client/v3/login", {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        out = await watch.during(push, server.hs.client_port, head, chunked(50 * MiB))
        # The client may have filled the socket buffers before the answer reached it.
        self.assertRefused(out, max_sent=16 * MiB)
        self.assertLessEqual(watch.peak, MiB)

    async def test_limit_is_per_endpoint(self) -> None:
        server = await start_homeserver(self, media={"max_upload_size": 3 * MiB})
        alice = await MatrixClient.register(server.base_url, "alice")
        port = server.hs.client_port
        auth = {"Authorization": f"Bearer {alice.access_token}", "Content-Type": "application/octet-stream"}
        # An upload may be bigger than a JSON body...
        code, body = await alice.raw("POST", "/_matrix/media/v3/upload", data=b"x" * (2 * MiB), headers=auth)
        self.assertEqual(code, 200, body)
        # ...up to max_upload_size,
        head = request_head("POST", "/_matrix/media/v3/upload", {**auth, "Content-Length": str(3 * MiB + 1)})
        self.assertRefused(await threads.deferToThread(push, port, head, zeros(4 * MiB)), max_sent=0)
        head = request_head("POST", "/_matrix/media/r0/upload", {**auth, "Transfer-Encoding": "chunked"})
        self.assertRefused(await threads.deferToThread(push, port, head, chunked(40 * MiB)), max_sent=24 * MiB)
        # while a JSON endpoint refuses the same 2 MiB at once.
        head = request_head("PUT", "/_matrix/client/v3/profile/x/displayname", {**auth, "Content-Length": str(2 * MiB)})
        self.assertRefused(await threads.deferToThread(push, port, head, zeros(2 * MiB)), max_sent=0)

    async def test_federation_and_metrics_listeners(self) -> None:
        from tests.federation.helpers import start_federating

        metrics_port = free_port()
        server = await start_federating(self)
        fed_port = federation_port(server.hs)
        head = request_head("PUT", "/_matrix/federation/v1/send/txn1", {"Content-Type": "application/json", "Content-Length": str(200 * MiB)})
        watch = SpoolWatcher()
        out = await watch.during(push, fed_port, head, zeros(200 * MiB), tls=True)
        self.assertRefused(out, max_sent=0)
        self.assertEqual(watch.peak, 0)
        head = request_head("PUT", "/_matrix/federation/v1/send/txn2", {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        out = await watch.during(push, fed_port, head, chunked(200 * MiB), tls=True)
        self.assertRefused(out, max_sent=40 * MiB)
        self.assertLessEqual(watch.peak, 10 * MiB)

        metrics = await start_homeserver(self, listeners={"metrics": {"enabled": True, "port": metrics_port}})
        self.assertTrue(metrics.hs.config.metrics_listener.enabled)
        head = request_head("POST", "/metrics", {"Content-Length": str(20 * MiB)})
        self.assertRefused(await threads.deferToThread(push, metrics_port, head, zeros(20 * MiB)), max_sent=0)

    async def test_slow_body_is_cut_off(self) -> None:
        router = Router()

        async def echo(request):  # type: ignore[no-untyped-def]
            return 200, {"len": len(request.content.read())}

        router.register("POST", "/echo", echo)
        # The deadline is grace + expected length / minimum rate: here 0.5 s + 100 bytes at 1000 B/s.
        port = reactor.listenTCP(0, Site(router, body_grace_s=0.5, body_min_rate=1000), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        number = port.getHost().port

        def trickle() -> Outcome:
            def slowly() -> Iterator[bytes]:
                for _ in range(100):
                    time.sleep(0.1)
                    yield b"x"

            return push(number, request_head("POST", "/echo", {"Content-Length": "100"}), slowly(), wait_first=0)

        out = await threads.deferToThread(trickle)
        self.assertRefused(out, max_sent=20, status=408, errcode="M_UNKNOWN")
        # A body at a normal pace is served.
        out = await threads.deferToThread(push, number, request_head("POST", "/echo", {"Content-Length": "100"}), [b"x" * 100], wait_first=0)
        self.assertEqual((out.status, json.loads(out.body)), (200, {"len": 100}))


def federation_port(hs) -> int:  # type: ignore[no-untyped-def]
    """The port of hs's federation listener (on the federation service once the
    federation layer's refactor is in; on the HomeServer before)."""
    service = getattr(hs, "federation", None)
    port = getattr(service, "listening_port", None)
    return port if port is not None else hs.federation_listening_port
