"""Issue 9 finding 12: SQLite's synchronous setting comes from `database.synchronous`
(normal by default, full on request) on every connection, readers and writer alike."""

from __future__ import annotations

import os
import tempfile

from twisted.internet import defer
from twisted.trial import unittest

from homeserver.app import HomeServer
from homeserver.config import ConfigError, load_config
from homeserver.storage.database import Database
from tests.support.wspr import make_config_dir, start_homeserver

# PRAGMA synchronous values.
NORMAL, FULL = 1, 2


class SynchronousTest(unittest.TestCase):
    async def check(self, db: Database, expected: int) -> None:
        pragma = "PRAGMA synchronous"
        self.assertEqual(await db.write(lambda txn: txn.select_value(pragma)), expected)
        for _ in range(4):  # the reader threads too
            self.assertEqual(await db.read(lambda txn: txn.select_value(pragma)), expected)

    async def test_database_setting(self) -> None:
        for setting, expected in (("normal", NORMAL), ("full", FULL)):
            db = Database("sqlite:///" + os.path.join(tempfile.mkdtemp(), "t.db"), synchronous=setting)
            db.start()
            self.addCleanup(db.close)
            await self.check(db, expected)
        with self.assertRaises(ValueError):
            Database("sqlite:///:memory:", synchronous="off")

    async def test_from_config(self) -> None:
        server = await start_homeserver(self, database="sqlite")
        await self.check(server.hs.db, NORMAL)
        # (start_homeserver's own `database` argument is the engine: set the key directly.)
        path, _ = make_config_dir(overrides={"database": {"synchronous": "full"}})
        hs = HomeServer(load_config(path))
        await hs.start()
        self.addCleanup(lambda: defer.ensureDeferred(hs.stop()))
        await self.check(hs.db, FULL)
        path, _ = make_config_dir(overrides={"database": {"synchronous": "off"}})
        with self.assertRaises(ConfigError):
            load_config(path)
