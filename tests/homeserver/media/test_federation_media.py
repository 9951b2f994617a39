"""The federation side of media: multipart bodies, and serving our media to another
server over signed federation requests."""

from __future__ import annotations

from twisted.trial import unittest

from homeserver.media.multipart import MultipartError, build, filename_from_disposition, parse


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
        port = a.hs.federation_listening_port  # type: ignore[attr-defined]

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
