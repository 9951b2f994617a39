"""The federation side of media: multipart bodies, and serving our media to another
server over signed federation requests."""

from __future__ import annotations

import hashlib
import os

from twisted.trial import unittest

from homeserver.media.multipart import (
    MultipartError,
    MultipartStream,
    boundary_of,
    build,
    filename_from_disposition,
    parse,
)
from tests.homeserver.http.test_body_limits import federation_port
from tests.homeserver.media.test_media_http import peak_rss_mib, reset_peak_rss, rss_mib


class MultipartTest(unittest.TestCase):
    def test_round_trip(self) -> None:
        data = b"\x00\r\n--not-a-boundary\r\n\xff" * 10
        body, ctype = build(data, {"Content-Type": "image/png", "Content-Disposition": "inline; filename*=utf-8''caf%C3%A9.png"})
        got = parse(ctype, body)
        self.assertEqual((got.metadata, got.content_type, got.filename, got.data, got.location), ({}, "image/png", "café.png", data, None))

    def test_location_and_errors(self) -> None:
        body = (
            b"--xyz\r\nContent-Type: application/json\r\n\r\n{}\r\n"
            b"--xyz\r\nLocation: https://cdn.example/file\r\n\r\n\r\n--xyz--\r\n"
        )
        got = parse("multipart/mixed; boundary=xyz", body)
        self.assertEqual((got.location, got.data), ("https://cdn.example/file", None))
        with self.assertRaises(MultipartError):
            parse("application/json", body)
        with self.assertRaises(MultipartError):
            parse("multipart/mixed; boundary=xyz", b"--xyz\r\nContent-Type: application/json\r\n\r\n[]\r\n--xyz--\r\n")

    def test_streamed_in_any_pieces(self) -> None:
        """The body split at every possible point gives the same result, and the content
        reaches the sink as it arrives (only a delimiter's length is held back)."""
        data = bytes(range(256)) * 8 + b"\r\n--abc" + b"\r\n--ab"
        body, ctype = build(data, {"Content-Type": "application/octet-stream"})
        boundary = boundary_of(ctype)
        for cut in range(0, len(body), 7):
            got: list[bytes] = []
            stream = MultipartStream(boundary, got.append)
            stream.feed(body[:cut])
            stream.feed(body[cut:])
            result = stream.finish()
            self.assertEqual((b"".join(got), result.content_type), (data, "application/octet-stream"))
        got = []
        stream = MultipartStream(boundary, got.append)
        stream.feed(body[: len(body) // 2])
        self.assertGreater(sum(map(len, got)), len(data) // 2 - 200)
        with self.assertRaises(MultipartError):
            stream.finish()  # cut off in the middle
        with self.assertRaises(MultipartError):
            MultipartStream(b"abc", got.append).feed(b"--abc\r\n" + b"x" * 20000)  # endless part headers

    def test_filenames(self) -> None:
        self.assertEqual(filename_from_disposition('attachment; filename="a b.txt"'), "a b.txt")
        self.assertEqual(filename_from_disposition("inline; filename=x.png"), "x.png")
        self.assertIsNone(filename_from_disposition("inline"))


class FederationMediaTest(unittest.TestCase):
    timeout = 60

    async def test_serves_media_to_other_servers(self) -> None:
        from federation.transport.xmatrix import sign_request
        from tests.federation.helpers import raw_federation_request, start_federating
        from tests.support.wspr import MatrixClient

        a = await start_federating(self)
        b = await start_federating(self)
        alice = await MatrixClient.register(a.base_url, "alice")
        code, body = await alice.raw(
            "POST", "/_matrix/media/v3/upload?filename=hello.txt", data=b"hello world", headers={"Content-Type": "text/plain"}
        )
        media_id = body["content_uri"].rsplit("/", 1)[1]
        port = federation_port(a.hs)

        async def get(path: str) -> tuple[int, object]:
            auth = sign_request(b.hs.signing_key, b.server_name, a.server_name, "GET", path)
            return await raw_federation_request(port, "GET", path, headers={"Authorization": auth})

        code, raw = await get(f"/_matrix/federation/v1/media/download/{media_id}")
        self.assertEqual(code, 200)
        assert isinstance(raw, bytes)
        boundary = raw.split(b"\r\n", 1)[0][2:].decode()
        got = parse(f"multipart/mixed; boundary={boundary}", raw)
        self.assertEqual((got.data, got.content_type, got.filename), (b"hello world", "text/plain; charset=UTF-8", "hello.txt"))
        code, err = await get("/_matrix/federation/v1/media/download/nosuchmedia")
        self.assertEqual(code, 404)
        # Unsigned requests are refused.
        code, err = await raw_federation_request(port, "GET", f"/_matrix/federation/v1/media/download/{media_id}")
        self.assertEqual(code, 401)

        # A big file is streamed from disk: serving it to a server does not take its size
        # in memory (it took twice that: read whole, then copied into the multipart body).
        data = os.urandom(30 * 1024 * 1024)
        code, body = await alice.raw("POST", "/_matrix/media/v3/upload", data=data, headers={"Content-Type": "video/mp4"})
        path = "/_matrix/federation/v1/media/download/" + body["content_uri"].rsplit("/", 1)[1]
        base_rss = rss_mib()
        reset_peak_rss()
        code, head, digest, length = await federation_download_digest(port, path, sign_request(b.hs.signing_key, b.server_name, a.server_name, "GET", path))
        grown = peak_rss_mib() - base_rss
        self.assertEqual(code, 200)
        boundary = head.split(b"\r\n", 1)[0][2:]
        whole = head[: head.index(b"video/mp4")] + b"video/mp4\r\nContent-Disposition: inline\r\n\r\n" + data + b"\r\n--" + boundary + b"--\r\n"
        self.assertEqual((length, digest), (len(whole), hashlib.sha256(whole).hexdigest()))
        self.assertLess(grown, 16, f"peak RSS grew by {grown} MiB")


async def federation_download_digest(port: int, path: str, auth: str) -> tuple[int, bytes, str, int]:
    """GETs path from a federation listener in another process (a client in this one
    would count in the memory measured), keeping the first KiB and a digest of the body."""
    import json
    import subprocess
    import sys

    from twisted.internet import threads

    script = """
import hashlib, json, socket, ssl, sys
port, path, auth = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
sock.sendall(f"GET {path} HTTP/1.1\\r\\nHost: x\\r\\nAuthorization: {auth}\\r\\nConnection: close\\r\\n\\r\\n".encode())
raw = b""
while b"\\r\\n\\r\\n" not in raw:
    raw += sock.recv(65536)
head, _, rest = raw.partition(b"\\r\\n\\r\\n")
digest, first, length = hashlib.sha256(rest), rest[:1024], len(rest)
while True:
    try:
        data = sock.recv(1 << 20)
    except ssl.SSLZeroReturnError:
        break
    if not data:
        break
    digest.update(data); length += len(data)
    first = (first + data)[:1024]
print(json.dumps([int(head.split()[1]), first.decode("latin-1"), digest.hexdigest(), length]))
"""
    out = await threads.deferToThread(
        subprocess.run, [sys.executable, "-c", script, str(port), path, auth], capture_output=True, text=True, check=True
    )
    code, first, digest, length = json.loads(out.stdout)
    return code, first.encode("latin-1"), digest, length

