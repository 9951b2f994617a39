"""Runs the bundled SFU as a child process of ``wspr run`` (its own interpreter, so its
own core: aiortc is asyncio-only and would otherwise share our GIL)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

from twisted.internet import task

if TYPE_CHECKING:
    from homeserver.app import HomeServer

logger = logging.getLogger(__name__)


class SFUProcess:
    def __init__(self, hs: "HomeServer") -> None:
        self.hs = hs
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        if not self.hs.config.sfu.enabled or not self.hs.config.config_path:
            return
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "media_sfu", "--config", self.hs.config.config_path],
            env=dict(os.environ),
        )
        logger.info("started the SFU (pid %d) at %s", self.proc.pid, self.hs.config.sfu.effective_public_url)

    async def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        for _ in range(50):
            if self.proc.poll() is not None:
                return
            await task.deferLater(self.hs.reactor, 0.1, lambda: None)
        self.proc.kill()
