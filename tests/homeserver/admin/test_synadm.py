"""synadm (the Synapse admin CLI, from PyPI) as a real client of WSPR's admin API: run as
a subprocess in non-interactive mode (``--batch``) with a config file of its own, it
creates, lists, inspects and deactivates users, lists rooms and shows room details,
manages a registration token and asks the server version. What it reports is checked
against the server."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from typing import Any
from urllib.parse import quote

import yaml
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest

from tests.homeserver.admin.support import admin_server
from tests.support.wspr import MatrixClient


def last_json(stdout: str) -> Any:
    """synadm prints notes around its answer: the answer is its last JSON line."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(("{", "[")):
            return json.loads(line)
    raise AssertionError(f"no JSON in synadm's output:\n{stdout}")


class SynadmTest(unittest.TestCase):
    timeout = 180

    def setUp(self) -> None:
        try:
            import synadm  # noqa: F401
        except ImportError as e:
            raise unittest.SkipTest("synadm is not installed (pip install synadm, in the test extra)") from e
        self.home = tempfile.mkdtemp(prefix="wspr-synadm-")
        self.addCleanup(shutil.rmtree, self.home, True)

    def write_config(self, base_url: str, admin: MatrixClient, server_name: str) -> str:
        path = os.path.join(self.home, "synadm.yaml")
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(
                {
                    "user": admin.user_id,
                    "token": admin.access_token,
                    "protocol": "http",
                    "base_url": base_url,
                    "admin_path": "/_synapse/admin",
                    "matrix_path": "/_matrix",
                    "format": "minified",
                    "timeout": 30,
                    "server_discovery": "well-known",
                    # named, so synadm does not go looking for it over federation
                    "homeserver": server_name,
                    "ssl_verify": False,
                },
                f,
            )
        return path

    async def synadm(self, config: str, *args: str, creating: bool = False) -> Any:
        """``creating``: synadm looks the user up first, and a new one is a 404 it expects."""
        # HOME: synadm keeps a debug log under ~/.local/share
        env = {"HOME": self.home, "PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"}
        out, err, code = await getProcessOutputAndValue(
            sys.executable, ["-m", "synadm", "-c", config, "--batch", "-o", "minified", *args], env=env
        )
        stdout, stderr = out.decode(), err.decode()
        self.assertEqual(code, 0, f"synadm {' '.join(args)} failed ({code}):\n{stdout}\n{stderr}")
        warnings = [line for line in stderr.splitlines() if "returned status code" in line]
        if creating:
            warnings = [line for line in warnings if not line.endswith("404")]
        self.assertEqual(warnings, [], f"synadm {' '.join(args)}: {stderr}")
        return last_json(stdout)

    async def test_users_and_rooms(self) -> None:
        server, root = await admin_server(self)
        config = self.write_config(server.base_url, root, server.server_name)
        alice = await MatrixClient.register(server.base_url, "alice")
        room_id = (await alice.post("/createRoom", {"name": "Synadm room", "preset": "public_chat"}))["room_id"]

        version = await self.synadm(config, "version")
        self.assertIsInstance(version["server_version"], str)

        created = await self.synadm(config, "user", "modify", "carol", "-P", "carol-pw", "-n", "Carol C", "--threepid", "email", "carol@example.org", creating=True)
        self.assertEqual((created["name"], created["displayname"]), ("@carol:localhost", "Carol C"))
        # the account works
        carol = await MatrixClient.login(server.base_url, "carol", "carol-pw")

        listing = await self.synadm(config, "user", "list")
        self.assertEqual(
            sorted(u["name"] for u in listing["users"]), ["@alice:localhost", "@carol:localhost", root.user_id]
        )
        self.assertEqual(listing["total"], 3)
        found = await self.synadm(config, "user", "list", "--name", "caro")
        self.assertEqual([u["name"] for u in found["users"]], ["@carol:localhost"])

        details = await self.synadm(config, "user", "details", "@carol:localhost")
        self.assertEqual([t["address"] for t in details["threepids"]], ["carol@example.org"])

        promoted = await self.synadm(config, "user", "modify", "@carol:localhost", "--admin")
        self.assertTrue(promoted["admin"])

        deactivated = await self.synadm(config, "user", "deactivate", "@carol:localhost")
        self.assertEqual(deactivated, {"id_server_unbind_result": "success"})
        self.assertEqual((await carol.raw("GET", "/_matrix/client/v3/account/whoami"))[0], 401)
        active = await self.synadm(config, "user", "list")
        self.assertNotIn("@carol:localhost", [u["name"] for u in active["users"]])
        everyone = await self.synadm(config, "user", "list", "--deactivated")
        self.assertIn("@carol:localhost", [u["name"] for u in everyone["users"]])

        rooms = await self.synadm(config, "room", "list")
        self.assertEqual([(r["room_id"], r["name"]) for r in rooms["rooms"]], [(room_id, "Synadm room")])
        self.assertEqual(rooms["total_rooms"], 1)
        room = await self.synadm(config, "room", "details", room_id)
        self.assertEqual((room["room_id"], room["joined_members"], room["creator"]), (room_id, 1, alice.user_id))
        members = await self.synadm(config, "room", "members", room_id)
        self.assertEqual(members["members"], [alice.user_id])

        token = await self.synadm(config, "regtok", "new", "--token", "synadm-made", "--uses-allowed", "2")
        self.assertEqual((token["token"], token["uses_allowed"]), ("synadm-made", 2))
        tokens = await self.synadm(config, "regtok", "list")
        self.assertEqual([t["token"] for t in tokens["registration_tokens"]], ["synadm-made"])
        stored = await root.request("GET", "/_synapse/admin/v1/registration_tokens/" + quote("synadm-made"))
        self.assertEqual(stored["uses_allowed"], 2)
