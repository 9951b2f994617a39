"""Issue 9 finding 10: the database (with its WAL/SHM), the keys, the config and the
media store are private to the server's user, as created by `wspr init` and a real start
(umask 022, the usual default), and an older world-readable data dir is closed at start."""

from __future__ import annotations

import io
import os
import stat
import tempfile

from PIL import Image
from twisted.internet import defer
from twisted.trial import unittest

from homeserver.app import HomeServer
from homeserver.cli import main as wspr_main
from homeserver.config import load_config
from tests.support.wspr import MatrixClient, make_config_dir, start_homeserver


def mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (400, 300), (1, 2, 3)).save(buf, "PNG")
    return buf.getvalue()


class FileModesTest(unittest.TestCase):
    timeout = 60

    def setUp(self) -> None:
        old = os.umask(0o022)
        self.addCleanup(os.umask, old)

    def test_init_output(self) -> None:
        directory = os.path.join(tempfile.mkdtemp(), "data")
        self.assertEqual(wspr_main(["init", directory, "--server-name", "example.org"]), 0)
        self.assertEqual(mode(directory), 0o700)
        self.assertEqual(mode(os.path.join(directory, "media")), 0o700)
        for name in ("wspr.yaml", "signing.key", "tls.key"):
            self.assertEqual(mode(os.path.join(directory, name)), 0o600, name)
        # --force over files someone made readable keeps them private.
        os.chmod(os.path.join(directory, "wspr.yaml"), 0o644)
        self.assertEqual(wspr_main(["init", directory, "--server-name", "example.org", "--force"]), 0)
        self.assertEqual(mode(os.path.join(directory, "wspr.yaml")), 0o600)

    async def test_files_written_by_a_running_server(self) -> None:
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        room = (await alice.request("POST", "/_matrix/client/v3/createRoom", {}))["room_id"]
        await alice.request("PUT", f"/_matrix/client/v3/rooms/{room}/send/m.room.message/1", {"msgtype": "m.text", "body": "secret"})
        code, body = await alice.raw("POST", "/_matrix/media/v3/upload", data=png(), headers={"Content-Type": "image/png"})
        media_id = body["content_uri"].rsplit("/", 1)[1]
        code, _ = await alice.raw("GET", f"/_matrix/client/v1/media/thumbnail/localhost/{media_id}?width=32&height=32&method=crop")
        self.assertEqual(code, 200)
        directory = os.path.dirname(server.config_path)
        for name in ("wspr.db", "wspr.db-wal", "wspr.db-shm", "wspr.yaml", "signing.key", "tls.key"):
            self.assertEqual(mode(os.path.join(directory, name)), 0o600, name)
        store = server.hs.config.media.store_path
        seen = 0
        for root, _dirs, files in os.walk(store):
            self.assertEqual(mode(root), 0o700, root)
            for f in files:
                self.assertEqual(mode(os.path.join(root, f)), 0o600, f)
                seen += 1
        self.assertEqual(seen, 2)  # the upload and its thumbnail

    async def test_open_data_dir_of_an_older_version_is_closed(self) -> None:
        path, _ = make_config_dir()
        directory = os.path.dirname(path)
        db = os.path.join(directory, "wspr.db")
        for name in (db, db + "-wal"):
            with open(name, "wb"):
                pass
            os.chmod(name, 0o644)
        store = load_config(path).media.store_path
        os.chmod(store, 0o755)
        hs = HomeServer(load_config(path))
        await hs.start()
        self.addCleanup(lambda: defer.ensureDeferred(hs.stop()))
        self.assertEqual((mode(db), mode(db + "-wal"), mode(store)), (0o600, 0o600, 0o700))
