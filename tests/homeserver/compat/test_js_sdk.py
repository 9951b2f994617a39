"""matrix-js-sdk (what Element Web is built on) as a real client against WSPR.

The Node script ``js/drive.mjs`` runs two SDK clients with their own sync loops through a
whole chat (see its header); this test starts WSPR in the reactor and runs the script as
a subprocess. It needs ``npm ci`` in ``tests/homeserver/compat/js`` first; without
``node`` or the installed SDK it is skipped, saying so.
"""

from __future__ import annotations

import os
import shutil

from twisted.internet import defer, reactor
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial import unittest

from tests.support.wspr import start_homeserver

JS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "js")
SCRIPT_TIMEOUT_S = 120


class _Collect(ProcessProtocol):
    def __init__(self) -> None:
        self.output = bytearray()
        self.done: defer.Deferred[int] = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        self.done.callback(getattr(reason.value, "exitCode", None) or 0)


async def run_node(script: str, *args: str, timeout: float = SCRIPT_TIMEOUT_S) -> tuple[int, str]:
    """Runs ``node script args`` in JS_DIR without blocking the reactor the server lives in."""
    node = shutil.which("node")
    assert node is not None
    proto = _Collect()
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    transport = reactor.spawnProcess(proto, node, [node, script, *args], env=env, path=JS_DIR)  # type: ignore[attr-defined]
    timer = reactor.callLater(timeout, transport.signalProcess, "KILL")  # type: ignore[attr-defined]
    code = await proto.done
    if timer.active():
        timer.cancel()
    return code, proto.output.decode("utf-8", "replace")


class JsSdkTest(unittest.TestCase):
    timeout = SCRIPT_TIMEOUT_S + 30

    def setUp(self) -> None:
        if shutil.which("node") is None:
            raise unittest.SkipTest("node is not installed")
        if not os.path.isdir(os.path.join(JS_DIR, "node_modules", "matrix-js-sdk")):
            raise unittest.SkipTest("matrix-js-sdk is not installed: run `npm ci --prefix tests/homeserver/compat/js`")

    async def test_two_clients_chat(self) -> None:
        server = await start_homeserver(self)
        code, output = await run_node("drive.mjs", server.base_url)
        self.assertEqual(code, 0, output[-4000:])
        self.assertIn("OK ", output)
        # The run really reached the end of the scenario, not an early exit.
        self.assertIn("scrollback from a fresh client", output)


class JsSdkPostgresTest(JsSdkTest):
    database = "postgresql"
